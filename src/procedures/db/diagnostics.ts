// The read steps of the database diagnostics (slow queries, locks, replication), shared by their
// procedures and by `incident latency`.
import { CheckFailedError, errorMessage, UsageError } from '../../core/errors.js';
import { type Step } from '../../core/procedure.js';
import { primaryRef, secondsText, withPg } from './rds.js';
import { scrubRows } from './sessions.js';
import { describeRef } from '../../core/config.js';

export interface DbSlowQueriesParams {
  minMeanMs: number;
  limit: number;
}

export interface SlowQuery {
  queryid: string;
  user: string;
  calls: number;
  meanMs: number;
  totalMs: number;
  rows: number;
  /** Share of the total execution time of all statements. */
  percentOfTotal: number;
  query: string;
}

/** What `slow` returns: the threshold, how many statements pg_stat_statements tracks, the slowest. */
export interface SlowQueries {
  minMeanMs: number;
  tracked: number;
  queries: SlowQuery[];
}

/** Step: the slowest statements from pg_stat_statements (also run by `incident latency`). */
export function slowQueriesStep<P extends DbSlowQueriesParams>(): Step<P, SlowQueries> {
  return {
    id: 'slow',
    title: 'Read pg_stat_statements',
    why: 'Statements normalised by the server, with their call counts and mean and total times.',
    risk: 'read',
    equivalent: (p, env) =>
      `psql "${primaryRef(env)}" -c "SELECT query, calls, mean_exec_time, total_exec_time FROM pg_stat_statements WHERE mean_exec_time > ${p.minMeanMs} ORDER BY mean_exec_time DESC LIMIT ${p.limit}"`,
    async run(ctx) {
      return withPg(ctx, async (c) => {
        const ext = await c.query<{ schema: string }>(
          `SELECT n.nspname AS schema FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_stat_statements'`,
        );
        if (!ext.length) {
          throw new CheckFailedError(
            'pg_stat_statements is not installed in this database, so there are no statement statistics',
            'add pg_stat_statements to shared_preload_libraries (needs a restart), then run CREATE EXTENSION pg_stat_statements; on RDS set it in the DB parameter group',
          );
        }
        const view = `"${ext[0].schema.replace(/"/g, '""')}".pg_stat_statements`;
        const queries = await c.query<SlowQuery & Record<string, unknown>>(
          `SELECT * FROM (
             SELECT queryid::text AS queryid, coalesce(r.rolname, '') AS user, calls::float8 AS calls, mean_exec_time AS "meanMs",
                    total_exec_time AS "totalMs", rows::float8 AS rows,
                    round((100 * total_exec_time / nullif(sum(total_exec_time) OVER (), 0))::numeric, 1)::float8 AS "percentOfTotal", query
             FROM ${view} s LEFT JOIN pg_roles r ON r.oid = s.userid) t
           WHERE "meanMs" > $1 ORDER BY "meanMs" DESC LIMIT $2`,
          [ctx.params.minMeanMs, ctx.params.limit],
        );
        const [{ tracked }] = await c.query<{ tracked: number }>(`SELECT count(*)::int AS tracked FROM ${view}`);
        ctx.log(`${queries.length} statement(s) with a mean above ${ctx.params.minMeanMs} ms (of ${tracked} tracked)`);
        return { minMeanMs: ctx.params.minMeanMs, tracked, queries: scrubRows(queries) };
      });
    },
  };
}

export type DbLocksParams = Record<string, never>;

/** A session in a lock chain. */
export interface LockSession {
  pid: number;
  user: string | null;
  application: string;
  state: string | null;
  waitEventType: string | null;
  waitEvent: string | null;
  /** Seconds since the current query started, and since the transaction started. */
  querySeconds: number | null;
  xactSeconds: number | null;
  /** pg_blocking_pids(): who this session waits for (empty for a blocker that waits on nobody). */
  blockedBy: number[];
  query: string;
}

export interface LocksReport {
  blocked: LockSession[];
  /** Sessions holding what others wait for; `root` when they wait on nobody themselves. */
  blocking: Array<LockSession & { blocks: number; root: boolean }>;
}

const COLS = `pid, usename AS user, coalesce(application_name, '') AS application, state, wait_event_type AS "waitEventType", wait_event AS "waitEvent",
  extract(epoch FROM now() - query_start)::float8 AS "querySeconds", extract(epoch FROM now() - xact_start)::float8 AS "xactSeconds",
  pg_blocking_pids(pid) AS "blockedBy", left(query, 300) AS query`;

/** Step: the blocked sessions and their blockers (also run by `incident latency`). */
export function locksStep<P>(): Step<P, LocksReport> {
  return {
    id: 'locks',
    title: 'Find blocked and blocking sessions',
    why: 'A blocked session waits for a lock another holds; ending the root blocker (db kill-long-running, or by pid) frees the chain.',
    risk: 'read',
    equivalent: (_p, env) =>
      `psql "${primaryRef(env)}" -c "SELECT pid, usename, pg_blocking_pids(pid) AS blocked_by, wait_event_type, state, query FROM pg_stat_activity WHERE cardinality(pg_blocking_pids(pid)) > 0"`,
    async run(ctx): Promise<LocksReport> {
      return withPg(ctx, async (c) => {
        const blocked = await c.query<LockSession & Record<string, unknown>>(
          `SELECT ${COLS} FROM pg_stat_activity WHERE cardinality(pg_blocking_pids(pid)) > 0 ORDER BY query_start`,
        );
        const blockerPids = [...new Set(blocked.flatMap((b) => b.blockedBy))];
        const blockers = blockerPids.length
          ? await c.query<LockSession & Record<string, unknown>>(
              `SELECT ${COLS} FROM pg_stat_activity WHERE pid = ANY($1::int[]) ORDER BY xact_start NULLS LAST`,
              [blockerPids],
            )
          : [];
        const blocking = blockers.map((b) => ({ ...b, blocks: blocked.filter((x) => x.blockedBy.includes(b.pid)).length, root: b.blockedBy.length === 0 }));
        ctx.log(`${blocked.length} blocked session(s), ${blocking.filter((b) => b.root).length} root blocker(s)`);
        return { blocked: scrubRows(blocked), blocking: scrubRows(blocking) };
      });
    },
  };
}

export interface DbReplicationLagParams {
  maxLagBytes?: number;
  maxLagSeconds?: number;
}

/** One standby as the primary sees it in pg_stat_replication. */
export interface StandbyOnPrimary {
  application: string;
  client: string | null;
  state: string;
  syncState: string;
  /** WAL the standby has not replayed yet: pg_current_wal_lsn() − replay_lsn. */
  lagBytes: number | null;
  /** WAL sent but not yet replayed (the seed's sent_lsn − replay_lsn). */
  unreplayedSentBytes: number | null;
  replayLagSeconds: number | null;
}

/** One configured replica, asked directly. */
export interface ReplicaReport {
  name: string;
  target: string;
  ok: boolean;
  error?: string;
  inRecovery?: boolean;
  /** True when everything received has been replayed: the lag is 0 whatever the last-replay clock says. */
  caughtUp?: boolean;
  /** 0 when caught up, else now() − pg_last_xact_replay_timestamp(). */
  lagSeconds?: number | null;
  /** now() − pg_last_xact_replay_timestamp(): on an idle primary this grows with no real lag. */
  secondsSinceLastReplay?: number | null;
  receiveLsn?: string | null;
  replayLsn?: string | null;
}

export interface PrimaryReport {
  inRecovery: boolean;
  currentLsn: string | null;
  standbys: StandbyOnPrimary[];
}

export interface OldSession {
  pid: number;
  user: string | null;
  state: string | null;
  xactSeconds: number | null;
  backendXmin: string | null;
  query: string;
}

/** Step: pg_stat_replication on the primary (also run by `incident latency`). */
export function primaryStep<P>(): Step<P, PrimaryReport> {
  return {
    id: 'primary',
    title: 'Read pg_stat_replication on the primary',
    why: 'How far each standby is behind the WAL the primary has written, in bytes.',
    risk: 'read',
    equivalent: (_p, env) =>
      `psql "${primaryRef(env)}" -c "SELECT application_name, client_addr, state, sync_state, pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn) AS lag_bytes, replay_lag FROM pg_stat_replication"`,
    async run(ctx): Promise<PrimaryReport> {
      return withPg(ctx, async (c) => {
        const [me] = await c.query<{ recovery: boolean; lsn: string | null }>(
          `SELECT pg_is_in_recovery() AS recovery, CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END AS lsn`,
        );
        if (me.recovery) ctx.reporter.warn(`${primaryRef(ctx.env)} is itself a standby (pg_is_in_recovery); postgres.url should point at the primary`);
        const standbys = me.recovery
          ? []
          : await c.query<StandbyOnPrimary & Record<string, unknown>>(
              `SELECT coalesce(application_name, '') AS application, client_addr::text AS client, state, sync_state AS "syncState",
                      pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::float8 AS "lagBytes",
                      pg_wal_lsn_diff(sent_lsn, replay_lsn)::float8 AS "unreplayedSentBytes",
                      extract(epoch FROM replay_lag)::float8 AS "replayLagSeconds"
               FROM pg_stat_replication ORDER BY application_name`,
            );
        ctx.log(`${standbys.length} standby(s) connected`);
        return { inRecovery: me.recovery, currentLsn: me.lsn, standbys };
      });
    },
  };
}

export interface ReplicasReport {
  replicas: ReplicaReport[];
}

/** Step: each configured replica, asked directly (also run by `incident latency`). */
export function replicasStep<P>(): Step<P, ReplicasReport> {
  return {
    id: 'replicas',
    title: 'Ask each configured replica',
    why: 'Replay lag in seconds as the replica itself sees it; a replica missing from pg_stat_replication shows up here as unreachable or not streaming.',
    risk: 'read',
    when: (_p, env) => (env.config.postgres?.replicas.length ?? 0) > 0,
    equivalent: (_p, env) =>
      (env.config.postgres?.replicas ?? [])
        .map(
          (r) =>
            `psql "${describeRef(r.url)}" -c "SELECT CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp()) END AS lag_seconds"`,
        )
        .join(' && '),
    async run(ctx): Promise<ReplicasReport> {
      const replicas = ctx.env.config.postgres?.replicas ?? [];
      const reports = await Promise.all(
        replicas.map(async (r, i): Promise<ReplicaReport> => {
          const name = r.name ?? `replica-${i + 1}`;
          let target = describeRef(r.url);
          try {
            const url = ctx.clients.secret(r.url, `environments.${ctx.env.name}.postgres.replicas.${i}.url`);
            return await withPg(
              ctx,
              async (c) => {
                target = c.target;
                const [row] = await c.query<{
                  inRecovery: boolean;
                  receiveLsn: string | null;
                  replayLsn: string | null;
                  caughtUp: boolean | null;
                  sinceReplay: number | null;
                }>(
                  `SELECT pg_is_in_recovery() AS "inRecovery", pg_last_wal_receive_lsn()::text AS "receiveLsn", pg_last_wal_replay_lsn()::text AS "replayLsn",
                          pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() AS "caughtUp",
                          extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 AS "sinceReplay"`,
                );
                if (!row.inRecovery) return { name, target, ok: false, inRecovery: false, error: 'not a standby (pg_is_in_recovery() is false)' };
                const caughtUp = row.caughtUp === true;
                return {
                  name,
                  target,
                  ok: true,
                  inRecovery: true,
                  caughtUp,
                  lagSeconds: caughtUp ? 0 : row.sinceReplay,
                  secondsSinceLastReplay: row.sinceReplay,
                  receiveLsn: row.receiveLsn,
                  replayLsn: row.replayLsn,
                };
              },
              url,
            );
          } catch (err) {
            if (err instanceof UsageError) throw err;
            return { name, target, ok: false, error: errorMessage(err) };
          }
        }),
      );
      for (const r of reports) {
        ctx.log(
          r.ok
            ? `${r.name}: ${r.caughtUp ? 'caught up (lag 0)' : `replay lag ${secondsText(r.lagSeconds)}`}; last replayed transaction ${secondsText(r.secondsSinceLastReplay) || 'never'} ago`
            : `${r.name}: ${r.error}`,
        );
      }
      return { replicas: reports };
    },
  };
}
