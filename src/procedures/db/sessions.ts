import type { PgConnection } from '../../clients/postgres.js';
import { formatDuration } from '../../core/duration.js';
import { UsageError } from '../../core/errors.js';
import type { Step, StepContext, StepRef } from '../../core/procedure.js';
import { table } from '../../core/table.js';
import { primaryRef, secondsText, withPg } from './rds.js';

/** One server session, as pg_stat_activity shows it (query text cut to 200 characters). */
export interface Session {
  pid: number;
  user: string | null;
  application: string;
  client: string | null;
  state: string | null;
  /** Seconds in the current state (idle for, or active for) and since the query started. */
  stateSeconds: number | null;
  querySeconds: number | null;
  query: string;
}

export type SessionKind = 'idle' | 'long-running';

export interface SessionFilter {
  kind: SessionKind;
  olderThanMs: number;
  /** idle only: also sessions idle inside an open transaction. */
  inTransaction?: boolean;
}

const IDLE = ['idle'];
const IDLE_TX = ['idle', 'idle in transaction', 'idle in transaction (aborted)'];

/**
 * The WHERE clause shared by the listing and the termination, so both apply the same rules:
 * only client backends (never walsenders, autovacuum or other background workers — replication
 * connections are `walsender`), never this session, and the state/age condition.
 */
function where(f: SessionFilter): { sql: string; params: unknown[] } {
  const secs = f.olderThanMs / 1000;
  if (f.kind === 'idle') {
    return {
      sql: `backend_type = 'client backend' AND pid <> pg_backend_pid() AND state = ANY($1::text[]) AND state_change < now() - make_interval(secs => $2)`,
      params: [f.inTransaction ? IDLE_TX : IDLE, secs],
    };
  }
  return {
    sql: `backend_type = 'client backend' AND pid <> pg_backend_pid() AND state = 'active' AND query_start < now() - make_interval(secs => $1)`,
    params: [secs],
  };
}

const COLUMNS = `pid, usename AS user, coalesce(application_name, '') AS application, client_addr::text AS client, state,
  extract(epoch FROM now() - state_change)::float8 AS "stateSeconds", extract(epoch FROM now() - query_start)::float8 AS "querySeconds",
  left(query, 200) AS query`;

export async function findSessions(conn: PgConnection, f: SessionFilter): Promise<Session[]> {
  const w = where(f);
  const order = f.kind === 'idle' ? 'state_change' : 'query_start';
  return scrubRows(await conn.query<Session & Record<string, unknown>>(`SELECT ${COLUMNS} FROM pg_stat_activity WHERE ${w.sql} ORDER BY ${order}`, w.params));
}

/**
 * Terminates (or cancels) the listed sessions that STILL match the filter: a session that became
 * active, or reconnected under the same pid, since the listing is spared.
 */
export async function endSessions(
  conn: PgConnection,
  f: SessionFilter,
  pids: number[],
  how: 'terminate' | 'cancel',
): Promise<{ ended: number[]; spared: number[] }> {
  const w = where(f);
  const fn = how === 'cancel' ? 'pg_cancel_backend' : 'pg_terminate_backend';
  const n = w.params.length;
  const rows = await conn.query<{ pid: number; ok: boolean }>(
    `SELECT pid, ${fn}(pid) AS ok FROM pg_stat_activity WHERE ${w.sql} AND pid = ANY($${n + 1}::int[])`,
    [...w.params, pids],
  );
  const ended = rows.filter((r) => r.ok).map((r) => r.pid);
  return { ended, spared: pids.filter((p) => !ended.includes(p)) };
}

/** A threshold under a second would select every session in that state: almost surely a typo. */
export function atLeastOneSecond(ms: number, flag: string): void {
  if (ms < 1000) throw new UsageError(`${flag} must be at least 1s, got ${formatDuration(ms)}`, `e.g. ${flag} 10m`);
}

export function describeFilter(f: SessionFilter): string {
  if (f.kind === 'idle') return `${f.inTransaction ? 'idle (including idle in transaction)' : 'idle'} for more than ${formatDuration(f.olderThanMs)}`;
  return `running one query for more than ${formatDuration(f.olderThanMs)}`;
}

export function sessionsTable(sessions: Session[], kind: SessionKind): string {
  return table(
    ['PID', 'USER', 'APPLICATION', 'CLIENT', 'STATE', kind === 'idle' ? 'IDLE FOR' : 'RUNNING FOR', 'QUERY'],
    sessions.map((s) => [
      s.pid,
      s.user,
      s.application,
      s.client ?? 'local',
      s.state,
      secondsText(kind === 'idle' ? s.stateSeconds : s.querySeconds),
      oneLine(s.query),
    ]),
  );
}

/**
 * Statement text can carry secrets the server does not normalise away (CREATE/ALTER ROLE … PASSWORD
 * '…' is recorded verbatim by pg_stat_statements and shown in pg_stat_activity): mask them.
 */
export function scrubSql(q: string | null | undefined): string {
  return (q ?? '').replace(/\b(PASSWORD\s+)(E?'(?:[^']|'')*'|\$[A-Za-z_0-9]*\$[\s\S]*?\$[A-Za-z_0-9]*\$)/gi, "$1'****'");
}

/** Applies scrubSql to the `query` field of each row. */
export function scrubRows<T extends { query: string }>(rows: T[]): T[] {
  return rows.map((r) => ({ ...r, query: scrubSql(r.query) }));
}

export function oneLine(q: string | null | undefined, max = 80): string {
  const s = (q ?? '').replace(/\s+/g, ' ').trim();
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

interface SessionParams {
  olderThan: number;
  inTransaction?: boolean;
  cancel?: boolean;
}

function filterOf(kind: SessionKind, p: SessionParams): SessionFilter {
  return { kind, olderThanMs: p.olderThan, inTransaction: kind === 'idle' ? Boolean(p.inTransaction) : undefined };
}

/** What the listing step returns: the filter in words, and the sessions it selected. */
export interface SessionList {
  filter: string;
  sessions: Session[];
}

/** What the ending step returns: how, and which of the listed sessions were ended or spared. */
export interface SessionsEnded {
  how: 'terminate' | 'cancel';
  ended: number[];
  spared: number[];
}

/** Step: list the sessions the filter selects (shown before anything is ended). */
export function listSessionsStep<P extends SessionParams>(kind: SessionKind): Step<P, SessionList> {
  return {
    id: 'sessions',
    title: kind === 'idle' ? 'List idle sessions over the threshold' : 'List queries running longer than the threshold',
    why: 'You see exactly which sessions would end — never this one, never a replication connection' + (kind === 'idle' ? ', never an active one.' : '.'),
    risk: 'read',
    equivalent: (p, env) =>
      `psql "${primaryRef(env)}" -c "SELECT pid, usename, application_name, state, now() - ${kind === 'idle' ? 'state_change' : 'query_start'} FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() AND ${kind === 'idle' ? `state = 'idle' AND state_change` : `state = 'active' AND query_start`} < now() - interval '${Math.round(p.olderThan / 1000)} seconds'"`,
    async run(ctx: StepContext<P>): Promise<SessionList> {
      const f = filterOf(kind, ctx.params);
      const sessions = await withPg(ctx, (c) => findSessions(c, f));
      ctx.log(`${sessions.length} session(s) ${describeFilter(f)}`);
      if (sessions.length) for (const line of sessionsTable(sessions, kind).trimEnd().split('\n')) ctx.log(line);
      return { filter: describeFilter(f), sessions };
    },
  };
}

/** Step: end the sessions `list` found that still match (terminate, or cancel the query with --cancel). */
export function endSessionsStep<P extends SessionParams>(kind: SessionKind, list: StepRef<SessionList>): Step<P, SessionsEnded> {
  const how = (p: P) => (p.cancel ? 'cancel' : 'terminate');
  const listed = (ctx: StepContext<P>) => ctx.find(list)?.sessions ?? [];
  return {
    id: 'end',
    title: kind === 'idle' ? 'Terminate the idle sessions' : 'End the long-running queries',
    why:
      kind === 'idle'
        ? 'Frees connection slots held by idle clients; each session is re-checked at the moment it is terminated, so one that became active is spared.'
        : 'Stops queries that hold locks and connections; the conditions are re-checked at the moment of ending, and --cancel only cancels the query and keeps the session.',
    risk: kind === 'idle' ? 'write' : 'destructive',
    equivalent: (p, env) =>
      `psql "${primaryRef(env)}" -c "SELECT ${p.cancel ? 'pg_cancel_backend' : 'pg_terminate_backend'}(pid) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() AND ${kind === 'idle' ? `state = 'idle' AND state_change` : `state = 'active' AND query_start`} < now() - interval '${Math.round(p.olderThan / 1000)} seconds'"`,
    async plan(ctx) {
      return listed(ctx).map((s) => ({
        action: how(ctx.params),
        target: `pid ${s.pid} (${s.user ?? '?'}${s.application ? `, ${s.application}` : ''}${s.client ? ` from ${s.client}` : ''})`,
        before: `${s.state} ${secondsText(kind === 'idle' ? s.stateSeconds : s.querySeconds)}`,
        after: how(ctx.params) === 'cancel' ? 'query cancelled' : 'terminated',
      }));
    },
    async run(ctx): Promise<SessionsEnded> {
      const f = filterOf(kind, ctx.params);
      const pids = listed(ctx).map((s) => s.pid);
      const out = await withPg(ctx, (c) => endSessions(c, f, pids, how(ctx.params)));
      if (out.spared.length) ctx.log(`spared ${out.spared.length} session(s) that no longer match: ${out.spared.join(', ')}`);
      return { how: how(ctx.params), ...out };
    },
    postcondition: {
      describe: 'none of the sessions it ended still matches',
      // Ending again re-checks each listed session at that moment (see endSessions) and never reaches a
      // session that was not listed and approved: safe. A session started since is not this run's to end.
      async check(ctx, data) {
        const live = await withPg(ctx, (c) => findSessions(c, filterOf(kind, ctx.params)));
        const back = live.filter((s) => data.ended.includes(s.pid)).map((s) => s.pid);
        return back.length === 0 ? { holds: true } : { holds: false, found: `pid ${back.join(', ')} still ${describeFilter(filterOf(kind, ctx.params))}` };
      },
    },
  };
}

/** stdout: the sessions listed, and what happened to them. */
export function renderSessions(listed: SessionList | undefined, ended: SessionsEnded | undefined, kind: SessionKind): string {
  if (!listed) return '';
  if (listed.sessions.length === 0) return `no session ${listed.filter}\n`;
  const out = [sessionsTable(listed.sessions, kind).trimEnd()];
  if (ended)
    out.push(
      `${ended.how === 'cancel' ? 'cancelled' : 'terminated'} ${ended.ended.length}${ended.spared.length ? `, spared ${ended.spared.length} (no longer matching)` : ''}`,
    );
  return out.join('\n') + '\n';
}
