import type { KubeClient } from '../../clients/kube.js';
import { StepError } from '../../core/errors.js';

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

/**
 * Puts the field back in the container of that name, wherever it is now: `index` is where it was when
 * read, but the containers may have been reordered since (the patch tests the name at the index it writes).
 */
export async function restoreContainer(
  kube: KubeClient,
  deployment: string,
  index: number,
  name: string,
  field: 'env' | 'resources',
  previous: unknown,
): Promise<void> {
  const current = await kube.getDeployment(deployment);
  const containers = current.spec?.template.spec?.containers ?? [];
  const at = containers[index]?.name === name ? index : containers.findIndex((c) => c.name === name);
  if (at < 0)
    throw new StepError(
      `deployment/${deployment} no longer has a container "${name}" to put its ${field} back into`,
      `containers now: ${containers.map((c) => c.name).join(', ') || 'none'}`,
    );
  const has = (containers[at] as unknown as Record<string, unknown>)[field] !== undefined;
  if (!has && (previous === undefined || previous === null)) return;
  await kube.patchDeployment(deployment, restoreContainerField(at, name, field, previous), 'json');
}
