import type { PgConnection } from '../../clients/postgres.js';
import type { ResolvedEnvironment } from '../../core/config.js';
import { describeRef } from '../../core/config.js';
import { formatDuration } from '../../core/duration.js';
import { StepError, UsageError } from '../../core/errors.js';
import type { StepContext } from '../../core/procedure.js';
import { sleep } from '../../core/sleep.js';

type Ctx = Pick<StepContext<unknown>, 'clients' | 'env' | 'signal'>;

export type RdsConfig = NonNullable<ResolvedEnvironment['config']['rds']>;

export function rdsOf(env: ResolvedEnvironment): RdsConfig {
  const r = env.config.rds;
  if (!r) throw new UsageError(`environment "${env.name}" has no rds section`);
  return r;
}

/** How to reach the PostgreSQL served by the RDS instance: rds.url, else postgres.url. */
export function rdsDatabaseUrl(ctx: Pick<StepContext<unknown>, 'clients' | 'env'>): string {
  const r = rdsOf(ctx.env);
  const ref = r.url ?? ctx.env.config.postgres?.url;
  if (!ref)
    throw new UsageError(
      `environment "${ctx.env.name}" says nothing about how to connect to the database on ${r.instance}`,
      `set environments.${ctx.env.name}.rds.url (or postgres.url), e.g. { env: DATABASE_URL }`,
    );
  return ctx.clients.secret(ref, `environments.${ctx.env.name}.rds.url`);
}

/** For `equivalent` lines: where the database URL comes from, never its value. */
export function rdsDatabaseRef(env: ResolvedEnvironment): string {
  const ref = env.config.rds?.url ?? env.config.postgres?.url;
  return ref ? describeRef(ref) : '$DATABASE_URL';
}

export function primaryRef(env: ResolvedEnvironment): string {
  return env.config.postgres ? describeRef(env.config.postgres.url) : '$DATABASE_URL';
}

/** Opens a connection (the environment's primary unless `url`), runs `fn`, and closes it. */
export async function withPg<T>(ctx: Pick<StepContext<unknown>, 'clients'>, fn: (c: PgConnection) => Promise<T>, url?: string): Promise<T> {
  const conn = await ctx.clients.postgres(url);
  try {
    return await fn(conn);
  } finally {
    await conn.close();
  }
}

/**
 * `SELECT 1` until it answers or `timeoutMs` passes, backing off from 250 ms to 5 s between tries:
 * a database that reports available may still refuse connections for a while.
 */
export async function selectOneWithRetries(
  ctx: Ctx & Pick<StepContext<unknown>, 'log'>,
  url: string,
  timeoutMs: number,
): Promise<{ attempts: number; waitedMs: number; target: string }> {
  const t0 = performance.now();
  let attempts = 0;
  let delay = 250;
  let last = '';
  for (;;) {
    attempts++;
    try {
      const conn = await ctx.clients.postgres(url);
      try {
        const rows = await conn.query<{ ok: number }>('SELECT 1 AS ok');
        if (rows[0]?.ok !== 1) throw new Error('SELECT 1 returned no row');
        return { attempts, waitedMs: Math.round(performance.now() - t0), target: conn.target };
      } finally {
        await conn.close();
      }
    } catch (err) {
      if (ctx.signal.aborted) throw ctx.signal.reason;
      if (err instanceof UsageError) throw err;
      const msg = (err as Error).message;
      if (msg !== last) ctx.log(`not answering yet: ${msg}`);
      last = msg;
    }
    const left = timeoutMs - (performance.now() - t0);
    if (left <= 0) {
      throw new StepError(
        `the database did not answer SELECT 1 within ${formatDuration(timeoutMs)} (${attempts} attempts): ${last}`,
        'check the instance in the RDS console and its events; raise rds.connectTimeout if it is just slow',
      );
    }
    await sleep(Math.min(delay, left), ctx.signal);
    delay = Math.min(delay * 2, 5000);
  }
}

/** Seconds as a short human duration ("12m3s"), for tables. */
export function secondsText(s: number | null | undefined): string {
  if (s === null || s === undefined || Number.isNaN(s)) return '';
  if (Number(s) === 0) return '0s';
  return formatDuration(Number(s) * 1000);
}
