import { describeRef } from '../../core/config.js';
import { UsageError } from '../../core/errors.js';
import { defineProcedure } from '../../core/procedure.js';
import { table } from '../../core/table.js';
import { primaryRef, secondsText, withPg } from './rds.js';
import { oneLine, scrubRows } from './sessions.js';

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

export default defineProcedure<DbReplicationLagParams>({
  name: 'db replication-lag',
  summary: 'Replication lag on the primary (bytes) and on each replica (seconds); exit 4 over a threshold',
  seedFixes: [
    "The seed's sent_lsn - replay_lsn ignores WAL the primary has not even sent yet; lag bytes here are pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn).",
    "The seed's now() - pg_last_xact_replay_timestamp() keeps growing on an idle primary although the replica is caught up; when everything received is replayed (receive LSN = replay LSN) the lag is reported as 0, and the time since the last replay is shown apart.",
    "The seed's \"blocking queries\" list shows every non-idle session, including itself; this lists the oldest open transactions on the primary (they hold back cleanup and cause standby conflicts), without its own session.",
    'Thresholds (--max-lag-bytes, --max-lag-seconds) make it exit 4, so cron and monitoring can use it; an unreachable replica also fails the check.',
  ],
  params: [
    { name: 'maxLagBytes', flag: '--max-lag-bytes <n>', description: 'fail (exit 4) when a standby is more bytes behind than this', type: 'int', min: 0 },
    { name: 'maxLagSeconds', flag: '--max-lag-seconds <s>', description: 'fail (exit 4) when a replica is more seconds behind than this', type: 'int', min: 0 },
  ],
  examples: [[], ['--max-lag-bytes', '16777216', '--max-lag-seconds', '30']],
  requires: ['postgres'],
  secrets: ['postgresReplicas'],
  steps: [
    {
      id: 'primary',
      title: 'Read pg_stat_replication on the primary',
      why: 'How far each standby is behind the WAL the primary has written, in bytes.',
      risk: 'read',
      equivalent: (_p, env) =>
        `psql "${primaryRef(env)}" -c "SELECT application_name, client_addr, state, sync_state, pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn) AS lag_bytes, replay_lag FROM pg_stat_replication"`,
      async run(ctx): Promise<PrimaryReport> {
        return withPg(ctx, async (c) => {
          const [me] = await c.query<{ recovery: boolean; lsn: string | null }>(`SELECT pg_is_in_recovery() AS recovery, CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END AS lsn`);
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
    },
    {
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
      async run(ctx) {
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
              return { name, target, ok: false, error: (err as Error).message };
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
    },
    {
      id: 'old-transactions',
      title: 'List the oldest open transactions on the primary',
      why: 'Long transactions hold back vacuum (and, with hot_standby_feedback, the replicas) and cause replay conflicts on standbys.',
      risk: 'read',
      equivalent: (_p, env) =>
        `psql "${primaryRef(env)}" -c "SELECT pid, usename, state, now() - xact_start AS xact_age, backend_xmin, query FROM pg_stat_activity WHERE xact_start IS NOT NULL AND pid <> pg_backend_pid() ORDER BY xact_start LIMIT 10"`,
      async run(ctx) {
        const sessions = await withPg(ctx, (c) =>
          c.query<OldSession & Record<string, unknown>>(
            `SELECT pid, usename AS user, state, extract(epoch FROM now() - xact_start)::float8 AS "xactSeconds", backend_xmin::text AS "backendXmin", left(query, 200) AS query
             FROM pg_stat_activity WHERE xact_start IS NOT NULL AND pid <> pg_backend_pid() AND backend_type = 'client backend' ORDER BY xact_start LIMIT 10`,
          ),
        );
        return { sessions: scrubRows(sessions) };
      },
    },
  ],
  check(state, p) {
    const primary = state.primary as PrimaryReport | undefined;
    const replicas = (state.replicas as { replicas: ReplicaReport[] } | undefined)?.replicas ?? [];
    const problems: string[] = [];
    for (const r of replicas) if (!r.ok) problems.push(`${r.name}: ${r.error}`);
    if (p.maxLagBytes !== undefined) {
      for (const s of primary?.standbys ?? []) {
        if ((s.lagBytes ?? 0) > p.maxLagBytes) problems.push(`standby ${s.application || s.client} is ${s.lagBytes} bytes behind (limit ${p.maxLagBytes})`);
      }
    }
    if (p.maxLagSeconds !== undefined) {
      for (const r of replicas) if (r.ok && (r.lagSeconds ?? 0) > p.maxLagSeconds) problems.push(`${r.name} is ${secondsText(r.lagSeconds)} behind (limit ${p.maxLagSeconds}s)`);
    }
    return problems.length ? `replication check failed: ${problems.join('; ')}` : null;
  },
  render(state) {
    const primary = state.primary as PrimaryReport | undefined;
    const replicas = (state.replicas as { replicas: ReplicaReport[] } | undefined)?.replicas ?? [];
    const old = (state['old-transactions'] as { sessions: OldSession[] } | undefined)?.sessions ?? [];
    const out: string[] = [];
    if (primary) {
      out.push(`primary (WAL at ${primary.currentLsn ?? '?'}):`);
      out.push(
        primary.standbys.length
          ? table(
              ['STANDBY', 'CLIENT', 'STATE', 'SYNC', 'LAG BYTES', 'SENT NOT REPLAYED', 'REPLAY LAG'],
              primary.standbys.map((s) => [s.application, s.client, s.state, s.syncState, s.lagBytes, s.unreplayedSentBytes, secondsText(s.replayLagSeconds)]),
            ).trimEnd()
          : '  no standby connected',
      );
    }
    if (replicas.length) {
      out.push('', 'replicas:');
      out.push(
        table(
          ['REPLICA', 'TARGET', 'LAG', 'CAUGHT UP', 'SINCE LAST REPLAY', 'ERROR'],
          replicas.map((r) => [r.name, r.target, r.ok ? secondsText(r.lagSeconds) || '0s' : '', r.ok ? (r.caughtUp ? 'yes' : 'no') : '', r.ok ? secondsText(r.secondsSinceLastReplay) : '', r.error ?? '']),
        ).trimEnd(),
      );
    }
    if (old.length) {
      out.push('', 'oldest open transactions on the primary:');
      out.push(table(['PID', 'USER', 'STATE', 'XACT FOR', 'XMIN', 'QUERY'], old.map((s) => [s.pid, s.user, s.state, secondsText(s.xactSeconds), s.backendXmin, oneLine(s.query)])).trimEnd());
    }
    return out.join('\n') + '\n';
  },
});
