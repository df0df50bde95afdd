// The security procedures against the real Kubernetes control plane (kwok nodes, the real scheduler
// and node lifecycle controller), real processes and a webhook.
import { failAfter } from '../../support/inject.js';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Procedure } from '../../../src/core/procedure.js';
import { runCli, tempDir } from '../../support/cli.js';
import { startSandbox, type Sandbox } from '../../support/sandbox/index.js';
import type { Deployment, KubeObject, NodeObject, Pod } from '../../support/cluster/index.js';
import { requireBinary, startHttpService, type HttpService } from '../../support/services/index.js';

interface Taint {
  key: string;
  value?: string;
  effect: string;
  timeAdded?: string;
}
type NodeObj = NodeObject & { spec?: { unschedulable?: boolean; taints?: Taint[] } };

/** The taint the node lifecycle controller keeps on a cordoned node. */
const UNSCHEDULABLE_TAINT = 'node.kubernetes.io/unschedulable';

let sb: Sandbox;
let NS: string;
/** The sandbox's own kwok nodes: nobody else's pods or cordons are on them. */
let N1: string;
let N2: string;
let N3: string;
let webhook: HttpService;
let originals: NodeObj[];

const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
function cli(argv: string[], extra: Parameters<typeof runCli>[1] = {}) {
  return runCli(argv, { ...extra, env: { ...sb.env, ...(extra.env ?? {}) } });
}
const node = async (name: string) => (await sb.kube.get<NodeObj>('nodes', undefined, name))!;
const nodeState = async (name: string) => {
  const n = await node(name);
  return { unschedulable: n.spec?.unschedulable, labels: n.metadata.labels, taints: n.spec?.taints };
};
/** Taints without the time the controller added them (two nodes cordoned at different times compare equal). */
const taintsOf = (n: NodeObj) => (n.spec?.taints ?? []).map(({ timeAdded: _t, ...t }) => t);
/** The node lifecycle controller has caught up: a cordoned node carries the unschedulable taint, an uncordoned one does not. */
async function settled(...names: string[]) {
  await sb.kube.waitFor(
    async () => {
      for (const name of names) {
        const n = await node(name);
        if ((n.spec?.unschedulable === true) !== (n.spec?.taints ?? []).some((t) => t.key === UNSCHEDULABLE_TAINT)) return false;
      }
      return true;
    },
    { timeoutMs: 20_000, what: `the unschedulable taint of ${names.join(', ')} to follow the cordon` },
  );
}
const deployment = async () => (await sb.kube.get<Deployment>('deployments', NS, 'app'))!;
const containerEnv = async () => (await deployment()).spec.template.spec.containers[0]!.env ?? [];
const envValue = async (key: string) => (await containerEnv()).find((e) => e.name === key)?.value;

/** The real kubectl, with the tool's kubeconfig (through the same proxy). */
const kubectl = (...args: string[]) => sb.kube.kubectl(['--request-timeout=10s', ...args]);

/** Puts every sandbox node back as it was at the start: cordon, labels and taints. */
async function restoreNodes() {
  for (const o of originals) {
    const cur = await node(o.metadata.name);
    const labels: Record<string, string | null> = { ...(o.metadata.labels ?? {}) };
    for (const k of Object.keys(cur.metadata.labels ?? {})) if (!(k in labels)) labels[k] = null;
    await sb.kube.patch(
      'nodes',
      undefined,
      o.metadata.name,
      { metadata: { labels }, spec: { unschedulable: o.spec?.unschedulable ?? null, taints: o.spec?.taints ?? null } },
      'merge',
    );
  }
  await settled(...originals.map((o) => o.metadata.name));
}

beforeAll(async () => {
  requireBinary('kubectl', 'install kubectl (https://kubernetes.io/docs/tasks/tools/) to run the conformance comparison');
  sb = await startSandbox({ parts: ['kubernetes', 'security'] });
  NS = sb.namespace;
  [N1, N2, N3] = sb.kube.nodes as [string, string, string];
  webhook = await startHttpService(() => ({ status: 200, body: 'ok' }));
  // The breach tests need a notify channel: add a webhook to both environments.
  const config = parse(readFileSync(sb.configPath, 'utf8'));
  for (const env of Object.values(config.environments) as Array<Record<string, unknown>>)
    env.notify = { slack: { webhook: { env: 'SECURITY_WEBHOOK_URL' }, channel: '#security' } };
  writeFileSync(sb.configPath, stringify(config));
  sb.env.SECURITY_WEBHOOK_URL = `${webhook.url}/hooks/security`;
  originals = await Promise.all(sb.kube.nodes.map((n) => node(n)));
}, 120_000);
afterAll(async () => {
  await webhook?.stop();
  await sb?.stop();
});
beforeEach(async () => {
  sb.kube.faults.clear();
  await restoreNodes();
  await sb.kube.waitForRollout('app', { timeoutMs: 30_000 });
});

describe('security isolate', () => {
  it('cordons and labels two nodes exactly as kubectl cordon + kubectl label do, and the scheduler stops using them', async () => {
    const r = await cli(['security', 'isolate', '--nodes', `${N1},${N2}`]);
    expect(r.code, r.stderr).toBe(0);
    for (const n of [N1, N2]) {
      expect((await node(n)).spec?.unschedulable).toBe(true);
      expect((await node(n)).metadata.labels?.quarantine).toBe('true');
    }
    expect((await node(N3)).spec?.unschedulable).toBeUndefined();
    expect(r.stdout).toMatch(new RegExp(`${esc(N1)}\\s+no\\s+cordoned \\+ labelled`));
    // The real kubectl sees them cordoned, and the real scheduler places no new pod on them.
    const listed = await kubectl('get', 'nodes', N1, N2, N3, '--no-headers');
    expect(listed.code, listed.stderr).toBe(0);
    const status = Object.fromEntries(
      listed.stdout
        .trim()
        .split('\n')
        .map((l) => l.trim().split(/\s+/))
        .map(([name, st]) => [name, st]),
    );
    expect(status).toEqual({ [N1]: 'Ready,SchedulingDisabled', [N2]: 'Ready,SchedulingDisabled', [N3]: 'Ready' });
    await settled(N1, N2);
    const probe = (name: string, hosts: string[]): Pod =>
      ({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name, namespace: NS, labels: { app: 'isolation-probe' } },
        spec: {
          containers: [{ name: 'probe', image: 'registry.example.com/probe:1' }],
          affinity: {
            nodeAffinity: {
              requiredDuringSchedulingIgnoredDuringExecution: {
                nodeSelectorTerms: [{ matchExpressions: [{ key: 'kubernetes.io/hostname', operator: 'In', values: hosts }] }],
              },
            },
          },
        },
      }) as unknown as Pod;
    const spread = ['probe-a', 'probe-b', 'probe-c', 'probe-d'];
    try {
      for (const p of spread) await sb.kube.create(probe(p, [N1, N2, N3]));
      await sb.kube.create(probe('probe-pinned', [N1]));
      await sb.kube.waitFor(async () => (await Promise.all(spread.map((p) => sb.kube.get<Pod>('pods', NS, p)))).every((p) => p?.status?.phase === 'Running'), {
        timeoutMs: 30_000,
        what: 'probe pods running',
      });
      for (const p of spread) expect((await sb.kube.get<Pod>('pods', NS, p))!.spec.nodeName, p).toBe(N3);
      await sb.kube.waitFor(
        async () =>
          Boolean(
            (await sb.kube.get<Pod>('pods', NS, 'probe-pinned'))?.status?.conditions?.some(
              (c) => c.type === 'PodScheduled' && c.status === 'False' && c.reason === 'Unschedulable',
            ),
          ),
        { timeoutMs: 30_000, what: 'the pinned probe to be unschedulable' },
      );
      expect((await sb.kube.get<Pod>('pods', NS, 'probe-pinned'))!.spec.nodeName).toBeUndefined();
    } finally {
      for (const p of [...spread, 'probe-pinned']) await sb.kube.remove('pods', NS, p);
      await sb.kube.waitFor(async () => (await sb.kube.list('pods', { namespace: NS, labelSelector: 'app=isolation-probe' })).length === 0, {
        timeoutMs: 30_000,
        what: 'probe pods gone',
      });
    }
    // The same change made with kubectl on N3 leaves the same spec, taints and label.
    expect((await kubectl('cordon', N3)).code).toBe(0);
    expect((await kubectl('label', 'nodes', N3, 'quarantine=true', '--overwrite')).code).toBe(0);
    await settled(N1, N3);
    const cordonOf = async (n: string) => {
      const o = await node(n);
      return { unschedulable: o.spec?.unschedulable, taints: taintsOf(o) };
    };
    expect(await cordonOf(N3)).toEqual(await cordonOf(N1));
    expect((await node(N3)).metadata.labels?.quarantine).toBe((await node(N1)).metadata.labels?.quarantine);
    // And kubectl's uncordon/unlabel round trip matches the tool's undo (field removed, not false).
    expect((await kubectl('uncordon', N3)).code).toBe(0);
    expect((await kubectl('label', 'nodes', N3, 'quarantine-')).code).toBe(0);
    await settled(N3);
    const original = originals.find((n) => n.metadata.name === N3)!;
    expect(await nodeState(N3)).toEqual({ unschedulable: original.spec?.unschedulable, labels: original.metadata.labels, taints: original.spec?.taints });
  });

  it('--dry-run shows each node before → after, validated by the server, and changes nothing', async () => {
    const before = await sb.fingerprint();
    const seen = sb.kube.requests.length;
    const r = await cli(['security', 'isolate', '--nodes', `${N1},${N2}`, '--dry-run']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('DRY RUN');
    expect(r.stderr).toMatch(new RegExp(`node/${esc(N1)}[\\s\\S]*schedulable, quarantine=∅[\\s\\S]*unschedulable, quarantine=true`));
    expect(
      sb.kube.requests
        .slice(seen)
        .filter((q) => q.method === 'PATCH' && q.path.startsWith('/api/v1/nodes/'))
        .every((q) => q.dryRun),
    ).toBe(true);
    expect(sb.kube.requests.slice(seen).some((q) => q.method === 'PATCH' && q.dryRun && q.status === 200)).toBe(true);
    expect(await sb.fingerprint()).toEqual(before);
  });

  it('a failure after isolating puts back exactly the prior state (an already-cordoned node stays cordoned, taints kept)', async () => {
    // A taint of the operator's own on N1 (spec.taints is an atomic list: a patch that sends it replaces it).
    const dedicated: Taint = { key: 'runbook.test/dedicated', value: 'security', effect: 'NoSchedule' };
    await sb.kube.patch('nodes', undefined, N1, { spec: { taints: [dedicated] } }, 'merge');
    await sb.kube.patch('nodes', undefined, N2, { spec: { unschedulable: true } }, 'merge');
    await settled(N1, N2);
    const before = { a: await nodeState(N1), b: await nodeState(N2) };
    expect(before.a.taints).toEqual([dedicated]);
    const r = await cli(['security', 'isolate', '--nodes', `${N1},${N2}`, '--json'], { procedureOverride: failAfter('isolate') });
    expect(r.code, r.stderr).toBe(1);
    const doc = JSON.parse(r.stdout);
    expect(doc.compensations).toEqual([{ step: 'isolate', status: 'succeeded' }]);
    expect(doc.steps.find((s: { id: string }) => s.id === 'isolate').data.nodes.map((n: { name: string; cordoned: boolean }) => [n.name, n.cordoned])).toEqual([
      [N1, true],
      [N2, false],
    ]);
    await settled(N1, N2);
    expect(await nodeState(N1)).toEqual(before.a);
    expect(await nodeState(N2)).toEqual(before.b);
    expect((await node(N2)).spec?.unschedulable).toBe(true);
  });

  it('a node failing half-way: the nodes already changed are put back, no undo is left pending', async () => {
    const before = { a: await nodeState(N1), b: await nodeState(N2) };
    sb.kube.faults.add({ method: 'PATCH', path: `/api/v1/nodes/${N2}`, status: 500, message: 'etcd unavailable' });
    // Without the server-validated preview (which would meet the fault first), so the write itself fails half-way.
    const noPreview = (proc: Procedure): Procedure => ({ ...proc, steps: proc.steps.map((s) => (s.id === 'isolate' ? { ...s, plan: undefined } : s)) });
    const r = await cli(['security', 'isolate', '--nodes', `${N1},${N2}`, '--json'], { procedureOverride: noPreview });
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`${esc(N2)} failed: .*etcd unavailable.*put back`));
    expect(JSON.parse(r.stdout).compensations).toEqual([]);
    await settled(N1, N2);
    expect(await nodeState(N1)).toEqual(before.a);
    expect(await nodeState(N2)).toEqual(before.b);
  });

  it('a bad node name exits 2 before anything is contacted', async () => {
    const seen = sb.kube.requests.length;
    const r = await cli(['security', 'isolate', '--nodes', `${N1},Node_2`]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/invalid node name "Node_2"/);
    expect(sb.kube.requests.length).toBe(seen);
  });

  it('an unknown node is a clear error before any node changes', async () => {
    const mutations = sb.kube.mutations().length;
    const r = await cli(['security', 'isolate', '--nodes', `${N1},${NS}-node-9,${NS}-node-8`]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`no such nodes: ${esc(NS)}-node-9, ${esc(NS)}-node-8; nothing was changed`));
    expect(
      sb.kube
        .mutations()
        .slice(mutations)
        .filter((m) => m.path.includes('/nodes/')),
    ).toEqual([]);
    expect((await node(N1)).spec?.unschedulable).toBeUndefined();
  });

  it('in a protected environment --yes is not enough: the environment name must be given (exit 3, no change)', async () => {
    const before = await sb.fingerprint();
    const r = await cli(['security', 'isolate', '--nodes', N1, '--env', 'sandbox-protected', '--yes']);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/--confirm sandbox-protected/);
    expect(await sb.fingerprint()).toEqual(before);
  });
});

describe('security evidence', () => {
  const restartedStage = () => `runbook-restarted-${NS}`;
  beforeAll(async () => {
    // A pod whose worker container restarted (as kwok, the kubelet here, reports it through a stage of
    // this test's own): its previous container's log must be collected too, and only that one.
    await sb.kube.create({
      apiVersion: 'kwok.x-k8s.io/v1alpha1',
      kind: 'Stage',
      metadata: { name: restartedStage(), labels: { 'runbook.test/namespace': NS } },
      spec: {
        resourceRef: { apiGroup: 'v1', kind: 'Pod' },
        selector: {
          matchExpressions: [
            { key: '.metadata.namespace', operator: 'In', values: [NS] },
            { key: '.metadata.name', operator: 'In', values: ['worker-0'] },
            { key: '.metadata.deletionTimestamp', operator: 'DoesNotExist' },
            // Not "no podIP yet": kwok may see the pod before this stage and make it ready the default
            // way first; this still matches then, and the nudge below makes kwok look again.
            { key: '.status.containerStatuses.[] | select( .name == "worker" ) | .lastState.terminated.exitCode', operator: 'DoesNotExist' },
          ],
        },
        weight: 10000,
        next: {
          statusTemplate: `
conditions:
- { type: Initialized, status: "True", lastTransitionTime: {{ Now | Quote }} }
- { type: PodScheduled, status: "True", lastTransitionTime: {{ Now | Quote }} }
- { type: Ready, status: "True", lastTransitionTime: {{ Now | Quote }} }
- { type: ContainersReady, status: "True", lastTransitionTime: {{ Now | Quote }} }
hostIP: {{ NodeIPWith .spec.nodeName | Quote }}
podIP: {{ PodIPWith .spec.nodeName ( or .spec.hostNetwork false ) ( or .metadata.uid "" ) ( or .metadata.name "" ) ( or .metadata.namespace "" ) | Quote }}
phase: Running
startTime: {{ Now | Quote }}
containerStatuses:
{{ range .spec.containers }}
- name: {{ .name | Quote }}
  image: {{ .image | Quote }}
  ready: true
  started: true
  restartCount: {{ if eq .name "worker" }}2{{ else }}0{{ end }}
  state: { running: { startedAt: {{ Now | Quote }} } }
{{ if eq .name "worker" }}  lastState: { terminated: { exitCode: 139, reason: Error, startedAt: {{ Now | Quote }}, finishedAt: {{ Now | Quote }} } }
{{ end }}{{ end }}`,
        },
      },
    } as KubeObject);
    await sb.kube.create<Pod>({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'worker-0', namespace: NS, labels: { app: 'worker' } },
      spec: {
        nodeName: N3,
        containers: [
          { name: 'worker', image: 'worker:1' },
          { name: 'sidecar', image: 'proxy:1' },
        ],
      },
    } as Pod);
    const started = Date.now();
    let nudges = 0;
    await sb.kube.waitFor(
      async () => {
        const p = await sb.kube.get<Pod>('pods', NS, 'worker-0');
        if (p?.status?.phase === 'Running' && p.status.containerStatuses?.find((c) => c.name === 'worker')?.restartCount === 2) return true;
        if (Date.now() - started > 3000 * (nudges + 1))
          await sb.kube.patch('pods', NS, 'worker-0', { metadata: { annotations: { 'runbook.test/nudge': String(++nudges) } } });
        return false;
      },
      { timeoutMs: 30_000, what: 'worker-0 running after 2 restarts' },
    );
    await sb.kube.setPodLogs('worker-0', ['worker up', 'SECRET_MARKER user=admin password=hunter2'], { container: 'worker' });
    await sb.kube.setPodLogs('worker-0', ['worker crashed: segfault'], { container: 'worker', previous: true });
    await sb.kube.setPodLogs('worker-0', ['proxy ready'], { container: 'sidecar' });
  });
  afterAll(async () => {
    await sb?.kube.remove('stages', undefined, restartedStage());
  });

  it('streams every container log (and previous logs) and the events into a new 0700 folder with a verifiable manifest', async () => {
    const parent = tempDir('security-evidence-');
    const r = await cli(['security', 'evidence', '--dir', parent, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const data = JSON.parse(r.stdout).steps[0].data;
    const folder: string = data.folder;
    expect(folder.startsWith(parent)).toBe(true);
    expect(statSync(folder).mode & 0o777).toBe(0o700);
    const pods = await sb.kube.list<Pod>('pods', { namespace: NS });
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
    expect(manifest.files.find((f: { file: string }) => f.file === 'worker-0__worker.previous.log')).toMatchObject({
      pod: 'worker-0',
      container: 'worker',
      previous: true,
    });
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
    expect(r.stderr).toMatch(new RegExp(`would collect into .*evidence-${esc(NS)}-<timestamp>`));
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
    expect(await envValue('LOG_LEVEL')).toBe('DEBUG');
    expect(await envValue('AUDIT_MODE')).toBe('true');
    expect(await sb.kube.rolloutComplete('app')).toBe(true);
    const dry = await cli(['security', 'audit-mode', 'off', '--dry-run'], { env: { RUNBOOK_JOURNAL_DIR: journal } });
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stderr).toMatch(/LOG_LEVEL in api[\s\S]*"DEBUG"[\s\S]*"WARN"/);
    expect(await envValue('LOG_LEVEL')).toBe('DEBUG');
    const off = await cli(['security', 'audit-mode', 'off'], { env: { RUNBOOK_JOURNAL_DIR: journal } });
    expect(off.code, off.stderr).toBe(0);
    expect(await envValue('LOG_LEVEL')).toBe('WARN');
    expect((await containerEnv()).some((e) => e.name === 'AUDIT_MODE')).toBe(false);
    expect(await sb.kube.rolloutComplete('app')).toBe(true);
  });

  it('off with no recorded on run sets LOG_LEVEL=INFO and removes AUDIT_MODE', async () => {
    const on = await cli(['security', 'audit-mode', 'on']);
    expect(on.code, on.stderr).toBe(0);
    const off = await cli(['security', 'audit-mode', 'off']);
    expect(off.code, off.stderr).toBe(0);
    expect(await envValue('LOG_LEVEL')).toBe('INFO');
    expect((await containerEnv()).some((e) => e.name === 'AUDIT_MODE')).toBe(false);
  });

  it('a rollout that never completes puts the previous environment back', async () => {
    const before = structuredClone(await containerEnv());
    await sb.kube.failPods('never-ready');
    try {
      const r = await cli(['security', 'audit-mode', 'on', '--rollout-timeout', '1s']);
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toMatch(/undo/);
    } finally {
      await sb.kube.failPods(undefined);
    }
    expect(await containerEnv()).toEqual(before);
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
    const r = await cli(['security', 'breach', '--nodes', `${N1},${N2}`, '--dir', parent, '--yes', '--confirm', 'sandbox', '--json']);
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
    expect((await node(N1)).spec?.unschedulable).toBe(true);
    expect((await node(N2)).metadata.labels?.quarantine).toBe('true');
    expect(readdirSync(parent).length).toBe(1);
    expect(Number(readFileSync(join(sb.dir, 'secret-generation'), 'utf8'))).toBe(g + 1);
    expect(await envValue('AUDIT_MODE')).toBe('true');
    const sent = webhook.requests.find((q) => q.path === '/hooks/security');
    expect(sent?.body).toMatch(new RegExp(`Suspected breach in sandbox.*${esc(N1)}, ${esc(N2)}.*Evidence: `));
  });

  it('a later failure undoes audit mode but leaves the nodes isolated', async () => {
    expect((await cli(['security', 'audit-mode', 'off'])).code).toBe(0);
    const envBefore = structuredClone(await containerEnv());
    const r = await cli(['security', 'breach', '--nodes', `${N1},${N2}`, '--yes', '--confirm', 'sandbox', '--json'], {
      procedureOverride: failAfter('rollout'),
    });
    expect(r.code, r.stderr).toBe(1);
    const doc = JSON.parse(r.stdout);
    expect(doc.compensations.map((c: { step: string }) => c.step)).toEqual(['apply']);
    expect(await containerEnv()).toEqual(envBefore);
    expect((await node(N1)).spec?.unschedulable).toBe(true);
    expect((await node(N2)).metadata.labels?.quarantine).toBe('true');
  });

  it('--dry-run changes nothing', async () => {
    const before = await sb.fingerprint();
    const r = await cli(['security', 'breach', '--nodes', `${N1},${N2}`, '--dry-run']);
    expect(r.code, r.stderr).toBe(0);
    expect(await sb.fingerprint()).toEqual(before);
  });

  it('a bad node name exits 2', async () => {
    const r = await cli(['security', 'breach', '--nodes', '-bad-']);
    expect(r.code).toBe(2);
  });
});
