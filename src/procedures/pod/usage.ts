import type { PodMetrics, V1Pod } from '../../clients/kube.js';
import { quantityValue } from '../../core/params.js';

/** One container's usage against its requests and limits (bytes and cores; null when not set / not measured). */
export interface ContainerUsage {
  pod: string;
  container: string;
  cpu: number | null;
  memory: number | null;
  cpuRequest: number | null;
  cpuLimit: number | null;
  memoryRequest: number | null;
  memoryLimit: number | null;
  /** Usage as a percentage of the limit (null without a limit or without metrics). */
  memoryPctOfLimit: number | null;
  cpuPctOfLimit: number | null;
}

function q(v: string | undefined): number | null {
  if (v === undefined) return null;
  const n = quantityValue(String(v));
  return Number.isFinite(n) ? n : null;
}

function pct(used: number | null, limit: number | null): number | null {
  return used === null || !limit ? null : Math.round((used / limit) * 1000) / 10;
}

/** The part of a pod spec usage is compared with. */
export interface PodResources {
  name: string;
  containers: Array<{ name: string; init?: boolean; requests: { cpu?: string; memory?: string }; limits: { cpu?: string; memory?: string } }>;
}

export function podResources(p: V1Pod): PodResources {
  return {
    name: p.metadata?.name ?? '',
    containers: (p.spec?.containers ?? []).map((c) => ({
      name: c.name,
      requests: { cpu: c.resources?.requests?.cpu, memory: c.resources?.requests?.memory },
      limits: { cpu: c.resources?.limits?.cpu, memory: c.resources?.limits?.memory },
    })),
  };
}

/** Joins the pods' specs with their metrics: one row per (non-init) container of every pod (metrics may be missing). */
export function containerUsage(pods: PodResources[], metrics: PodMetrics[]): ContainerUsage[] {
  const byPod = new Map(metrics.map((m) => [m.name, m]));
  const rows: ContainerUsage[] = [];
  for (const p of pods) {
    const name = p.name;
    const m = byPod.get(name);
    for (const c of p.containers.filter((x) => !x.init)) {
      const used = m?.containers.find((x) => x.name === c.name)?.usage;
      const r = c;
      const row = {
        pod: name,
        container: c.name,
        cpu: q(used?.cpu),
        memory: q(used?.memory),
        cpuRequest: q(r.requests?.cpu),
        cpuLimit: q(r.limits?.cpu),
        memoryRequest: q(r.requests?.memory),
        memoryLimit: q(r.limits?.memory),
      };
      rows.push({ ...row, memoryPctOfLimit: pct(row.memory, row.memoryLimit), cpuPctOfLimit: pct(row.cpu, row.cpuLimit) });
    }
  }
  return rows;
}

/** Memory as kubectl top shows it (Mi, or Gi from 1 GiB). */
export function formatMemory(b: number | null): string {
  if (b === null) return '-';
  if (b >= 2 ** 30) return `${(b / 2 ** 30).toFixed(b % 2 ** 30 === 0 ? 0 : 2)}Gi`;
  return `${Math.round(b / 2 ** 20)}Mi`;
}

export function formatCpu(c: number | null): string {
  return c === null ? '-' : `${Math.round(c * 1000)}m`;
}

export function formatPct(p: number | null): string {
  return p === null ? '-' : `${p}%`;
}

/** A label selector matching exactly a pod's own labels (to ask metrics.k8s.io for it and its siblings only). */
export function labelsSelector(p: V1Pod): string | undefined {
  const labels = Object.entries(p.metadata?.labels ?? {});
  return labels.length ? labels.map(([k, v]) => `${k}=${v}`).join(',') : undefined;
}
