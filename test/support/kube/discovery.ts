/** Discovery documents (legacy, non-aggregated format) derived from the resource registry. */
import { groupVersion, RESOURCES, type ResourceDef } from './resources.js';
import type { JsonObject } from './types.js';

export const SERVER_VERSION = {
  major: '1',
  minor: '32',
  gitVersion: 'v1.32.0',
  gitCommit: '0000000000000000000000000000000000000000',
  gitTreeState: 'clean',
  buildDate: '2024-12-11T00:00:00Z',
  goVersion: 'go1.23.3',
  compiler: 'gc',
  platform: 'linux/amd64',
};

function groups(): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const r of RESOURCES) {
    if (r.group === '') continue;
    const versions = out.get(r.group) ?? [];
    for (const v of r.versions) if (!versions.includes(v.version)) versions.push(v.version);
    out.set(r.group, versions);
  }
  return out;
}

export function apiVersions(hostPort: string): JsonObject {
  return {
    kind: 'APIVersions',
    versions: ['v1'],
    serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: hostPort }],
  };
}

function groupDoc(name: string, versions: string[]): JsonObject {
  const vs = versions.map((v) => ({ groupVersion: `${name}/${v}`, version: v }));
  return { name, versions: vs, preferredVersion: vs[0] };
}

export function apiGroupList(): JsonObject {
  return {
    kind: 'APIGroupList',
    apiVersion: 'v1',
    groups: [...groups()].map(([name, versions]) => groupDoc(name, versions)),
  };
}

export function apiGroup(group: string): JsonObject | undefined {
  const versions = groups().get(group);
  if (!versions) return undefined;
  return { kind: 'APIGroup', apiVersion: 'v1', ...groupDoc(group, versions) };
}

const SUBRESOURCE_VERBS: Record<string, { verbs: string[]; kind?: (r: ResourceDef) => string; group?: string; version?: string }> = {
  status: { verbs: ['get', 'patch', 'update'] },
  scale: { verbs: ['get', 'patch', 'update'], kind: () => 'Scale', group: 'autoscaling', version: 'v1' },
  log: { verbs: ['get'], kind: () => 'Pod' },
};

/** APIResourceList for a group/version, or undefined when not served. */
export function apiResourceList(group: string, version: string): JsonObject | undefined {
  const served = RESOURCES.filter((r) => r.group === group && r.versions.some((v) => v.version === version));
  if (served.length === 0) return undefined;
  const resources: JsonObject[] = [];
  for (const r of served) {
    const entry: JsonObject = {
      name: r.plural,
      singularName: r.singular,
      namespaced: r.namespaced,
      kind: r.kind,
      verbs: r.verbs,
    };
    if (r.shortNames.length > 0) entry.shortNames = r.shortNames;
    if (r.categories) entry.categories = r.categories;
    if (!r.virtual) entry.storageVersionHash = Buffer.from(`${r.group}/${r.plural}`).toString('base64').slice(0, 11);
    resources.push(entry);
    for (const sub of r.subresources) {
      const meta = SUBRESOURCE_VERBS[sub];
      if (!meta) continue;
      const subEntry: JsonObject = {
        name: `${r.plural}/${sub}`,
        singularName: '',
        namespaced: r.namespaced,
        kind: meta.kind ? meta.kind(r) : r.kind,
        verbs: meta.verbs,
      };
      if (meta.group) {
        subEntry.group = meta.group;
        subEntry.version = meta.version;
      }
      resources.push(subEntry);
    }
  }
  return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: groupVersion(group, version), resources };
}
