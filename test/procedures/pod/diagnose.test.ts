import { describe, expect, it } from 'vitest';
import type { V1Pod } from '../../../src/clients/kube.js';
import { runCli } from '../../support/cli.js';
import { writeConfig, twoEnvironments } from '../../support/config.js';
import { FakeKube, fakeFactories } from '../../support/fakes/fake-kube.js';
import { diagnose, explainExit, inspectPod, podReferences, unhealthyReason, worstFirst } from '../../../src/procedures/pod/diagnosis.js';
import { memoryRows } from '../../../src/procedures/pod/memory.js';
import { containerUsage, podResources } from '../../../src/procedures/pod/usage.js';

const now = new Date('2026-01-01T12:00:00Z');
const { dir } = writeConfig(twoEnvironments());

function pod(name: string, over: { status?: V1Pod['status']; spec?: Partial<NonNullable<V1Pod['spec']>> } = {}): V1Pod {
  return {
    metadata: { name, uid: `uid-${name}`, labels: { app: 'api' } },
    spec: {
      containers: [
        {
          name: 'api',
          image: 'api:2',
          resources: { requests: { cpu: '250m', memory: '256Mi' }, limits: { cpu: '500m', memory: '512Mi' } },
          livenessProbe: { httpGet: { path: '/health', port: 8080 as never }, initialDelaySeconds: 0 },
          env: [{ name: 'DB_PASSWORD', valueFrom: { secretKeyRef: { name: 'db-creds', key: 'password' } } }],
          envFrom: [{ configMapRef: { name: 'app-config' } }],
        },
      ],
      volumes: [{ name: 'tls', secret: { secretName: 'tls-cert', optional: true } }],
      imagePullSecrets: [{ name: 'regcred' }],
      ...over.spec,
    },
    status: over.status ?? {
      phase: 'Running',
      conditions: [{ type: 'Ready', status: 'True' }],
      containerStatuses: [
        { name: 'api', ready: true, restartCount: 0, image: 'api:2', imageID: '', state: { running: { startedAt: new Date('2026-01-01T11:00:00Z') } } },
      ],
    },
  };
}

const crashLooping = (name: string, exitCode = 1, reason = 'Error') =>
  pod(name, {
    status: {
      phase: 'Running',
      conditions: [{ type: 'Ready', status: 'False', reason: 'ContainersNotReady' }],
      containerStatuses: [
        {
          name: 'api',
          ready: false,
          restartCount: 7,
          image: 'api:2',
          imageID: '',
          state: { waiting: { reason: 'CrashLoopBackOff', message: 'back-off 5m0s restarting failed container' } },
          lastState: { terminated: { exitCode, reason, finishedAt: new Date('2026-01-01T11:59:00Z') } },
        },
      ],
    },
  });

describe('pod references', () => {
  it('collects env valueFrom (with keys), envFrom, volumes (optional kept) and image pull secrets', () => {
    const refs = podReferences(pod('p'));
    expect(refs).toEqual([
      { kind: 'secret', name: 'db-creds', keys: ['password'], optional: false, usedBy: ['env DB_PASSWORD (api)'] },
      { kind: 'configmap', name: 'app-config', keys: [], optional: false, usedBy: ['envFrom (api)'] },
      { kind: 'secret', name: 'tls-cert', keys: [], optional: true, usedBy: ['volume tls'] },
      { kind: 'secret', name: 'regcred', keys: [], optional: false, usedBy: ['imagePullSecrets'] },
    ]);
  });
});

describe('verdicts and findings', () => {
  it('a crash loop: critical finding with the last exit code, its meaning, the last error log line and next commands', () => {
    const p = inspectPod(crashLooping('app-1'), now);
    expect(p.verdict).toBe('failing');
    expect(p.status).toBe('CrashLoopBackOff');
    expect(p.containers[0].lastTermination).toMatchObject({ exitCode: 1, reason: 'Error', finishedAt: '2026-01-01T11:59:00.000Z' });
    const f = diagnose({
      namespace: 'production',
      deployment: 'app',
      pods: [p],
      events: {},
      logs: [{ pod: 'app-1', container: 'api', previous: true, lines: ['starting', 'panic: unable to open db', 'exiting'] }],
      references: [],
      threshold: 90,
    });
    expect(f[0]).toMatchObject({ severity: 'critical', pod: 'app-1', container: 'api' });
    expect(f[0].problem).toBe('container api is crash-looping: 7 restart(s), last exit code 1 (Error) at 2026-01-01T11:59:00.000Z');
    expect(f[0].cause).toMatch(/exited with an error.*last error in the previous log: panic: unable to open db/);
    expect(f[0].next).toContain('kubectl logs app-1 -n production -c api --previous --tail=100');
  });

  it('an OOM kill points at pod memory and app resources; a liveness kill at the probe', () => {
    const oom = diagnose({
      namespace: 'ns',
      pods: [inspectPod(crashLooping('a', 137, 'OOMKilled'), now)],
      events: {},
      logs: [],
      references: [],
      threshold: 90,
    });
    expect(oom[0].cause).toMatch(/OOMKilled/);
    expect(oom[0].next).toEqual(expect.arrayContaining(['runbook pod memory --containers']));
    const live = diagnose({
      namespace: 'ns',
      pods: [inspectPod(crashLooping('b', 137, 'Error'), now)],
      events: { b: [{ type: 'Warning', reason: 'Unhealthy', message: 'Liveness probe failed: HTTP probe failed with statuscode: 500', count: 9 }] },
      logs: [],
      references: [],
      threshold: 90,
    });
    expect(live[0].cause).toMatch(/liveness probe fails.*add a startupProbe or raise initialDelaySeconds \(now 0s\)/);
  });

  it.each([
    [{ exitCode: 0 }, /exited normally/],
    [{ exitCode: 143 }, /SIGTERM/],
    [{ exitCode: 127 }, /command not found/],
    [{ exitCode: 139 }, /segmentation fault/],
    [{ exitCode: 130 }, /signal 2/],
  ])('explains exit %j', (t, re) => expect(explainExit(t)).toMatch(re));

  it('image pull failures, pending pods and not-ready pods are unhealthy; restarted-but-ready is a warning only', () => {
    const pull = inspectPod(
      pod('pull', {
        status: {
          phase: 'Pending',
          containerStatuses: [{ name: 'api', ready: false, restartCount: 0, image: 'api:9', imageID: '', state: { waiting: { reason: 'ImagePullBackOff' } } }],
        },
      }),
      now,
    );
    const pending = inspectPod(
      pod('pend', {
        status: {
          phase: 'Pending',
          conditions: [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message: '0/3 nodes are available: 3 Insufficient memory.' }],
        },
      }),
      now,
    );
    const notReady = inspectPod(
      pod('nr', {
        status: {
          phase: 'Running',
          conditions: [{ type: 'Ready', status: 'False' }],
          containerStatuses: [{ name: 'api', ready: false, restartCount: 0, image: '', imageID: '', state: { running: {} } }],
        },
      }),
      now,
    );
    const restarted = inspectPod(
      pod('rs', {
        status: {
          phase: 'Running',
          containerStatuses: [
            {
              name: 'api',
              ready: true,
              restartCount: 2,
              image: '',
              imageID: '',
              state: { running: {} },
              lastState: { terminated: { exitCode: 137, reason: 'OOMKilled' } },
            },
          ],
        },
      }),
      now,
    );
    const healthy = inspectPod(pod('ok'), now);
    expect([pull, pending, notReady, restarted, healthy].map((p) => p.verdict)).toEqual(['failing', 'pending', 'not-ready', 'restarted', 'healthy']);
    expect([healthy, restarted, notReady, pull, pending].sort(worstFirst).map((p) => p.name)).toEqual(['pull', 'pend', 'nr', 'rs', 'ok']);
    const f = diagnose({ namespace: 'ns', pods: [pull, pending, notReady, restarted], events: {}, logs: [], references: [], threshold: 90 });
    expect(f.find((x) => x.pod === 'pull')?.problem).toMatch(/cannot pull image api:2 \(ImagePullBackOff\)/);
    expect(f.find((x) => x.pod === 'pend')?.cause).toBe('0/3 nodes are available: 3 Insufficient memory.');
    expect(f.find((x) => x.pod === 'nr')?.problem).toMatch(/running but not ready/);
    expect(f.find((x) => x.pod === 'rs')).toMatchObject({ severity: 'warning' });
    expect(unhealthyReason([restarted, healthy], [])).toBeNull();
    expect(unhealthyReason([pull, restarted], [])).toBe('pod pull is ImagePullBackOff');
    expect(unhealthyReason([], [], 'app')).toBe('deployment/app has no pods');
  });

  it('missing references are critical and unhealthy; a missing optional one is not', () => {
    const base = { keys: [], usedBy: ['envFrom (api)'], pods: ['p'] };
    const refs = [
      { ...base, kind: 'secret' as const, name: 'db-creds', optional: false, status: 'missing-key' as const, missingKeys: ['password'] },
      { ...base, kind: 'configmap' as const, name: 'app-config', optional: false, status: 'missing' as const },
      { ...base, kind: 'secret' as const, name: 'tls-cert', optional: true, status: 'missing' as const },
    ];
    const f = diagnose({ namespace: 'ns', deployment: 'app', pods: [], events: {}, logs: [], references: refs, threshold: 90 });
    expect(f.map((x) => x.problem)).toEqual(['secret db-creds has no key password', 'config map app-config does not exist in namespace ns']);
    expect(unhealthyReason([inspectPod(pod('p'), now)], refs)).toBe('secret db-creds is missing-key; configmap app-config is missing');
  });
});

describe('pod memory rows', () => {
  const a = pod('a', {
    spec: {
      containers: [
        { name: 'api', resources: { limits: { memory: '512Mi' } } },
        { name: 'sidecar', resources: { limits: { memory: '64Mi' } } },
      ],
    },
  });
  const b = pod('b', { spec: { containers: [{ name: 'api', resources: { limits: { memory: '512Mi' } } }, { name: 'sidecar' }] } });
  const usage = containerUsage([a, b].map(podResources), [
    {
      name: 'a',
      containers: [
        { name: 'api', usage: { cpu: '10m', memory: '100Mi' } },
        { name: 'sidecar', usage: { cpu: '1m', memory: '62Mi' } },
      ],
    },
    {
      name: 'b',
      containers: [
        { name: 'api', usage: { cpu: '10m', memory: '400Mi' } },
        { name: 'sidecar', usage: { cpu: '1m', memory: '10Mi' } },
      ],
    },
  ]);
  it('per container: sorted by share of the limit, no limit last, > threshold flagged', () => {
    const rows = memoryRows(usage, true, 90);
    expect(rows.map((r) => `${r.pod}/${r.container}:${r.pctOfLimit}:${r.flagged}`)).toEqual([
      'a/sidecar:96.9:true',
      'b/api:78.1:false',
      'a/api:19.5:false',
      'b/sidecar:null:false',
    ]);
  });
  it('per pod: a pod total (162Mi of 576Mi) still flags a container at its limit', () => {
    const rows = memoryRows(usage, false, 90);
    expect(rows.map((r) => `${r.pod}:${r.pctOfLimit}:${r.flagged}`)).toEqual(['a:28.1:true', 'b:null:false']);
  });
});

describe('pod diagnose and pod memory through the CLI (in-memory Kubernetes)', () => {
  function kubeWith(...pods: V1Pod[]) {
    const kube = new FakeKube(0);
    for (const p of pods) kube.pods.set(p.metadata!.name!, p);
    return kube;
  }

  it('a crash-looping pod: exit 4, previous logs, events, references checked (keys only), no mutation', async () => {
    const kube = kubeWith(crashLooping('app-1'));
    kube.previousLogs.set('app-1/api', 'boot\nFATAL: config missing\n');
    kube.events.push({
      metadata: {},
      involvedObject: { kind: 'Pod', name: 'app-1', uid: 'uid-app-1' },
      type: 'Warning',
      reason: 'BackOff',
      message: 'Back-off restarting failed container',
      count: 12,
    });
    kube.secrets.set('db-creds', ['password']);
    kube.secrets.set('regcred', ['.dockerconfigjson']);
    kube.configMaps.set('app-config', ['LOG_LEVEL']);
    kube.podMetrics!.set('app-1', { name: 'app-1', containers: [{ name: 'api', usage: { cpu: '5m', memory: '500Mi' } }] });
    const r = await runCli(['pod', 'diagnose', 'app-1', '--json'], { cwd: dir, clientFactories: fakeFactories(kube) });
    expect(r.code, r.stderr).toBe(4);
    const doc = JSON.parse(r.stdout);
    const data = Object.fromEntries(doc.steps.map((s: { id: string; data: unknown }) => [s.id, s.data]));
    expect(data.logs).toEqual([{ pod: 'app-1', container: 'api', previous: true, lines: ['boot', 'FATAL: config missing'] }]);
    expect(data.events['app-1'][0]).toMatchObject({ reason: 'BackOff', count: 12 });
    expect(data.references.map((x: { name: string; status: string }) => `${x.name}:${x.status}`)).toEqual([
      'db-creds:ok',
      'app-config:ok',
      'tls-cert:missing',
      'regcred:ok',
    ]);
    expect(data.findings.findings.map((f: { problem: string }) => f.problem)).toEqual(
      expect.arrayContaining([expect.stringMatching(/crash-looping/), 'memory at 97.7% of its limit']),
    );
    expect(r.stderr).toMatch(/pod app-1 is CrashLoopBackOff/);
    expect(kube.mutations).toEqual([]);
  });

  it('the readable report names the state, the last exit, the previous log and the next command', async () => {
    const kube = kubeWith(crashLooping('app-1', 137, 'OOMKilled'));
    kube.previousLogs.set('app-1', 'allocating\n');
    const r = await runCli(['pod', 'diagnose', 'app-1'], { cwd: dir, clientFactories: fakeFactories(kube) });
    expect(r.code).toBe(4);
    expect(r.stdout).toMatch(/container api {2}waiting: CrashLoopBackOff {2}ready=false {2}restarts=7/);
    expect(r.stdout).toMatch(/last termination: OOMKilled, exit code 137/);
    expect(r.stdout).toMatch(/previous log of api \(last 1 lines\):\n\s+allocating/);
    expect(r.stdout).toMatch(/liveness probe: http GET :8080\/health/);
    expect(r.stdout).toMatch(/CRITICAL app-1\/api: container api is crash-looping/);
    expect(r.stdout).toMatch(/next: runbook pod memory --containers/);
    expect(r.stdout).toMatch(/secret +db-creds +missing/);
    expect(r.stdout).toMatch(/UNHEALTHY: pod app-1 is CrashLoopBackOff; secret db-creds is missing/);
  });

  it("without a pod name: the deployment's pods, worst first; metrics unavailable does not stop the diagnosis", async () => {
    const kube = kubeWith(pod('app-ok'), crashLooping('app-bad'));
    kube.deployments.get('app')!.spec!.replicas = 0;
    kube.podMetrics = null;
    for (const n of ['db-creds', 'regcred']) kube.secrets.set(n, ['password']);
    kube.configMaps.set('app-config', []);
    const r = await runCli(['pod', 'diagnose', '--json'], { cwd: dir, clientFactories: fakeFactories(kube) });
    expect(r.code, r.stderr).toBe(4);
    const doc = JSON.parse(r.stdout);
    const pods = doc.steps[0].data.pods.map((p: { name: string }) => p.name);
    expect(pods).toEqual(['app-bad', 'app-ok']);
    expect(Object.keys(doc.steps[1].data)).toEqual(['app-bad']);
    expect(doc.steps[3].data.available).toBe(false);
    expect(doc.steps[5].data.unhealthy).toBe('pod app-bad is CrashLoopBackOff');
  });

  it('a healthy pod exits 0', async () => {
    const kube = kubeWith(pod('app-ok'));
    for (const n of ['db-creds', 'regcred']) kube.secrets.set(n, ['password']);
    kube.configMaps.set('app-config', []);
    const r = await runCli(['pod', 'diagnose', 'app-ok'], { cwd: dir, clientFactories: fakeFactories(kube) });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/pod app-ok is healthy/);
  });

  it('an unknown pod: one clear line with a hint, exit 1; a bad name: exit 2 before anything is contacted', async () => {
    const kube = kubeWith();
    const r = await runCli(['pod', 'diagnose', 'nope'], { cwd: dir, clientFactories: fakeFactories(kube) });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/pod "nope" not found in namespace production/);
    expect(r.stderr).toMatch(/without a name/);
    let contacted = false;
    const bad = await runCli(['pod', 'diagnose', 'Bad_Name!'], {
      cwd: dir,
      clientFactories: {
        ...fakeFactories(kube),
        kube: async () => {
          contacted = true;
          return kube;
        },
      },
    });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/invalid pod "Bad_Name!"/);
    expect(contacted).toBe(false);
  });

  it('pod memory flags > 90% (exit 4) and fails clearly without metrics.k8s.io', async () => {
    const kube = kubeWith(pod('app-a'), pod('app-b'));
    kube.podMetrics!.set('app-a', { name: 'app-a', containers: [{ name: 'api', usage: { cpu: '5m', memory: '470Mi' } }] });
    kube.podMetrics!.set('app-b', { name: 'app-b', containers: [{ name: 'api', usage: { cpu: '5m', memory: '100Mi' } }] });
    const r = await runCli(['pod', 'memory', '--containers'], { cwd: dir, clientFactories: fakeFactories(kube) });
    expect(r.code, r.stderr).toBe(4);
    expect(r.stdout).toMatch(/app-a\s+api\s+470Mi\s+256Mi\s+512Mi\s+91.8%\s+> 90%\n.*app-b\s+api\s+100Mi/);
    expect(r.stderr).toMatch(/app-a\/api above 90% of the memory limit/);
    const ok = await runCli(['pod', 'memory', '--threshold', '95'], { cwd: dir, clientFactories: fakeFactories(kube) });
    expect(ok.code, ok.stderr).toBe(0);
    kube.podMetrics = null;
    const none = await runCli(['pod', 'memory'], { cwd: dir, clientFactories: fakeFactories(kube) });
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/metrics\.k8s\.io is not available/);
    const bad = await runCli(['pod', 'memory', '--threshold', '0'], { cwd: dir, clientFactories: fakeFactories(kube) });
    expect(bad.code).toBe(2);
  });
});
