import { defineProcedure, stepFor } from '../../core/procedure.js';
import { table } from '../../core/table.js';
import { primaryRef, secondsText, withPg } from './rds.js';
import { oneLine, scrubRows, type Session } from './sessions.js';

export interface DbConnectionsParams {
  top: number;
}

export interface ConnectionsReport {
  total: number;
  maxConnections: number;
  reserved: number;
  usedPercent: number;
  byState: Array<{ state: string; count: number }>;
  byApplication: Array<{ application: string; user: string; count: number }>;
  /** Sessions that are not client backends (replication, autovacuum, …): counted apart. */
  otherBackends: Array<{ type: string; count: number }>;
  longestIdle: Session[];
  longestActive: Session[];
}

const SESSION_COLS = `pid, usename AS user, coalesce(application_name, '') AS application, client_addr::text AS client, state,
  extract(epoch FROM now() - state_change)::float8 AS "stateSeconds", extract(epoch FROM now() - query_start)::float8 AS "querySeconds", left(query, 200) AS query`;

const step = stepFor<DbConnectionsParams>();

const connections = step({
  id: 'connections',
  title: 'Count connections',
  why: 'Connection-pool exhaustion shows here first: how close to max_connections, and who holds the slots.',
  risk: 'read',
  equivalent: (_p, env) =>
    `psql "${primaryRef(env)}" -c "SELECT state, count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' GROUP BY state" -c "SHOW max_connections"`,
  async run(ctx): Promise<ConnectionsReport> {
    // One statement, one round trip, one read of pg_stat_activity (materialised: the view builds a
    // row per backend each time it is read, and five reads made the query ~4× slower): every
    // figure from the same instant.
    return withPg(ctx, async (c) => {
      const client = `FROM activity WHERE backend_type = 'client backend'`;
      const [row] = await c.query<{
        max: number;
        reserved: number;
        byState: ConnectionsReport['byState'];
        byApplication: ConnectionsReport['byApplication'];
        otherBackends: ConnectionsReport['otherBackends'];
        longestIdle: Array<Session & Record<string, unknown>>;
        longestActive: Array<Session & Record<string, unknown>>;
      }>(
        `WITH activity AS MATERIALIZED (SELECT pid, usename, application_name, client_addr, state, state_change, query_start, query, backend_type FROM pg_stat_activity)
        SELECT current_setting('max_connections')::int AS max, current_setting('superuser_reserved_connections')::int AS reserved,
          (SELECT coalesce(json_agg(s ORDER BY s.count DESC, s.state), '[]') FROM (SELECT coalesce(state, 'unknown') AS state, count(*)::int AS count ${client} GROUP BY 1 ORDER BY 2 DESC, 1) s) AS "byState",
          (SELECT coalesce(json_agg(a ORDER BY a.count DESC, a.application, a.user), '[]') FROM (SELECT coalesce(nullif(application_name, ''), '(none)') AS application, coalesce(usename, '') AS user, count(*)::int AS count
             ${client} GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2) a) AS "byApplication",
          (SELECT coalesce(json_agg(o ORDER BY o.type), '[]') FROM (SELECT backend_type AS type, count(*)::int AS count FROM activity WHERE backend_type <> 'client backend' GROUP BY 1 ORDER BY 1) o) AS "otherBackends",
          (SELECT coalesce(json_agg(i ORDER BY i."stateSeconds" DESC NULLS LAST), '[]') FROM (SELECT ${SESSION_COLS} ${client} AND state LIKE 'idle%' ORDER BY state_change LIMIT $1) i) AS "longestIdle",
          (SELECT coalesce(json_agg(x ORDER BY x."querySeconds" DESC NULLS LAST), '[]') FROM (SELECT ${SESSION_COLS} ${client} AND state = 'active' AND pid <> pg_backend_pid() ORDER BY query_start LIMIT $1) x) AS "longestActive"`,
        [ctx.params.top],
      );
      const { max, reserved, byState, byApplication, otherBackends, longestIdle, longestActive } = row;
      const total = byState.reduce((n, s) => n + s.count, 0);
      const usable = Math.max(1, max - reserved);
      return {
        total,
        maxConnections: max,
        reserved,
        usedPercent: Math.round((total / usable) * 1000) / 10,
        byState,
        byApplication,
        otherBackends,
        longestIdle: scrubRows(longestIdle),
        longestActive: scrubRows(longestActive),
      };
    });
  },
});

export default defineProcedure<DbConnectionsParams>({
  name: 'db connections',
  summary: 'Connections: total against max_connections, by state, by application and user, longest idle and active',
  seedFixes: [
    "The seed's count(*) mixes client sessions with replication and background processes, and never compares it with max_connections; this counts client backends against max_connections minus the reserved slots, and lists the others apart.",
    'Adds what you need to decide what to kill: who holds the connections (application, user) and the longest idle and active sessions.',
  ],
  params: [
    { name: 'top', flag: '--top <n>', description: 'how many of the longest idle and active sessions to show', type: 'int', default: 5, min: 1, max: 100 },
  ],
  examples: [[], ['--top', '10']],
  requires: ['postgres'],
  steps: [connections],
  render(run) {
    const r = run.find(connections);
    if (!r) return '';
    const out = [
      `${r.total} client connection(s) of ${r.maxConnections - r.reserved} usable (max_connections ${r.maxConnections}, ${r.reserved} reserved for superusers): ${r.usedPercent}% used`,
      r.otherBackends.length ? `other backends: ${r.otherBackends.map((o) => `${o.type} ${o.count}`).join(', ')}` : '',
      '',
      table(
        ['STATE', 'COUNT'],
        r.byState.map((s) => [s.state, s.count]),
      ).trimEnd(),
      '',
      table(
        ['APPLICATION', 'USER', 'COUNT'],
        r.byApplication.map((a) => [a.application, a.user, a.count]),
      ).trimEnd(),
    ];
    const sessions = (title: string, rows: Session[], col: 'stateSeconds' | 'querySeconds') => {
      if (!rows.length) return;
      out.push(
        '',
        title,
        table(
          ['PID', 'USER', 'APPLICATION', 'STATE', 'FOR', 'QUERY'],
          rows.map((s) => [s.pid, s.user, s.application, s.state, secondsText(s[col]), oneLine(s.query)]),
        ).trimEnd(),
      );
    };
    sessions('longest idle:', r.longestIdle, 'stateSeconds');
    sessions('longest active:', r.longestActive, 'querySeconds');
    return out.filter((l, i) => l !== '' || out[i - 1] !== '').join('\n') + '\n';
  },
});
