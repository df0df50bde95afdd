/**
 * The PostgreSQL procedures against a real primary + streaming replica: connections, kill-idle,
 * kill-long-running, max-connections, slow-queries, locks and replication-lag. Sessions are real
 * clients held open by the test (application_name fixture-*).
 */
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { runCli, tempDir, type CliOptions } from '../../support/cli.js';
import { freePort } from '../../support/services/index.js';
import { startSandbox, type Sandbox } from '../../support/sandbox/index.js';
import type { DatabasePart } from '../../support/sandbox/database-part.js';
import { databasePart, derivedConfig, journalText, tappedFactories, until } from './support.js';

let sb: Sandbox;
let db: DatabasePart;
const journal = tempDir('runbook-db-journal-');
const outputs: string[] = [];
const fixtures: pg.Client[] = [];

async function cli(argv: string[], extra: CliOptions = {}) {
  const r = await runCli(argv, { ...extra, env: { ...sb.env, RUNBOOK_JOURNAL_DIR: journal, ...(extra.env ?? {}) } });
  outputs.push(r.stdout, r.stderr);
  return r;
}

/** A real client session named `name`; errors from being terminated are swallowed. */
async function session(name: string): Promise<{ client: pg.Client; pid: number }> {
  const client = await db.connect('postgres', name);
  client.on('error', () => undefined);
  fixtures.push(client);
  const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
  return { client, pid: rows[0].pid };
}

async function alive(pids: number[]): Promise<number[]> {
  const c = await db.connect('postgres', 'sandbox-check');
  try {
    const { rows } = await c.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE pid = ANY($1::int[])', [pids]);
    return rows.map((r) => r.pid).sort();
  } finally {
    await c.end();
  }
}

async function walsenders(): Promise<number[]> {
  const c = await db.connect('postgres', 'sandbox-check');
  try {
    const { rows } = await c.query<{ pid: number }>(`SELECT pid FROM pg_stat_activity WHERE backend_type = 'walsender'`);
    return rows.map((r) => r.pid);
  } finally {
    await c.end();
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  sb = await startSandbox({ parts: ['kubernetes', 'database'] });
  db = databasePart(sb);
});
afterEach(async () => {
  // A client that disconnects mid-query leaves its backend running until the query ends: end them server-side.
  const c = await db.connect('postgres', 'sandbox-cleanup');
  await c.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE 'fixture%'`);
  await c.end();
  for (const f of fixtures.splice(0)) await f.end().catch(() => undefined);
});
afterAll(async () => {
  await sb?.stop();
});

describe('db connections', () => {
  it('counts client connections against max_connections, by state and application, with the longest idle and active', async () => {
    await session('fixture-idle-a');
    await session('fixture-idle-b');
    const busy = await session('fixture-busy');
    void busy.client.query('SELECT pg_sleep(2)').catch(() => undefined);
    await sleep(100);
    const r = await cli(['db', 'connections', '--json']);
    expect(r.code).toBe(0);
    const data = JSON.parse(r.stdout).steps[0].data;
    expect(data.maxConnections).toBe(100);
    expect(data.total).toBeGreaterThanOrEqual(4);
    expect(data.byApplication).toEqual(expect.arrayContaining([expect.objectContaining({ application: 'fixture-idle-a', count: 1 })]));
    expect(data.otherBackends).toEqual(expect.arrayContaining([{ type: 'walsender', count: 1 }]));
    expect(data.longestActive.map((s: { application: string }) => s.application)).toContain('fixture-busy');
    const text = await cli(['db', 'connections']);
    expect(text.stdout).toMatch(/client connection\(s\) of 97 usable \(max_connections 100, 3 reserved/);
    expect(text.stdout).toMatch(/fixture-idle-a\s+postgres\s+1/);
  });
});

describe('db kill-idle', () => {
  it('terminates exactly the idle sessions over the threshold: never active, fresh, idle-in-transaction, replication or its own', async () => {
    const oldIdle = [await session('fixture-idle-1'), await session('fixture-idle-2')];
    const active = await session('fixture-active');
    void active.client.query('SELECT pg_sleep(10)').catch(() => undefined);
    const inTx = await session('fixture-idle-tx');
    await inTx.client.query('BEGIN');
    await inTx.client.query('SELECT 1');
    await sleep(3300);
    const senders = await walsenders();
    expect(senders).toHaveLength(1);

    // A dry run lists and previews, and ends nothing.
    const before = await sb.fingerprint();
    const dry = await cli(['db', 'kill-idle', '--idle-for', '3s', '--dry-run']);
    expect(dry.code).toBe(0);
    expect(dry.stderr).toMatch(new RegExp(`would terminate pid ${oldIdle[0].pid} \\(postgres, fixture-idle-1`));
    expect(await sb.fingerprint()).toEqual(before);

    // Protected and no terminal: fails closed.
    const declined = await cli(['db', 'kill-idle', '--idle-for', '3s', '--env', 'sandbox-protected']);
    expect(declined.code).toBe(3);
    expect(await sb.fingerprint()).toEqual(before);

    // Idle, but for less than the threshold.
    const fresh = await session('fixture-fresh');
    const r = await cli(['db', 'kill-idle', '--idle-for', '3s', '--json']);
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.steps[1].data.ended.sort()).toEqual(oldIdle.map((s) => s.pid).sort());
    const all = [...oldIdle, active, inTx, fresh].map((s) => s.pid);
    expect(await alive(all)).toEqual([active.pid, inTx.pid, fresh.pid].sort());
    expect(await walsenders()).toEqual(senders);

    // --in-transaction also ends the idle-in-transaction session.
    const tx = await cli(['db', 'kill-idle', '--idle-for', '3s', '--in-transaction', '--json']);
    expect(tx.code).toBe(0);
    expect(JSON.parse(tx.stdout).steps[1].data.ended).toContain(inTx.pid);
    expect(await alive([inTx.pid])).toEqual([]);
  });

  it('re-checks at the moment of terminating: a listed session that became active is spared', async () => {
    const s = await session('fixture-wakes-up');
    await sleep(1200);
    let connects = 0;
    const r = await cli(['db', 'kill-idle', '--idle-for', '1s', '--json'], {
      clientFactories: tappedFactories(async (e) => {
        if (e === 'pg:connect' && ++connects === 2) {
          void s.client.query('SELECT pg_sleep(1)').catch(() => undefined);
          await until('the session to be active', async () => {
            const c = await db.connect('postgres', 'sandbox-check');
            try {
              return (await c.query(`SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND state = 'active'`, [s.pid])).rowCount === 1;
            } finally {
              await c.end();
            }
          });
        }
      }),
    });
    expect(r.code).toBe(0);
    const data = JSON.parse(r.stdout).steps[1].data;
    expect(data.spared).toContain(s.pid);
    expect(data.ended).not.toContain(s.pid);
    expect(await alive([s.pid])).toEqual([s.pid]);
  });

  it('rejects malformed or absurd durations before contacting anything (exit 2)', async () => {
    for (const bad of ['10x', 'soon', '0s', '-5m']) {
      const r = await cli(['db', 'kill-idle', '--idle-for', bad]);
      expect(r.code, bad).toBe(2);
    }
  });
});

describe('db kill-long-running', () => {
  it('is gated (destructive), ends only queries older than the threshold, and --cancel keeps the session', async () => {
    const long = await session('fixture-long');
    void long.client.query('SELECT pg_sleep(60)').catch(() => undefined);
    await sleep(2300);
    const short = await session('fixture-short');
    // (Re)starts the short query so that it is young when the run looks.
    const young = async () => {
      const c = await db.connect('postgres', 'sandbox-check');
      await c.query('SELECT pg_cancel_backend($1)', [short.pid]);
      await c.end();
      await sleep(50);
      void short.client.query('SELECT pg_sleep(60)').catch(() => undefined);
      await sleep(100);
    };
    await young();

    const before = await sb.fingerprint();
    const noYes = await cli(['db', 'kill-long-running', '--older-than', '2s']);
    expect(noYes.code).toBe(3);
    expect(await sb.fingerprint()).toEqual(before);

    await young();
    const cancel = await cli(['db', 'kill-long-running', '--older-than', '2s', '--cancel', '--yes', '--json']);
    expect(cancel.code).toBe(0);
    expect(JSON.parse(cancel.stdout).steps[1].data).toMatchObject({ how: 'cancel', ended: [long.pid] });
    await sleep(200);
    expect(await alive([long.pid, short.pid])).toEqual([long.pid, short.pid].sort());

    void long.client.query('SELECT pg_sleep(60)').catch(() => undefined);
    await sleep(2300);
    await young();
    const r = await cli(['db', 'kill-long-running', '--older-than', '2s', '--yes', '--json']);
    expect(r.code).toBe(0);
    const ended = JSON.parse(r.stdout).steps[1].data.ended;
    expect(ended).toContain(long.pid);
    expect(ended).not.toContain(short.pid);
    expect(await alive([long.pid])).toEqual([]);
  });
});

describe('db max-connections', () => {
  async function autoConf(): Promise<string | null> {
    const c = await db.connect('postgres', 'sandbox-check');
    try {
      const { rows } = await c.query(`SELECT setting FROM pg_file_settings WHERE name = 'max_connections' AND sourcefile LIKE '%postgresql.auto.conf'`);
      return rows[0]?.setting ?? null;
    } finally {
      await c.end();
    }
  }
  async function reset() {
    const c = await db.connect('postgres', 'sandbox-check');
    await c.query('ALTER SYSTEM RESET max_connections');
    await c.query('SELECT pg_reload_conf()');
    await c.end();
  }

  it('writes the value and says truthfully that it needs a restart, and which command does it', async () => {
    try {
      const r = await cli(['db', 'max-connections', '150']);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(
        /max_connections is still 100; 150 is written to postgresql.auto.conf and takes effect only after a server restart \(pending_restart = true\)/,
      );
      expect(r.stdout).toMatch(/Restart with: runbook db restart/);
      expect(await autoConf()).toBe('150');
    } finally {
      await reset();
    }
  });

  it('dry run and declined gate change nothing; a failed verification puts the previous setting back', async () => {
    const before = await sb.fingerprint();
    expect((await cli(['db', 'max-connections', '150', '--dry-run'])).code).toBe(0);
    expect((await cli(['db', 'max-connections', '150', '--env', 'sandbox-protected'])).code).toBe(3);
    expect(await sb.fingerprint()).toEqual(before);

    // Someone resets the setting between the write and the check: the check fails and the run undoes its write.
    let connects = 0;
    const r = await cli(['db', 'max-connections', '150'], {
      clientFactories: tappedFactories(async (e) => {
        if (e === 'pg:connect' && ++connects === 3) await reset();
      }),
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/does not hold max_connections = 150/);
    expect(r.stderr).toMatch(/✓ undone/);
    expect(await autoConf()).toBeNull();
  });

  it('rejects N outside 1..262143 and non-numbers before contacting anything (exit 2)', async () => {
    for (const bad of ['0', '262144', '-1', '12abc', "100'; DROP TABLE users; --", '1e3']) {
      const r = await cli(['db', 'max-connections', bad]);
      expect(r.code, bad).toBe(2);
    }
    expect(await autoConf()).toBeNull();
  });
});

describe('db slow-queries', () => {
  it('lists statements above the mean from pg_stat_statements, and masks passwords in statement text', async () => {
    const s = await session('fixture-slow');
    for (let i = 0; i < 3; i++) await s.client.query(`SELECT pg_sleep(0.25), 'slow-marker' AS marker`);
    await s.client.query(`CREATE ROLE fixture_role LOGIN PASSWORD 'fixture-secret-pw'`);
    const r = await cli(['db', 'slow-queries', '--min-mean-ms', '200', '--json']);
    expect(r.code).toBe(0);
    const q = JSON.parse(r.stdout).steps[0].data.queries;
    expect(q.find((x: { query: string }) => /slow-marker|AS marker/.test(x.query))).toMatchObject({ calls: 3, user: 'postgres' });
    const all = await cli(['db', 'slow-queries', '--min-mean-ms', '0', '--limit', '1000']);
    expect(all.stdout).toMatch(/CREATE ROLE fixture_role LOGIN PASSWORD '\*\*\*\*'/);
    expect(all.stdout).not.toContain('fixture-secret-pw');
    await s.client.query('DROP ROLE fixture_role');
  });

  it('says clearly when pg_stat_statements is missing (exit 4), and rejects a bad --limit (exit 2)', async () => {
    const env = derivedConfig(sb, (e) => {
      (e.postgres as Record<string, unknown>).url = { env: 'RECOVERED_DATABASE_URL' };
    });
    const r = await cli(['db', 'slow-queries'], { env });
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/pg_stat_statements is not installed/);
    expect(r.stderr).toMatch(/shared_preload_libraries/);
    expect((await cli(['db', 'slow-queries', '--limit', '0'])).code).toBe(2);
  });
});

describe('db locks', () => {
  it('shows the blocked session, its blocker (the root) and their queries', async () => {
    const holder = await session('fixture-holder');
    await holder.client.query('BEGIN');
    await holder.client.query(`UPDATE users SET email = email WHERE id = 1`);
    const waiter = await session('fixture-waiter');
    const waiting = waiter.client.query(`UPDATE users SET email = 'x@example.com' WHERE id = 1`).catch(() => undefined);
    await sleep(200);
    const r = await cli(['db', 'locks', '--json']);
    expect(r.code).toBe(0);
    const data = JSON.parse(r.stdout).steps[0].data;
    expect(data.blocked).toEqual([expect.objectContaining({ pid: waiter.pid, blockedBy: [holder.pid], application: 'fixture-waiter' })]);
    expect(data.blocking).toEqual([expect.objectContaining({ pid: holder.pid, root: true, blocks: 1 })]);
    const text = await cli(['db', 'locks']);
    expect(text.stdout).toMatch(/fixture-holder/);
    expect(text.stdout).toMatch(/UPDATE users SET email = 'x@example.com'/);
    await holder.client.query('ROLLBACK');
    await waiting;
  });
});

describe('db replication-lag', () => {
  async function onReplica(sql: string) {
    const c = new pg.Client({ connectionString: db.pg.replicaUrl, application_name: 'sandbox-check' });
    await c.connect();
    try {
      return await c.query(sql);
    } finally {
      await c.end();
    }
  }

  it('reports a caught-up replica as lag 0 even on an idle primary, with the time since the last replay apart', async () => {
    await sleep(1100);
    const r = await cli(['db', 'replication-lag', '--max-lag-bytes', '1000000', '--max-lag-seconds', '0', '--json']);
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.steps[0].data.standbys).toEqual([expect.objectContaining({ application: 'replica', state: 'streaming', lagBytes: 0 })]);
    const rep = doc.steps[1].data.replicas[0];
    expect(rep).toMatchObject({ name: 'replica', ok: true, caughtUp: true, lagSeconds: 0 });
    expect(rep.secondsSinceLastReplay).toBeGreaterThan(1);
  });

  it('exits 4 over a threshold (real lag: replay paused on the replica) and when a replica is unreachable', async () => {
    await onReplica('SELECT pg_wal_replay_pause()');
    try {
      const w = await db.connect('postgres', 'sandbox-writer');
      await w.query(`INSERT INTO users (email) SELECT 'lag' || g FROM generate_series(1, 2000) g`);
      await w.query(`DELETE FROM users WHERE email LIKE 'lag%'`);
      await w.end();
      await sleep(1100);
      const r = await cli(['db', 'replication-lag', '--max-lag-bytes', '1000', '--max-lag-seconds', '0', '--json']);
      expect(r.code).toBe(4);
      const doc = JSON.parse(r.stdout);
      expect(doc.steps[0].data.standbys[0].lagBytes).toBeGreaterThan(1000);
      expect(doc.steps[1].data.replicas[0]).toMatchObject({ caughtUp: false });
      expect(doc.steps[1].data.replicas[0].lagSeconds).toBeGreaterThan(0);
      expect(doc.error.message).toMatch(/replication check failed: standby replica is \d+ bytes behind \(limit 1000\); replica is .* behind \(limit 0s\)/);
      // Without thresholds the same lag is reported but is not a failure.
      expect((await cli(['db', 'replication-lag'])).code).toBe(0);
    } finally {
      await onReplica('SELECT pg_wal_replay_resume()');
    }
    const closed = await freePort();
    const down = await cli(['db', 'replication-lag'], { env: { REPLICA_DATABASE_URL: `postgres://postgres:${db.pg.password}@127.0.0.1:${closed}/postgres` } });
    expect(down.code).toBe(4);
    expect(down.stderr).toMatch(/replica: cannot connect to PostgreSQL at 127\.0\.0\.1:\d+/);
  });
});

describe('secrets', () => {
  it('no password from a URL appears in any output or journal line', () => {
    const everything = outputs.join('\n') + journalText(journal);
    expect(everything.length).toBeGreaterThan(1000);
    expect(everything).not.toContain(db.pg.password);
  });
});
