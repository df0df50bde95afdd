import type { ResolvedEnvironment } from '../core/config.js';
import { UsageError } from '../core/errors.js';
import type { HttpClient } from './http.js';
import { fetchHttpClient } from './http.js';
import type { KubeClient, KubeTarget } from './kube.js';

export type { KubeClient } from './kube.js';
export type { HttpClient } from './http.js';

/** Lazily created, memoised clients for one run; an SDK is loaded only when a step first needs it. */
export interface Clients {
  kube(): Promise<KubeClient>;
  http: HttpClient;
  closeAll(): Promise<void>;
}

/** Seams for tests: swap any factory for a fake. */
export interface ClientFactories {
  kube(target: KubeTarget, env: Record<string, string | undefined>): Promise<KubeClient>;
  http: HttpClient;
}

export const defaultFactories: ClientFactories = {
  async kube(target, env) {
    const { createKubeClient } = await import('./kube.js');
    return createKubeClient(target, env);
  },
  http: fetchHttpClient,
};

function memo<T>(make: () => Promise<T>): () => Promise<T> {
  let p: Promise<T> | undefined;
  return () => (p ??= make());
}

export function makeClients(
  env: ResolvedEnvironment,
  processEnv: Record<string, string | undefined>,
  factories: ClientFactories = defaultFactories,
): Clients {
  const made: Array<{ close(): void | Promise<void> }> = [];
  const kube = memo(async () => {
    const k = env.config.kubernetes;
    if (!k) throw new UsageError(`environment "${env.name}" has no kubernetes section`);
    const client = await factories.kube({ kubeconfig: k.kubeconfig, context: k.context, namespace: k.namespace }, processEnv);
    made.push(client);
    return client;
  });
  return {
    kube,
    http: factories.http,
    async closeAll() {
      for (const c of made.splice(0)) await c.close();
    },
  };
}
