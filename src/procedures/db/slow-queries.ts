import { CheckFailedError } from '../../core/errors.js';
import { defineProcedure } from '../../core/procedure.js';
import { table } from '../../core/table.js';
import { primaryRef, withPg } from './rds.js';
import { oneLine, scrubRows } from './sessions.js';

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

export default defineProcedure<DbSlowQueriesParams>({
  name: 'db slow-queries',
  summary: 'The slowest statements by mean time, from pg_stat_statements',
  seedFixes: [
    'The seed assumes pg_stat_statements exists; this says clearly when it is missing and how to enable it (exit 4).',
    'Adds each statement\'s share of the total time, which is what decides where to look first.',
  ],
  params: [
    { name: 'minMeanMs', flag: '--min-mean-ms <ms>', description: 'only statements slower than this on average', type: 'int', default: 1000, min: 0, max: 86_400_000 },
    { name: 'limit', flag: '--limit <n>', description: 'how many statements', type: 'int', default: 10, min: 1, max: 1000 },
  ],
  examples: [[], ['--min-mean-ms', '200', '--limit', '20']],
  requires: ['postgres'],
  steps: [
    {
      id: 'slow',
      title: 'Read pg_stat_statements',
      why: 'Statements normalised by the server, with their call counts and mean and total times.',
      risk: 'read',
      equivalent: (p, env) =>
        `psql "${primaryRef(env)}" -c "SELECT query, calls, mean_exec_time, total_exec_time FROM pg_stat_statements WHERE mean_exec_time > ${p.minMeanMs} ORDER BY mean_exec_time DESC LIMIT ${p.limit}"`,
      async run(ctx) {
        return withPg(ctx, async (c) => {
          const ext = await c.query<{ schema: string }>(`SELECT n.nspname AS schema FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_stat_statements'`);
          if (!ext.length) {
            throw new CheckFailedError(
              'pg_stat_statements is not installed in this database, so there are no statement statistics',
              "add pg_stat_statements to shared_preload_libraries (needs a restart), then run CREATE EXTENSION pg_stat_statements; on RDS set it in the DB parameter group",
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
    },
  ],
  render(state) {
    const r = state.slow as { minMeanMs: number; tracked: number; queries: SlowQuery[] } | undefined;
    if (!r) return '';
    if (!r.queries.length) return `no statement with a mean above ${r.minMeanMs} ms (${r.tracked} tracked)\n`;
    return table(
      ['MEAN MS', 'CALLS', 'TOTAL MS', '% TOTAL', 'ROWS', 'USER', 'QUERY'],
      r.queries.map((q) => [q.meanMs.toFixed(1), q.calls, Math.round(q.totalMs), q.percentOfTotal ?? '', q.rows, q.user, oneLine(q.query, 100)]),
    );
  },
});
