/** Synthetic metrics.k8s.io/v1beta1 data (PodMetrics, NodeMetrics) derived from the stored pods and nodes. */
import { createHash } from 'node:crypto';
import { parseLabelSelector } from './selectors.js';
import { timestamp, type KubeStore } from './store.js';
import type { KubeObject, Pod } from './types.js';

export interface Usage {
  /** CPU quantity, e.g. '250m'. */
  cpu: string;
  /** Memory quantity, e.g. '128Mi'. */
  memory: string;
}

function seeded(s: string, mod: number): number {
  return createHash('sha256').update(s).digest().readUInt32BE(0) % mod;
}

export class MetricsSource {
  private readonly pods = new Map<string, Record<string, Usage>>();
  private readonly nodes = new Map<string, Usage>();

  constructor(private readonly store: KubeStore) {}

  /** Overrides a pod's usage, per container name. */
  setPodUsage(namespace: string, pod: string, usage: Record<string, Usage>): void {
    this.pods.set(`${namespace}/${pod}`, usage);
  }

  /** Overrides a node's usage. */
  setNodeUsage(node: string, usage: Usage): void {
    this.nodes.set(node, usage);
  }

  podMetrics(namespace: string | undefined, labelSelector?: string): KubeObject[] {
    const now = timestamp();
    const match = parseLabelSelector(labelSelector);
    return this.store
      .list<Pod>('pods', namespace === undefined ? {} : { namespace })
      .filter((p) => p.status?.phase === 'Running' && match(p))
      .map((p) => {
        const ns = p.metadata.namespace ?? '';
        const override = this.pods.get(`${ns}/${p.metadata.name}`);
        return {
          kind: 'PodMetrics',
          apiVersion: 'metrics.k8s.io/v1beta1',
          metadata: { name: p.metadata.name, namespace: ns, creationTimestamp: now, labels: p.metadata.labels ?? {} },
          timestamp: now,
          window: '30s',
          containers: p.spec.containers.map((c) => ({
            name: c.name,
            usage: override?.[c.name] ?? {
              cpu: `${seeded(`${p.metadata.name}/${c.name}/cpu`, 200) + 5}m`,
              memory: `${seeded(`${p.metadata.name}/${c.name}/mem`, 200) + 40}Mi`,
            },
          })),
        };
      });
  }

  nodeMetrics(labelSelector?: string): KubeObject[] {
    const now = timestamp();
    const match = parseLabelSelector(labelSelector);
    return this.store
      .list('nodes')
      .filter(match)
      .map((n) => ({
        kind: 'NodeMetrics',
        apiVersion: 'metrics.k8s.io/v1beta1',
        metadata: { name: n.metadata.name, creationTimestamp: now, labels: n.metadata.labels ?? {} },
        timestamp: now,
        window: '20.05s',
        usage: this.nodes.get(n.metadata.name) ?? {
          cpu: `${seeded(`${n.metadata.name}/cpu`, 1500) + 100}m`,
          memory: `${seeded(`${n.metadata.name}/mem`, 4000) + 1000}Mi`,
        },
      }));
  }
}
