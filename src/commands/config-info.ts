import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import type { LoadedConfig } from '../core/config.js';

/** Where runbook looks for a config, in order, and which one it uses. */
export function configSearch(
  flag: string | undefined,
  env: Record<string, string | undefined>,
  cwd: string,
): Array<{ source: string; path: string; exists: boolean }> {
  const xdg = env.XDG_CONFIG_HOME || join(env.HOME || homedir(), '.config');
  const rows: Array<{ source: string; path: string | undefined }> = [
    { source: '--config', path: flag ? resolve(cwd, flag) : undefined },
    { source: '$RUNBOOK_CONFIG', path: env.RUNBOOK_CONFIG ? resolve(cwd, env.RUNBOOK_CONFIG) : undefined },
    { source: './runbook.yaml', path: join(cwd, 'runbook.yaml') },
    { source: './runbook.yml', path: join(cwd, 'runbook.yml') },
    { source: '$XDG_CONFIG_HOME/runbook/config.yaml', path: join(xdg, 'runbook', 'config.yaml') },
  ];
  return rows.filter((r): r is { source: string; path: string } => r.path !== undefined).map((r) => ({ ...r, exists: existsSync(r.path) }));
}

/** Why this environment: -e, $RUNBOOK_ENV, the config's default, or the only one. */
export function environmentReason(loaded: LoadedConfig, flag: string | undefined, env: Record<string, string | undefined>): string {
  if (flag) return '-e/--env';
  if (env.RUNBOOK_ENV) return '$RUNBOOK_ENV';
  if (loaded.config.default) return loaded.path ? 'the config\'s "default"' : 'the built-in example';
  return 'the only environment in the config';
}
