import { lockTargets } from '../../core/lock.js';
import { defineProcedure } from '../../core/procedure.js';
import { atLeastOneSecond, endSessionsStep, listSessionsStep, renderSessions } from './sessions.js';

export interface DbKillIdleParams {
  olderThan: number;
  inTransaction?: boolean;
}

const sessions = listSessionsStep<DbKillIdleParams>('idle');
const end = endSessionsStep<DbKillIdleParams>('idle', sessions);

export default defineProcedure<DbKillIdleParams>({
  name: 'db kill-idle',
  summary: 'Terminate sessions idle longer than a threshold (lists them first)',
  seedFixes: [
    "The seed filters on state = 'idle' alone, without looking at backend_type: a replication (walsender) connection shown as idle would be terminated too. This only ends client backends, never its own session (pg_backend_pid()), never an active one.",
    'The seed terminates blind; this lists the sessions first, and re-checks each one at the moment of terminating, so a session that became active in between is spared.',
  ],
  params: [
    { name: 'olderThan', flag: '--idle-for <duration>', description: 'only sessions idle longer than this', type: 'duration', default: '10m' },
    {
      name: 'inTransaction',
      flag: '--in-transaction',
      description: "also sessions 'idle in transaction' (they hold locks; their transaction is rolled back)",
      type: 'boolean',
    },
  ],
  examples: [
    ['--idle-for', '10m'],
    ['--idle-for', '30s', '--in-transaction'],
  ],
  requires: ['postgres'],
  locks: (_p, env) => [lockTargets.postgres(env)],
  validate: (p) => atLeastOneSecond(p.olderThan, '--idle-for'),
  steps: [sessions, end],
  render: (run) => renderSessions(run.find(sessions), run.find(end), 'idle'),
});
