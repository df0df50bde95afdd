import type { KubeClient } from '../../clients/kube.js';

/**
 * A JSON patch that puts one field of one container back to an earlier value (or removes it),
 * guarded by a `test` on the container's name so a reordered pod spec is never patched blindly.
 */
export function restoreContainerField(index: number, name: string, field: 'env' | 'resources', previous: unknown): unknown[] {
  const base = `/spec/template/spec/containers/${index}`;
  const ops: unknown[] = [{ op: 'test', path: `${base}/name`, value: name }];
  if (previous === undefined || previous === null) ops.push({ op: 'remove', path: `${base}/${field}` });
  else ops.push({ op: 'add', path: `${base}/${field}`, value: previous });
  return ops;
}

export async function restoreContainer(kube: KubeClient, deployment: string, index: number, name: string, field: 'env' | 'resources', previous: unknown): Promise<void> {
  const current = await kube.getDeployment(deployment);
  const has = (current.spec?.template.spec?.containers[index] as unknown as Record<string, unknown> | undefined)?.[field] !== undefined;
  if (!has && (previous === undefined || previous === null)) return;
  await kube.patchDeployment(deployment, restoreContainerField(index, name, field, previous), 'json');
}
