import { defineProcedure, stepFor } from '../../core/procedure.js';
import { table } from '../../core/table.js';
import { primaryRef, secondsText, withPg } from './rds.js';
import { oneLine, scrubRows } from './sessions.js';
import { DbReplicationLagParams, OldSession, primaryStep, replicasStep } from './diagnostics.js';

const step = stepFor<DbReplicationLagParams>();

const primary = primaryStep<DbReplicationLagParams>();
const replicas = replicasStep<DbReplicationLagParams>();

const oldTransactions = step({
  id: 'old-transactions',
  title: 'List the oldest open transactions on the primary',
  why: 'Long transactions hold back vacuum (and, with hot_standby_feedback, the replicas) and cause replay conflicts on standbys.',
  risk: 'read',
  equivalent: (_p, env) =>
    `psql "${primaryRef(env)}" -c "SELECT pid, usename, state, now() - xact_start AS xact_age, backend_xmin, query FROM pg_stat_activity WHERE xact_start IS NOT NULL AND pid <> pg_backend_pid() ORDER BY xact_start LIMIT 10"`,
  async run(ctx): Promise<{ sessions: OldSession[] }> {
    const sessions = await withPg(ctx, (c) =>
      c.query<OldSession & Record<string, unknown>>(
        `SELECT pid, usename AS user, state, extract(epoch FROM now() - xact_start)::float8 AS "xactSeconds", backend_xmin::text AS "backendXmin", left(query, 200) AS query
         FROM pg_stat_activity WHERE xact_start IS NOT NULL AND pid <> pg_backend_pid() AND backend_type = 'client backend' ORDER BY xact_start LIMIT 10`,
      ),
    );
    return { sessions: scrubRows(sessions) };
  },
});

export default defineProcedure<DbReplicationLagParams>({
  name: 'db replication-lag',
  summary: 'Replication lag on the primary (bytes) and on each replica (seconds); exit 4 over a threshold',
  seedFixes: [
    "The seed's sent_lsn - replay_lsn ignores WAL the primary has not even sent yet; lag bytes here are pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn).",
    "The seed's now() - pg_last_xact_replay_timestamp() keeps growing on an idle primary although the replica is caught up; when everything received is replayed (receive LSN = replay LSN) the lag is reported as 0, and the time since the last replay is shown apart.",
    'The seed\'s "blocking queries" list shows every non-idle session, including itself; this lists the oldest open transactions on the primary (they hold back cleanup and cause standby conflicts), without its own session.',
    'Thresholds (--max-lag-bytes, --max-lag-seconds) make it exit 4, so cron and monitoring can use it; an unreachable replica also fails the check.',
  ],
  params: [
    { name: 'maxLagBytes', flag: '--max-lag-bytes <n>', description: 'fail (exit 4) when a standby is more bytes behind than this', type: 'int', min: 0 },
    { name: 'maxLagSeconds', flag: '--max-lag-seconds <s>', description: 'fail (exit 4) when a replica is more seconds behind than this', type: 'int', min: 0 },
  ],
  examples: [[], ['--max-lag-bytes', '16777216', '--max-lag-seconds', '30']],
  requires: ['postgres'],
  secrets: ['postgresReplicas'],
  steps: [primary, replicas, oldTransactions],
  check(run, p) {
    const pr = run.find(primary);
    const reps = run.find(replicas)?.replicas ?? [];
    const problems: string[] = [];
    for (const r of reps) if (!r.ok) problems.push(`${r.name}: ${r.error}`);
    if (p.maxLagBytes !== undefined) {
      for (const s of pr?.standbys ?? []) {
        if ((s.lagBytes ?? 0) > p.maxLagBytes) problems.push(`standby ${s.application || s.client} is ${s.lagBytes} bytes behind (limit ${p.maxLagBytes})`);
      }
    }
    if (p.maxLagSeconds !== undefined) {
      for (const r of reps)
        if (r.ok && (r.lagSeconds ?? 0) > p.maxLagSeconds) problems.push(`${r.name} is ${secondsText(r.lagSeconds)} behind (limit ${p.maxLagSeconds}s)`);
    }
    return problems.length ? `replication check failed: ${problems.join('; ')}` : null;
  },
  render(run) {
    const pr = run.find(primary);
    const reps = run.find(replicas)?.replicas ?? [];
    const old = run.find(oldTransactions)?.sessions ?? [];
    const out: string[] = [];
    if (pr) {
      out.push(`primary (WAL at ${pr.currentLsn ?? '?'}):`);
      out.push(
        pr.standbys.length
          ? table(
              ['STANDBY', 'CLIENT', 'STATE', 'SYNC', 'LAG BYTES', 'SENT NOT REPLAYED', 'REPLAY LAG'],
              pr.standbys.map((s) => [s.application, s.client, s.state, s.syncState, s.lagBytes, s.unreplayedSentBytes, secondsText(s.replayLagSeconds)]),
            ).trimEnd()
          : '  no standby connected',
      );
    }
    if (reps.length) {
      out.push('', 'replicas:');
      out.push(
        table(
          ['REPLICA', 'TARGET', 'LAG', 'CAUGHT UP', 'SINCE LAST REPLAY', 'ERROR'],
          reps.map((r) => [
            r.name,
            r.target,
            r.ok ? secondsText(r.lagSeconds) || '0s' : '',
            r.ok ? (r.caughtUp ? 'yes' : 'no') : '',
            r.ok ? secondsText(r.secondsSinceLastReplay) : '',
            r.error ?? '',
          ]),
        ).trimEnd(),
      );
    }
    if (old.length) {
      out.push('', 'oldest open transactions on the primary:');
      out.push(
        table(
          ['PID', 'USER', 'STATE', 'XACT FOR', 'XMIN', 'QUERY'],
          old.map((s) => [s.pid, s.user, s.state, secondsText(s.xactSeconds), s.backendXmin, oneLine(s.query)]),
        ).trimEnd(),
      );
    }
    return out.join('\n') + '\n';
  },
});
