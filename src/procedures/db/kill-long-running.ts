import { lockTargets } from '../../core/lock.js';
import { defineProcedure } from '../../core/procedure.js';
import { atLeastOneSecond, endSessionsStep, listSessionsStep, renderSessions } from './sessions.js';

export interface DbKillLongRunningParams {
  olderThan: number;
  cancel?: boolean;
}

const sessions = listSessionsStep<DbKillLongRunningParams>('long-running');
const end = endSessionsStep<DbKillLongRunningParams>('long-running', sessions);

export default defineProcedure<DbKillLongRunningParams>({
  name: 'db kill-long-running',
  summary: 'End queries running longer than a threshold (lists them first)',
  seedFixes: [
    "The seed's query matches its own session and any background worker in state 'active'; this only ends client backends (never replication/walsender or autovacuum) and never its own session.",
    'The seed terminates blind; this lists the queries first, gates the step, re-checks each query at the moment of ending it, and offers --cancel (cancel the query, keep the session).',
  ],
  params: [
    { name: 'olderThan', flag: '--older-than <duration>', description: 'only queries running longer than this', type: 'duration', default: '5m' },
    { name: 'cancel', flag: '--cancel', description: 'cancel the query (pg_cancel_backend) instead of terminating the session', type: 'boolean' },
  ],
  examples: [
    ['--older-than', '5m'],
    ['--older-than', '1m', '--cancel'],
  ],
  requires: ['postgres'],
  locks: (_p, env) => [lockTargets.postgres(env)],
  validate: (p) => atLeastOneSecond(p.olderThan, '--older-than'),
  steps: [sessions, end],
  render: (run) => renderSessions(run.find(sessions), run.find(end), 'long-running'),
});
