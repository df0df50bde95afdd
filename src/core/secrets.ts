import type { ResolvedEnvironment, ValueOrRef } from './config.js';
import { UsageError } from './errors.js';
import type { Procedure, SecretSection } from './procedure.js';

/** One secret (or plain value) a run will read from the config, and the field path that names it. */
export interface SecretUse {
  ref: ValueOrRef;
  what: string;
}

/** `requires` sections whose secret references every procedure that needs the section uses. */
const FROM_REQUIRES: Partial<Record<Procedure['requires'][number], SecretSection>> = {
  postgres: 'postgres',
  redis: 'redis',
  notify: 'notify',
  circuitBreaker: 'circuitBreaker',
};

/** The references a section holds in this environment; none when the section is not configured. */
export function sectionSecrets(env: ResolvedEnvironment, section: SecretSection): SecretUse[] {
  const c = env.config;
  const at = (path: string) => `environments.${env.name}.${path}`;
  const out: SecretUse[] = [];
  const add = (ref: ValueOrRef | undefined, path: string) => {
    if (ref !== undefined) out.push({ ref, what: at(path) });
  };
  switch (section) {
    case 'postgres':
      add(c.postgres?.url, 'postgres.url');
      break;
    case 'postgresReplicas':
      c.postgres?.replicas.forEach((r, i) => add(r.url, `postgres.replicas.${i}.url`));
      break;
    case 'rdsDatabase':
      if (c.rds && c.rds.url !== undefined) add(c.rds.url, 'rds.url');
      else if (c.rds) add(c.postgres?.url, 'postgres.url');
      break;
    case 'rdsRecovery':
      if (c.rds) {
        if (c.rds.recovery.url !== undefined) add(c.rds.recovery.url, 'rds.recovery.url');
        else if (c.rds.url !== undefined) add(c.rds.url, 'rds.url');
        else add(c.postgres?.url, 'postgres.url');
      }
      break;
    case 'redis':
      add(c.redis?.url, 'redis.url');
      add(c.redis?.username, 'redis.username');
      add(c.redis?.password, 'redis.password');
      break;
    case 'notify':
      add(c.notify?.slack?.webhook, 'notify.slack.webhook');
      break;
    case 'statuspage':
      add(c.statuspage?.token, 'statuspage.token');
      break;
    case 'metrics':
      add(c.metrics?.token, 'metrics.token');
      break;
    case 'circuitBreaker':
      add(c.circuitBreaker?.token, 'circuitBreaker.token');
      break;
    case 'cloudflare':
      add(c.cloudflare?.token, 'cloudflare.token');
      break;
    case 'backupsRestoreTest':
      add(c.backups?.restoreTest?.url, 'backups.restoreTest.url');
      break;
  }
  return out;
}

/**
 * Every secret reference a run of `proc` with these params will read: those of the sections it
 * requires, those it declares, and those of each step that runs for these params (its compensation
 * included, so a step skipped by resume still counts).
 */
export function procedureSecrets<P>(proc: Procedure<P>, params: P, env: ResolvedEnvironment): SecretUse[] {
  const sections = new Set<SecretSection>();
  for (const r of proc.requires) {
    const s = FROM_REQUIRES[r];
    if (s) sections.add(s);
  }
  for (const s of proc.secrets ?? []) sections.add(s);
  for (const step of proc.steps) {
    if (step.when && !step.when(params, env)) continue;
    for (const s of step.secrets ?? []) sections.add(s);
  }
  const seen = new Set<string>();
  const out: SecretUse[] = [];
  for (const s of sections) {
    for (const use of sectionSecrets(env, s)) {
      if (seen.has(use.what)) continue;
      seen.add(use.what);
      out.push(use);
    }
  }
  return out;
}

/**
 * Resolves every secret up front (each one is registered for redaction by `resolve`), so a missing
 * one stops the run before the lock and before anything is contacted. All failures are named at once.
 */
export function resolveSecrets(uses: SecretUse[], resolve: (ref: ValueOrRef, what: string) => string, configPath: string | null): void {
  const problems: string[] = [];
  const envVars: string[] = [];
  for (const u of uses) {
    try {
      resolve(u.ref, u.what);
    } catch (err) {
      if (!(err instanceof UsageError)) throw err;
      problems.push(err.message);
      if (typeof u.ref === 'object' && 'env' in u.ref) envVars.push(u.ref.env);
    }
  }
  if (problems.length === 0) return;
  const hint = envVars.length
    ? `set ${envVars.join(', ')} (or change the reference in ${configPath ?? 'the config'}) and run again`
    : `fix the reference in ${configPath ?? 'the config'} and run again`;
  throw new UsageError(`${problems.join('; ')}; nothing was contacted or changed`, hint);
}
