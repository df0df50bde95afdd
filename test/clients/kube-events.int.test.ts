// Who did what, on the objects themselves, against the real control plane and the real kubectl:
// every procedure that changes a Kubernetes object leaves an Event on it naming the run and the
// operator (`kubectl get events`, `kubectl describe`), and a pod-template change carries the
// change-cause `kubectl rollout history` shows. The walk covers the whole catalogue: a new
// procedure that changes an object is held to it without a line here.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { catalog } from '../../src/procedures/catalog.js';
import { declaredKubeCalls } from '../../src/core/runner.js';
import { AUDITED_METHODS } from '../../src/core/kube-permissions.js';
import { createKubeClient } from '../../src/clients/kube-adapter.js';
import type { KubeClient } from '../../src/clients/kube.js';
import { runCli } from '../support/cli.js';
import { failAfter } from '../support/inject.js';
import { startSandbox, type Sandbox } from '../support/sandbox/index.js';
import { NEEDS_LIVE_PROCESS } from '../support/sandbox/live-process.js';
import type { Deployment, KubeObject, RecordedRequest } from '../support/cluster/index.js';

interface EventObject extends KubeObject {
  involvedObject: { kind: string; name: string; namespace?: string; uid?: string };
  reason: string;
  message: string;
  type: string;
  source?: { component?: string };
  reportingComponent?: string;
}

let sb: Sandbox;
let client: KubeClient;

const OPERATOR = 'tester@test';

function cli(argv: string[], extra: Parameters<typeof runCli>[1] = {}) {
  return runCli(argv, { ...extra, env: { ...sb.env, ...(extra.env ?? {}) } });
}

/** `kubectl get events --field-selector involvedObject.name=…` in a namespace, as the real kubectl lists them. */
async function events(name: string, namespace = sb.namespace): Promise<EventObject[]> {
  const r = await sb.kube.kubectl(['get', 'events', '-n', namespace, '--field-selector', `involvedObject.name=${name}`, '-o', 'json']);
  expect(r.code, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as { items: EventObject[] }).items;
}

const ofRun = (evs: EventObject[], runId: string) => evs.filter((e) => e.message.includes(`(run ${runId}, by ${OPERATOR})`));

/** The objects a run changed, from the requests the tool sent: kind, name and namespace (none: cluster-scoped). */
function changedObjects(requests: RecordedRequest[]): Array<{ kind: string; name: string; namespace?: string }> {
  const seen = new Map<string, { kind: string; name: string; namespace?: string }>();
  for (const r of requests) {
    if (r.method === 'GET' || r.dryRun || r.status < 200 || r.status >= 300) continue;
    const m =
      /^\/apis\/(?:apps\/v1|autoscaling\/v2)\/namespaces\/([^/]+)\/(deployments|horizontalpodautoscalers)(?:\/([^/]+))?/.exec(r.path) ??
      /^\/api\/v1\/()(nodes)\/([^/]+)/.exec(r.path);
    if (!m) continue;
    const name = m[3] ?? (r.body as { metadata?: { name?: string } } | undefined)?.metadata?.name;
    if (!name) continue;
    const kind = { deployments: 'Deployment', horizontalpodautoscalers: 'HorizontalPodAutoscaler', nodes: 'Node' }[m[2]]!;
    seen.set(`${kind}/${name}`, { kind, name, namespace: m[1] || undefined });
  }
  return [...seen.values()];
}

async function clearHpas(): Promise<void> {
  for (const h of await sb.kube.list('horizontalpodautoscalers', { namespace: sb.namespace }))
    await sb.kube.remove('horizontalpodautoscalers', sb.namespace, h.metadata.name);
}

beforeAll(async () => {
  sb = await startSandbox();
  client = await createKubeClient({ kubeconfig: sb.env.KUBECONFIG, context: 'sandbox', namespace: sb.namespace }, {});
}, 240_000);
afterAll(async () => {
  await sb?.stop();
});

describe('recordEvent on the real API server', () => {
  it('an Event on a deployment: kubectl get events and kubectl describe show it', async () => {
    const d = (await sb.kube.get<Deployment>('deployments', sb.namespace, 'app'))!;
    await client.recordEvent({
      object: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'app', namespace: sb.namespace, uid: d.metadata.uid },
      type: 'Normal',
      reason: 'RunbookChange',
      message: 'runbook test, step "One" (run r-dep-1, by tester@test): scale deployment/app: 1 → 2',
      action: 'Scale',
    });
    const [e] = (await events('app')).filter((x) => x.message.includes('r-dep-1'));
    expect(e).toMatchObject({ reason: 'RunbookChange', type: 'Normal', source: { component: 'runbook' }, reportingComponent: 'runbook' });
    expect(e.involvedObject).toMatchObject({ kind: 'Deployment', name: 'app', namespace: sb.namespace, uid: d.metadata.uid });
    const table = await sb.kube.kubectl(['get', 'events', '-n', sb.namespace, '--field-selector', 'involvedObject.name=app']);
    expect(table.stdout).toMatch(/RunbookChange\s+deployment\/app\s+runbook test, step "One" \(run r-dep-1/);
    const describe = await sb.kube.kubectl(['describe', 'deployment', 'app', '-n', sb.namespace]);
    expect(describe.stdout).toMatch(/Normal\s+RunbookChange\s+.*runbook test, step "One" \(run r-dep-1, by tester@test\)/);
  });

  it('an Event on a node is written to `default` (the only namespace allowed for it) and kubectl describe node shows it', async () => {
    const node = sb.kube.nodes[0]!;
    const n = (await sb.kube.get('nodes', undefined, node))!;
    await client.recordEvent({
      object: { apiVersion: 'v1', kind: 'Node', name: node, uid: n.metadata.uid },
      type: 'Normal',
      reason: 'RunbookChange',
      message: 'runbook test (run r-node-1, by tester@test): cordon node',
    });
    expect((await events(node, 'default')).filter((x) => x.message.includes('r-node-1'))).toHaveLength(1);
    const describe = await sb.kube.kubectl(['describe', 'node', node]);
    expect(describe.stdout).toMatch(/RunbookChange\s+.*runbook test \(run r-node-1, by tester@test\): cordon node/);
  });
});

describe('change-cause: kubectl rollout history tells which run changed the pod template', () => {
  it('app restart, then app rollback: each new revision names its run and operator', async () => {
    await sb.kube.waitForRollout('app', { timeoutMs: 30_000 });
    const restart = await cli(['app', 'restart', '--yes', '--json']);
    expect(restart.code, restart.stderr).toBe(0);
    const restartRun = JSON.parse(restart.stdout).runId as string;
    let history = await sb.kube.kubectl(['rollout', 'history', 'deployment/app', '-n', sb.namespace]);
    expect(history.code, history.stderr).toBe(0);
    expect(history.stdout).toContain(`runbook app restart (run ${restartRun}, by ${OPERATOR})`);
    expect(ofRun(await events('app'), restartRun).map((e) => e.reason)).toEqual(['RunbookChange']);

    const rollback = await cli(['app', 'rollback', '--yes', '--json']);
    expect(rollback.code, rollback.stderr).toBe(0);
    const rollbackRun = JSON.parse(rollback.stdout).runId as string;
    history = await sb.kube.kubectl(['rollout', 'history', 'deployment/app', '-n', sb.namespace]);
    const lines = history.stdout.trim().split('\n');
    // The newest revision (the last line) is the one rolled back to, now carrying the rollback's story.
    expect(lines.at(-1)).toContain(`runbook app rollback (run ${rollbackRun}, by ${OPERATOR})`);
    expect(ofRun(await events('app'), rollbackRun)).toHaveLength(1);
  });

  it('a failure after the scale: the scale-back is a RunbookUndo Event of the same run', async () => {
    await sb.kube.waitForRollout('app', { timeoutMs: 30_000 });
    const before = (await sb.kube.get<Deployment>('deployments', sb.namespace, 'app'))!.spec.replicas ?? 1;
    const r = await cli(['app', 'scale', '--replicas', String(before + 1), '--yes', '--json'], { procedureOverride: failAfter('scale') });
    expect(r.code, r.stderr).toBe(1);
    const runId = JSON.parse(r.stdout).runId as string;
    const mine = ofRun(await events('app'), runId);
    expect(mine.map((e) => e.reason).sort()).toEqual(['RunbookChange', 'RunbookUndo']);
    expect(mine.find((e) => e.reason === 'RunbookUndo')!.message).toMatch(
      new RegExp(`undoing step "Scale the deployment" \\(run ${runId}, by ${OPERATOR}\\): scale deployment/app to ${before}$`),
    );
    // The scale subresource answers with the deployment's uid: kubectl describe (which matches on it) shows both.
    const d = await sb.kube.get<Deployment>('deployments', sb.namespace, 'app');
    expect(mine.every((e) => e.involvedObject.uid === d!.metadata.uid)).toBe(true);
    const described = await sb.kube.kubectl(['describe', 'deployment', 'app', '-n', sb.namespace]);
    expect(described.stdout).toMatch(new RegExp(`RunbookUndo\\s+.*\\(run ${runId}, by ${OPERATOR}\\)`));
  });

  it('--dry-run writes no Event and no change-cause', async () => {
    await sb.kube.waitForRollout('app', { timeoutMs: 30_000 });
    const before = (await sb.kube.get<Deployment>('deployments', sb.namespace, 'app'))!;
    const r = await cli(['app', 'restart', '--dry-run', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(ofRun(await events('app'), JSON.parse(r.stdout).runId as string)).toEqual([]);
    const after = (await sb.kube.get<Deployment>('deployments', sb.namespace, 'app'))!;
    expect(after.metadata.resourceVersion).toBe(before.metadata.resourceVersion);
  });
});

const changing = catalog.filter((e) => !NEEDS_LIVE_PROCESS.has(e.name)).map((e) => [e.name, e] as const);
const changedBy = new Map<string, number>();

describe('every procedure that changes an object leaves an Event on it', () => {
  beforeAll(async () => {
    // The examples ask for what a fresh sandbox is not at (app scale --replicas 3): start from there.
    const d = (await sb.kube.get<Deployment>('deployments', sb.namespace, 'app'))!;
    if (d.spec.replicas === 3) await sb.kube.patch('deployments', sb.namespace, 'app', { spec: { replicas: 2 } });
    await sb.kube.waitForRollout('app', { timeoutMs: 30_000 });
  });

  it.each(changing)('%s', async (name, entry) => {
    const proc = await entry.load();
    if (!declaredKubeCalls(proc).some((m) => AUDITED_METHODS.includes(m))) return;
    await clearHpas();
    await sb.kube.waitForRollout('app', { timeoutMs: 30_000 }).catch(() => undefined);
    sb.kube.requests.length = 0;
    const r = await cli([...name.split(' '), ...sb.localize(proc.examples[0] ?? []), '--yes', '--confirm', 'sandbox', '--json']);
    expect([0, 4], r.stderr).toContain(r.code);
    expect(r.stderr).not.toMatch(/could not record the change/);
    const runId = JSON.parse(r.stdout).runId as string;
    const changed = changedObjects(sb.kube.requests);
    changedBy.set(name, changed.length);
    for (const o of changed) {
      const mine = ofRun(await events(o.name, o.namespace ?? 'default'), runId).filter((e) => e.involvedObject.kind === o.kind);
      expect(mine.length, `${o.kind}/${o.name} changed by ${name} has no Event of run ${runId}`).toBeGreaterThan(0);
      for (const e of mine) {
        expect(e.message).toMatch(new RegExp(`^runbook ${name}, (step|undoing step) "`));
        expect(e.reason).toMatch(/^Runbook(Change|Undo)$/);
      }
    }
    // One Event per change: no more Events than write requests of this run.
    const writes = sb.kube.requests.filter((q) => q.method !== 'GET' && !q.dryRun && !/\/(events|leases|configmaps)(\/|$)/.test(q.path)).length;
    const recorded = sb.kube.requests.filter((q) => q.method === 'POST' && /\/events$/.test(q.path)).length;
    expect(recorded).toBeLessThanOrEqual(writes);
  });

  it('the walk was not vacuous: the procedures named in the issue changed objects', () => {
    for (const name of ['app scale', 'app restart', 'app resources', 'app env set', 'app autoscale', 'security isolate'])
      expect(changedBy.get(name), `${name} changed no Kubernetes object in the walk`).toBeGreaterThan(0);
  });
});
