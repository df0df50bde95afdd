import { stringify } from 'yaml';
import { permissionsOf, type KubeMethod, type KubePermission } from '../clients/kube.js';
import { declaredKubeCalls } from '../core/runner.js';
import { catalog, findEntry } from '../procedures/catalog.js';
import { APPROVAL_LABEL, APPROVE_PERMISSION, APPROVER_VERBS, MANAGED_BY, REQUEST_PREFIX, REQUESTER_VERBS } from '../core/approval.js';
import { UsageError } from '../core/errors.js';
import { byText } from '../core/format.js';

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
    .sort((a, b) => byText(`${a.group}/${a.resource}`, `${b.group}/${b.resource}`))
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
 * The least-privilege Role (and ClusterRole, for the node procedures; a Role in `default` for the
 * Events about nodes) for the given procedures, derived from what each may call (declared
 * calls, the lock's Lease calls, the Events its changes record), with bindings to a group.
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
    for (const m of declaredKubeCalls(proc)) methods.add(m);
  }
  const perms = permissionsOf([...methods]);
  const name = o.name ?? 'runbook-operator';
  const subjects = [{ kind: 'Group', apiGroup: 'rbac.authorization.k8s.io', name: o.group ?? 'runbook-operators' }];
  const labels = { 'app.kubernetes.io/managed-by': 'runbook' };
  const docs: unknown[] = [];
  // The client's namespace first; then any other a call names (a Node's Events live in `default`).
  const others = [...new Set(perms.flatMap((p) => (!p.cluster && p.namespace && p.namespace !== o.namespace ? [p.namespace] : [])))].sort();
  for (const ns of [o.namespace, ...others]) {
    const namespaced = rules(perms.filter((p) => !p.cluster && (p.namespace ?? o.namespace) === ns));
    if (!namespaced.length) continue;
    docs.push({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name, namespace: ns, labels }, rules: namespaced });
    docs.push({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name, namespace: ns, labels },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name },
      subjects,
    });
  }
  const clusterWide = rules(perms.filter((p) => p.cluster));
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

export interface ApprovalRbacOptions {
  /** The environment's approval.namespace, where requests live. */
  namespace: string;
  requesterGroup?: string;
  approverGroup?: string;
}

const IMMUTABLE_FIELDS = ['runId', 'procedure', 'environment', 'requester', 'operator', 'step', 'plan', 'digest', 'requestedAt', 'expiresAt'];

/**
 * The server-side guard of two-person approval: RBAC alone would let a requester patch its own request to
 * "approved", so a ValidatingAdmissionPolicy makes the API server check identities. A request is created
 * pending by the user it names as requester; what it asks is immutable; a decision is final, is recorded
 * under the deciding user's own name, never the requester's, and needs `approve` on approvals.runbook.dev;
 * only the requester withdraws (cancelled, expired). It applies to every ConfigMap named runbook-approval-*
 * or carrying the request label (before or after the change), so dropping the label does not escape it.
 */
export function approvalPolicy(namespace: string): Array<Record<string, unknown>> {
  const name = `runbook-approvals-${namespace}`;
  const labels = { ...MANAGED_BY };
  const ids = JSON.stringify(IMMUTABLE_FIELDS).replace(/"/g, "'");
  return [
    {
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'ValidatingAdmissionPolicy',
      metadata: { name, labels },
      spec: {
        failurePolicy: 'Fail',
        matchConstraints: { resourceRules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE', 'UPDATE'], resources: ['configmaps'] }] },
        matchConditions: [
          {
            name: 'approval-requests',
            expression: `object.metadata.name.startsWith('${REQUEST_PREFIX}') || (has(object.metadata.labels) && '${APPROVAL_LABEL}' in object.metadata.labels) || (oldObject != null && has(oldObject.metadata.labels) && '${APPROVAL_LABEL}' in oldObject.metadata.labels)`,
          },
        ],
        variables: [
          { name: 'new', expression: 'has(object.data) ? object.data : {}' },
          { name: 'old', expression: 'oldObject != null && has(oldObject.data) ? oldObject.data : {}' },
          { name: 'state', expression: "'state' in variables.new ? variables.new['state'] : ''" },
          { name: 'oldState', expression: "'state' in variables.old ? variables.old['state'] : ''" },
          { name: 'requester', expression: "'requester' in variables.old ? variables.old['requester'] : ''" },
          { name: 'user', expression: 'request.userInfo.username' },
          { name: 'deciding', expression: "request.operation == 'UPDATE' && variables.oldState == 'pending' && variables.state != 'pending'" },
        ],
        validations: [
          {
            expression: `object.metadata.name.startsWith('${REQUEST_PREFIX}') && has(object.metadata.labels) && '${APPROVAL_LABEL}' in object.metadata.labels && object.metadata.labels['${APPROVAL_LABEL}'] == 'request'`,
            message: `an approval request is named ${REQUEST_PREFIX}* and keeps the label ${APPROVAL_LABEL}=request`,
          },
          {
            expression:
              "request.operation != 'CREATE' || ('requester' in variables.new && variables.new['requester'] == variables.user && variables.state == 'pending' && !('approver' in variables.new) && !('approvedDigest' in variables.new) && !('decidedAt' in variables.new))",
            message: 'an approval request is created pending, by the user it names as data.requester',
          },
          {
            expression: "variables.state in ['pending', 'approved', 'denied', 'cancelled', 'expired']",
            message: 'data.state is one of pending, approved, denied, cancelled, expired',
          },
          {
            expression: `request.operation != 'UPDATE' || ${ids}.all(k, (k in variables.new) == (k in variables.old) && (!(k in variables.new) || variables.new[k] == variables.old[k]))`,
            message: `what a request asks is immutable (${IMMUTABLE_FIELDS.join(', ')})`,
          },
          {
            expression: "request.operation != 'UPDATE' || variables.oldState == 'pending' || variables.new == variables.old",
            message: 'a decided request is final',
          },
          {
            expression: "variables.state != 'pending' || !('approver' in variables.new || 'approvedDigest' in variables.new)",
            message: 'a pending request names no approver',
          },
          {
            expression: `!variables.deciding || !(variables.state in ['approved', 'denied']) || ('approver' in variables.new && variables.new['approver'] == variables.user && variables.user != variables.requester && authorizer.group('${APPROVE_PERMISSION.group}').resource('${APPROVE_PERMISSION.resource}').namespace(object.metadata.namespace).check('${APPROVE_PERMISSION.verb}').allowed())`,
            message: `only another user, allowed to ${APPROVE_PERMISSION.verb} ${APPROVE_PERMISSION.resource}.${APPROVE_PERMISSION.group}, decides a request, as data.approver = themselves; never its requester`,
          },
          {
            expression:
              "!variables.deciding || variables.state != 'approved' || ('approvedDigest' in variables.new && 'digest' in variables.old && variables.new['approvedDigest'] == variables.old['digest'])",
            message: 'an approval names the digest of the plan it approves (data.approvedDigest = data.digest)',
          },
          {
            expression: "!variables.deciding || !(variables.state in ['cancelled', 'expired']) || variables.user == variables.requester",
            message: 'only the requester withdraws a request (cancelled, expired)',
          },
        ],
      },
    },
    {
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'ValidatingAdmissionPolicyBinding',
      metadata: { name, labels },
      spec: {
        policyName: name,
        validationActions: ['Deny'],
        matchResources: { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': namespace } } },
      },
    },
  ];
}

/** The requester and approver Roles (and bindings to groups) in the approvals namespace, and the policy that guards requests. */
export function approvalObjects(o: ApprovalRbacOptions): Array<Record<string, unknown>> {
  const labels = { ...MANAGED_BY };
  const binding = (name: string, group: string) => ({
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'RoleBinding',
    metadata: { name, namespace: o.namespace, labels },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name },
    subjects: [{ kind: 'Group', apiGroup: 'rbac.authorization.k8s.io', name: group }],
  });
  return [
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'Role',
      metadata: { name: 'runbook-approval-requester', namespace: o.namespace, labels },
      rules: [{ apiGroups: [''], resources: ['configmaps'], verbs: [...REQUESTER_VERBS] }],
    },
    binding('runbook-approval-requester', o.requesterGroup ?? 'runbook-operators'),
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'Role',
      metadata: { name: 'runbook-approver', namespace: o.namespace, labels },
      rules: [
        { apiGroups: [''], resources: ['configmaps'], verbs: [...APPROVER_VERBS] },
        { apiGroups: [APPROVE_PERMISSION.group], resources: [APPROVE_PERMISSION.resource], verbs: [APPROVE_PERMISSION.verb] },
      ],
    },
    binding('runbook-approver', o.approverGroup ?? 'runbook-approvers'),
    ...approvalPolicy(o.namespace),
  ];
}

export function approvalManifests(o: ApprovalRbacOptions): string {
  const header =
    `# Two-person approval in namespace ${o.namespace}: requesters (${o.requesterGroup ?? 'runbook-operators'}) record requests there, approvers\n` +
    `# (${o.approverGroup ?? 'runbook-approvers'}) decide them, and the ValidatingAdmissionPolicy makes the API server enforce who may decide\n` +
    `# (a run refuses to wait in a namespace without it). Identities come from SelfSubjectReview (granted to every authenticated user).\n` +
    `# Apply as a cluster admin: kubectl apply -f <this file>\n`;
  return (
    header +
    approvalObjects(o)
      .map((d) => `---\n${stringify(d)}`)
      .join('')
  );
}
