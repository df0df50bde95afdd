// The security procedures against the real Kubernetes test API server, real processes and a webhook.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { StepError } from '../../src/core/errors.js';
import type { Procedure, Step } from '../../src/core/procedure.js';
import { runCli, tempDir } from '../support/cli.js';
import { startSandbox, type Sandbox } from '../support/sandbox/index.js';
import type { Deployment, KubeObject, Pod } from '../support/kube/index.js';
import { requireBinary, startHttpService, type HttpService } from '../support/services/index.js';

type NodeObj = KubeObject & { spec: { unschedulable?: boolean } };

const NS = 'production';
let sb: Sandbox;
let webhook: HttpService;
let originals: NodeObj[];
let kubectlDir: string;

function cli(argv: string[], extra: Parameters<typeof runCli>[1] = {}) {
  return runCli(argv, { ...extra, env: { ...sb.env, ...(extra.env ?? {}) } });
}
const node = (name: string) => sb.kube.store.get<NodeObj>('nodes', undefined, name)!;
const nodeState = (name: string) => ({ unschedulable: node(name).spec?.unschedulable, labels: node(name).metadata.labels });
const containerEnv = () => sb.kube.store.get<Deployment>('deployments', NS, 'app')!.spec.template.spec.containers[0].env ?? [];
const envValue = (key: string) => containerEnv().find((e) => e.name === key)?.value;

function failAfter(stepId: string) {
  const failing: Step = { id: 'injected-failure', title: 'Injected failure', why: 'test', risk: 'read', equivalent: () => 'false', run: async () => { throw new StepError('injected failure'); } };
  return (proc: Procedure): Procedure => {
    const i = proc.steps.findIndex((s) => s.id === stepId);
    return { ...proc, steps: [...proc.steps.slice(0, i + 1), failing, ...proc.steps.slice(i + 1)] };
  };
}

function kubectl(...args: string[]): Promise<{ code: number; stderr: string }> {
  const kubeconfig = sb.env.KUBECONFIG;
  return new Promise((resolve) =>
    execFile('kubectl', ['--kubeconfig', kubeconfig, '--cache-dir', join(kubectlDir, 'cache'), '--request-timeout=10s', ...args], { timeout: 30_000, env: { ...process.env, KUBECONFIG: '' } }, (err, _o, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stderr }),
    ),
  );
}

beforeAll(async () => {
  requireBinary('kubectl', 'install kubectl (https://kubernetes.io/docs/tasks/tools/) to run the conformance comparison');
  sb = await startSandbox({ parts: ['kubernetes', 'security'] });
  webhook = await startHttpService(() => ({ status: 200, body: 'ok' }));
  kubectlDir = tempDir('security-kubectl-');
  // The breach tests need a notify channel: add a webhook to both environments.
  const config = parse(readFileSync(sb.configPath, 'utf8'));
  for (const env of Object.values(config.environments) as Array<Record<string, unknown>>) env.notify = { slack: { webhook: { env: 'SECURITY_WEBHOOK_URL' }, channel: '#security' } };
  writeFileSync(sb.configPath, stringify(config));
  sb.env.SECURITY_WEBHOOK_URL = `${webhook.url}/hooks/security`;
  originals = sb.kube.store.list<NodeObj>('nodes').map((n) => structuredClone(n));
}, 120_000);
afterAll(async () => {
  await webhook?.stop();
  await sb?.stop();
});
beforeEach(async () => {
  sb.kube.faults.clear();
  for (const n of originals) sb.kube.store.put(structuredClone(n));
  await sb.kube.waitForRollout(NS, 'app', { timeoutMs: 20_000 });
});

describe('security isolate', () => {
  it('cordons and labels two nodes exactly as kubectl cordon + kubectl label do', async () => {
    const r = await cli(['security', 'isolate', '--nodes', 'node-1,node-2']);
    expect(r.code, r.stderr).toBe(0);
    for (const n of ['node-1', 'node-2']) {
      expect(node(n).spec.unschedulable).toBe(true);
      expect(node(n).metadata.labels?.quarantine).toBe('true');
    }
    expect(node('node-3').spec.unschedulable).toBeUndefined();
    expect(r.stdout).toMatch(/node-1\s+no\s+cordoned \+ labelled/);
    // The same change made with kubectl on node-3 leaves the same spec and label.
    expect((await kubectl('cordon', 'node-3')).code).toBe(0);
    expect((await kubectl('label', 'nodes', 'node-3', 'quarantine=true', '--overwrite')).code).toBe(0);
    const cordonOf = (n: string) => ({ unschedulable: node(n).spec.unschedulable, taints: (node(n).spec as { taints?: unknown }).taints });
    expect(cordonOf('node-3')).toEqual(cordonOf('node-1'));
    expect(node('node-3').metadata.labels?.quarantine).toBe(node('node-1').metadata.labels?.quarantine);
    // And kubectl's uncordon/unlabel round trip matches the tool's undo (field removed, not false).
    expect((await kubectl('uncordon', 'node-3')).code).toBe(0);
    expect((await kubectl('label', 'nodes', 'node-3', 'quarantine-')).code).toBe(0);
    expect(nodeState('node-3')).toEqual({ unschedulable: originals.find((n) => n.metadata.name === 'node-3')!.spec.unschedulable, labels: originals.find((n) => n.metadata.name === 'node-3')!.metadata.labels });
  });

  it('--dry-run shows each node before → after, validated by the server, and changes nothing', async () => {
    const before = await sb.fingerprint();
    const seen = sb.kube.requests.length;
    const r = await cli(['security', 'isolate', '--nodes', 'node-1,node-2', '--dry-run']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('DRY RUN');
    expect(r.stderr).toMatch(/node\/node-1[\s\S]*schedulable, quarantine=∅[\s\S]*unschedulable, quarantine=true/);
    expect(sb.kube.requests.slice(seen).filter((q) => q.method === 'PATCH' && q.path.startsWith('/api/v1/nodes/')).every((q) => q.dryRun)).toBe(true);
    expect(sb.kube.requests.slice(seen).some((q) => q.method === 'PATCH' && q.dryRun)).toBe(true);
    expect(await sb.fingerprint()).toEqual(before);
  });

  it('a failure after isolating puts back exactly the prior state (an already-cordoned node stays cordoned)', async () => {
    sb.kube.store.put({ ...structuredClone(node('node-2')), spec: { ...node('node-2').spec, unschedulable: true } });
    const before = { a: nodeState('node-1'), b: nodeState('node-2') };
    const r = await cli(['security', 'isolate', '--nodes', 'node-1,node-2', '--json'], { procedureOverride: failAfter('isolate') });
    expect(r.code, r.stderr).toBe(1);
    const doc = JSON.parse(r.stdout);
    expect(doc.compensations).toEqual([{ step: 'isolate', status: 'succeeded' }]);
    expect(doc.steps.find((s: { id: string }) => s.id === 'isolate').data.nodes.map((n: { name: string; cordoned: boolean }) => [n.name, n.cordoned])).toEqual([
      ['node-1', true],
      ['node-2', false],
    ]);
    expect(nodeState('node-1')).toEqual(before.a);
    expect(nodeState('node-2')).toEqual(before.b);
    expect(node('node-2').spec.unschedulable).toBe(true);
  });

  it('a node failing half-way: the nodes already changed are put back, no undo is left pending', async () => {
    const before = { a: nodeState('node-1'), b: nodeState('node-2') };
    sb.kube.faults.add({ method: 'PATCH', path: '/api/v1/nodes/node-2', status: 500, message: 'etcd unavailable' });
    // Without the server-validated preview (which would meet the fault first), so the write itself fails half-way.
    const noPreview = (proc: Procedure): Procedure => ({ ...proc, steps: proc.steps.map((s) => (s.id === 'isolate' ? { ...s, plan: undefined } : s)) });
    const r = await cli(['security', 'isolate', '--nodes', 'node-1,node-2', '--json'], { procedureOverride: noPreview });
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/node-2 failed: .*etcd unavailable.*put back/);
    expect(JSON.parse(r.stdout).compensations).toEqual([]);
    expect(nodeState('node-1')).toEqual(before.a);
    expect(nodeState('node-2')).toEqual(before.b);
  });

  it('a bad node name exits 2 before anything is contacted', async () => {
    const seen = sb.kube.requests.length;
    const r = await cli(['security', 'isolate', '--nodes', 'node-1,Node_2']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/invalid node name "Node_2"/);
    expect(sb.kube.requests.length).toBe(seen);
  });

  it('an unknown node is a clear error before any node changes', async () => {
    const mutations = sb.kube.mutations().length;
    const r = await cli(['security', 'isolate', '--nodes', 'node-1,node-9,node-8']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/no such nodes: node-9, node-8; nothing was changed/);
    expect(sb.kube.mutations().slice(mutations).filter((m) => m.path.includes('/nodes/'))).toEqual([]);
    expect(node('node-1').spec.unschedulable).toBeUndefined();
  });

  it('in a protected environment --yes is not enough: the environment name must be given (exit 3, no change)', async () => {
    const before = await sb.fingerprint();
    const r = await cli(['security', 'isolate', '--nodes', 'node-1', '--env', 'sandbox-protected', '--yes']);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/--confirm sandbox-protected/);
    expect(await sb.fingerprint()).toEqual(before);
  });
});

describe('security evidence', () => {
  beforeAll(() => {
    // A pod that restarted: its previous container's log must be collected too.
    sb.kube.store.put<Pod>({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'worker-0', namespace: NS, labels: { app: 'worker' } },
      spec: { nodeName: 'node-3', containers: [{ name: 'worker', image: 'worker:1' }, { name: 'sidecar', image: 'proxy:1' }] },
      status: {
        phase: 'Running',
        containerStatuses: [
          { name: 'worker', ready: true, restartCount: 2, image: 'worker:1', imageID: '', started: true, state: { running: { startedAt: new Date().toISOString() } } },
          { name: 'sidecar', ready: true, restartCount: 0, image: 'proxy:1', imageID: '', started: true, state: { running: { startedAt: new Date().toISOString() } } },
        ],
      },
    } as unknown as Pod);
    sb.kube.setPodLogs(NS, 'worker-0', ['worker up', 'SECRET_MARKER user=admin password=hunter2'], { container: 'worker' });
    sb.kube.setPodLogs(NS, 'worker-0', ['worker crashed: segfault'], { container: 'worker', previous: true });
    sb.kube.setPodLogs(NS, 'worker-0', ['proxy ready'], { container: 'sidecar' });
  });

  it('streams every container log (and previous logs) and the events into a new 0700 folder with a verifiable manifest', async () => {
    const parent = tempDir('security-evidence-');
    const r = await cli(['security', 'evidence', '--dir', parent, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const data = JSON.parse(r.stdout).steps[0].data;
    const folder: string = data.folder;
    expect(folder.startsWith(parent)).toBe(true);
    expect(statSync(folder).mode & 0o777).toBe(0o700);
    const pods = sb.kube.store.list<Pod>('pods', { namespace: NS });
    const containers = pods.reduce((n, p) => n + p.spec.containers.length, 0);
    expect(data.logs).toBe(containers);
    expect(data.previousLogs).toBe(1);
    const files = readdirSync(folder).sort();
    expect(files).toContain('worker-0__worker.log');
    expect(files).toContain('worker-0__worker.previous.log');
    expect(files).toContain('worker-0__sidecar.log');
    expect(files).toContain('events.json');
    expect(readFileSync(join(folder, 'worker-0__worker.previous.log'), 'utf8')).toBe('worker crashed: segfault\n');
    // Evidence is kept verbatim (not redacted) but never printed.
    expect(readFileSync(join(folder, 'worker-0__worker.log'), 'utf8')).toContain('password=hunter2');
    expect(r.stdout + r.stderr).not.toContain('SECRET_MARKER');
    // Recompute every hash: MANIFEST.sha256 (sha256sum format) and manifest.json agree with the files.
    const lines = readFileSync(join(folder, 'MANIFEST.sha256'), 'utf8').trim().split('\n');
    expect(lines.length).toBe(files.length - 2);
    const manifest = JSON.parse(readFileSync(join(folder, 'manifest.json'), 'utf8'));
    for (const line of lines) {
      const m = /^([0-9a-f]{64}) {2}(\S+)$/.exec(line)!;
      expect(m, line).not.toBeNull();
      const content = readFileSync(join(folder, m[2]));
      expect(createHash('sha256').update(content).digest('hex')).toBe(m[1]);
      const entry = manifest.files.find((f: { file: string }) => f.file === m[2]);
      expect(entry).toMatchObject({ sha256: m[1], bytes: content.length });
      expect(Date.parse(entry.collectedAt)).not.toBeNaN();
    }
    expect(manifest.files.find((f: { file: string }) => f.file === 'worker-0__worker.previous.log')).toMatchObject({ pod: 'worker-0', container: 'worker', previous: true });
    const check = await new Promise<number>((res) => execFile('sha256sum', ['-c', 'MANIFEST.sha256'], { cwd: folder }, (err) => res(err ? 1 : 0)));
    expect(check).toBe(0);
    const events = JSON.parse(readFileSync(join(folder, 'events.json'), 'utf8'));
    expect(events.items.length).toBe(data.events);
    expect(data.events).toBeGreaterThan(0);
    // A second run never reuses the folder.
    const again = await cli(['security', 'evidence', '--dir', parent, '--json']);
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout).steps[0].data.folder).not.toBe(folder);
    expect(existsSync(join(folder, 'manifest.json'))).toBe(true);
  });

  it('--dry-run previews the collection and writes no file', async () => {
    const parent = tempDir('security-evidence-dry-');
    const r = await cli(['security', 'evidence', '--dir', parent, '--dry-run']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/would collect into .*evidence-production-<timestamp>/);
    expect(readdirSync(parent)).toEqual([]);
  });

  it('--since must be a duration (exit 2)', async () => {
    const r = await cli(['security', 'evidence', '--since', 'yesterday']);
    expect(r.code).toBe(2);
  });
});

describe('security audit-mode', () => {
  it('on then off puts back exactly what was there (from the journal of the on run)', async () => {
    const journal = tempDir('security-journal-');
    const set = await cli(['app', 'env', 'set', 'LOG_LEVEL=WARN', '--yes'], { env: { RUNBOOK_JOURNAL_DIR: journal } });
    expect(set.code, set.stderr).toBe(0);
    const on = await cli(['security', 'audit-mode', 'on'], { env: { RUNBOOK_JOURNAL_DIR: journal } });
    expect(on.code, on.stderr).toBe(0);
    expect(envValue('LOG_LEVEL')).toBe('DEBUG');
    expect(envValue('AUDIT_MODE')).toBe('true');
    expect(sb.kube.rolloutComplete(NS, 'app')).toBe(true);
    const dry = await cli(['security', 'audit-mode', 'off', '--dry-run'], { env: { RUNBOOK_JOURNAL_DIR: journal } });
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stderr).toMatch(/LOG_LEVEL in api[\s\S]*"DEBUG"[\s\S]*"WARN"/);
    expect(envValue('LOG_LEVEL')).toBe('DEBUG');
    const off = await cli(['security', 'audit-mode', 'off'], { env: { RUNBOOK_JOURNAL_DIR: journal } });
    expect(off.code, off.stderr).toBe(0);
    expect(envValue('LOG_LEVEL')).toBe('WARN');
    expect(containerEnv().some((e) => e.name === 'AUDIT_MODE')).toBe(false);
    expect(sb.kube.rolloutComplete(NS, 'app')).toBe(true);
  });

  it('off with no recorded on run sets LOG_LEVEL=INFO and removes AUDIT_MODE', async () => {
    const on = await cli(['security', 'audit-mode', 'on']);
    expect(on.code, on.stderr).toBe(0);
    const off = await cli(['security', 'audit-mode', 'off']);
    expect(off.code, off.stderr).toBe(0);
    expect(envValue('LOG_LEVEL')).toBe('INFO');
    expect(containerEnv().some((e) => e.name === 'AUDIT_MODE')).toBe(false);
  });

  it('a rollout that never completes puts the previous environment back', async () => {
    const before = structuredClone(containerEnv());
    sb.kube.controller.failPods = 'never-ready';
    try {
      const r = await cli(['security', 'audit-mode', 'on', '--rollout-timeout', '1s']);
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toMatch(/undo/);
    } finally {
      sb.kube.controller.failPods = undefined;
    }
    expect(containerEnv()).toEqual(before);
  });

  it('rejects anything but on|off (exit 2)', async () => {
    const r = await cli(['security', 'audit-mode', 'maybe']);
    expect(r.code).toBe(2);
  });
});

describe('security rotate-secrets', () => {
  const generation = () => Number(readFileSync(join(sb.dir, 'secret-generation'), 'utf8'));

  it('runs the configured command, prefixes its output and never echoes the new value', async () => {
    const g = generation();
    const r = await cli(['security', 'rotate-secrets', '--yes', '--confirm', 'sandbox']);
    expect(r.code, r.stderr).toBe(0);
    expect(generation()).toBe(g + 1);
    expect(r.stderr).toMatch(/rotate\[1\/1\] node: rotated api credentials/);
    expect(r.stderr).toMatch(/API_TOKEN=\*\*\*\*/);
    expect(r.stdout + r.stderr).not.toMatch(/x9f8e7d6c5b4a3f2e1d0c9b8a7/);
  });

  it('is a severe gate: --yes alone fails closed (exit 3) and nothing runs', async () => {
    const g = generation();
    const r = await cli(['security', 'rotate-secrets', '--yes']);
    expect(r.code).toBe(3);
    expect(generation()).toBe(g);
  });

  it('a failing command fails the run (exit 1) and says rotation cannot be undone', async () => {
    const config = parse(readFileSync(sb.configPath, 'utf8'));
    config.environments.sandbox.security.rotate = [[process.execPath, '-e', 'process.exit(3)']];
    const dir = tempDir('security-config-');
    writeFileSync(join(dir, 'runbook.yaml'), stringify(config));
    const r = await cli(['security', 'rotate-secrets', '--yes', '--confirm', 'sandbox'], { env: { RUNBOOK_CONFIG: join(dir, 'runbook.yaml') } });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/rotation command 1 \(node\) exited with 3/);
  });
});

describe('security breach', () => {
  it('isolates, preserves evidence, rotates, turns audit on and tells the security team', async () => {
    const parent = tempDir('security-breach-');
    const g = Number(readFileSync(join(sb.dir, 'secret-generation'), 'utf8'));
    webhook.requests.length = 0;
    const r = await cli(['security', 'breach', '--nodes', 'node-1,node-2', '--dir', parent, '--yes', '--confirm', 'sandbox', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.steps.map((s: { id: string; status: string }) => `${s.id}:${s.status}`)).toEqual([
      'nodes:succeeded',
      'isolate:succeeded',
      'evidence:succeeded',
      'rotate:succeeded',
      'current:succeeded',
      'apply:succeeded',
      'rollout:succeeded',
      'announce:succeeded',
    ]);
    expect(node('node-1').spec.unschedulable).toBe(true);
    expect(node('node-2').metadata.labels?.quarantine).toBe('true');
    expect(readdirSync(parent).length).toBe(1);
    expect(Number(readFileSync(join(sb.dir, 'secret-generation'), 'utf8'))).toBe(g + 1);
    expect(envValue('AUDIT_MODE')).toBe('true');
    const sent = webhook.requests.find((q) => q.path === '/hooks/security');
    expect(sent?.body).toMatch(/Suspected breach in sandbox.*node-1, node-2.*Evidence: /);
  });

  it('a later failure undoes audit mode but leaves the nodes isolated', async () => {
    expect((await cli(['security', 'audit-mode', 'off'])).code).toBe(0);
    const envBefore = structuredClone(containerEnv());
    const r = await cli(['security', 'breach', '--nodes', 'node-1,node-2', '--yes', '--confirm', 'sandbox', '--json'], { procedureOverride: failAfter('rollout') });
    expect(r.code, r.stderr).toBe(1);
    const doc = JSON.parse(r.stdout);
    expect(doc.compensations.map((c: { step: string }) => c.step)).toEqual(['apply']);
    expect(containerEnv()).toEqual(envBefore);
    expect(node('node-1').spec.unschedulable).toBe(true);
    expect(node('node-2').metadata.labels?.quarantine).toBe('true');
  });

  it('--dry-run changes nothing', async () => {
    const before = await sb.fingerprint();
    const r = await cli(['security', 'breach', '--nodes', 'node-1,node-2', '--dry-run']);
    expect(r.code, r.stderr).toBe(0);
    expect(await sb.fingerprint()).toEqual(before);
  });

  it('a bad node name exits 2', async () => {
    const r = await cli(['security', 'breach', '--nodes', '-bad-']);
    expect(r.code).toBe(2);
  });
});
