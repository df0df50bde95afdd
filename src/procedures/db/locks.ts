import { defineProcedure } from '../../core/procedure.js';
import { table } from '../../core/table.js';
import { secondsText } from './rds.js';
import { oneLine } from './sessions.js';
import { DbLocksParams, locksStep } from './diagnostics.js';

const locks = locksStep<DbLocksParams>();

export default defineProcedure<DbLocksParams>({
  name: 'db locks',
  summary: 'Blocked sessions and the sessions blocking them (pg_blocking_pids), with their queries',
  seedFixes: [
    'The seed lists every session with a wait_event — which includes idle clients waiting for a command (ClientRead) and background workers — and never says who blocks whom. This uses pg_blocking_pids() to show the blocked sessions, their blockers and the root of each chain.',
  ],
  params: [],
  examples: [[]],
  requires: ['postgres'],
  steps: [locks],
  render(run) {
    const r = run.find(locks);
    if (!r) return '';
    if (!r.blocked.length) return 'no blocked sessions\n';
    return (
      [
        'blocking:',
        table(
          ['PID', 'USER', 'APPLICATION', 'STATE', 'XACT FOR', 'BLOCKS', 'ROOT', 'QUERY'],
          r.blocking.map((b) => [b.pid, b.user, b.application, b.state, secondsText(b.xactSeconds), b.blocks, b.root ? 'yes' : 'no', oneLine(b.query)]),
        ).trimEnd(),
        '',
        'blocked:',
        table(
          ['PID', 'USER', 'APPLICATION', 'WAITING', 'FOR', 'BLOCKED BY', 'QUERY'],
          r.blocked.map((b) => [
            b.pid,
            b.user,
            b.application,
            `${b.waitEventType ?? ''}:${b.waitEvent ?? ''}`,
            secondsText(b.querySeconds),
            b.blockedBy.join(','),
            oneLine(b.query),
          ]),
        ).trimEnd(),
      ].join('\n') + '\n'
    );
  },
});
