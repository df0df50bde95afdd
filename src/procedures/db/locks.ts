import { defineProcedure } from '../../core/procedure.js';
import { table } from '../../core/table.js';
import { primaryRef, secondsText, withPg } from './rds.js';
import { oneLine, scrubRows } from './sessions.js';

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

export default defineProcedure<DbLocksParams>({
  name: 'db locks',
  summary: 'Blocked sessions and the sessions blocking them (pg_blocking_pids), with their queries',
  seedFixes: [
    "The seed lists every session with a wait_event — which includes idle clients waiting for a command (ClientRead) and background workers — and never says who blocks whom. This uses pg_blocking_pids() to show the blocked sessions, their blockers and the root of each chain.",
  ],
  params: [],
  examples: [[]],
  requires: ['postgres'],
  steps: [
    {
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
            ? await c.query<LockSession & Record<string, unknown>>(`SELECT ${COLS} FROM pg_stat_activity WHERE pid = ANY($1::int[]) ORDER BY xact_start NULLS LAST`, [blockerPids])
            : [];
          const blocking = blockers.map((b) => ({ ...b, blocks: blocked.filter((x) => x.blockedBy.includes(b.pid)).length, root: b.blockedBy.length === 0 }));
          ctx.log(`${blocked.length} blocked session(s), ${blocking.filter((b) => b.root).length} root blocker(s)`);
          return { blocked: scrubRows(blocked), blocking: scrubRows(blocking) };
        });
      },
    },
  ],
  render(state) {
    const r = state.locks as LocksReport | undefined;
    if (!r) return '';
    if (!r.blocked.length) return 'no blocked sessions\n';
    return [
      'blocking:',
      table(
        ['PID', 'USER', 'APPLICATION', 'STATE', 'XACT FOR', 'BLOCKS', 'ROOT', 'QUERY'],
        r.blocking.map((b) => [b.pid, b.user, b.application, b.state, secondsText(b.xactSeconds), b.blocks, b.root ? 'yes' : 'no', oneLine(b.query)]),
      ).trimEnd(),
      '',
      'blocked:',
      table(
        ['PID', 'USER', 'APPLICATION', 'WAITING', 'FOR', 'BLOCKED BY', 'QUERY'],
        r.blocked.map((b) => [b.pid, b.user, b.application, `${b.waitEventType ?? ''}:${b.waitEvent ?? ''}`, secondsText(b.querySeconds), b.blockedBy.join(','), oneLine(b.query)]),
      ).trimEnd(),
    ].join('\n') + '\n';
  },
});
