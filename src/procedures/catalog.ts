import type { Procedure, Risk } from '../core/procedure.js';

/**
 * Every procedure, by command path. Loading a procedure imports only its own module (no SDK),
 * so `runbook --help` and `runbook list` stay as fast as bare node.
 */
export interface CatalogEntry {
  name: string;
  summary: string;
  /** The most a run can do, for `list` (a step may be riskier for some arguments). */
  risk: Risk;
  seed: string;
  load(): Promise<Procedure>;
}

const def = (name: string, summary: string, risk: Risk, seed: string, load: () => Promise<{ default: Procedure }>): CatalogEntry => ({
  name,
  summary,
  risk,
  seed,
  load: async () => (await load()).default,
});

export const catalog: CatalogEntry[] = [
  def('app restart', 'Rolling restart of the deployment, then wait, health-check and show logs', 'write', 'Service Restart › Application Service', () => import('./app-restart.js')),
  def('app scale', 'Set the deployment\'s replica count and wait for it', 'destructive', 'Scaling › Horizontal', () => import('./app-scale.js')),
  def('app autoscale', 'Create or update the deployment\'s HorizontalPodAutoscaler', 'write', 'Scaling › Horizontal', () => import('./app-autoscale.js')),
  def('app scaling', 'Show the autoscaler and the pods', 'read', 'Scaling › Horizontal', () => import('./app-scaling.js')),
  def('app resources', 'Change a container\'s CPU/memory requests and limits and wait for the rollout', 'write', 'Scaling › Vertical', () => import('./app-resources.js')),
  def('app rollback', 'Roll the deployment back to the previous (or a given) revision', 'write', 'Incident › High Error Rate', () => import('./app-rollback.js')),
  def('app env set', 'Set environment variables on the deployment (KEY=VALUE …)', 'write', 'Incident › High Error Rate', () => import('./app-env-set.js')),
  def('app env unset', 'Remove environment variables from the deployment (KEY …)', 'write', 'Incident › High Error Rate', () => import('./app-env-unset.js')),
];

export function findEntry(path: string[]): CatalogEntry | undefined {
  const joined = path.join(' ');
  return catalog.find((e) => e.name === joined);
}
