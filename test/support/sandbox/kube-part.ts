import { join } from 'node:path';
import { startHttpService } from '../services/index.js';
import type { SandboxContext, SandboxPart } from './types.js';
import type { KubeObject } from '../cluster/index.js';

/** The Kubernetes side: an `app` deployment of 3 ready pods, and a health URL answering 200. */
export async function startKubePart(ctx: SandboxContext): Promise<SandboxPart> {
  const kubeconfig = join(ctx.dir, 'kubeconfig');
  await ctx.kube.writeKubeconfig(kubeconfig, { context: 'sandbox', namespace: ctx.namespace });
  await ctx.kube.seedDeployment({
    name: ctx.deployment,
    replicas: 3,
    labels: { app: 'api' },
    containers: [
      {
        name: 'api',
        image: 'registry.example.com/api:1.0.0',
        env: [{ name: 'MODE', value: 'normal' }],
        resources: { requests: { cpu: '250m', memory: '256Mi' }, limits: { cpu: '500m', memory: '512Mi' } },
      },
    ],
  });
  // The application's own HTTP endpoints: health and the circuit-breaker admin API.
  const breaker = { enabled: false };
  const health = await startHttpService((req) => {
    if (req.pathname === '/health') return { status: 200, body: { status: 'ok' } };
    if (req.pathname === '/admin/circuit-breaker' && req.method === 'GET') return { status: 200, body: breaker };
    const m = /^\/admin\/circuit-breaker\/(enable|disable)$/.exec(req.pathname);
    if (m && req.method === 'POST') {
      breaker.enabled = m[1] === 'enable';
      return { status: 200, body: breaker };
    }
    return { status: 404, body: { error: 'not found' } };
  });
  return {
    name: 'kubernetes',
    environment: {
      kubernetes: { kubeconfig, context: 'sandbox', namespace: ctx.namespace, deployment: ctx.deployment, selector: 'app=api' },
      health: { url: `${health.url}/health`, attempts: 5, interval: '100ms', timeout: '2s' },
      circuitBreaker: { url: `${health.url}/admin/circuit-breaker` },
      rollout: { timeout: '30s' },
      limits: { maxReplicas: 20 },
    },
    env: { KUBECONFIG: kubeconfig },
    async fingerprint() {
      // What procedures change: workload specs, autoscalers, nodes, secrets and config maps.
      // Leases are a run's own lock, taken and released by every changing run: not a change.
      // The node lifecycle controller follows a cordon with a taint (or lifts it) a moment later:
      // compare once it has caught up.
      await ctx.kube.waitFor(
        async () =>
          (
            await ctx.kube.list<KubeObject & { spec?: { unschedulable?: boolean; taints?: Array<{ key: string }> } }>('nodes', {
              labelSelector: `runbook.test/namespace=${ctx.namespace}`,
            })
          ).every((n) => (n.spec?.unschedulable === true) === (n.spec?.taints ?? []).some((t) => t.key === 'node.kubernetes.io/unschedulable')),
        { timeoutMs: 20_000, what: 'node taints to follow the cordons' },
      );
      const state = await Promise.all(
        ['deployments', 'horizontalpodautoscalers', 'nodes', 'secrets', 'configmaps'].map(async (resource) =>
          (
            await ctx.kube.list<KubeObject & { spec?: unknown; data?: unknown }>(
              resource,
              resource === 'nodes' ? { labelSelector: `runbook.test/namespace=${ctx.namespace}` } : { namespace: ctx.namespace },
            )
          )
            .map((o) => JSON.stringify([resource, o.metadata.namespace, o.metadata.name, o.metadata.labels, o.spec, o.data]))
            .sort(),
        ),
      );
      return JSON.stringify({ state, breaker });
    },
    stop: () => health.stop(),
  };
}
