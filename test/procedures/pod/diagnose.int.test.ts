// pod diagnose and pod memory against the real control plane (test/support/cluster): a crash loop
// made by a kwok stage with its previous log, a pod whose secret does not exist, metrics.k8s.io usage
// through the real APIService, transport faults on the metrics API.
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { runCli, tempDir } from '../../support/cli.js';
import { writeConfig } from '../../support/config.js';
import { startKube, type KubeHarness, type KubeObject, type Pod } from '../../support/cluster/index.js';

let kube: KubeHarness;
let NS: string;
let cwd: string;

async function podsOf(app: string): Promise<string[]> {
  return (await kube.list<Pod>('pods', { namespace: NS, labelSelector: `app=${app}` }))
    .filter((p) => !p.metadata.deletionTimestamp)
    .map((p) => p.metadata.name)
    .sort();
}

function cli(argv: string[]) {
  return runCli(argv, { cwd });
}

const stepData = (doc: { steps: Array<{ id: string; data: unknown }> }) => Object.fromEntries(doc.steps.map((s) => [s.id, s.data])) as Record<string, any>;

/** The BackOff event the kubelet records for a crash-looping container (kwok runs no kubelet that would). */
async function backOffEvent(pod: string, container: string, count: number): Promise<void> {
  const p = (await kube.get<Pod>('pods', NS, pod))!;
  const now = new Date().toISOString();
  const node = (p.spec as { nodeName?: string }).nodeName;
  await kube.create({
    apiVersion: 'v1',
    kind: 'Event',
    metadata: { name: `${pod}.backoff`, namespace: NS },
    involvedObject: { apiVersion: 'v1', kind: 'Pod', name: pod, namespace: NS, uid: p.metadata.uid, fieldPath: `spec.containers{${container}}` },
    reason: 'BackOff',
    message: `Back-off restarting failed container ${container} in pod ${pod}_${NS}(${p.metadata.uid})`,
    type: 'Warning',
    source: { component: 'kubelet', host: node },
    reportingComponent: 'kubelet',
    reportingInstance: node,
    firstTimestamp: now,
    lastTimestamp: now,
    count,
  } as KubeObject);
}

beforeAll(async () => {
  kube = await startKube({ namespace: 'production' });
  NS = kube.namespace;
  const dir = tempDir('runbook-pod-');
  const kubeconfig = join(dir, 'kubeconfig');
  await kube.writeKubeconfig(kubeconfig, { context: 'test', namespace: NS });
  await kube.seedSecret('db-creds', { password: 'hunter2-s3cret' });
  await kube.seedConfigMap('app-config', { LOG_LEVEL: 'info' });
  const resources = { requests: { cpu: '250m', memory: '256Mi' }, limits: { cpu: '500m', memory: '512Mi' } };
  await kube.seedDeployment({
    name: 'app',
    replicas: 3,
    labels: { app: 'api' },
    containers: [
      {
        name: 'api',
        image: 'registry.example.com/api:1.0.0',
        env: [{ name: 'DB_PASSWORD', valueFrom: { secretKeyRef: { name: 'db-creds', key: 'password' } } }],
        envFrom: [{ configMapRef: { name: 'app-config' } }],
        readinessProbe: { httpGet: { path: '/ready', port: 8080 }, periodSeconds: 5 },
        livenessProbe: { httpGet: { path: '/health', port: 8080 }, initialDelaySeconds: 10 },
        resources,
      },
    ],
  });
  await kube.seedDeployment({
    name: 'worker',
    replicas: 1,
    labels: { app: 'worker' },
    containers: [{ name: 'worker', image: 'registry.example.com/worker:1.0.0', envFrom: [{ secretRef: { name: 'worker-creds' } }], resources }],
  });
  cwd = writeConfig({
    default: 'prod',
    environments: { prod: { protected: true, kubernetes: { kubeconfig, context: 'test', namespace: NS, deployment: 'app', selector: 'app=api' } } },
  }).dir;
}, 120_000);

afterAll(async () => {
  await kube?.close();
});

beforeEach(() => {
  kube.faults.clear();
});

describe('pod diagnose against the Kubernetes API server', () => {
  it('a healthy pod exits 0 and says so; its secret and config map are found (keys only, no value printed)', async () => {
    const [name] = await podsOf('api');
    const r = await cli(['pod', 'diagnose', name]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`pod ${name} is healthy`));
    expect(r.stdout).toMatch(/secret +db-creds +ok +env DB_PASSWORD \(api\)/);
    expect(r.stdout).toMatch(/configmap +app-config +ok +envFrom \(api\)/);
    expect(r.stdout).toMatch(/readiness probe: http GET :8080\/ready \(delay 0s, every 5s/);
    expect(r.stdout).toMatch(/usage +cpu \d+m \(\d+(\.\d)?% of limit\) +memory \d+Mi/);
    expect(r.stdout + r.stderr).not.toContain('hunter2');
    expect(kube.mutations()).toEqual([]);
  });

  it('a crash-looping pod: CrashLoopBackOff, last exit code, previous logs, the BackOff event, exit 4', async () => {
    const name = (await podsOf('api'))[1]!;
    await kube.crashLoop(name, { exitCode: 3, reason: 'Error', restartCount: 6 });
    await kube.setPodLogs(name, ['level=info msg=starting', 'level=error msg="cannot open /data/db: permission denied"'], { previous: true });
    await backOffEvent(name, 'api', 6);
    const r = await cli(['pod', 'diagnose', name, '--json']);
    expect(r.code, r.stderr).toBe(4);
    const doc = JSON.parse(r.stdout);
    expect(doc.status).toBe('check-failed');
    const d = stepData(doc);
    const pod = d.pods.pods[0];
    expect(pod).toMatchObject({ name, status: 'CrashLoopBackOff', verdict: 'failing', restarts: 6 });
    expect(pod.containers[0].lastTermination).toMatchObject({ exitCode: 3, reason: 'Error' });
    expect(pod.containers[0].lastTermination.finishedAt).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(d.logs).toEqual([
      { pod: name, container: 'api', previous: true, lines: ['level=info msg=starting', 'level=error msg="cannot open /data/db: permission denied"'] },
    ]);
    expect(d.events[name].some((e: { reason: string; type: string }) => e.reason === 'BackOff' && e.type === 'Warning')).toBe(true);
    const crash = d.findings.findings[0];
    expect(crash.problem).toMatch(/^container api is crash-looping: 6 restart\(s\), last exit code 3 \(Error\)/);
    expect(crash.cause).toMatch(/permission denied/);
    // The events were asked for this pod only, with a field selector.
    expect(kube.requests.some((q) => q.path === `/api/v1/namespaces/${NS}/events` && q.query.fieldSelector === `involvedObject.name=${name}`)).toBe(true);
    expect(kube.requests.some((q) => q.path.endsWith(`/pods/${name}/log`) && q.query.previous === 'true')).toBe(true);

    const text = await cli(['pod', 'diagnose', name]);
    expect(text.code).toBe(4);
    expect(text.stdout).toMatch(/waiting: CrashLoopBackOff/);
    expect(text.stdout).toMatch(/last termination: Error, exit code 3, finished/);
    expect(text.stdout).toMatch(/BackOff/);
    expect(text.stderr).toMatch(new RegExp(`pod ${name} is CrashLoopBackOff`));
  });

  it("without a pod name: the deployment's pods worst first, details for the unhealthy one only, exit 4", async () => {
    const bad = (await podsOf('api'))[1]!;
    const r = await cli(['pod', 'diagnose', '--json']);
    expect(r.code, r.stderr).toBe(4);
    const d = stepData(JSON.parse(r.stdout));
    expect(d.pods.pods.map((p: { name: string }) => p.name)[0]).toBe(bad);
    expect(d.pods.pods).toHaveLength(3);
    expect(Object.keys(d.events)).toEqual([bad]);
    const text = await cli(['pod', 'diagnose']);
    expect(text.stdout).toContain(`deployment/app in ${NS}: 3 pod(s), worst first`);
    expect(text.stdout.indexOf(bad)).toBeLessThan(text.stdout.indexOf((await podsOf('api'))[0]!));
  });

  it('a pod referencing a secret missing from the namespace: critical finding, exit 4', async () => {
    const [name] = await podsOf('worker');
    const r = await cli(['pod', 'diagnose', name, '--json']);
    expect(r.code, r.stderr).toBe(4);
    const d = stepData(JSON.parse(r.stdout));
    // A real pod also mounts its service-account token, whose projected volume needs the CA bundle the
    // controller-manager publishes in every namespace: found, so not a finding.
    expect(d.references).toEqual([
      expect.objectContaining({ kind: 'secret', name: 'worker-creds', status: 'missing', usedBy: ['envFrom (worker)'] }),
      expect.objectContaining({
        kind: 'configmap',
        name: 'kube-root-ca.crt',
        keys: ['ca.crt'],
        status: 'ok',
        usedBy: [expect.stringMatching(/^volume kube-api-access-/)],
      }),
    ]);
    expect(d.findings.findings[0]).toMatchObject({ severity: 'critical', problem: `secret worker-creds does not exist in namespace ${NS}` });
    expect(d.findings.unhealthy).toBe('secret worker-creds is missing');
    expect(d.findings.findings.filter((f: { problem: string }) => f.problem.includes('kube-root-ca.crt'))).toEqual([]);
  });

  it('metrics.k8s.io failing does not stop the diagnosis: usage is reported unavailable', async () => {
    const [name] = await podsOf('api');
    kube.faults.add({ path: /^\/apis\/metrics\.k8s\.io\//, status: 503, message: 'the server is currently unable to handle the request', times: Infinity });
    const r = await cli(['pod', 'diagnose', name, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const d = stepData(JSON.parse(r.stdout));
    expect(d.usage.available).toBe(false);
    expect(d.findings.findings.some((f: { problem: string }) => /metrics\.k8s\.io is not available/.test(f.problem))).toBe(true);
  });

  it('an unknown pod is one clear line (exit 1); a bad name is exit 2 with nothing contacted', async () => {
    const r = await cli(['pod', 'diagnose', 'app-nope-12345']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`pod "app-nope-12345" not found in namespace ${NS} (context test)`);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    const seen = kube.requests.length;
    const bad = await cli(['pod', 'diagnose', 'App_Pod']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/invalid pod "App_Pod"/);
    expect(kube.requests.length).toBe(seen);
  });

  it('--dry-run reads for real and changes nothing; offline contacts nothing', async () => {
    const before = kube.mutations().length;
    const r = await cli(['pod', 'diagnose', '--dry-run', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).status).toBe('planned');
    const seen = kube.requests.length;
    const off = await cli(['pod', 'diagnose', '--dry-run=offline']);
    expect(off.code, off.stderr).toBe(0);
    expect(off.stdout).toContain(`kubectl logs <pod> -n ${NS} --previous --tail=30`);
    expect(kube.requests.length).toBe(seen);
    expect(kube.mutations().length).toBe(before);
  });
});

describe('pod memory against the Kubernetes API server', () => {
  it('sorts by share of the limit and flags a container over 90% (exit 4)', async () => {
    const [a, b, c] = (await podsOf('api')) as [string, string, string];
    await kube.setPodUsage(a, { api: { cpu: '100m', memory: '100Mi' } });
    await kube.setPodUsage(c, { api: { cpu: '100m', memory: '480Mi' } });
    const r = await cli(['pod', 'memory', '--containers', '--json']);
    expect(r.code, r.stderr).toBe(4);
    const data = JSON.parse(r.stdout).steps[0].data;
    expect(data.rows[0]).toMatchObject({ pod: c, container: 'api', pctOfLimit: 93.8, flagged: true });
    expect(data.rows.find((x: { pod: string }) => x.pod === a)).toMatchObject({ pctOfLimit: 19.5, flagged: false });
    // b is crash-looping but still phase Running, as in a real cluster: it has (synthetic) figures too.
    expect(data.rows.filter((x: { pod: string }) => x.pod === b)).toHaveLength(1);
    expect(data.withoutMetrics).toEqual([]);
    expect(r.stderr).toMatch(new RegExp(`${c}/api above 90% of the memory limit`));
    const text = await cli(['pod', 'memory']);
    expect(text.stdout).toMatch(new RegExp(`${c}\\s+480Mi\\s+256Mi\\s+512Mi\\s+93.8%\\s+> 90%`));
    await kube.setPodUsage(c, { api: { cpu: '100m', memory: '200Mi' } });
    const ok = await cli(['pod', 'memory']);
    expect(ok.code, ok.stderr).toBe(0);
  });

  it('without metrics.k8s.io: exit 1 with an install hint', async () => {
    kube.faults.add({ path: /^\/apis\/metrics\.k8s\.io\//, status: 404, message: 'the server could not find the requested resource', times: Infinity });
    const r = await cli(['pod', 'memory']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/metrics\.k8s\.io is not available/);
    expect(r.stderr).toMatch(/metrics-server/);
  });
});

describe('in the sandbox (what the registry test runs)', () => {
  it('pod diagnose, pod memory and info exit 0 against the healthy sandbox deployment', async () => {
    const { startSandbox } = await import('../../support/sandbox/index.js');
    const sb = await startSandbox({ parts: ['kubernetes'] });
    try {
      for (const argv of [['pod', 'diagnose'], ['pod', 'memory', '--containers'], ['info']]) {
        const r = await runCli(argv, { env: sb.env });
        expect(r.code, `${argv.join(' ')}: ${r.stderr}`).toBe(0);
      }
      const r = await runCli(['pod', 'diagnose'], { env: sb.env });
      expect(r.stdout).toMatch(/all 3 pod\(s\) healthy/);
    } finally {
      await sb.stop();
    }
  }, 60_000);
});
