import { stringify } from 'yaml';
import { LOCK_METHODS, permissionsOf, type KubeMethod, type KubePermission } from '../clients/kube.js';
import { catalog, findEntry } from '../procedures/catalog.js';
import { UsageError } from '../core/errors.js';

interface Rule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
}

function rules(perms: KubePermission[]): Rule[] {
  const byResource = new Map<string, { group: string; resource: string; verbs: Set<string> }>();
  for (const p of perms) {
    const resource = p.subresource ? `${p.resource}/${p.subresource}` : p.resource;
    const key = `${p.group}|${resource}`;
    const r = byResource.get(key) ?? { group: p.group, resource, verbs: new Set<string>() };
    r.verbs.add(p.verb);
    byResource.set(key, r);
  }
  return [...byResource.values()]
    .sort((a, b) => `${a.group}/${a.resource}`.localeCompare(`${b.group}/${b.resource}`))
    .map((r) => ({ apiGroups: [r.group], resources: [r.resource], verbs: [...r.verbs].sort() }));
}

export interface RbacOptions {
  namespace: string;
  /** Procedure names (default: every procedure that calls Kubernetes). */
  procedures?: string[][];
  name?: string;
  group?: string;
}

/**
 * The least-privilege Role (and ClusterRole, for the node procedures) for the given procedures,
 * derived from what each declares it calls plus the lock's Lease calls, with bindings to a group.
 */
export async function rbacManifests(o: RbacOptions): Promise<string> {
  const entries = o.procedures?.length
    ? o.procedures.map((words) => {
        const e = findEntry(words);
        if (!e) throw new UsageError(`unknown procedure "${words.join(' ')}"`, 'runbook list shows them all');
        return e;
      })
    : catalog;
  const methods = new Set<KubeMethod>();
  const covered: string[] = [];
  for (const e of entries) {
    const proc = await e.load();
    if (!proc.kube?.length) continue;
    covered.push(proc.name);
    for (const m of proc.kube) methods.add(m);
    if (proc.locks) for (const m of LOCK_METHODS) methods.add(m);
  }
  const perms = permissionsOf([...methods]);
  const name = o.name ?? 'runbook-operator';
  const subjects = [{ kind: 'Group', apiGroup: 'rbac.authorization.k8s.io', name: o.group ?? 'runbook-operators' }];
  const labels = { 'app.kubernetes.io/managed-by': 'runbook' };
  const docs: unknown[] = [];
  const namespaced = rules(perms.filter((p) => !p.cluster));
  const clusterWide = rules(perms.filter((p) => p.cluster));
  if (namespaced.length) {
    docs.push({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name, namespace: o.namespace, labels }, rules: namespaced });
    docs.push({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name, namespace: o.namespace, labels },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name },
      subjects,
    });
  }
  if (clusterWide.length) {
    docs.push({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name, labels }, rules: clusterWide });
    docs.push({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name, labels },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name },
      subjects,
    });
  }
  const header = `# Least-privilege RBAC for runbook in namespace ${o.namespace}, derived from what these procedures call:\n# ${covered.join(', ')}\n# Apply with: kubectl apply -f <this file>   (bind your own users or groups in the subjects)\n`;
  return header + docs.map((d) => `---\n${stringify(d)}`).join('');
}
