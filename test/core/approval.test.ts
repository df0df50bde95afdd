import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { runCli, tempDir } from '../support/cli.js';
import { writeConfig } from '../support/config.js';
import { FakeKube, fakeFactories } from '../support/fakes/fake-kube.js';
import { FakeRds, fakePostgres } from '../support/fakes/fake-rds.js';
import { ScriptedPrompter } from '../support/prompter.js';
import { KubeApiError, type V1ConfigMap, type WriteOptions } from '../../src/clients/kube.js';
import {
  approvalCovers,
  approvalTargets,
  canonicalJson,
  decideRequest,
  findRequest,
  planDifferences,
  planDigest,
  readRequest,
  requestConfigMap,
  type ApprovalPlan,
} from '../../src/core/approval.js';
import { selectEnvironment } from '../../src/core/config.js';
import { runFile } from '../../src/core/journal.js';
import { GateError, InterruptedError, UsageError } from '../../src/core/errors.js';

const NS = 'approvals';

/** The approvals policy as the API server applies it (the real one is tested in test/commands/approve.int.test.ts). */
class GuardedKube extends FakeKube {
  override async patchConfigMap(namespace: string, name: string, patch: Record<string, unknown>, opts?: WriteOptions & { resourceVersion?: string }) {
    const cur = this.configMapObjects.get(`${namespace}/${name}`);
    const data = (patch.data ?? {}) as Record<string, string>;
    const deciding = data.state === 'approved' || data.state === 'denied';
    if (cur && deciding && (data.approver !== this.identity.username || data.approver === cur.data?.requester))
      throw new KubeApiError('admission policy: only another user decides a request', 422, 'Invalid');
    return super.patchConfigMap(namespace, name, patch, opts);
  }
}

function config(approval: Record<string, unknown> = {}) {
  return {
    environments: {
      staging: {
        kubernetes: { namespace: 'production', deployment: 'app' },
        rollout: { timeout: '2s' },
        approval: { required: 2, namespace: NS, timeout: '5s', ...approval },
      },
    },
  };
}

function journalEvents(dir: string, runId: string) {
  return readFileSync(runFile(dir, runId), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

const requests = (kube: FakeKube) => [...kube.configMapObjects.entries()].filter(([k]) => k.startsWith(`${NS}/runbook-approval-`)).map(([, cm]) => cm);

async function until(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Bob, once alice's run has made its request: changes the world first if asked, then decides. */
async function bob(kube: FakeKube, state: 'approved' | 'denied', o: { reason?: string; before?: () => void } = {}) {
  await until(() => requests(kube).length > 0);
  const runId = requests(kube)[0].data!.runId;
  kube.identity = { username: 'bob', groups: ['approvers'] };
  o.before?.();
  const r = await findRequest(kube, NS, runId);
  return decideRequest(kube, r, { username: 'bob' }, { state, reason: o.reason, now: new Date() });
}

function setup(approval: Record<string, unknown> = {}, kube: FakeKube = new GuardedKube(3)) {
  kube.identity = { username: 'alice', groups: ['operators'] };
  const { dir } = writeConfig(config(approval));
  const journal = tempDir('journal-');
  const run = (args: string[], extra: Parameters<typeof runCli>[1] = {}) =>
    runCli(args, { cwd: dir, clientFactories: fakeFactories(kube), env: { RUNBOOK_JOURNAL_DIR: journal }, ...extra });
  return { kube, dir, journal, run, replicas: () => kube.deployments.get('app')!.spec!.replicas };
}

describe('two-person approval: the run waits for a second, different user', () => {
  it('approved by bob: the run goes on at once, and the journal and the Event name both', async () => {
    const { kube, run, journal, replicas } = setup();
    const [r] = await Promise.all([run(['app', 'scale', '--replicas', '0', '--yes']), bob(kube, 'approved')]);
    expect(r.code, r.stderr).toBe(0);
    expect(replicas()).toBe(0);
    const runId = requests(kube)[0].data!.runId;
    expect(r.stderr).toContain(`waiting for a second approver (alice cannot approve its own run): runbook approve ${runId} -e staging`);
    expect(r.stderr).toMatch(/approved by bob after/);
    const gate = journalEvents(journal, runId).find((e) => e.type === 'gate' && e.kind === 'approval');
    expect(gate).toMatchObject({ step: 'scale', decision: 'approved', by: 'approver', requester: 'alice', approver: 'bob' });
    expect(gate!.digest).toBe(requests(kube)[0].data!.digest);
    expect(requests(kube)[0].data!.state).toBe('approved');
    expect(kube.recorded.map((e) => `${e.reason} ${e.message}`)).toContainEqual(`RunbookApproved bob approved alice's app scale in staging (run ${runId})`);
  });

  it('denied by bob: exit 3, the deployment untouched, the reason shown and journaled', async () => {
    const { kube, run, journal, replicas } = setup();
    const [r] = await Promise.all([run(['app', 'scale', '--replicas', '0', '--yes']), bob(kube, 'denied', { reason: 'not during the sale' })]);
    expect(r.code).toBe(3);
    expect(replicas()).toBe(3);
    expect(r.stderr).toMatch(/denied by bob: not during the sale; nothing was changed/);
    expect(journalEvents(journal, requests(kube)[0].data!.runId).find((e) => e.type === 'gate' && e.kind === 'approval')).toMatchObject({
      decision: 'declined',
      requester: 'alice',
      approver: 'bob',
    });
  });

  it('nobody decides within approval.timeout: exit 3, the request marked expired', async () => {
    const { kube, run, replicas } = setup({ timeout: '1s' });
    const t0 = Date.now();
    const r = await run(['app', 'scale', '--replicas', '0', '--yes']);
    expect(r.code).toBe(3);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1000);
    expect(r.stderr).toMatch(/no second approver within 1s/);
    expect(replicas()).toBe(3);
    expect(requests(kube)[0].data!.state).toBe('expired');
  });

  it('Ctrl-C while waiting: the request is cancelled, exit 130, nothing changed', async () => {
    const { kube, run, replicas } = setup();
    const ctl = new AbortController();
    void until(() => requests(kube).length > 0).then(() => ctl.abort(new InterruptedError('SIGINT')));
    const r = await run(['app', 'scale', '--replicas', '0', '--yes'], { interrupts: { signal: ctl.signal, hard: new AbortController().signal } });
    expect(r.code).toBe(130);
    expect(replicas()).toBe(3);
    expect(requests(kube)[0].data!.state).toBe('cancelled');
  });

  it('the world changed between the approval and the step: exit 3, naming what differs, nothing changed', async () => {
    const { kube, run, replicas } = setup();
    const [r] = await Promise.all([
      run(['app', 'scale', '--replicas', '0', '--yes']),
      bob(kube, 'approved', { before: () => (kube.deployments.get('app')!.spec!.replicas = 5) }),
    ]);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(
      /the plan changed since bob approved it \(Scale the deployment: approved "scale deployment\/app: 3 → 0", now "scale deployment\/app: 5 → 0"\)/,
    );
    expect(replicas()).toBe(5);
  });

  it('a namespace whose requests are not guarded by the policy: exit 2 before waiting, nothing changed', async () => {
    const { kube, run, replicas } = setup({}, new FakeKube(3));
    const r = await run(['app', 'scale', '--replicas', '0', '--yes']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/approvals in namespace approvals are not guarded/);
    expect(replicas()).toBe(3);
    expect(requests(kube)).toEqual([]);
  });

  it('a requester that may not make requests there is stopped before the lock: exit 2', async () => {
    const { kube, run } = setup();
    kube.denied.push({ verb: 'create', resource: 'configmaps', namespace: NS });
    const r = await run(['app', 'scale', '--replicas', '0', '--yes']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/two-person approval: not allowed to create configmaps in namespace approvals/);
    expect(kube.mutations).toEqual([]);
  });

  it('a gate approval.for does not cover, a dry run: no request', async () => {
    const { kube, run } = setup();
    const write = await run(['app', 'scale', '--replicas', '5']);
    expect(write.code, write.stderr).toBe(0);
    const dry = await run(['app', 'scale', '--replicas', '0', '--dry-run']);
    expect(dry.code, dry.stderr).toBe(0);
    expect(requests(kube)).toEqual([]);
  });

  it('for: [destructive, write] covers a write gate of a protected environment', async () => {
    const kube = new GuardedKube(3);
    kube.identity = { username: 'alice', groups: [] };
    const c = config({ for: ['destructive', 'write'] });
    const { dir } = writeConfig({ environments: { staging: { ...c.environments.staging, protected: true } } });
    const [r] = await Promise.all([
      runCli(['app', 'scale', '--replicas', '5', '--yes', '-e', 'staging'], { cwd: dir, clientFactories: fakeFactories(kube) }),
      bob(kube, 'approved'),
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(requests(kube)[0].data!.state).toBe('approved');
  });
});

describe('runbook approve / deny', () => {
  async function pending(approval: Record<string, unknown> = {}) {
    const s = setup(approval);
    const run = s.run(['app', 'scale', '--replicas', '0', '--yes']);
    await until(() => requests(s.kube).length > 0);
    const runId = requests(s.kube)[0].data!.runId;
    return { ...s, runId, running: run };
  }

  it('the requester cannot approve its own run (exit 3); bob can, with --yes', async () => {
    const { kube, run, runId, running } = await pending();
    const self = await run(['approve', runId, '--yes']);
    expect(self.code).toBe(3);
    expect(self.stderr).toMatch(/you \(alice\) requested this run; another person must approve it/);
    kube.identity = { username: 'bob', groups: [] };
    const ok = await run(['approve', runId, '--yes']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stderr).toMatch(/app scale in staging \(run .*\), requested by alice/);
    expect(ok.stderr).toMatch(/scale deployment\/app: 3 → 0/);
    expect(ok.stdout).toMatch(new RegExp(`approved run ${runId} .* as bob`));
    expect((await running).code).toBe(0);
  });

  it('interactively, bob is asked y/N about exactly this plan; "no" records nothing', async () => {
    const { kube, run, runId, running } = await pending();
    kube.identity = { username: 'bob', groups: [] };
    const no = await run(['approve', runId], { tty: true, answers: [false] });
    expect(no.code).toBe(3);
    expect(requests(kube)[0].data!.state).toBe('pending');
    const yes = await run(['approve', runId], { tty: true, answers: [true] });
    expect(yes.code, yes.stderr).toBe(0);
    expect((yes.prompter as ScriptedPrompter).asked[0]).toMatch(/^Approve alice's app scale in staging exactly as above \(digest [0-9a-f]{12}…\)\?$/);
    expect((await running).code).toBe(0);
  });

  it('without the approve permission: exit 2, nothing recorded; without a terminal and --yes: exit 3', async () => {
    const { kube, run, runId, running } = await pending({ timeout: '1s' });
    kube.identity = { username: 'carol', groups: [] };
    kube.denied.push({ verb: 'approve', resource: 'approvals' });
    const carol = await run(['approve', runId, '--yes']);
    expect(carol.code).toBe(2);
    expect(carol.stderr).toMatch(/carol may not approve runs here/);
    kube.denied.length = 0;
    const noTty = await run(['approve', runId]);
    expect(noTty.code).toBe(3);
    expect(noTty.stderr).toMatch(/approving needs a prompt or --yes/);
    expect(requests(kube)[0].data!.state).toBe('pending');
    expect((await running).code).toBe(3);
  });

  it('an expired request (its requester gone) is refused, and deleted by the next request in the namespace', async () => {
    const { kube, run, runId, running } = await pending({ timeout: '1s' });
    const name = `runbook-approval-${runId.toLowerCase()}`;
    const cm = kube.configMapObjects.get(`${NS}/${name}`)!;
    cm.data!.expiresAt = new Date(Date.now() - 60_000).toISOString();
    kube.identity = { username: 'bob', groups: [] };
    const r = await run(['approve', runId, '--yes']);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/request expired at/);
    expect((await running).code).toBe(3);
    kube.identity = { username: 'alice', groups: [] };
    const next = run(['app', 'scale', '--replicas', '0', '--yes']);
    await until(() => requests(kube).some((c) => c.metadata!.name !== name));
    expect(kube.configMapObjects.has(`${NS}/${name}`)).toBe(false);
    expect((await next).code).toBe(3);
  });

  it('refuses what is not a run id, and an environment without approval (exit 2)', async () => {
    const { run } = setup();
    expect((await run(['approve', 'nope'])).code).toBe(2);
    const { dir } = writeConfig({ environments: { staging: { kubernetes: { namespace: 'p', deployment: 'app' } } } });
    const r = await runCli(['deny', '20261203T175500-ab12'], { cwd: dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/does not require two-person approval/);
  });
});

describe('approval config', () => {
  it('approval without a kubernetes section is a config error naming the key, before anything is contacted', async () => {
    const { dir } = writeConfig({ environments: { staging: { approval: { required: 2, namespace: NS } } } });
    const r = await runCli(['cache', 'flush', '--all', '--yes'], { cwd: dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/environments\.staging\.approval: two-person approval needs a kubernetes section/);
  });

  it.each([
    [{ required: 3, namespace: NS }, /approval\.required/],
    [{ required: 2, namespace: NS, timeout: '10' }, /approval\.timeout: a duration with a unit/],
    [{ required: 2, namespace: NS, timeout: '2d' }, /approval\.timeout: at most 24h/],
    [{ required: 2, namespace: NS, for: ['write'] }, /approval\.for: must include destructive/],
    [{ required: 2 }, /approval\.namespace: missing/],
  ])('%j is refused', async (approval, message) => {
    const { dir } = writeConfig({ environments: { staging: { kubernetes: { namespace: 'p', deployment: 'app' }, approval } } });
    const r = await runCli(['app', 'scale', '--replicas', '0', '--yes'], { cwd: dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
  });

  it('covers destructive gates, and writes only when asked; never a read or an ungated step', () => {
    const d = { required: 2 as const, for: ['destructive' as const], namespace: NS, timeout: '15m' };
    expect(approvalCovers(d, 'confirm', 'destructive')).toBe(true);
    expect(approvalCovers(d, 'severe', 'destructive')).toBe(true);
    expect(approvalCovers(d, 'confirm', 'write')).toBe(false);
    expect(approvalCovers({ ...d, for: ['destructive', 'write'] }, 'confirm', 'write')).toBe(true);
    expect(approvalCovers({ ...d, for: ['destructive', 'write'] }, 'none', 'write')).toBe(false);
    expect(approvalCovers({ ...d, required: 1 }, 'severe', 'destructive')).toBe(false);
    expect(approvalCovers(undefined, 'severe', 'destructive')).toBe(false);
  });
});

describe('the plan and its digest', () => {
  const plan: ApprovalPlan = {
    runId: '20261203T175500-ab12',
    procedure: 'app scale',
    environment: 'staging',
    targets: { kubernetes: { server: 'https://k', context: 'prod', namespace: 'production', deployment: 'app' } },
    items: [{ step: 'scale', title: 'Scale the deployment', changes: [{ action: 'scale', target: 'deployment/app', before: '3', after: '0' }] }],
  };

  it('canonical JSON sorts keys at every level; the digest changes with any part of the plan', () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { z: 1, y: 2 }], c: undefined } })).toBe('{"a":{"d":[1,{"y":2,"z":1}]},"b":1}');
    const d = planDigest(plan);
    expect(d).toMatch(/^[0-9a-f]{64}$/);
    expect(planDigest(structuredClone(plan))).toBe(d);
    const other = structuredClone(plan);
    other.items[0].changes![0].before = '4';
    expect(planDigest(other)).not.toBe(d);
    expect(planDifferences(plan, other)).toEqual(['Scale the deployment: approved "scale deployment/app: 3 → 0", now "scale deployment/app: 4 → 0"']);
    const moved = { ...plan, targets: { kubernetes: { ...plan.targets.kubernetes!, server: 'https://other' } } };
    expect(planDifferences(plan, moved)).toEqual(['kubernetes server: https://k → https://other']);
  });

  it('targets name hosts, never a password; an unresolvable reference is named as the reference', () => {
    const env = selectEnvironment(
      {
        path: '/x.yaml',
        config: {
          environments: {
            p: {
              protected: true,
              limits: { maxReplicas: 5 },
              rollout: { timeout: '5m' },
              kubernetes: { namespace: 'prod', deployment: 'app' },
              aws: { region: 'eu-west-1' },
              rds: { instance: 'db1' } as never,
              postgres: { url: { env: 'DATABASE_URL' }, replicas: [] },
              redis: { url: { env: 'REDIS_URL' } } as never,
            },
          },
        },
      },
      'p',
      {},
    );
    const resolve = (ref: unknown) => {
      if ((ref as { env: string }).env === 'DATABASE_URL') return 'postgres://app:s3cret@db.internal:5432/app';
      throw new UsageError('not set');
    };
    const t = approvalTargets(env, ['kubernetes', 'rds', 'redis'], { kube: { server: 'https://k', context: 'prod', namespace: 'prod' }, resolve });
    expect(t).toEqual({
      kubernetes: { server: 'https://k', context: 'prod', namespace: 'prod', deployment: 'app' },
      aws: { region: 'eu-west-1' },
      rds: { instance: 'db1' },
      database: 'db.internal:5432/app',
      redis: '$REDIS_URL',
    });
    expect(JSON.stringify(t)).not.toContain('s3cret');
    // The account the credentials sign in to (STS) is part of what is approved: another account is another plan.
    const withAccount = approvalTargets(env, ['rds'], { awsAccount: '123456789012', resolve });
    expect(withAccount.aws).toEqual({ region: 'eu-west-1', account: '123456789012' });
  });

  it('a request whose plan does not hash to its digest, or names another run, is never approvable', async () => {
    const cm = requestConfigMap({
      name: 'runbook-approval-x',
      namespace: NS,
      plan,
      requester: 'alice',
      operator: 'a@h',
      step: 'scale',
      requestedAt: new Date(),
      timeoutMs: 60_000,
    });
    expect(readRequest(cm)!.tampered).toBeUndefined();
    const edited = structuredClone(cm);
    edited.data!.plan = edited.data!.plan.replace('"before":"3"', '"before":"1"');
    expect(readRequest(edited)!.tampered).toMatch(/does not match its digest/);
    const kube = new FakeKube();
    const r = readRequest({ ...edited, metadata: { ...edited.metadata, namespace: NS } })!;
    await expect(decideRequest(kube, r, { username: 'bob' }, { state: 'approved', now: new Date() })).rejects.toThrow(GateError);
    const unlabelled: V1ConfigMap = { ...cm, metadata: { name: 'runbook-approval-x' } };
    expect(readRequest(unlabelled)).toBeNull();
  });
});

describe('runbook rbac --approval', () => {
  it('prints the requester and approver Roles and the policy guarding the namespace', async () => {
    const { dir } = writeConfig(config());
    const r = await runCli(['rbac', '--approval'], { cwd: dir });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/kind: Role\n\s*metadata:\n\s*name: runbook-approval-requester\n\s*namespace: approvals/);
    expect(r.stdout).toMatch(/- approvals\n\s*verbs:\n\s*- approve/);
    expect(r.stdout).toMatch(/kind: ValidatingAdmissionPolicy\n/);
    expect(r.stdout).toContain("check('approve').allowed()");
    expect(r.stdout).toMatch(/kubernetes.io\/metadata.name: approvals/);
    const all = await runCli(['rbac'], { cwd: dir });
    expect(all.stdout).toMatch(/name: runbook-operator\n/);
    expect(all.stdout).toMatch(/name: runbook-approver\n/);
  });
});

describe('a plan approval (db restart): one second approval, bound to the plan lines', () => {
  function dbSetup() {
    const kube = new GuardedKube(3);
    kube.identity = { username: 'alice', groups: [] };
    const rds = new FakeRds();
    const { dir } = writeConfig({
      environments: {
        production: {
          protected: true,
          kubernetes: { namespace: 'production', deployment: 'app' },
          rollout: { timeout: '2s' },
          aws: { region: 'us-east-1' },
          rds: { instance: 'prod-db', pollInterval: '10ms', waitTimeout: '2s', connectTimeout: '1s' },
          postgres: { url: 'postgres://app@db.internal:5432/app' },
          approval: { required: 2, namespace: NS, timeout: '5s' },
        },
      },
    });
    const run = () =>
      runCli(['db', 'restart', '--yes', '--confirm', 'production'], {
        cwd: dir,
        clientFactories: { ...fakeFactories(kube), aws: async () => rds.clients(), postgres: fakePostgres() },
      });
    return { kube, rds, run };
  }

  it('approved: one request with the plan lines and the targets; the restart goes through without asking again', async () => {
    const { kube, rds, run } = dbSetup();
    const [r] = await Promise.all([run(), bob(kube, 'approved')]);
    expect(r.code, r.stderr).toBe(0);
    expect(requests(kube)).toHaveLength(1);
    const plan = JSON.parse(requests(kube)[0].data!.plan) as ApprovalPlan;
    expect(plan.items[0].lines).toContainEqual(expect.stringMatching(/^scale deployment\/app 3 → 0: the app is DOWN/));
    expect(plan.targets).toMatchObject({ rds: { instance: 'prod-db' }, aws: { region: 'us-east-1' }, database: 'db.internal:5432/app' });
    expect(rds.calls).toContain('RebootDBInstanceCommand');
    expect(kube.deployments.get('app')!.spec!.replicas).toBe(3);
  });

  it('the replicas changed after the approval: exit 3 before anything is scaled or rebooted', async () => {
    const { kube, rds, run } = dbSetup();
    const [r] = await Promise.all([run(), bob(kube, 'approved', { before: () => (kube.deployments.get('app')!.spec!.replicas = 5) })]);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/the plan changed since bob approved it \("scale deployment\/app 3 → 0: .*" is now "scale deployment\/app 5 → 0: /);
    expect(rds.calls).not.toContain('RebootDBInstanceCommand');
    expect(kube.deployments.get('app')!.spec!.replicas).toBe(5);
  });
});
