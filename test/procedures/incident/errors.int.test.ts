import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { runCli } from '../../support/cli.js';
import { startSandbox, type Sandbox } from '../../support/sandbox/index.js';
import { writeAccessLog } from '../../support/sandbox/incident-part.js';
import type { KubeObject, Pod } from '../../support/cluster/index.js';

let sb: Sandbox;

function cli(argv: string[], extra: Parameters<typeof runCli>[1] = {}) {
  return runCli(argv, { ...extra, env: { ...sb.env, ...(extra.env ?? {}) } });
}

/** The deployment's pods that are running (not those of an old ReplicaSet still terminating). */
async function pods(): Promise<string[]> {
  return (await sb.kube.list<Pod>('pods', { namespace: sb.namespace, labelSelector: 'app=api' }))
    .filter((p) => !p.metadata.deletionTimestamp && p.status?.phase === 'Running')
    .map((p) => p.metadata.name)
    .sort();
}

beforeAll(async () => {
  sb = await startSandbox({ parts: ['kubernetes', 'incident'] });
}, 60_000);
afterAll(async () => {
  await sb?.stop();
});
beforeEach(async () => {
  sb.kube.faults.clear();
  await sb.kube.waitForRollout('app', { timeoutMs: 30_000 });
});

describe('incident errors against the Kubernetes API server, a metrics endpoint and an access log', () => {
  it('groups error lines by type across pods, reads the metrics, counts endpoint × status, and suggests no rollback when there is no earlier revision', async () => {
    const [a, b, c] = await pods();
    expect(c).toBeDefined();
    await sb.kube.setPodLogs(a!, [
      'GET /api/orders 200',
      '2026-01-01 12:00:01 ERROR DatabaseTimeout: query exceeded 5s',
      '[ERROR] DatabaseTimeout: again',
      '{"level":"error","msg":"payment failed","error":{"type":"PaymentGatewayError","code":502}}',
      '{"level":"info","msg":"fine","error":null}',
    ]);
    await sb.kube.setPodLogs(b!, ['ERROR DatabaseTimeout pool exhausted', 'ERROR   NullPointerException at Checkout.java:42']);
    await sb.kube.setPodLogs(c!, ['all quiet']);
    const r = await cli(['incident', 'errors', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout);
    const byId = Object.fromEntries(doc.steps.map((s: { id: string; data: unknown }) => [s.id, s.data]));
    expect(byId.metrics.errorRate).toEqual({ field: 'error_rate', value: 0.035, fraction: 0.035 });
    expect(byId.metrics.fields).toMatchObject({ errors: 42, error_rate: 0.035, 'by_status.5xx': 40 });
    const groups = byId.logs.groups.map((g: { type: string; count: number; pods: string[] }) => [g.type, g.count, g.pods.length]);
    expect(groups).toEqual([
      ['DatabaseTimeout', 3, 2],
      ['NullPointerException', 1, 1],
      ['PaymentGatewayError', 1, 1],
    ]);
    expect(byId.logs.groups[0].firstSeen).toMatch(/^\d{4}-\d\d-\d\dT/);
    // The access log: ids collapsed, query dropped, the 3-hour-old login failures outside --since 1h.
    expect(byId.access.requests).toBe(70);
    expect(byId.access.endpoints[0]).toMatchObject({
      endpoint: 'POST /api/checkout',
      total: 20,
      '5xx': 15,
      '2xx': 5,
      statuses: { '500': 5, '502': 10, '200': 5 },
    });
    expect(byId.access.endpoints.find((e: { endpoint: string }) => e.endpoint === 'GET /api/orders/:id')).toMatchObject({ total: 40, '4xx': 2 });
    expect(byId.access.endpoints.some((e: { endpoint: string }) => e.endpoint.includes('login'))).toBe(false);
    expect(byId.suggest.suggestions.join('\n')).toMatch(/DatabaseTimeout: a dependency is failing/);
    expect(byId.suggest.suggestions.join('\n')).not.toMatch(/runbook app rollback/);
    expect(byId.suggest.suggestions.join('\n')).toMatch(/POST \/api\/checkout has the most 5xx/);
    // The table output, and nothing but results on stdout.
    const t = await cli(['incident', 'errors']);
    expect(t.code).toBe(0);
    expect(t.stdout).toMatch(/DatabaseTimeout/);
    expect(t.stdout).toMatch(/POST \/api\/checkout\s+20\s+5\s+0\s+0\s+15/);
    expect(t.stdout).toMatch(/error rate: 3\.50% \(metrics error_rate\)/);
  });

  it('--max-error-rate: exit 4 above the threshold, 0 below; a wider --since takes in older requests', async () => {
    const over = await cli(['incident', 'errors', '--max-error-rate', '2%']);
    expect(over.code, over.stderr).toBe(4);
    expect(over.stderr).toMatch(/error rate 3\.50% \(metrics error_rate\) is above --max-error-rate 2\.00%/);
    const under = await cli(['incident', 'errors', '--max-error-rate', '0.05']);
    expect(under.code, under.stderr).toBe(0);
    const wide = JSON.parse((await cli(['incident', 'errors', '--since', '4h', '--json'])).stdout);
    expect(wide.steps.find((s: { id: string }) => s.id === 'access').data.requests).toBe(75);
  });

  it('a custom --pattern decides what an error line is, through its named group "type"', async () => {
    const [a, ...rest] = await pods();
    await sb.kube.setPodLogs(a!, ['ts=1 level=error kind=Timeout msg=x', 'ts=2 level=error kind=Timeout', 'ts=3 level=warn kind=Slow', 'ERROR NotCountedHere']);
    for (const p of rest) await sb.kube.setPodLogs(p, ['ok']);
    const r = await cli(['incident', 'errors', '--pattern', String.raw`level=error kind=(?<type>\w+)`, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const logs = JSON.parse(r.stdout).steps.find((s: { id: string }) => s.id === 'logs').data;
    expect(logs.groups.map((g: { type: string; count: number }) => [g.type, g.count])).toEqual([['Timeout', 2]]);
  });

  it('a recent rollout followed by errors suggests the rollback to the previous revision', async () => {
    const set = await cli(['app', 'env', 'set', 'FEATURE_X=on', '--yes']);
    expect(set.code, set.stderr).toBe(0);
    await sb.kube.waitForRollout('app', { timeoutMs: 30_000 });
    await new Promise((r) => setTimeout(r, 1100));
    const current = await pods();
    expect(current).toHaveLength(3);
    for (const p of current) await sb.kube.appendPodLogs(p, ['ERROR CheckoutFailed: nil cart']);
    const r = await cli(['incident', 'errors', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout);
    const history = doc.steps.find((s: { id: string }) => s.id === 'history').data;
    expect(history.current).toBeGreaterThanOrEqual(2);
    const text = doc.steps.find((s: { id: string }) => s.id === 'suggest').data.suggestions.join('\n');
    expect(text).toMatch(
      new RegExp(
        `revision ${history.current} rolled out .* ago and errors started after it: runbook app rollback \\(back to revision ${history.current - 1}\\)`,
      ),
    );
  });

  it('--dry-run reads for real and changes nothing; offline contacts nothing', async () => {
    const before = await sb.fingerprint();
    const seen = sb.kube.requests.length;
    const r = await cli(['incident', 'errors', '--dry-run', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).status).toBe('planned');
    expect(sb.kube.requests.slice(seen).some((q) => q.path.endsWith('/log'))).toBe(true);
    expect(sb.kube.requests.slice(seen).every((q) => q.method === 'GET')).toBe(true);
    expect(await sb.fingerprint()).toEqual(before);
    const off = await cli(['incident', 'errors', '--dry-run=offline'], { env: { KUBECONFIG: '/nonexistent' } });
    expect(off.code, off.stderr).toBe(0);
    expect(off.stdout).toContain(`kubectl rollout history deployment/app -n ${sb.namespace}`);
  });

  it('pods with a sidecar: reads the container kubectl logs would (default-container annotation), not a refused request per pod', async () => {
    const { writeFileSync, readFileSync } = await import('node:fs');
    const { parse, stringify } = await import('yaml');
    await sb.kube.seedDeployment({
      name: 'web',
      replicas: 2,
      containers: [
        { name: 'log-shipper', image: 'registry.example.com/shipper:2.1' },
        { name: 'api', image: 'registry.example.com/api:1.0.0' },
      ],
    });
    await sb.kube.patch(
      'deployments',
      sb.namespace,
      'web',
      { spec: { template: { metadata: { annotations: { 'kubectl.kubernetes.io/default-container': 'api' } } } } },
      'strategic',
    );
    await sb.kube.waitForRollout('web', { timeoutMs: 30_000 });
    try {
      const webPods = (await sb.kube.list<Pod>('pods', { namespace: sb.namespace, labelSelector: 'app=web' })).filter(
        (p) => !p.metadata.deletionTimestamp && p.status?.phase === 'Running',
      );
      expect(webPods).toHaveLength(2);
      for (const p of webPods) {
        await sb.kube.setPodLogs(p.metadata.name, ['ERROR ShipperBackpressure: buffer full'], { container: 'log-shipper' });
        await sb.kube.setPodLogs(p.metadata.name, ['ERROR OrderRejected: stock'], { container: 'api' });
      }
      const cfg = parse(readFileSync(sb.configPath, 'utf8'));
      Object.assign(cfg.environments.sandbox.kubernetes, { deployment: 'web', selector: 'app=web' });
      const path = join(sb.dir, 'runbook-web.yaml');
      writeFileSync(path, stringify(cfg));
      const r = await cli(['incident', 'errors', '--json'], { env: { RUNBOOK_CONFIG: path } });
      expect(r.code, r.stderr).toBe(0);
      const logs = JSON.parse(r.stdout).steps.find((s: { id: string }) => s.id === 'logs').data;
      expect(logs.pods.filter((p: { error?: string }) => p.error)).toEqual([]);
      expect(logs.groups.map((g: { type: string; count: number }) => [g.type, g.count])).toEqual([['OrderRejected', 2]]);
    } finally {
      await sb.kube.remove('deployments', sb.namespace, 'web');
    }
  });

  it('bad input is rejected before anything is contacted (exit 2)', async () => {
    const seen = sb.kube.requests.length;
    for (const args of [
      ['--pattern', 'ERROR (\\w+)'],
      ['--pattern', '(?<type>['],
      ['--max-error-rate', 'lots'],
      ['--max-error-rate', '150%'],
      ['--since', 'yesterday'],
      ['--top', '0'],
    ]) {
      const r = await cli(['incident', 'errors', ...args]);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr.trim().split('\n').length, r.stderr).toBeLessThanOrEqual(3);
    }
    expect(sb.kube.requests.length).toBe(seen);
  });

  it('failures: unreadable pod logs fail with one clear line; a metrics endpoint that is down and a missing access log are reported, not fatal', async () => {
    const { writeFileSync, readFileSync } = await import('node:fs');
    const { parse, stringify } = await import('yaml');
    // An on-call identity that may read deployments and pods but not pods/log (real RBAC, real 403).
    const user = 'oncall-no-logs';
    await sb.kube.put({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'Role',
      metadata: { name: user, namespace: sb.namespace },
      rules: [
        { apiGroups: [''], resources: ['pods', 'events'], verbs: ['get', 'list', 'watch'] },
        { apiGroups: ['apps'], resources: ['deployments', 'replicasets'], verbs: ['get', 'list', 'watch'] },
      ],
    } as KubeObject);
    await sb.kube.put({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name: user, namespace: sb.namespace },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: user },
      subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: user }],
    } as KubeObject);
    const kubeconfig = sb.kube.userKubeconfig(join(sb.dir, `${user}.kubeconfig`), { name: user, context: 'sandbox', namespace: sb.namespace });
    const limited = parse(readFileSync(sb.configPath, 'utf8'));
    limited.environments.sandbox.kubernetes.kubeconfig = kubeconfig;
    const limitedPath = join(sb.dir, 'runbook-no-logs.yaml');
    writeFileSync(limitedPath, stringify(limited));
    const r = await cli(['incident', 'errors'], { env: { RUNBOOK_CONFIG: limitedPath, KUBECONFIG: kubeconfig } });
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/could not read the logs of any pod: .*forbidden/);
    expect(r.stderr).toMatch(/pods\/log/);
    expect(r.stderr).not.toMatch(/\n\s+at /);

    // A config of our own: metrics at a closed port, one access log missing, one present.
    const cfg = parse(readFileSync(sb.configPath, 'utf8'));
    const log = join(sb.dir, 'access-2.log');
    writeAccessLog(log, [
      { method: 'GET', path: '/x', status: 503, agoMs: 1000 },
      { method: 'GET', path: '/x', status: 200, agoMs: 1000 },
    ]);
    cfg.environments.sandbox.metrics = { url: 'http://127.0.0.1:9/api/errors', timeout: '1s' };
    cfg.environments.sandbox.accessLogs = { files: [join(sb.dir, 'missing.log'), log] };
    const path = join(sb.dir, 'runbook-broken-metrics.yaml');
    writeFileSync(path, stringify(cfg));
    const m = await cli(['incident', 'errors', '--max-error-rate', '10%', '--json'], { env: { RUNBOOK_CONFIG: path } });
    expect(m.stderr).toMatch(/metrics endpoint: .*127\.0\.0\.1:9/);
    expect(m.stderr).toMatch(/missing\.log: no such file/);
    // Without metrics the check falls back to the access logs' share of 5xx: 1 of 2.
    expect(m.code, m.stderr).toBe(4);
    expect(m.stderr).toMatch(/50\.00% \(access logs \(share of 5xx\)\)/);
  });
});
