import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { tempDir } from './cli.js';

/** Writes a runbook.yaml into a fresh directory and returns that directory (use it as cwd). */
export function writeConfig(config: unknown): { dir: string; path: string } {
  const dir = tempDir('runbook-config-');
  const path = join(dir, 'runbook.yaml');
  writeFileSync(path, typeof config === 'string' ? config : stringify(config));
  return { dir, path };
}

/** Two environments on one cluster: staging (unprotected) and production (protected). */
export function twoEnvironments(extra: { kubeconfig?: string; context?: string; healthUrl?: string; namespace?: string } = {}) {
  const kubernetes = {
    kubeconfig: extra.kubeconfig,
    context: extra.context,
    namespace: extra.namespace ?? 'production',
    deployment: 'app',
    selector: 'app=api',
  };
  const health = extra.healthUrl ? { url: extra.healthUrl, attempts: 3, interval: '50ms', timeout: '2s' } : undefined;
  const strip = <T extends object>(o: T) => JSON.parse(JSON.stringify(o)) as T;
  return strip({
    default: 'staging',
    environments: {
      staging: { protected: false, kubernetes, health, limits: { maxReplicas: 20 }, rollout: { timeout: '20s' } },
      production: { protected: true, kubernetes, health, limits: { maxReplicas: 20 }, rollout: { timeout: '20s' } },
    },
  });
}
