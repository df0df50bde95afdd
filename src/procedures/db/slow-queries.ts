import { defineProcedure } from '../../core/procedure.js';
import { table } from '../../core/table.js';
import { oneLine } from './sessions.js';
import { DbSlowQueriesParams, slowQueriesStep } from './diagnostics.js';

const slow = slowQueriesStep<DbSlowQueriesParams>();

export default defineProcedure<DbSlowQueriesParams>({
  name: 'db slow-queries',
  summary: 'The slowest statements by mean time, from pg_stat_statements',
  seedFixes: [
    'The seed assumes pg_stat_statements exists; this says clearly when it is missing and how to enable it (exit 4).',
    "Adds each statement's share of the total time, which is what decides where to look first.",
  ],
  params: [
    {
      name: 'minMeanMs',
      flag: '--min-mean-ms <ms>',
      description: 'only statements slower than this on average',
      type: 'int',
      default: 1000,
      min: 0,
      max: 86_400_000,
    },
    { name: 'limit', flag: '--limit <n>', description: 'how many statements', type: 'int', default: 10, min: 1, max: 1000 },
  ],
  examples: [[], ['--min-mean-ms', '200', '--limit', '20']],
  requires: ['postgres'],
  steps: [slow],
  render(run) {
    const r = run.find(slow);
    if (!r) return '';
    if (!r.queries.length) return `no statement with a mean above ${r.minMeanMs} ms (${r.tracked} tracked)\n`;
    return table(
      ['MEAN MS', 'CALLS', 'TOTAL MS', '% TOTAL', 'ROWS', 'USER', 'QUERY'],
      r.queries.map((q) => [q.meanMs.toFixed(1), q.calls, Math.round(q.totalMs), q.percentOfTotal ?? '', q.rows, q.user, oneLine(q.query, 100)]),
    );
  },
});
