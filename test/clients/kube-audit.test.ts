// The Event and change-cause a run leaves on each object it changes, with the in-memory fake (the
// real API server, kubectl describe and rollout history: kube-events.int.test.ts).
import { parseAllDocuments } from 'yaml';
import { describe, expect, it } from 'vitest';
import { audited, CHANGE_CAUSE, changeCause, type AuditTrail } from '../../src/clients/kube-audit.js';
import { KubeApiError, type KubeClient } from '../../src/clients/kube.js';
import type { ActingStep } from '../../src/core/runner.js';
import { declaredKubeCalls } from '../../src/core/runner.js';
import { rbacManifests } from '../../src/commands/rbac.js';
import { permissionsOf } from '../../src/core/kube-permissions.js';
import { runCli } from '../support/cli.js';
import { twoEnvironments, writeConfig } from '../support/config.js';
import { FakeKube, fakeFactories } from '../support/fakes/fake-kube.js';
import { failAfter } from '../support/inject.js';

function trail(acting?: ActingStep): AuditTrail & { warnings: string[]; set(s: ActingStep | undefined): void } {
  let step = acting;
  const warnings: string[] = [];
  return {
    procedure: 'db restart',
    runId: '20261203T175500-ab12',
    operator: 'alice@laptop',
    step: () => step,
    set: (s) => (step = s),
    warn: (m) => warnings.push(m),
    warnings,
  };
}

/** Records the patches the wrapped client sends on. */
function spying(fake: FakeKube): { kube: KubeClient; patches: Array<{ patch: unknown; type: string }> } {
  const patches: Array<{ patch: unknown; type: string }> = [];
  const inner = fake.patchDeployment.bind(fake);
  fake.patchDeployment = async (name, patch, type, opts) => {
    patches.push({ patch, type });
    return inner(name, patch, type, opts);
  };
  return { kube: fake, patches };
}

describe('audited: one Event per change', () => {
  it('names the procedure, step, run and operator, and tells the change the step previewed', async () => {
    const fake = new FakeKube(3);
    const t = trail({
      id: 'scale-down',
      title: 'Scale the app to 0',
      phase: 'run',
      changes: [{ action: 'scale', target: 'deployment/app', before: '3', after: '0', validated: true }],
    });
    const kube = audited(fake, t);
    await kube.scaleDeployment('app', 0);
    expect(fake.recorded).toEqual([
      {
        object: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'app', namespace: 'production', uid: undefined },
        type: 'Normal',
        reason: 'RunbookChange',
        action: 'Scale',
        message: 'runbook db restart, step "Scale the app to 0" (run 20261203T175500-ab12, by alice@laptop): scale deployment/app: 3 → 0',
      },
    ]);
    expect(t.warnings).toEqual([]);
  });

  it('without previewed changes for the object, it describes the call; a change naming another object is not borrowed', async () => {
    const fake = new FakeKube(3);
    const t = trail({ id: 's', title: 'Isolate', phase: 'run', changes: [{ action: 'cordon', target: 'node/node-2', after: 'unschedulable' }] });
    const kube = audited(fake, t);
    await kube.scaleDeployment('app', 5);
    await kube.patchNode('node-2', { spec: { unschedulable: true } }, 'strategic');
    expect(fake.recorded.map((e) => e.message.split(': ').slice(1).join(': '))).toEqual(['scale deployment/app to 5', 'cordon node/node-2: ∅ → unschedulable']);
    // A node is cluster-scoped: its Event carries no namespace (the adapter writes it to `default`).
    expect(fake.recorded[1].object).toMatchObject({ apiVersion: 'v1', kind: 'Node', name: 'node-2' });
    expect(fake.recorded[1].object.namespace).toBeUndefined();
  });

  it('changes that name no object (env vars) are the story of the object the step patches', async () => {
    const fake = new FakeKube(3);
    const t = trail({ id: 'set', title: 'Set env vars', phase: 'run', changes: [{ action: 'set', target: 'MODE in api', before: 'normal', after: 'safe' }] });
    await audited(fake, t).patchDeployment(
      'app',
      { spec: { template: { spec: { containers: [{ name: 'api', env: [{ name: 'MODE', value: 'safe' }] }] } } } },
      'strategic',
    );
    expect(fake.recorded[0].message).toBe(
      'runbook db restart, step "Set env vars" (run 20261203T175500-ab12, by alice@laptop): set MODE in api: normal → safe',
    );
  });

  it('an undo is RunbookUndo and says which step it undoes', async () => {
    const fake = new FakeKube(3);
    const kube = audited(fake, trail({ id: 'scale-down', title: 'Scale the app to 0', phase: 'undo' }));
    await kube.scaleDeployment('app', 3);
    expect(fake.recorded).toHaveLength(1);
    expect(fake.recorded[0].reason).toBe('RunbookUndo');
    expect(fake.recorded[0].message).toBe(
      'runbook db restart, undoing step "Scale the app to 0" (run 20261203T175500-ab12, by alice@laptop): scale deployment/app to 3',
    );
  });

  it('a dry-run write, a read, a Lease or a ConfigMap records nothing; a failed write records nothing', async () => {
    const fake = new FakeKube(3);
    const kube = audited(fake, trail({ id: 's', title: 'S', phase: 'run' }));
    await kube.scaleDeployment('app', 0, { dryRun: true });
    await kube.patchDeployment('app', { spec: { template: { metadata: { annotations: { a: 'b' } } } } }, 'strategic', { dryRun: true });
    await kube.patchNode('node-1', { spec: { unschedulable: true } }, 'strategic', { dryRun: true });
    await kube.createHpa({ metadata: { name: 'app' }, spec: { scaleTargetRef: { kind: 'Deployment', name: 'app' }, maxReplicas: 3 } }, { dryRun: true });
    await kube.getDeployment('app');
    await kube.createLease({ name: 'l', holder: 'me' });
    await kube.createConfigMap('approvals', { metadata: { name: 'req' }, data: {} });
    fake.failNext('scaleDeployment');
    await expect(kube.scaleDeployment('app', 1)).rejects.toThrow(/injected/);
    expect(fake.recorded).toEqual([]);
  });

  it('HPAs: create, patch and delete each record an Event on the autoscaler', async () => {
    const fake = new FakeKube(3);
    const kube = audited(fake, trail({ id: 'hpa', title: 'Autoscale', phase: 'run', changes: [{ action: 'create', target: 'hpa/app', after: '2–6' }] }));
    const spec = { scaleTargetRef: { kind: 'Deployment', name: 'app' }, minReplicas: 2, maxReplicas: 6 };
    await kube.createHpa({ metadata: { name: 'app' }, spec });
    await kube.patchHpaSpec('app', { ...spec, maxReplicas: 8 });
    await kube.deleteHpa('app');
    expect(fake.recorded.map((e) => [e.object.kind, e.object.name, e.action])).toEqual([
      ['HorizontalPodAutoscaler', 'app', 'Create'],
      ['HorizontalPodAutoscaler', 'app', 'Patch'],
      ['HorizontalPodAutoscaler', 'app', 'Delete'],
    ]);
    expect(fake.recorded[0].message).toMatch(/: create hpa\/app: ∅ → 2–6$/);
  });

  it('an Event that cannot be written warns once and never fails the change', async () => {
    const fake = new FakeKube(3);
    const t = trail({ id: 's', title: 'S', phase: 'run' });
    const kube = audited(fake, t);
    fake.failNext('recordEvent', 3, 403);
    await expect(kube.scaleDeployment('app', 1)).resolves.toBeDefined();
    await kube.scaleDeployment('app', 2);
    await kube.scaleDeployment('app', 3);
    expect(fake.mutations).toEqual(['scale deployment/app 1', 'scale deployment/app 2', 'scale deployment/app 3']);
    expect(t.warnings).toHaveLength(1);
    expect(t.warnings[0]).toMatch(/could not record the change to deployment\/app as a Kubernetes Event .*403.*the change itself stands/);
    await kube.scaleDeployment('app', 4);
    expect(fake.recorded).toHaveLength(1);
  });

  it('masks secrets through the trail’s redactor and keeps the message within 1 kB', async () => {
    const fake = new FakeKube(3);
    const t = { ...trail({ id: 's', title: 'S', phase: 'run', changes: [{ action: 'set', target: 'TOKEN in api', after: 's3cr3t'.padEnd(2000, 'x') }] }) };
    t.redact = (s: string) => s.replaceAll('s3cr3t', '***');
    await audited(fake, t).patchDeployment('app', { spec: { replicas: 3 } }, 'merge');
    expect(fake.recorded[0].message).not.toContain('s3cr3t');
    expect(fake.recorded[0].message.length).toBeLessThanOrEqual(1024);
  });
});

describe('audited: change-cause on a pod-template change', () => {
  const cause = changeCause({ procedure: 'db restart', runId: '20261203T175500-ab12', operator: 'alice@laptop' });

  it('is added in the same request to a strategic or merge patch of spec.template, not to a replicas-only patch', async () => {
    const { kube, patches } = spying(new FakeKube(3));
    const a = audited(kube, trail());
    await a.patchDeployment('app', { spec: { template: { metadata: { annotations: { x: '1' } } } } }, 'strategic');
    await a.patchDeployment('app', { metadata: { annotations: { keep: 'me' } }, spec: { template: { metadata: { annotations: { x: '2' } } } } }, 'merge');
    await a.patchDeployment('app', { spec: { replicas: 2 } }, 'merge');
    expect(patches.map((p) => p.patch)).toEqual([
      { metadata: { annotations: { [CHANGE_CAUSE]: cause } }, spec: { template: { metadata: { annotations: { x: '1' } } } } },
      { metadata: { annotations: { keep: 'me', [CHANGE_CAUSE]: cause } }, spec: { template: { metadata: { annotations: { x: '2' } } } } },
      { spec: { replicas: 2 } },
    ]);
    expect(cause).toBe('runbook db restart (run 20261203T175500-ab12, by alice@laptop)');
  });

  it('a JSON patch touching /spec/template gets an add of the annotation (escaped path); if the object has no annotations, it is sent without', async () => {
    const { kube, patches } = spying(new FakeKube(3));
    const a = audited(kube, trail());
    const ops = [
      { op: 'replace', path: '/spec/template', value: { metadata: { labels: { app: 'api' } }, spec: { containers: [{ name: 'api', image: 'api:0' }] } } },
    ];
    await a.patchDeployment('app', ops, 'json');
    expect(patches[0].patch).toEqual([...ops, { op: 'add', path: '/metadata/annotations/kubernetes.io~1change-cause', value: cause }]);
    const inner = kube.patchDeployment;
    let first = true;
    kube.patchDeployment = async (name, patch, type, opts) => {
      if (first) {
        first = false;
        throw new KubeApiError(
          'Kubernetes API at x: add operation does not apply: doc is missing path: "/metadata/annotations/kubernetes.io~1change-cause" (500)',
          500,
        );
      }
      return inner(name, patch, type, opts);
    };
    patches.length = 0;
    await a.patchDeployment('app', ops, 'json');
    expect(patches.map((p) => p.patch)).toEqual([ops]);
  });
});

describe('runs through the CLI (in-memory cluster)', () => {
  it('app scale: one RunbookChange Event with the run id, operator and the previewed change; --dry-run records none', async () => {
    const kube = new FakeKube(4);
    const { dir } = writeConfig(twoEnvironments());
    const dry = await runCli(['app', 'scale', '--replicas', '6', '--dry-run', '--json'], { cwd: dir, clientFactories: fakeFactories(kube) });
    expect(dry.code, dry.stderr).toBe(0);
    expect(kube.recorded).toEqual([]);
    const r = await runCli(['app', 'scale', '--replicas', '6', '--json'], { cwd: dir, clientFactories: fakeFactories(kube) });
    expect(r.code, r.stderr).toBe(0);
    const runId = JSON.parse(r.stdout).runId as string;
    expect(kube.recorded).toHaveLength(1);
    expect(kube.recorded[0]).toMatchObject({ reason: 'RunbookChange', object: { kind: 'Deployment', name: 'app' } });
    expect(kube.recorded[0].message).toBe(`runbook app scale, step "Scale the deployment" (run ${runId}, by tester@test): scale deployment/app: 4 → 6`);
  });

  it('a failure after the scale: the scale back is a RunbookUndo Event', async () => {
    const kube = new FakeKube(4);
    const { dir } = writeConfig(twoEnvironments());
    const r = await runCli(['app', 'scale', '--replicas', '6'], { cwd: dir, clientFactories: fakeFactories(kube), procedureOverride: failAfter('scale') });
    expect(r.code, r.stderr).toBe(1);
    expect(kube.recorded.map((e) => e.reason)).toEqual(['RunbookChange', 'RunbookUndo']);
    expect(kube.recorded[1].message).toMatch(/undoing step "Scale the deployment" .*: scale deployment\/app to 4$/);
  });

  it('Events that cannot be written: one warning, the run succeeds and the change stands', async () => {
    const kube = new FakeKube(4);
    kube.failNext('recordEvent', 5, 403);
    const { dir } = writeConfig(twoEnvironments());
    const r = await runCli(['app', 'scale', '--replicas', '6'], { cwd: dir, clientFactories: fakeFactories(kube) });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr.match(/could not record the change/g)).toHaveLength(1);
    expect(kube.deployments.get('app')!.spec!.replicas).toBe(6);
  });
});

describe('declarations: recordEvent comes with every change', () => {
  it('is added to a procedure that declares a mutating call, not to a read-only one', () => {
    expect(declaredKubeCalls({ kube: ['getDeployment', 'scaleDeployment'] })).toContain('recordEvent');
    expect(declaredKubeCalls({ kube: ['getDeployment', 'listPods'] })).not.toContain('recordEvent');
    expect(declaredKubeCalls({ kube: ['patchNode'] }).filter((m) => m === 'recordEvent')).toHaveLength(1);
  });

  it('patching a node needs create events in `default`, and runbook rbac grants it there', async () => {
    expect(permissionsOf(['patchNode', 'recordEvent'])).toContainEqual({ verb: 'create', group: '', resource: 'events', namespace: 'default' });
    const yaml = await rbacManifests({
      namespace: 'shop',
      procedures: [
        ['security', 'isolate'],
        ['app', 'scale'],
      ],
    });
    const docs = parseAllDocuments(yaml).map(
      (d) => d.toJS() as { kind: string; metadata: { namespace?: string }; rules?: Array<{ apiGroups: string[]; resources: string[]; verbs: string[] }> },
    );
    const roles = docs.filter((d) => d.kind === 'Role');
    expect(roles.map((d) => d.metadata.namespace)).toEqual(['shop', 'default']);
    expect(roles[0].rules).toContainEqual({ apiGroups: [''], resources: ['events'], verbs: ['create'] });
    expect(roles[1].rules).toEqual([{ apiGroups: [''], resources: ['events'], verbs: ['create'] }]);
    expect(docs.filter((d) => d.kind === 'RoleBinding').map((d) => d.metadata.namespace)).toEqual(['shop', 'default']);
  });
});
