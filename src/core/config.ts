import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { UsageError } from './errors.js';
import type { ConfigFile, EnvironmentConfig, ValueOrRef } from './config-schema.js';
import type { Redactor } from './redact.js';
import { exampleConfig } from './example-config.js';
import { suggest } from './suggest.js';

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
  /**
   * The config's journal section as loaded with this environment (null: none). Absent when the
   * environment came from elsewhere (a resumed run's journal): then the config is read again.
   */
  journal?: ConfigFile['journal'] | null;
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
    // Synchronously: nothing else runs yet, and node:fs/promises would cost its load (~2 ms).
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new UsageError(`cannot read config ${path}: ${code === 'ENOENT' ? 'no such file' : String(code)}`);
  }
  // The same text validates to the same config: do it once per process, and (in the built CLI) once
  // per build. A hit skips loading yaml and zod and building the schema (~60 ms of every command).
  const known = validated.get(text) ?? readCache(text);
  if (known) {
    rejectInlineSecrets(known, path);
    validated.set(text, known);
    if (needsKubeconfigYaml(known)) await importYaml();
    return { config: structuredClone(known), path };
  }
  const [parse, { configSchema, describeIssues }] = await Promise.all([importYaml(), import('./config-schema.js')]);
  let raw: unknown;
  try {
    raw = parse(text, { prettyErrors: true });
  } catch (err) {
    throw yamlError(err, text, path);
  }
  if (raw === null || typeof raw !== 'object') throw new UsageError(`config ${path} must be a mapping with "environments"`);
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) {
    const { message, hint } = describeIssues(parsed.error);
    throw new UsageError(`invalid config ${path}: ${message}`, hint);
  }
  rejectInlineSecrets(parsed.data, path);
  validated.set(text, structuredClone(parsed.data));
  writeCache(text, parsed.data);
  return { config: parsed.data, path };
}

/** A YAML syntax error with its line and the text on it (the library's excerpt is multi-line). */
function yamlError(err: unknown, text: string, path: string): UsageError {
  const e = err as Error & { linePos?: Array<{ line: number; col: number }> };
  const reason = e.message
    .split('\n')[0]
    .replace(/\s*at line \d+, column \d+:?\s*$/, '')
    .trim();
  const pos = e.linePos?.[0];
  if (!pos) return new UsageError(`malformed YAML in ${path}: ${reason}`);
  const lines = text.split(/\r?\n/);
  const line = lines[pos.line - 1] ?? '';
  const before = pos.line > 1 ? lines[pos.line - 2] : undefined;
  return new UsageError(
    `malformed YAML in ${path} at line ${pos.line}, column ${pos.col}: ${reason}: ${JSON.stringify(line)}`,
    `check the indentation and quoting of line ${pos.line}${before !== undefined ? ` (line ${pos.line - 1} is ${JSON.stringify(before)})` : ''}`,
  );
}

async function importYaml(): Promise<(text: string, options?: { prettyErrors?: boolean }) => unknown> {
  const { parse } = await import('yaml');
  parseYaml = (t) => parse(t);
  return parse;
}

/** Configs this process has validated, by their text. */
const validated = new Map<string, ConfigFile>();

/**
 * The built CLI's identity (scripts/bundle.mjs defines it from the compiled sources and the locked
 * dependency versions), so a cached validation never outlives the schema or the zod that made it.
 * Undefined when running from src (tests, tsx): no cache on disk then.
 */
declare const __RUNBOOK_BUILD_ID__: string | undefined;
const buildId = typeof __RUNBOOK_BUILD_ID__ === 'string' ? __RUNBOOK_BUILD_ID__ : undefined;
const CACHE_ENTRIES = 32;

/**
 * A file name for the text: two 32-bit FNV-1a hashes of its UTF-16 code units. Not a digest: the
 * entry holds its text and a hit must match it exactly, so a collision is only a miss, and no
 * command pays for loading node:crypto to name a cache file.
 */
function textKey(text: string): string {
  let a = 0x811c9dc5;
  let b = 0x050c5d1f;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x01000193) ^ (b >>> 15);
  }
  return (a >>> 0).toString(16).padStart(8, '0') + (b >>> 0).toString(16).padStart(8, '0') + text.length.toString(16);
}

/** $XDG_CACHE_HOME/runbook/config/<build>/<key of the text>.json; nothing from src. */
function cachePath(text: string): string | undefined {
  if (!buildId) return undefined;
  const env = process.env;
  const base = env.XDG_CACHE_HOME || join(env.HOME || homedir(), '.cache');
  return join(base, 'runbook', 'config', buildId, `${textKey(text)}.json`);
}

/** A config this build validated from exactly this text before; any problem reading it is a miss. */
function readCache(text: string): ConfigFile | undefined {
  try {
    const file = cachePath(text);
    if (!file) return undefined;
    const doc = JSON.parse(readFileSync(file, 'utf8')) as { text?: string; config?: ConfigFile };
    // The entry holds the text it was made from: a hit is the same text, not only the same hash.
    if (doc.text !== text || !doc.config || typeof doc.config !== 'object' || typeof doc.config.environments !== 'object') return undefined;
    return doc.config;
  } catch {
    return undefined;
  }
}

/**
 * Records a successful validation (never a failure: errors are always worked out afresh). Only
 * a result that survives JSON unchanged is kept, so a hit returns exactly what zod returned. Best
 * effort: an unwritable cache is no error. Other builds' entries are removed, and the oldest past 32.
 */
function writeCache(text: string, config: ConfigFile): void {
  try {
    const file = cachePath(text);
    if (!file) return;
    const json = JSON.stringify({ text, config });
    if (!isDeepStrictEqual((JSON.parse(json) as { config: unknown }).config, config)) return;
    const dir = dirname(file);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, json, { mode: 0o600 });
    renameSync(tmp, file);
    const builds = dirname(dir);
    for (const other of readdirSync(builds)) if (other !== buildId) rmSync(join(builds, other), { recursive: true, force: true });
    const entries = readdirSync(dir)
      .map((f) => join(dir, f))
      .map((f) => ({ f, at: statSync(f).mtimeMs }))
      .sort((a, b) => b.at - a.at);
    for (const { f } of entries.slice(CACHE_ENTRIES)) unlinkSync(f);
  } catch {
    // a read-only or full disk: validate again next time
  }
}

/** Whether selectEnvironment may read a kubeconfig (a namespace left to the context): it is YAML. */
function needsKubeconfigYaml(config: ConfigFile): boolean {
  return Object.values(config.environments).some((e) => e.kubernetes && e.kubernetes.namespace === undefined);
}

/** Secrets never live in the file: a URL with a password must come from { env } or { file }. */
function rejectInlineSecrets(config: ConfigFile, path: string): void {
  const check = (value: unknown, field: string) => {
    if (typeof value !== 'string') return;
    if (/^[a-z][a-z0-9+.-]*:\/\/[^/\s@]*:[^/\s@]+@/i.test(value)) {
      throw new UsageError(`invalid config ${path}: ${field}: contains a password`, `move it to an environment variable and write ${field}: { env: NAME }`);
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

export function selectEnvironment(loaded: LoadedConfig, flag: string | undefined, env: Record<string, string | undefined>): ResolvedEnvironment {
  const names = Object.keys(loaded.config.environments);
  const name = flag || env.RUNBOOK_ENV || loaded.config.default || (names.length === 1 ? names[0] : undefined);
  if (!name) throw new UsageError('no environment selected', `pass --env <name> (one of: ${names.join(', ')}) or set "default" in the config`);
  const parsed = loaded.config.environments[name];
  if (!parsed) {
    const where = loaded.path ?? 'the built-in example config (no config file found)';
    const near = suggest(name, names);
    const from = flag ? '' : env.RUNBOOK_ENV ? ' (from $RUNBOOK_ENV)' : ' (the config\'s "default")';
    throw new UsageError(
      `unknown environment "${name}"${from} in ${where}${near.length ? `: did you mean ${near.join(' or ')}?` : ''}`,
      `known environments: ${names.join(', ') || '(none)'}`,
    );
  }
  const k = parsed.kubernetes;
  const config: EnvironmentConfig = { ...parsed, kubernetes: k ? { ...k, namespace: k.namespace ?? contextNamespace(k, env) } : undefined };
  return {
    name,
    config,
    builtIn: loaded.path === null,
    configPath: loaded.path,
    journalDir: loaded.config.journal?.dir,
    journal: loaded.config.journal ?? null,
  };
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
