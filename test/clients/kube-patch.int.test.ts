/**
 * The product's patches against the real API server's patch semantics: `app env set` / `unset`
 * (a strategic merge on env, keyed by name), `app resources` (a strategic merge on resources), and
 * the JSON patches that put a container's field back when a rollout fails. The deployment has a
 * sidecar listed first, a variable that comes from a secret (`valueFrom`) and quantities the server
 * canonicalises (`1000m` is stored as `1`).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.js';
import { startSandbox, type Sandbox } from '../support/sandbox/index.js';
import type { Container, Deployment, Pod } from '../support/cluster/index.js';

let sb: Sandbox;
let config: string;

const SECRET_REF = { secretKeyRef: { name: 'web-secrets', key: 'db-password' } };

/** A sidecar first, then the app: index and name differ, so a patch must go by name. */
function containers(): Container[] {
  return [
    {
      name: 'log-shipper',
      image: 'registry.example.com/shipper:2.1',
      env: [
        { name: 'MODE', value: 'sidecar' },
        { name: 'A', value: 'side' },
      ],
      resources: { requests: { cpu: '50m', memory: '32Mi' }, limits: { memory: '64Mi' } },
    },
    {
      name: 'api',
      image: 'registry.example.com/api:1.0.0',
      env: [
        { name: 'MODE', value: 'normal' },
        { name: 'A', value: '1' },
        { name: 'DB_PASSWORD', valueFrom: SECRET_REF },
      ],
      resources: { requests: { cpu: '250m', memory: '256Mi' }, limits: { cpu: '500m', memory: '512Mi' } },
    },
  ];
}

async function deployment(name = 'web'): Promise<Deployment> {
  const d = await sb.kube.get<Deployment>('deployments', sb.namespace, name);
  if (!d) throw new Error(`deployment ${name} is gone`);
  return d;
}

async function container(name: string, deploymentName = 'web'): Promise<Container> {
  const c = (await deployment(deploymentName)).spec.template.spec.containers.find((x) => x.name === name);
  if (!c) throw new Error(`no container ${name}`);
  return c;
}

function cli(argv: string[]) {
  return runCli(argv, { env: { ...sb.env, RUNBOOK_CONFIG: config } });
}

function deploymentPatches(name = 'web') {
  return sb.kube.mutations().filter((m) => m.method === 'PATCH' && m.path.endsWith(`/deployments/${name}`));
}

/** New pods start normally again; the stuck ones are deleted so their ReplicaSet replaces them. */
async function unstick(): Promise<void> {
  await sb.kube.failPods(undefined);
  const pods = await sb.kube.list<Pod>('pods', { namespace: sb.namespace, labelSelector: 'app=web' });
  for (const p of pods) {
    const ready = p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
    if (!ready && !p.metadata.deletionTimestamp) await sb.kube.remove('pods', sb.namespace, p.metadata.name);
  }
  await sb.kube.waitForRollout('web', { timeoutMs: 30_000 });
}

beforeAll(async () => {
  sb = await startSandbox({ parts: ['kubernetes'] });
  await sb.kube.seedSecret('web-secrets', { 'db-password': 's3cret-from-the-secret' });
  await sb.kube.seedDeployment({ name: 'web', replicas: 2, containers: containers() });
  // The same environment, aimed at the two-container deployment.
  const cfg = parse(readFileSync(sb.configPath, 'utf8'));
  Object.assign(cfg.environments.sandbox.kubernetes, { deployment: 'web', selector: 'app=web' });
  config = join(sb.dir, 'web.yaml');
  writeFileSync(config, stringify(cfg));
});
afterAll(async () => {
  await sb?.stop();
});
beforeEach(async () => {
  sb.kube.faults.clear();
  await sb.kube.waitForRollout('web', { timeoutMs: 30_000 });
});

describe('app env set / unset: a strategic merge on env, keyed by name', () => {
  it('sets in the named container only; other variables (a valueFrom one too) keep their place; the sidecar is untouched', async () => {
    const sidecar = await container('log-shipper');
    const r = await cli(['app', 'env', 'set', 'A=2', 'B=two', 'C=3', '--container', 'api']);
    expect(r.code, r.stderr).toBe(0);
    const env = (await container('api')).env ?? [];
    expect(env).toEqual([
      { name: 'MODE', value: 'normal' },
      { name: 'A', value: '2' },
      { name: 'DB_PASSWORD', valueFrom: SECRET_REF },
      { name: 'B', value: 'two' },
      { name: 'C', value: '3' },
    ]);
    expect(await container('log-shipper')).toEqual(sidecar);
    expect(await sb.kube.rolloutComplete('web')).toBe(true);
  });

  it('gives the same pod template as `kubectl set env` does on an identical deployment', async () => {
    await sb.kube.seedDeployment({ name: 'web-kubectl', replicas: 1, labels: { app: 'web-kubectl' }, containers: containers() });
    try {
      const k = await sb.kube.kubectl(['set', 'env', 'deployment/web-kubectl', '-c', 'api', 'A=2', 'B=two', 'C=3']);
      expect(k.code, k.stderr).toBe(0);
      const k2 = await sb.kube.kubectl(['set', 'env', 'deployment/web-kubectl', '-c', 'api', 'B-']);
      expect(k2.code, k2.stderr).toBe(0);
      const u = await cli(['app', 'env', 'unset', 'B', '--container', 'api']);
      expect(u.code, u.stderr).toBe(0);
      expect((await deployment('web')).spec.template.spec.containers).toEqual((await deployment('web-kubectl')).spec.template.spec.containers);
    } finally {
      await sb.kube.remove('deployments', sb.namespace, 'web-kubectl');
    }
  });

  it('unsets from the named container only; a variable that is not there is reported and nothing is written', async () => {
    const r = await cli(['app', 'env', 'unset', 'A', '--container', 'api']);
    expect(r.code, r.stderr).toBe(0);
    expect(((await container('api')).env ?? []).map((e) => e.name)).toEqual(['MODE', 'DB_PASSWORD', 'C']);
    expect((await container('log-shipper')).env).toEqual([
      { name: 'MODE', value: 'sidecar' },
      { name: 'A', value: 'side' },
    ]);

    const generation = (await deployment()).metadata.generation;
    const patches = deploymentPatches().length;
    const none = await cli(['app', 'env', 'unset', 'NOT_THERE', '--container', 'api', '--json']);
    expect(none.code, none.stderr).toBe(0);
    expect(JSON.parse(none.stdout).steps.find((s: { id: string }) => s.id === 'apply').status).toBe('skipped');
    expect(deploymentPatches()).toHaveLength(patches);
    expect((await deployment()).metadata.generation).toBe(generation);
  });

  it('a variable that comes from a secret: setting a plain value replaces the reference (as kubectl set env), and the plan says what it was', async () => {
    const plan = await cli(['app', 'env', 'set', 'DB_PASSWORD=plain-value-1', '--container', 'api', '--dry-run']);
    expect(plan.code, plan.stderr).toBe(0);
    expect(plan.stderr).toMatch(/DB_PASSWORD in api/);
    expect(plan.stderr).toMatch(/secret web-secrets key db-password/);
    expect(plan.stderr).not.toContain('plain-value-1');
    expect((await container('api')).env?.find((e) => e.name === 'DB_PASSWORD')).toEqual({ name: 'DB_PASSWORD', valueFrom: SECRET_REF });

    const r = await cli(['app', 'env', 'set', 'DB_PASSWORD=plain-value-1', '--container', 'api']);
    // The real server refuses an env var with both value and valueFrom: the patch must drop valueFrom.
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toContain('plain-value-1');
    expect((await container('api')).env?.find((e) => e.name === 'DB_PASSWORD')).toEqual({ name: 'DB_PASSWORD', value: 'plain-value-1' });
    expect(await sb.kube.rolloutComplete('web')).toBe(true);
  });

  it('a failed rollout puts the previous env back, valueFrom included, in the container found by name', async () => {
    // Put DB_PASSWORD back to the secret reference with the harness (not the product).
    const d = await deployment();
    const api = d.spec.template.spec.containers.findIndex((c) => c.name === 'api');
    await sb.kube.patch(
      'deployments',
      sb.namespace,
      'web',
      [
        {
          op: 'replace',
          path: `/spec/template/spec/containers/${api}/env`,
          value: [
            { name: 'MODE', value: 'normal' },
            { name: 'DB_PASSWORD', valueFrom: SECRET_REF },
          ],
        },
      ],
      'json',
    );
    await sb.kube.waitForRollout('web', { timeoutMs: 30_000 });
    const before = await deployment();
    await sb.kube.failPods('never-ready');
    try {
      const r = await cli(['app', 'env', 'set', 'DB_PASSWORD=oops', 'NEW=1', '--container', 'api', '--rollout-timeout', '1s', '--json']);
      expect(r.code, r.stderr).toBe(1);
      expect(JSON.parse(r.stdout).compensations).toEqual([{ step: 'apply', status: 'succeeded' }]);
    } finally {
      await sb.kube.failPods(undefined);
    }
    expect((await deployment()).spec.template.spec.containers).toEqual(before.spec.template.spec.containers);
    await unstick();
  });
});

describe('app resources: a strategic merge on resources, keyed by container name', () => {
  it('a pod with two containers needs --container; the change lands in that container only', async () => {
    const none = await cli(['app', 'resources', '--memory-limit', '128Mi']);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/deployment\/web has 2 containers; say which with --container/);
    expect(none.stderr).toMatch(/containers: log-shipper, api/);

    const api = await container('api');
    const r = await cli(['app', 'resources', '--container', 'log-shipper', '--memory-limit', '128Mi']);
    expect(r.code, r.stderr).toBe(0);
    expect((await container('log-shipper')).resources).toEqual({ requests: { cpu: '50m', memory: '32Mi' }, limits: { memory: '128Mi' } });
    expect(await container('api')).toEqual(api);
  });

  it('quantities are stored as the server canonicalises them, and the same amount written differently is no change', async () => {
    const r = await cli(['app', 'resources', '--container', 'api', '--cpu-limit', '1000m', '--memory-limit', '1.5Gi']);
    expect(r.code, r.stderr).toBe(0);
    expect((await container('api')).resources).toEqual({ requests: { cpu: '250m', memory: '256Mi' }, limits: { cpu: '1', memory: '1536Mi' } });

    const generation = (await deployment()).metadata.generation;
    const patches = deploymentPatches().length;
    const same = await cli(['app', 'resources', '--container', 'api', '--cpu-limit', '1000m', '--memory-limit', '1536Mi', '--cpu-request', '0.25', '--json']);
    expect(same.code, same.stderr).toBe(0);
    expect(JSON.parse(same.stdout).steps.find((s: { id: string }) => s.id === 'patch').status).toBe('skipped');
    expect(deploymentPatches()).toHaveLength(patches);
    expect((await deployment()).metadata.generation).toBe(generation);

    // Requests ≤ limits is checked on amounts, whatever the notation: 1100m is above the stored "1".
    const over = await cli(['app', 'resources', '--container', 'api', '--cpu-request', '1100m']);
    expect(over.code).toBe(1);
    expect(over.stderr).toMatch(/cpu request 1100m is above its limit 1\b/);
    const equal = await cli(['app', 'resources', '--container', 'api', '--cpu-request', '1']);
    expect(equal.code, equal.stderr).toBe(0);
    expect((await container('api')).resources?.requests).toEqual({ cpu: '1', memory: '256Mi' });
  });

  it('a failed rollout puts the previous resources back by a JSON patch guarded by the container name', async () => {
    const before = await deployment();
    await sb.kube.failPods('never-ready');
    try {
      const r = await cli(['app', 'resources', '--container', 'api', '--memory-request', '300Mi', '--rollout-timeout', '1s', '--json']);
      expect(r.code, r.stderr).toBe(1);
      expect(JSON.parse(r.stdout).compensations).toEqual([{ step: 'patch', status: 'succeeded' }]);
    } finally {
      await sb.kube.failPods(undefined);
    }
    expect((await deployment()).spec.template.spec.containers).toEqual(before.spec.template.spec.containers);
    // The restore was a JSON patch that tests the name at the index it writes.
    const restore = deploymentPatches().at(-1)!;
    expect(restore.contentType).toBe('application/json-patch+json');
    const index = before.spec.template.spec.containers.findIndex((c) => c.name === 'api');
    expect(restore.body).toEqual(expect.arrayContaining([{ op: 'test', path: `/spec/template/spec/containers/${index}/name`, value: 'api' }]));
    await unstick();
  });

  it('a rollout that fails after the containers were reordered puts the resources back into the right container', async () => {
    const before = await deployment();
    const resourcesOf = (d: Deployment, name: string) => d.spec.template.spec.containers.find((c) => c.name === name)!.resources;
    await sb.kube.failPods('never-ready');
    try {
      const run = cli(['app', 'resources', '--container', 'api', '--memory-request', '320Mi', '--rollout-timeout', '2s', '--json']);
      await sb.kube.waitFor(async () => (await container('api')).resources?.requests?.memory === '320Mi', { timeoutMs: 10_000, what: 'the resources patch' });
      // Someone else swaps the containers meanwhile: the index the run read is now the sidecar's.
      const now = await deployment();
      await sb.kube.patch(
        'deployments',
        sb.namespace,
        'web',
        [{ op: 'replace', path: '/spec/template/spec/containers', value: [...now.spec.template.spec.containers].reverse() }],
        'json',
      );
      const r = await run;
      expect(r.code, r.stderr).toBe(1);
      expect(JSON.parse(r.stdout).compensations).toEqual([{ step: 'patch', status: 'succeeded' }]);
    } finally {
      await sb.kube.failPods(undefined);
    }
    const after = await deployment();
    expect(after.spec.template.spec.containers.map((c) => c.name)).toEqual(['api', 'log-shipper']);
    expect(resourcesOf(after, 'api')).toEqual(resourcesOf(before, 'api'));
    expect(resourcesOf(after, 'log-shipper')).toEqual(resourcesOf(before, 'log-shipper'));
    // Put the order back as it was for any later test.
    await sb.kube.patch(
      'deployments',
      sb.namespace,
      'web',
      [{ op: 'replace', path: '/spec/template/spec/containers', value: before.spec.template.spec.containers }],
      'json',
    );
    await unstick();
  });
});
