import { lockTargets } from '../../core/lock.js';
import type { PgConnection } from '../../clients/postgres.js';
import { StepError, UsageError } from '../../core/errors.js';
import { defineProcedure, stepFor } from '../../core/procedure.js';
import { primaryRef, withPg } from './rds.js';
import { sleep } from '../../core/sleep.js';

export interface DbMaxConnectionsParams {
  value: number;
}

/** PostgreSQL's own bounds for max_connections. */
export const MAX_CONNECTIONS_LIMIT = 262143;

interface Current {
  running: number;
  /** The value in postgresql.auto.conf (ALTER SYSTEM), if any: what a restart would apply. */
  autoConf: string | null;
  pendingRestart: boolean;
  inUse: number;
  replicas: number;
}

interface Verified {
  running: number;
  configured: number;
  pendingRestart: boolean;
  restartCommand: string | null;
}

/**
 * ALTER SYSTEM takes no bind parameters. The value is re-validated here (a safe integer in range) and
 * the literal is built from the number, never from the text the user typed.
 */
export function alterSystemSql(n: number): string {
  if (!Number.isSafeInteger(n) || n < 1 || n > MAX_CONNECTIONS_LIMIT)
    throw new UsageError(`max_connections must be a whole number from 1 to ${MAX_CONNECTIONS_LIMIT}, got ${n}`);
  return `ALTER SYSTEM SET max_connections = '${String(Math.trunc(n))}'`;
}

async function readCurrent(c: PgConnection): Promise<Current> {
  const [s] = await c.query<{ running: string; pending: boolean }>(
    `SELECT setting AS running, pending_restart AS pending FROM pg_settings WHERE name = 'max_connections'`,
  );
  const auto = await c.query<{ setting: string }>(
    `SELECT setting FROM pg_file_settings WHERE name = 'max_connections' AND sourcefile LIKE '%postgresql.auto.conf' ORDER BY seqno DESC LIMIT 1`,
  );
  const [use] = await c.query<{ n: number; replicas: number }>(
    `SELECT count(*) FILTER (WHERE backend_type = 'client backend')::int AS n, (SELECT count(*)::int FROM pg_stat_replication) AS replicas FROM pg_stat_activity`,
  );
  return { running: Number(s.running), autoConf: auto[0]?.setting ?? null, pendingRestart: s.pending, inUse: use.n, replicas: use.replicas };
}

const step = stepFor<DbMaxConnectionsParams>();

const current = step({
  id: 'current',
  title: 'Read the current max_connections',
  why: 'The value running now, the one already pending in postgresql.auto.conf, and how many connections are in use.',
  risk: 'read',
  equivalent: (_p, env) => `psql "${primaryRef(env)}" -c "SELECT setting, pending_restart FROM pg_settings WHERE name = 'max_connections'"`,
  async run(ctx): Promise<Current> {
    const cur = await withPg(ctx, readCurrent);
    if (ctx.params.value < cur.inUse)
      ctx.reporter.warn(
        `${cur.inUse} client connections are open now, more than ${ctx.params.value}: after the restart, clients above the limit will be refused`,
      );
    if (cur.replicas > 0 && ctx.params.value > cur.running) {
      ctx.reporter.warn(
        `${cur.replicas} hot-standby replica(s) stream from this server: their max_connections must be at least ${ctx.params.value} before the primary restarts with it, or they stop`,
      );
    }
    return cur;
  },
  postcondition: {
    describe: 'the recorded postgresql.auto.conf value is the one to put back (still there, or the value this run wrote)',
    // A read: reading again is safe, and a failed verify must put back what is there now.
    async check(ctx, recorded) {
      const live = (await withPg(ctx, readCurrent)).autoConf;
      if (live === recorded.autoConf || (ctx.find(alter) && live === String(ctx.params.value))) return { holds: true };
      return { holds: false, found: `postgresql.auto.conf holds ${autoConfText(live)} now, ${autoConfText(recorded.autoConf)} was recorded` };
    },
  },
});

const autoConfText = (v: string | null) => (v === null ? 'no max_connections' : `max_connections = ${v}`);

const alter = step({
  id: 'alter',
  title: 'Write max_connections with ALTER SYSTEM and reload',
  why: 'ALTER SYSTEM writes postgresql.auto.conf; pg_reload_conf() makes the server read it (for this setting, only as "pending restart").',
  risk: 'write',
  equivalent: (p, env) => `psql "${primaryRef(env)}" -c "ALTER SYSTEM SET max_connections = '${p.value}'" -c "SELECT pg_reload_conf()"`,
  async plan(ctx) {
    const cur = ctx.get(current);
    if (cur.autoConf === String(ctx.params.value) || (cur.autoConf === null && cur.running === ctx.params.value)) return [];
    return [
      {
        action: 'set max_connections (postgresql.auto.conf)',
        target: `db ${primaryRef(ctx.env)}`,
        before: cur.autoConf ?? `${cur.running} (not set by ALTER SYSTEM)`,
        after: `${ctx.params.value} (applies at the next restart)`,
      },
    ];
  },
  async run(ctx): Promise<{ previousAutoConf: string | null }> {
    const cur = ctx.get(current);
    const sql = alterSystemSql(ctx.params.value);
    await withPg(ctx, async (c) => {
      await c.query(sql);
      await c.query('SELECT pg_reload_conf()');
    });
    return { previousAutoConf: cur.autoConf };
  },
  async undo(ctx, data) {
    const prev = data.previousAutoConf;
    await withPg(ctx, async (c) => {
      await c.query(prev === null ? 'ALTER SYSTEM RESET max_connections' : alterSystemSql(Number(prev)));
      await c.query('SELECT pg_reload_conf()');
    });
  },
  undoByHand: (ctx, data) => {
    const prev = data.previousAutoConf;
    return `psql "${primaryRef(ctx.env)}" -c "${prev === null ? 'ALTER SYSTEM RESET max_connections' : `ALTER SYSTEM SET max_connections = '${prev}'`}" -c "SELECT pg_reload_conf()"`;
  },
  postcondition: {
    describe: 'postgresql.auto.conf holds the value asked for',
    // Writing the same value again is the run's own request, gated again: safe.
    async check(ctx) {
      const live = (await withPg(ctx, readCurrent)).autoConf;
      return live === String(ctx.params.value)
        ? { holds: true }
        : { holds: false, found: `postgresql.auto.conf holds ${autoConfText(live)}, not ${ctx.params.value}` };
    },
  },
});

const verify = step({
  id: 'verify',
  title: 'Check what the server will do with it',
  why: 'pg_settings.pending_restart tells the truth: the running value is unchanged until the server restarts.',
  risk: 'read',
  followsWrite: true,
  equivalent: (_p, env) => `psql "${primaryRef(env)}" -c "SELECT setting, pending_restart FROM pg_settings WHERE name = 'max_connections'"`,
  plan: async () => [{ action: 'read pending_restart of', target: 'max_connections', after: 'true until the server restarts (runbook db restart)' }],
  async run(ctx): Promise<Verified> {
    const want = ctx.params.value;
    // The reload is asynchronous (SIGHUP): give the server a moment to read the file.
    for (let i = 0; ; i++) {
      const cur = await withPg(ctx, readCurrent);
      const written = ctx.find(alter) !== undefined;
      const settled = !written || (cur.autoConf === String(want) && (cur.running === want || cur.pendingRestart));
      if (settled || i >= 20) {
        if (written && cur.autoConf !== String(want))
          throw new StepError(`postgresql.auto.conf does not hold max_connections = ${want} after ALTER SYSTEM (it holds ${cur.autoConf ?? 'nothing'})`);
        const restartCommand = cur.pendingRestart
          ? ctx.env.config.rds
            ? 'runbook db restart'
            : 'restart the PostgreSQL server (e.g. pg_ctl restart, or systemctl restart postgresql)'
          : null;
        if (cur.pendingRestart) ctx.reporter.warn(`max_connections is still ${cur.running}: ${want} applies only after a server restart — ${restartCommand}`);
        return { running: cur.running, configured: want, pendingRestart: cur.pendingRestart, restartCommand };
      }
      await sleep(100, ctx.signal);
    }
  },
});

export default defineProcedure<DbMaxConnectionsParams>({
  name: 'db max-connections',
  summary: 'Set max_connections (ALTER SYSTEM) and say truthfully that it applies only after a restart',
  seedFixes: [
    'The seed runs ALTER SYSTEM + pg_reload_conf() as if that raised the limit now; max_connections only changes at a server restart. This reads pg_settings.pending_restart afterwards and says so, with the command that restarts (runbook db restart).',
    'The value is validated (1..262143) before anything is contacted, and the previous setting is put back if the change cannot be verified.',
    'Hot-standby replicas refuse to start with a lower max_connections than the primary: raise theirs first; this warns when replicas are streaming.',
  ],
  params: [
    {
      name: 'value',
      argument: '<n>',
      description: `the new max_connections (1..${MAX_CONNECTIONS_LIMIT})`,
      type: 'int',
      required: true,
      min: 1,
      max: MAX_CONNECTIONS_LIMIT,
    },
  ],
  examples: [['200']],
  requires: ['postgres'],
  locks: (_p, env) => [lockTargets.postgres(env)],
  steps: [current, alter, verify],
  render(run) {
    const v = run.find(verify);
    const cur = run.find(current);
    if (!v) return cur ? `max_connections is ${cur.running}; ${cur.autoConf ?? cur.running} configured; nothing to change\n` : '';
    if (!v.pendingRestart) return `max_connections is ${v.running} (no restart needed)\n`;
    return `max_connections is still ${v.running}; ${v.configured} is written to postgresql.auto.conf and takes effect only after a server restart (pending_restart = true).\nRestart with: ${v.restartCommand}\n`;
  },
});
