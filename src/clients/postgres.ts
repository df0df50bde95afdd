import type { Client as PgClient } from 'pg';

export interface PgConnection {
  /** host:port/database, safe to print. */
  readonly target: string;
  query<R extends Record<string, unknown> = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<R[]>;
  close(): Promise<void>;
}

/** Where a connection URL points, without credentials. */
export function pgTarget(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname}${u.port ? `:${u.port}` : ''}${u.pathname && u.pathname !== '/' ? u.pathname : ''}`;
  } catch {
    return '(unparseable URL)';
  }
}

/**
 * Connects with node-postgres. libpq variables (PGHOST, PGPASSWORD, …) fill whatever the URL leaves
 * out, as psql does; every query is parameterised.
 */
export async function connectPostgres(
  url: string,
  opts: { connectTimeoutMs?: number; applicationName?: string; statementTimeoutMs?: number } = {},
): Promise<PgConnection> {
  const pg = (await import('pg')).default;
  const client: PgClient = new pg.Client({
    connectionString: url,
    connectionTimeoutMillis: opts.connectTimeoutMs ?? 5000,
    application_name: opts.applicationName ?? 'runbook',
    statement_timeout: opts.statementTimeoutMs,
  });
  client.on('error', () => {
    /* surfaced by the next query */
  });
  try {
    await client.connect();
  } catch (err) {
    await client.end().catch(() => undefined);
    throw new Error(`cannot connect to PostgreSQL at ${pgTarget(url)}: ${(err as Error).message}`, { cause: err });
  }
  return {
    target: pgTarget(url),
    async query(sql, params) {
      const res = await client.query(sql, params as unknown[] | undefined);
      return res.rows as never;
    },
    async close() {
      await client.end().catch(() => undefined);
    },
  };
}

/** Quotes an SQL identifier with node-postgres' own escapeIdentifier (for names that cannot be bind parameters). */
export async function escapeIdentifier(name: string): Promise<string> {
  const pg = (await import('pg')).default;
  return pg.escapeIdentifier(name);
}
