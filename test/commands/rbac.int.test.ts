// `runbook rbac` against the real API server's RBAC: the Role it derives is applied, bound to a user
// with no other rights, and every Kubernetes procedure runs as that user; with one rule taken away,
// the procedure stops before changing anything with one line naming the verb, resource and namespace.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, parseAllDocuments, stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { catalog } from '../../src/procedures/catalog.js';
import type { Procedure, Step } from '../../src/core/procedure.js';
import { runCli, tempDir } from '../support/cli.js';
import { startSandbox, type Sandbox } from '../support/sandbox/index.js';
import { NEEDS_LIVE_PROCESS } from '../support/sandbox/live-process.js';
import type { Deployment, KubeObject } from '../support/cluster/index.js';

let sb: Sandbox;
let dir: string;
let limitedEnv: Record<string, string>;
let manifests: string;

type Role = KubeObject & { rules: Array<{ apiGroups: string[]; resources: string[]; verbs: string[] }> };

const admin = (args: string[], input?: string) => sb.kube.kubectl(args, { kubeconfig: sb.kube.info.kubeconfig, input });

beforeAll(async () => {
  sb = await startSandbox();
  dir = tempDir('runbook-rbac-');
  const r = await runCli(['rbac', '--group', `ops-${sb.namespace}`, '--name', `runbook-${sb.namespace}`], { env: sb.env });
  expect(r.code, r.stderr).toBe(0);
  manifests = r.stdout;
  const applied = await admin(['apply', '-f', '-'], manifests);
  expect(applied.code, applied.stderr).toBe(0);
  // A user whose only rights are the derived Role and ClusterRole.
  const kubeconfig = sb.kube.userKubeconfig(join(dir, 'limited.kubeconfig'), {
    name: `limited-${sb.namespace}`,
    groups: [`ops-${sb.namespace}`],
    context: 'sandbox',
    namespace: sb.namespace,
  });
  const config = parse(readFileSync(sb.configPath, 'utf8')) as { environments: Record<string, { kubernetes: Record<string, unknown> }> };
  for (const e of Object.values(config.environments)) e.kubernetes = { ...e.kubernetes, kubeconfig, context: 'sandbox' };
  writeFileSync(join(dir, 'runbook.yaml'), stringify(config));
  limitedEnv = { ...sb.env, RUNBOOK_CONFIG: join(dir, 'runbook.yaml'), KUBECONFIG: kubeconfig };
}, 240_000);

afterAll(async () => {
  if (manifests) await admin(['delete', '--ignore-not-found', '-f', '-'], manifests);
  await sb?.stop();
});

describe('runbook rbac', () => {
  it('derives a Role for the namespace and a ClusterRole only for nodes', () => {
    const docs = parseAllDocuments(manifests).map((d) => d.toJS() as Role);
    const role = docs.find((d) => d.kind === 'Role')!;
    const cluster = docs.find((d) => d.kind === 'ClusterRole')!;
    expect(role.metadata.namespace).toBe(sb.namespace);
    expect(role.rules).toContainEqual({ apiGroups: ['apps'], resources: ['deployments/scale'], verbs: ['patch'] });
    expect(role.rules).toContainEqual({ apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['create', 'delete', 'get', 'update'] });
    expect(cluster.rules).toEqual([{ apiGroups: [''], resources: ['nodes'], verbs: ['get', 'patch'] }]);
    // Least privilege: nothing the procedures never call.
    for (const r of role.rules) expect(r.verbs).not.toContain('*');
    expect(role.rules.some((r) => r.resources.includes('deployments') && r.verbs.includes('delete'))).toBe(false);
  });

  const kubeProcedures = catalog.filter((e) => !NEEDS_LIVE_PROCESS.has(e.name)).map((e) => [e.name, e] as const);
  it.each(kubeProcedures)('%s runs as the least-privileged user', async (name, entry) => {
    const proc = await entry.load();
    if (!proc.kube?.length) return;
    for (const h of await sb.kube.list('horizontalpodautoscalers', { namespace: sb.namespace }))
      await sb.kube.remove('horizontalpodautoscalers', sb.namespace, h.metadata.name);
    const r = await runCli([...name.split(' '), ...sb.localize(proc.examples[0] ?? []), '--yes', '--confirm', 'sandbox', '--json'], { env: limitedEnv });
    expect(r.stderr).not.toMatch(/forbidden|not allowed to/);
    expect([0, 4], `${r.stderr}\n${r.stdout.slice(0, 2000)}`).toContain(r.code);
  });

  it('with one rule taken away, the run stops before changing anything and names what it lacks', async () => {
    const docs = parseAllDocuments(manifests).map((d) => d.toJS() as Role);
    const role = docs.find((d) => d.kind === 'Role')!;
    const weaker = { ...role, rules: role.rules.filter((r) => !r.resources.includes('deployments/scale')) };
    expect((await admin(['apply', '-f', '-'], stringify(weaker))).code).toBe(0);
    try {
      await sb.kube.waitForRollout('app', { timeoutMs: 30_000 });
      const before = (await sb.kube.get<Deployment>('deployments', sb.namespace, 'app'))!;
      const r = await runCli(['app', 'scale', '--replicas', String((before.spec.replicas ?? 1) + 1), '--yes'], { env: limitedEnv });
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`not allowed to patch deployments/scale.apps in namespace ${sb.namespace}`);
      expect(
        r.stderr
          .trim()
          .split('\n')
          .filter((l) => /not allowed/.test(l)),
      ).toHaveLength(1);
      const after = (await sb.kube.get<Deployment>('deployments', sb.namespace, 'app'))!;
      expect(after.metadata.resourceVersion).toBe(before.metadata.resourceVersion);
      expect(await sb.kube.list('leases', { namespace: sb.namespace })).toEqual([]);
    } finally {
      await admin(['apply', '-f', '-'], stringify(role));
    }
  });

  it('a permission taken away mid-run (after the scale): the 403 is named, the scale-back is impossible, exit 5 with the command to run by hand', async () => {
    await sb.kube.waitForRollout('app', { timeoutMs: 30_000 });
    const before = (await sb.kube.get<Deployment>('deployments', sb.namespace, 'app'))!.spec.replicas ?? 1;
    const binding = `runbook-${sb.namespace}`;
    const revoke: Step = {
      id: 'revoke',
      title: 'Another admin revokes the binding',
      why: 'test',
      risk: 'read',
      equivalent: () => 'kubectl delete rolebinding',
      run: async () => {
        const d = await admin(['delete', 'rolebinding', binding, '-n', sb.namespace]);
        expect(d.code, d.stderr).toBe(0);
        // RBAC changes reach the authorizer's cache within a moment.
        await new Promise((r) => setTimeout(r, 1500));
        return {};
      },
    };
    const override = (proc: Procedure): Procedure => {
      const i = proc.steps.findIndex((st) => st.id === 'scale');
      return { ...proc, steps: [...proc.steps.slice(0, i + 1), revoke, ...proc.steps.slice(i + 1)] };
    };
    try {
      const r = await runCli(['app', 'scale', '--replicas', String(before + 1), '--yes'], { env: limitedEnv, procedureOverride: override });
      expect(r.code, r.stderr).toBe(5);
      expect(r.stderr).toMatch(/forbidden/);
      expect(r.stderr).not.toMatch(/keeps failing/);
      expect(r.stderr).toContain(`kubectl scale deployment/app --replicas=${before} -n ${sb.namespace}`);
    } finally {
      await admin(['apply', '-f', '-'], manifests);
      await sb.kube.patch('deployments', sb.namespace, 'app', { spec: { replicas: before } });
      await sb.kube.waitForRollout('app', { timeoutMs: 30_000 });
    }
  });

  it('cluster-wide too: without patch on nodes, security isolate changes no node', async () => {
    const docs = parseAllDocuments(manifests).map((d) => d.toJS() as Role);
    const cluster = docs.find((d) => d.kind === 'ClusterRole')!;
    expect((await admin(['apply', '-f', '-'], stringify({ ...cluster, rules: [{ apiGroups: [''], resources: ['nodes'], verbs: ['get'] }] }))).code).toBe(0);
    try {
      const node = sb.kube.nodes[2]!;
      const before = await sb.kube.get<KubeObject & { spec?: { unschedulable?: boolean } }>('nodes', undefined, node);
      const r = await runCli(['security', 'isolate', '--nodes', node, '--yes'], { env: limitedEnv });
      expect(r.code).toBe(2);
      expect(r.stderr).toContain('not allowed to patch nodes (cluster-wide)');
      const n = await sb.kube.get<KubeObject & { spec?: { unschedulable?: boolean } }>('nodes', undefined, node);
      expect(n?.metadata.resourceVersion).toBe(before?.metadata.resourceVersion);
      expect(n?.spec?.unschedulable).toBeFalsy();
    } finally {
      await admin(['apply', '-f', '-'], stringify(cluster));
    }
  });
});
