import { join } from 'node:path';
import { startHttpService } from '../services/index.js';
import type { SandboxContext, SandboxPart } from './types.js';

/** The Kubernetes side: an `app` deployment of 3 ready pods, and a health URL answering 200. */
export async function startKubePart(ctx: SandboxContext): Promise<SandboxPart> {
  const kubeconfig = join(ctx.dir, 'kubeconfig');
  await ctx.kube.writeKubeconfig(kubeconfig, { context: 'sandbox', namespace: ctx.namespace });
  await ctx.kube.seedDeployment({
    namespace: ctx.namespace,
    name: ctx.deployment,
    replicas: 3,
    labels: { app: 'api' },
    containers: [{ name: 'api', image: 'registry.example.com/api:1.0.0', env: [{ name: 'MODE', value: 'normal' }], resources: { requests: { cpu: '250m', memory: '256Mi' }, limits: { cpu: '500m', memory: '512Mi' } } }],
  } as never);
  const health = await startHttpService((req) => (req.pathname === '/health' ? { status: 200, body: { status: 'ok' } } : { status: 404, body: { error: 'not found' } }));
  return {
    name: 'kubernetes',
    environment: {
      kubernetes: { kubeconfig, context: 'sandbox', namespace: ctx.namespace, deployment: ctx.deployment, selector: 'app=api' },
      health: { url: `${health.url}/health`, attempts: 5, interval: '100ms', timeout: '2s' },
      rollout: { timeout: '30s' },
      limits: { maxReplicas: 20 },
    },
    env: { KUBECONFIG: kubeconfig },
    async fingerprint() {
      // What procedures change: workload specs, autoscalers, nodes, secrets and config maps.
      // Leases are a run's own lock, taken and released by every changing run: not a change.
      const state = ['deployments', 'horizontalpodautoscalers', 'nodes', 'secrets', 'configmaps'].map((resource) =>
        ctx.kube.store
          .list<{ metadata: { namespace?: string; name?: string; labels?: unknown }; spec?: unknown; data?: unknown }>(resource, {})
          .map((o) => JSON.stringify([resource, o.metadata.namespace, o.metadata.name, o.metadata.labels, o.spec, o.data]))
          .sort(),
      );
      return JSON.stringify(state);
    },
    stop: () => health.stop(),
  };
}
