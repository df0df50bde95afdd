import { readFile } from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { UsageError } from './errors.js';
import type { ConfigFile, EnvironmentConfig, ValueOrRef } from './config-schema.js';
import type { Redactor } from './redact.js';
import { exampleConfig } from './example-config.js';

/** Set once loadConfig has imported yaml (it stays off the --help path); kubeconfigs are YAML too. */
let parseYaml: ((text: string) => unknown) | undefined;

export type { ConfigFile, EnvironmentConfig, ValueOrRef } from './config-schema.js';

export interface LoadedConfig {
  config: ConfigFile;
  /** Where it came from, or null for the built-in example. */
  path: string | null;
}

export interface ResolvedEnvironment {
  name: string;
  config: EnvironmentConfig;
  /** True for the built-in example: only offline work is possible with it. */
  builtIn: boolean;
  configPath: string | null;
  /** The config's journal.dir, if set. */
  journalDir?: string;
}

/** Flag > $RUNBOOK_CONFIG > ./runbook.yaml > $XDG_CONFIG_HOME/runbook/config.yaml > built-in example. */
export function findConfigPath(flag: string | undefined, env: Record<string, string | undefined>, cwd: string): string | null {
  if (flag) return resolve(cwd, flag);
  if (env.RUNBOOK_CONFIG) return resolve(cwd, env.RUNBOOK_CONFIG);
  for (const name of ['runbook.yaml', 'runbook.yml']) {
    const p = join(cwd, name);
    if (existsSync(p)) return p;
  }
  const xdg = env.XDG_CONFIG_HOME || join(env.HOME || homedir(), '.config');
  const user = join(xdg, 'runbook', 'config.yaml');
  return existsSync(user) ? user : null;
}

export async function loadConfig(path: string | null): Promise<LoadedConfig> {
  if (path === null) return { config: exampleConfig, path: null };
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new UsageError(`cannot read config ${path}: ${code === 'ENOENT' ? 'no such file' : String(code)}`);
  }
  const [{ parse }, { configSchema, formatIssues }] = await Promise.all([
    import('yaml'),
    import('./config-schema.js'),
  ]);
  parseYaml = (t) => parse(t);
  let raw: unknown;
  try {
    raw = parse(text, { prettyErrors: true });
  } catch (err) {
    const msg = (err as Error).message.split('\n')[0];
    throw new UsageError(`malformed YAML in ${path}: ${msg}`);
  }
  if (raw === null || typeof raw !== 'object') throw new UsageError(`config ${path} must be a mapping with "environments"`);
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) throw new UsageError(`invalid config ${path}: ${formatIssues(parsed.error)}`);
  rejectInlineSecrets(parsed.data, path);
  return { config: parsed.data, path };
}

/** Secrets never live in the file: a URL with a password must come from { env } or { file }. */
function rejectInlineSecrets(config: ConfigFile, path: string): void {
  const check = (value: unknown, field: string) => {
    if (typeof value !== 'string') return;
    if (/^[a-z][a-z0-9+.-]*:\/\/[^/\s@]*:[^/\s@]+@/i.test(value)) {
      throw new UsageError(
        `invalid config ${path}: ${field}: contains a password`,
        `move it to an environment variable and write ${field}: { env: NAME }`,
      );
    }
  };
  for (const [name, env] of Object.entries(config.environments)) {
    const base = `environments.${name}`;
    check(env.postgres?.url, `${base}.postgres.url`);
    check(env.rds?.url, `${base}.rds.url`);
    check(env.rds?.recovery.url, `${base}.rds.recovery.url`);
    env.postgres?.replicas.forEach((r, i) => check(r.url, `${base}.postgres.replicas.${i}.url`));
    check(env.redis?.url, `${base}.redis.url`);
    check(env.notify?.slack?.webhook, `${base}.notify.slack.webhook`);
  }
}

export function selectEnvironment(
  loaded: LoadedConfig,
  flag: string | undefined,
  env: Record<string, string | undefined>,
): ResolvedEnvironment {
  const names = Object.keys(loaded.config.environments);
  const name = flag || env.RUNBOOK_ENV || loaded.config.default || (names.length === 1 ? names[0] : undefined);
  if (!name) throw new UsageError('no environment selected', `pass --env <name> (one of: ${names.join(', ')}) or set "default" in the config`);
  const parsed = loaded.config.environments[name];
  if (!parsed) {
    const where = loaded.path ?? 'the built-in example config';
    throw new UsageError(`unknown environment "${name}" in ${where}`, `known environments: ${names.join(', ') || '(none)'}`);
  }
  const k = parsed.kubernetes;
  const config: EnvironmentConfig = { ...parsed, kubernetes: k ? { ...k, namespace: k.namespace ?? contextNamespace(k, env) } : undefined };
  return { name, config, builtIn: loaded.path === null, configPath: loaded.path, journalDir: loaded.config.journal?.dir };
}

/**
 * The namespace kubectl would use: the chosen (or current) context's, read from the kubeconfig
 * files ($KUBECONFIG merged, first definition wins), else "default".
 */
function contextNamespace(k: { kubeconfig?: string; context?: string }, env: Record<string, string | undefined>): string {
  const files = k.kubeconfig ? [k.kubeconfig] : env.KUBECONFIG ? env.KUBECONFIG.split(':').filter(Boolean) : [join(env.HOME || homedir(), '.kube', 'config')];
  let current = k.context;
  for (const f of files) {
    let doc: { 'current-context'?: string; contexts?: Array<{ name?: string; context?: { namespace?: string } }> } | undefined;
    try {
      const text = readFileSync(f, 'utf8');
      doc = (parseYaml ? parseYaml(text) : JSON.parse(text)) as typeof doc;
    } catch {
      continue; // unreadable here: the Kubernetes client reports it when it is used
    }
    current ??= doc?.['current-context'] || undefined;
    const ctx = doc?.contexts?.find((c) => c.name === current);
    if (ctx) return ctx.context?.namespace || 'default';
  }
  return 'default';
}

/** Reads a plain value or a secret reference; secrets are registered with the redactor first. */
export function resolveValue(ref: ValueOrRef, what: string, env: Record<string, string | undefined>, redactor: Redactor): string {
  if (typeof ref === 'string') {
    redactor.addUrl(ref);
    return ref;
  }
  let value: string | undefined;
  if ('env' in ref) {
    value = env[ref.env];
    if (value === undefined || value === '') throw new UsageError(`${what}: environment variable ${ref.env} is not set`);
  } else {
    try {
      value = readFileSync(ref.file, 'utf8').trim();
    } catch {
      throw new UsageError(`${what}: cannot read secret file ${ref.file}`);
    }
  }
  redactor.add(value);
  redactor.addUrl(value);
  return value;
}

export function describeRef(ref: ValueOrRef): string {
  if (typeof ref === 'string') return ref;
  return 'env' in ref ? `$${ref.env}` : `file:${ref.file}`;
}
