// Two-person approval against the real control plane: identities are client certificates minted by the
// test CA (alice requests, bob approves, carol lacks the approver rule), RBAC is the API server's, and
// the guard is the ValidatingAdmissionPolicy `runbook rbac --approval` prints, applied with kubectl.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { stringify } from 'yaml';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { approvalObjects } from '../../src/commands/rbac.js';
import { REPO_ROOT, runCli, tempDir, type CliRun } from '../support/cli.js';
import { writeConfig } from '../support/config.js';
import { startKube, type Deployment, type KubeHarness, type KubeObject } from '../support/cluster/index.js';

let kube: KubeHarness;
let approvals: string;
let unguarded: string;
let manifests: string;
const users: Record<'alice' | 'bob' | 'carol', string> = { alice: '', bob: '', carol: '' };
let journal: string;

type ConfigMap = KubeObject & { data?: Record<string, string> };

const admin = (args: string[], input?: string) => kube.kubectl(args, { kubeconfig: kube.info.kubeconfig, input });

interface Opts {
  timeout?: string;
  namespace?: string;
  deployment?: string;
}

function configFor(user: keyof typeof users, o: Opts = {}): string {
  return writeConfig({
    default: 'prod',
    environments: {
      prod: {
        kubernetes: { kubeconfig: users[user], namespace: kube.namespace, deployment: o.deployment ?? 'app' },
        rollout: { timeout: '30s' },
        approval: { required: 2, namespace: o.namespace ?? approvals, timeout: o.timeout ?? '60s' },
      },
    },
  }).path;
}

/** Every run a test started; one a failed test left waiting loses its request after it, so it cannot hold the lock into the next test. */
const started: Array<Promise<unknown>> = [];

/** The CLI in-process as `user`, its stderr timestamped as it arrives. */
function cli(user: keyof typeof users, args: string[], o: Opts = {}) {
  const lines: Array<{ at: number; text: string }> = [];
  const stderr = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push({ at: Date.now(), text: chunk.toString() });
      cb();
    },
  });
  const done: Promise<CliRun & { err: string }> = runCli(args, { env: { RUNBOOK_CONFIG: configFor(user, o), RUNBOOK_JOURNAL_DIR: journal }, stderr }).then(
    (r) => ({
      ...r,
      err: lines.map((l) => l.text).join(''),
    }),
  );
  started.push(done);
  return { done, lines, text: () => lines.map((l) => l.text).join('') };
}

const replicas = async () => (await kube.get<Deployment>('deployments', kube.namespace, 'app'))!.spec.replicas;
const requests = (ns = approvals) => kube.list<ConfigMap>('configmaps', { namespace: ns, labelSelector: 'runbook.dev/approval=request' });

async function waitForRequest(ns = approvals, except: string[] = []): Promise<ConfigMap> {
  let found: ConfigMap | undefined;
  await kube.waitFor(
    async () => {
      found = (await requests(ns)).find((c) => !except.includes(c.metadata.name) && c.data?.state === 'pending');
      return found !== undefined;
    },
    { what: 'an approval request', timeoutMs: 30_000 },
  );
  return found!;
}

async function namespace(name: string): Promise<void> {
  await kube.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } } as KubeObject);
}

beforeAll(async () => {
  kube = await startKube({ namespace: 'approval' });
  approvals = `${kube.namespace}-approvals`;
  unguarded = `${kube.namespace}-unguarded`;
  await namespace(approvals);
  await namespace(unguarded);
  await kube.seedDeployment({ name: 'app', replicas: 2 });
  // Another target, for the run after a killed one (whose lock on deployment/app lives on for a minute).
  await kube.seedDeployment({ name: 'other', replicas: 1 });
  journal = tempDir('runbook-approval-journal-');
  const dir = tempDir('runbook-approval-users-');
  const groups = { requesters: `req-${kube.namespace}`, approvers: `appr-${kube.namespace}` };
  users.alice = kube.userKubeconfig(join(dir, 'alice'), { name: `alice-${kube.namespace}`, groups: [groups.requesters] });
  users.bob = kube.userKubeconfig(join(dir, 'bob'), { name: `bob-${kube.namespace}`, groups: [groups.approvers] });
  users.carol = kube.userKubeconfig(join(dir, 'carol'), { name: `carol-${kube.namespace}`, groups: [groups.requesters] });
  // Alice's Role for the procedure (from `runbook rbac app scale`), then approval's Roles and policy as printed.
  const op = await runCli(['rbac', 'app', 'scale', '--group', groups.requesters, '--name', `op-${kube.namespace}`], {
    env: { RUNBOOK_CONFIG: configFor('alice') },
  });
  expect(op.code, op.stderr).toBe(0);
  const ap = await runCli(['rbac', '--approval', '--group', groups.requesters, '--approver-group', groups.approvers], {
    env: { RUNBOOK_CONFIG: configFor('alice') },
  });
  expect(ap.code, ap.stderr).toBe(0);
  manifests = `${op.stdout}${ap.stdout}`;
  const applied = await admin(['apply', '-f', '-'], manifests);
  expect(applied.code, applied.stderr).toBe(0);
  // The unguarded namespace: the same Roles, no policy.
  const roles = approvalObjects({ namespace: unguarded, requesterGroup: groups.requesters, approverGroup: groups.approvers }).filter(
    (o) => o.kind === 'Role' || o.kind === 'RoleBinding',
  );
  expect((await admin(['apply', '-f', '-'], roles.map((r) => `---\n${stringify(r)}`).join(''))).code).toBe(0);
  // A policy takes effect once the API server's admission informer has seen it.
  await new Promise((r) => setTimeout(r, 2000));
}, 240_000);

afterEach(async () => {
  for (const c of await requests().catch(() => [])) if (c.data?.state === 'pending') await kube.remove('configmaps', approvals, c.metadata.name);
  await Promise.allSettled(started.splice(0));
}, 90_000);

afterAll(async () => {
  if (manifests) await admin(['delete', '--ignore-not-found', '-f', '-'], manifests);
  await kube?.remove('namespaces', undefined, approvals);
  await kube?.remove('namespaces', undefined, unguarded);
  await kube?.close();
});

const scaleToZero = ['app', 'scale', '--replicas', '0', '--yes'];

describe('two-person approval on a real API server', () => {
  it('the requester cannot approve its own run (the tool refuses, and so does the server); carol without the rule is refused; bob unblocks it within a second', async () => {
    const run = cli('alice', scaleToZero);
    const req = await waitForRequest();
    const runId = req.data!.runId;
    expect(req.data!.requester).toBe(`alice-${kube.namespace}`);
    // The request exists a moment before the run has checked the guard and printed the approver's command.
    await kube.waitFor(() => run.text().includes(`runbook approve ${runId} -e prod`), { what: "the approver's command", timeoutMs: 10_000 });

    const self = await cli('alice', ['approve', runId, '--yes']).done;
    expect(self.code, self.err).toBe(3);
    expect(self.err).toMatch(/you \(alice-.*\) requested this run; another person must approve it/);
    // Around the tool: the raw patch, as alice, is refused by the policy.
    const patch = (who: string, user: keyof typeof users) =>
      kube.kubectl(
        [
          'patch',
          'configmap',
          req.metadata.name,
          '-n',
          approvals,
          '--type',
          'merge',
          '-p',
          JSON.stringify({ data: { state: 'approved', approver: who, approvedDigest: req.data!.digest } }),
        ],
        { kubeconfig: users[user] },
      );
    const raw = await patch(`alice-${kube.namespace}`, 'alice');
    expect(raw.code).not.toBe(0);
    expect(raw.stderr).toMatch(/only another user.*never its requester/);
    // Carol may patch ConfigMaps there, but has no `approve` on approvals.runbook.dev: refused by the tool and by the server.
    const carol = await cli('carol', ['approve', runId, '--yes']).done;
    expect(carol.code, carol.err).toBe(2);
    expect(carol.err).toMatch(/carol-.* may not approve runs here: no "approve" permission on approvals.runbook.dev/);
    const carolRaw = await patch(`carol-${kube.namespace}`, 'carol');
    expect(carolRaw.code).not.toBe(0);
    expect(carolRaw.stderr).toMatch(/only another user/);
    // Claiming to be someone else is refused too.
    const forged = await kube.kubectl(
      [
        'patch',
        'configmap',
        req.metadata.name,
        '-n',
        approvals,
        '--type',
        'merge',
        '-p',
        JSON.stringify({ data: { state: 'approved', approver: `bob-${kube.namespace}`, approvedDigest: req.data!.digest } }),
      ],
      { kubeconfig: users.carol },
    );
    expect(forged.code).not.toBe(0);
    expect(await replicas()).toBe(2);
    expect((await kube.get<ConfigMap>('configmaps', approvals, req.metadata.name))!.data!.state).toBe('pending');

    const ok = await cli('bob', ['approve', runId, '--yes']).done;
    const decidedAt = Date.now();
    expect(ok.code, ok.err).toBe(0);
    expect(ok.err).toContain('scale deployment/app: 2 → 0');
    await kube.waitFor(() => run.lines.some((l) => /approved by bob-/.test(l.text)), { what: 'the run to see the approval', timeoutMs: 5000 });
    const seen = run.lines.find((l) => /approved by bob-/.test(l.text))!.at;
    expect(seen - decidedAt).toBeLessThan(1000);
    const r = await run.done;
    expect(r.code, r.err).toBe(0);
    expect(await replicas()).toBe(0);
    const events = await admin(['get', 'events', '-n', kube.namespace, '--field-selector', 'involvedObject.name=app,reason=RunbookApproved', '-o', 'json']);
    expect(events.stdout).toContain(`bob-${kube.namespace} approved alice-${kube.namespace}'s app scale in prod (run ${runId})`);
    await kube.patch('deployments', kube.namespace, 'app', { spec: { replicas: 2 } });
    await kube.waitForRollout('app');
  }, 120_000);

  it('deny ends the run with exit 3 and nothing changed', async () => {
    const run = cli('alice', scaleToZero);
    const req = await waitForRequest();
    const no = await cli('bob', ['deny', req.data!.runId, '--reason', 'peak traffic']).done;
    expect(no.code, no.err).toBe(0);
    const r = await run.done;
    expect(r.code).toBe(3);
    expect(r.err).toMatch(/denied by bob-.*: peak traffic; nothing was changed/);
    expect(await replicas()).toBe(2);
  }, 60_000);

  it('no decision within approval.timeout: exit 3, the request expired, nothing changed', async () => {
    const r = await cli('alice', scaleToZero, { timeout: '2s' }).done;
    expect(r.code).toBe(3);
    expect(r.err).toMatch(/no second approver within 2s/);
    expect(await replicas()).toBe(2);
    const mine = (await requests()).find((c) => c.data?.runId && r.err.includes(c.data.runId));
    expect(mine?.data?.state).toBe('expired');
  }, 60_000);

  it('the deployment changes after the approval, before the step: exit 3, the change named, nothing changed by the run', async () => {
    const run = cli('alice', scaleToZero);
    const req = await waitForRequest();
    await kube.patch('deployments', kube.namespace, 'app', { spec: { replicas: 3 } });
    const ok = await cli('bob', ['approve', req.data!.runId, '--yes']).done;
    expect(ok.code, ok.err).toBe(0);
    const r = await run.done;
    expect(r.code).toBe(3);
    expect(r.err).toMatch(
      /the plan changed since bob-.* approved it \(Scale the deployment: approved "scale deployment\/app: 2 → 0", now "scale deployment\/app: 3 → 0"\)/,
    );
    expect(await replicas()).toBe(3);
    await kube.patch('deployments', kube.namespace, 'app', { spec: { replicas: 2 } });
  }, 60_000);

  it('a namespace without the guarding policy: exit 2 before waiting, nothing changed, no request left', async () => {
    const r = await cli('alice', scaleToZero, { namespace: unguarded }).done;
    expect(r.code).toBe(2);
    expect(r.err).toMatch(new RegExp(`approvals in namespace ${unguarded} are not guarded`));
    expect(await requests(unguarded)).toEqual([]);
    expect(await replicas()).toBe(2);
  }, 60_000);
  it('a killed requester leaves its request, which expires: approve refuses it, and the next request deletes it', async () => {
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        '--input-type=module',
        '-e',
        `const { run } = await import(${JSON.stringify(join(REPO_ROOT, 'src', 'main.ts'))}); process.exitCode = await run(${JSON.stringify(scaleToZero)});`,
      ],
      {
        cwd: REPO_ROOT,
        env: { ...process.env, RUNBOOK_CONFIG: configFor('alice', { timeout: '3s' }), RUNBOOK_JOURNAL_DIR: journal, NO_COLOR: '1' },
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    let childErr = '';
    child.stderr!.on('data', (c: Buffer) => (childErr += c.toString()));
    const req = await waitForRequest().catch((err: Error) => {
      child.kill('SIGKILL');
      throw new Error(`${err.message}; the requester said: ${childErr}`);
    });
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    expect((await kube.get<ConfigMap>('configmaps', approvals, req.metadata.name))!.data!.state).toBe('pending');
    await new Promise((r) => setTimeout(r, 3500));
    const late = await cli('bob', ['approve', req.data!.runId, '--yes']).done;
    expect(late.code).toBe(3);
    expect(late.err).toMatch(/request expired at/);
    // Past its expiry (and a grace of 5 s), the next request made in the namespace removes it.
    await new Promise((r) => setTimeout(r, 5000));
    const next = cli('alice', scaleToZero, { timeout: '2s', deployment: 'other' });
    await waitForRequest(approvals, [req.metadata.name]);
    expect(await kube.get('configmaps', approvals, req.metadata.name)).toBeUndefined();
    expect((await next.done).code).toBe(3);
    expect(await replicas()).toBe(2);
  }, 90_000);
});
