// `cache flush` against a real redis-server and a real 3-master cluster: the count (or the estimate
// from a bounded sample), the gate, the streamed SCAN + UNLINK as the only full pass, the
// verification, keys written during the pass, --all behind its severe gate, bad input, and a
// connection killed mid-flush (exit 1 with the partial count; a second run finishes).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cluster } from 'ioredis';
import { runCli } from '../../support/cli.js';
import { writeConfig } from '../../support/config.js';
import type { ScriptedPrompter } from '../../support/prompter.js';
import { redisCommands, startRedis, startRedisCluster, type RedisClusterService, type RedisService } from '../../support/services/index.js';

let redis: RedisService;
let cluster: RedisClusterService;

beforeAll(async () => {
  [redis, cluster] = await Promise.all([startRedis(), startRedisCluster()]);
}, 60_000);
afterAll(async () => {
  await Promise.all([redis?.stop(), cluster?.stop()]);
});

const LOADER = `for i = tonumber(ARGV[2]), tonumber(ARGV[3]) do redis.call('SET', ARGV[1] .. i, 'v') end return 1`;
const COUNT = `local c, n = '0', 0 repeat local r = redis.call('SCAN', c, 'MATCH', ARGV[1], 'COUNT', 1000) c = r[1] n = n + #r[2] until c == '0' return n`;

async function cmd(...args: string[]): Promise<unknown> {
  const [r] = await redisCommands(redis.port, [args], { timeoutMs: 10_000 });
  if (r instanceof Error) throw r;
  return r;
}
async function load(db: number, prefix: string, n: number): Promise<void> {
  for (let s = 1; s <= n; s += 100_000)
    await redisCommands(
      redis.port,
      [
        ['SELECT', String(db)],
        ['EVAL', LOADER, '0', prefix, String(s), String(Math.min(n, s + 99_999))],
      ],
      { timeoutMs: 20_000 },
    );
}
async function matching(db: number, pattern: string): Promise<number> {
  const [, n] = await redisCommands(
    redis.port,
    [
      ['SELECT', String(db)],
      ['EVAL', COUNT, '0', pattern],
    ],
    { timeoutMs: 20_000 },
  );
  return n as number;
}
async function dbsize(db: number): Promise<number> {
  const [, n] = await redisCommands(redis.port, [['SELECT', String(db)], ['DBSIZE']]);
  return n as number;
}
/** SCAN commands the server has run so far (those inside scripts included). */
async function scanCalls(): Promise<number> {
  const info = String(await cmd('INFO', 'commandstats'));
  return Number(/^cmdstat_scan:calls=(\d+)/m.exec(info)?.[1] ?? 0);
}
const num = (s: string) => Number(s.replace(/,/g, ''));

/** A config whose environments point at database `db` of the test server. */
function config(db: number) {
  const redisSection = { url: `redis://127.0.0.1:${redis.port}/${db}` };
  return writeConfig({
    default: 'staging',
    environments: { staging: { redis: redisSection }, production: { protected: true, redis: redisSection } },
  }).dir;
}

function steps(stdout: string): Record<string, { status: string; data?: Record<string, unknown>; changes?: Array<Record<string, string>> }> {
  const doc = JSON.parse(stdout) as { steps: Array<{ id: string; status: string; data?: Record<string, unknown>; changes?: Array<Record<string, string>> }> };
  return Object.fromEntries(doc.steps.map((s) => [s.id, s]));
}

describe('cache flush --pattern', () => {
  it('counts, deletes exactly the matching keys, verifies, and reports { matched, deleted }', async () => {
    await cmd('SELECT', '0');
    await load(1, 'user:', 3000);
    await load(1, 'other:', 2000);
    const r = await runCli(['cache', 'flush', '--pattern', 'user:*', '--yes', '--json'], { cwd: config(1) });
    expect(r.code, r.stderr).toBe(0);
    const s = steps(r.stdout);
    expect(s.count.data).toMatchObject({ matched: 3000 });
    expect(s.unlink.data).toMatchObject({ matched: 3000, deleted: 3000 });
    expect(s.verify.data).toMatchObject({ remaining: 0 });
    expect(await matching(1, 'user:*')).toBe(0);
    expect(await dbsize(1)).toBe(2000);
    expect(r.stderr).toMatch(/redis 127\.0\.0\.1:\d+/); // the target banner
  });

  it('prints a table by default and shows progress lines without a terminal', async () => {
    await load(2, 'user:', 1500);
    const r = await runCli(['cache', 'flush', '--pattern', 'user:*', '--yes'], { cwd: config(2) });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/keys matching 'user:\*'\s+1,500\s+1,500\s+0/);
    expect(r.stderr).toMatch(/deleted 1,500 keys in/);
    expect(r.stderr).not.toMatch(/\r/);
  });

  it('--dry-run shows the count and deletes nothing', async () => {
    await load(3, 'user:', 1234);
    await load(3, 'keep:', 10);
    const r = await runCli(['cache', 'flush', '--pattern', 'user:*', '--dry-run', '--json'], { cwd: config(3) });
    expect(r.code, r.stderr).toBe(0);
    const s = steps(r.stdout);
    expect(s.count.data).toMatchObject({ matched: 1234 });
    expect(s.unlink.status).toBe('planned');
    expect(s.unlink.changes?.[0]).toMatchObject({ before: '1,234 keys', after: '0 keys' });
    expect(r.stderr).toContain('DRY RUN');
    expect(await dbsize(3)).toBe(1244);
  });

  it('without a terminal and without --yes it fails closed (exit 3) and deletes nothing', async () => {
    await load(4, 'user:', 500);
    const r = await runCli(['cache', 'flush', '--pattern', 'user:*'], { cwd: config(4) });
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/--yes/);
    expect(await dbsize(4)).toBe(500);
  });

  it('a declined prompt exits 3 and deletes nothing', async () => {
    const r = await runCli(['cache', 'flush', '--pattern', 'user:*'], { cwd: config(4), tty: true, answers: [false] });
    expect(r.code, r.stderr).toBe(3);
    expect(await dbsize(4)).toBe(500);
  });

  it('a protected environment needs the typed confirmation', async () => {
    const dir = config(4);
    const noConfirm = await runCli(['cache', 'flush', '--pattern', 'user:*', '--env', 'production', '--yes'], { cwd: dir });
    expect(noConfirm.code).toBe(3);
    expect(noConfirm.stderr).toMatch(/--confirm production/);
    const typed = await runCli(['cache', 'flush', '--pattern', 'user:*', '--env', 'production'], { cwd: dir, tty: true, answers: ['production'] });
    expect(typed.code, typed.stderr).toBe(0);
    expect(await dbsize(4)).toBe(0);
  });

  it('skips the deletion when nothing matches', async () => {
    const r = await runCli(['cache', 'flush', '--pattern', 'nothing:*', '--yes', '--json'], { cwd: config(5) });
    expect(r.code, r.stderr).toBe(0);
    expect(steps(r.stdout).unlink.status).toBe('skipped');
  });

  it.each([
    [['--pattern', '*'], /matches every key[\s\S]*--all/],
    [['--pattern', '**'], /matches every key/],
    [['--pattern', ''], /must not be empty[\s\S]*--all/],
    [['--pattern', 'user:[abc'], /unclosed \[/],
    [['--pattern', 'user:\\'], /lone backslash/],
    [['--pattern', 'user:*', '--all'], /cannot be combined/],
    [[], /needs --pattern <glob> or --all/],
  ])('rejects %j with exit 2 before contacting Redis', async (args, message) => {
    await load(6, 'user:', 10);
    const r = await runCli(['cache', 'flush', ...args, '--yes'], { cwd: config(6) });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(await dbsize(6)).toBe(10);
  });

  it('a connection killed mid-flush exits 1 with the count deleted so far; running again finishes', async () => {
    const total = 400_000;
    await load(7, 'user:', total);
    await load(7, 'keep:', 100);
    const dir = config(7);
    const run = runCli(['cache', 'flush', '--pattern', 'user:*', '--yes'], { cwd: dir });
    // Wait until the deletion is under way, then kill every other client (ours included).
    const t0 = Date.now();
    while ((await dbsize(7)) === total + 100) {
      if (Date.now() - t0 > 20_000) throw new Error('the flush never started deleting');
      await new Promise((r) => setTimeout(r, 2));
    }
    await cmd('CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes');
    const r = await run;
    expect(r.code, r.stderr).toBe(1);
    const m = /stopped after deleting ([\d,]+) of 400,000 matching keys/.exec(r.stderr);
    expect(m, r.stderr).not.toBeNull();
    const reported = Number(m![1].replace(/,/g, ''));
    const left = await matching(7, 'user:*');
    expect(left).toBeGreaterThan(0);
    // At most the batches in flight when the connection dropped went unreported.
    expect(reported).toBeLessThanOrEqual(total - left);
    expect(reported).toBeGreaterThan(0);
    expect(r.stderr).toMatch(/run the same command again/);
    expect(r.stderr).not.toMatch(/\n\s+at /);

    const again = await runCli(['cache', 'flush', '--pattern', 'user:*', '--yes', '--json'], { cwd: dir });
    expect(again.code, again.stderr).toBe(0);
    expect(steps(again.stdout).unlink.data).toMatchObject({ matched: left, deleted: left });
    expect(await matching(7, 'user:*')).toBe(0);
    expect(await dbsize(7)).toBe(100);
  }, 60_000);
});

describe('cache flush --pattern in one pass', () => {
  it('--yes deletes in one full pass (a bounded sample first, no counting pass) and reports the exact count', async () => {
    await load(9, 'user:', 150_000);
    await load(9, 'other:', 50_000);
    const dir = config(9);
    // What one full pass costs: a dry run counts every key, as before.
    const s0 = await scanCalls();
    const dry = await runCli(['cache', 'flush', '--pattern', 'user:*', '--dry-run', '--json'], { cwd: dir });
    expect(dry.code, dry.stderr).toBe(0);
    expect(steps(dry.stdout).count.data).toMatchObject({ matched: 150_000 });
    const s1 = await scanCalls();
    const onePass = s1 - s0;

    const r = await runCli(['cache', 'flush', '--pattern', 'user:*', '--yes', '--json'], { cwd: dir });
    expect(r.code, r.stderr).toBe(0);
    const used = (await scanCalls()) - s1;
    // The old flow counted, then deleted: two passes. Now one, plus a sample of 10,000 of 200,000 keys.
    expect(used, `${used} SCANs for --yes, ${onePass} for one counting pass`).toBeLessThan(onePass * 1.3);
    expect(used).toBeGreaterThan(onePass * 0.7);
    const s = steps(r.stdout);
    const c = s.count.data as { matched: number | null; estimate: { keys: number; sampled: number; of: number } };
    expect(c.matched).toBeNull();
    expect(c.estimate).toMatchObject({ sampled: expect.any(Number), of: 200_000 });
    expect(c.estimate.sampled).toBeGreaterThanOrEqual(10_000);
    expect(c.estimate.sampled).toBeLessThan(12_000);
    expect(Math.abs(c.estimate.keys - 150_000) / 150_000).toBeLessThan(0.1);
    expect(s.unlink.data).toMatchObject({ matched: 150_000, deleted: 150_000, estimated: c.estimate.keys, undisturbed: true });
    expect(s.verify.data).toEqual({ remaining: 0, method: 'write counter' });
    expect(await matching(9, 'user:*')).toBe(0);
    expect(await dbsize(9)).toBe(50_000);
  }, 60_000);

  it('on a terminal the prompt shows an estimate labelled as one, and the end the exact count deleted', async () => {
    await load(10, 'user:', 60_000);
    await load(10, 'other:', 20_000);
    const r = await runCli(['cache', 'flush', '--pattern', 'user:*'], { cwd: config(10), tty: true, answers: [true] });
    expect(r.code, r.stderr).toBe(0);
    expect((r.prompter as ScriptedPrompter).asked).toEqual(['Delete the matching keys (SCAN + UNLINK) in staging?']);
    const gate =
      /delete keys matching 'user:\*' in db 10 at 127\.0\.0\.1:\d+: about ([\d,]+) keys \(estimate from a sample of ([\d,]+) of 80,000 keys\) → 0 keys/.exec(
        r.stderr,
      );
    expect(gate, r.stderr).not.toBeNull();
    expect(Math.abs(num(gate![1]) - 60_000)).toBeLessThanOrEqual(6_000);
    expect(num(gate![2])).toBeGreaterThanOrEqual(10_000);
    expect(r.stderr).toMatch(/deleted 60,000 keys in .*: the exact count \(the estimate was about [\d,]+ keys\)/);
    expect(r.stdout).toMatch(/keys matching 'user:\*'\s+60,000\s+60,000\s+0/);
    expect(await matching(10, 'user:*')).toBe(0);
    expect(await dbsize(10)).toBe(20_000);
  }, 60_000);

  it('a key written during the pass is neither lost nor miscounted: deleted and counted, or found again by the verification', async () => {
    const total = 400_000;
    await load(11, 'user:', total);
    await load(11, 'keep:', 100);
    const run = runCli(['cache', 'flush', '--pattern', 'user:*', '--yes', '--json'], { cwd: config(11) });
    let ended = false;
    void run.then(() => (ended = true));
    const t0 = Date.now();
    while ((await dbsize(11)) === total + 100) {
      if (Date.now() - t0 > 20_000) throw new Error('the flush never started deleting');
      await new Promise((r) => setTimeout(r, 2));
    }
    // Another client writes 500 keys that match and 500 that do not, while the pass runs.
    await redisCommands(
      redis.port,
      [
        ['SELECT', '11'],
        ['EVAL', LOADER, '0', 'user:late:', '1', '500'],
        ['EVAL', LOADER, '0', 'keep:late:', '1', '500'],
      ],
      { timeoutMs: 10_000 },
    );
    expect(ended, 'the flush ended before the other client wrote').toBe(false);
    const r = await run;
    expect(r.code, r.stderr).toBe(0);
    const s = steps(r.stdout);
    const u = s.unlink.data as { deleted: number; matched: number; undisturbed: boolean };
    const v = s.verify.data as { remaining: number; method: string };
    // The server saw other writes during the pass: the verification scans instead of trusting the counter.
    expect(u.undisturbed).toBe(false);
    expect(v.method).toBe('scan');
    // No key that does not match went, and every matching key is accounted for exactly once.
    expect(await matching(11, 'keep:*')).toBe(600);
    expect(u.deleted + v.remaining).toBe(total + 500);
    expect(u.matched).toBe(u.deleted);
    expect(await matching(11, 'user:*')).toBe(v.remaining);
    expect(await dbsize(11)).toBe(600 + v.remaining);
    if (v.remaining > 0) expect(r.stderr).toMatch(new RegExp(`${v.remaining.toLocaleString('en-US')} keys match 'user:\\*' again`));
  }, 60_000);
});

describe('cache flush --all', () => {
  it('needs the typed confirmation even outside a protected environment, and shows the key count first', async () => {
    await load(8, 'a:', 300);
    const dir = config(8);
    const yesOnly = await runCli(['cache', 'flush', '--all', '--yes'], { cwd: dir });
    expect(yesOnly.code).toBe(3);
    expect(yesOnly.stderr).toMatch(/--confirm staging/);
    const wrong = await runCli(['cache', 'flush', '--all'], { cwd: dir, tty: true, answers: ['prod', 'prod', 'prod'] });
    expect(wrong.code).toBe(3);
    expect(wrong.stderr).toMatch(/300 keys → 0 keys/);
    expect(await dbsize(8)).toBe(300);
    const ok = await runCli(['cache', 'flush', '--all', '--yes', '--confirm', 'staging', '--json'], { cwd: dir });
    expect(ok.code, ok.stderr).toBe(0);
    const s = steps(ok.stdout);
    expect(s.flushdb.data).toEqual({ matched: 300, deleted: 300 });
    expect(s['verify-empty'].data).toEqual({ remaining: 0 });
    expect(await dbsize(8)).toBe(0);
    expect(await dbsize(1)).toBe(2000); // other databases untouched
  });
});

describe('cache flush on a Redis Cluster', () => {
  it('scans every master and deletes the matching keys on all of them', async () => {
    const c = new Cluster(cluster.nodes, { lazyConnect: true });
    await c.connect();
    try {
      await Promise.all([
        ...Array.from({ length: 1500 }, (_, i) => c.set(`user:${i}`, 'v')),
        ...Array.from({ length: 700 }, (_, i) => c.set(`keep:${i}`, 'v')),
      ]);
      const perNode = await Promise.all(c.nodes('master').map((n) => n.dbsize()));
      expect(perNode.filter((n) => n > 0).length).toBe(3); // keys on every master

      const dir = writeConfig({ default: 'cl', environments: { cl: { redis: { nodes: cluster.nodes.map((n) => `${n.host}:${n.port}`) } } } }).dir;
      const dry = await runCli(['cache', 'flush', '--pattern', 'user:*', '--dry-run', '--json'], { cwd: dir });
      expect(dry.code, dry.stderr).toBe(0);
      expect(steps(dry.stdout).count.data).toMatchObject({ matched: 1500 });
      expect(dry.stderr).toMatch(/redis cluster 127\.0\.0\.1:\d+/);

      const r = await runCli(['cache', 'flush', '--pattern', 'user:*', '--yes', '--json'], { cwd: dir });
      expect(r.code, r.stderr).toBe(0);
      const s = steps(r.stdout);
      expect(s.unlink.data).toMatchObject({ matched: 1500, deleted: 1500 });
      expect((s.count.data as { perNode: unknown[] }).perNode).toHaveLength(3);
      expect(s.verify.data).toMatchObject({ remaining: 0 });
      const left = await Promise.all(c.nodes('master').map((n) => n.dbsize()));
      expect(left.reduce((a, b) => a + b, 0)).toBe(700);
    } finally {
      c.disconnect();
    }
  });

  it('with more keys than the sample: estimates, then deletes on every master in parallel with the exact count', async () => {
    const c = new Cluster(cluster.nodes, { lazyConnect: true, enableAutoPipelining: true });
    await c.connect();
    try {
      for (let s = 0; s < 36_000; s += 6_000) await Promise.all(Array.from({ length: 6_000 }, (_, i) => c.set(`bulk:${s + i}`, 'v')));
      await Promise.all(Array.from({ length: 12_000 }, (_, i) => c.set(`stay:${i}`, 'v')));
      const masters = c.nodes('master');
      const before = await Promise.all(masters.map((n) => n.dbsize()));
      expect(before.every((n) => n > 10_000)).toBe(true); // each master has more than its sample looks at

      const dir = writeConfig({ default: 'cl', environments: { cl: { redis: { nodes: cluster.nodes.map((n) => `${n.host}:${n.port}`) } } } }).dir;
      const r = await runCli(['cache', 'flush', '--pattern', 'bulk:*', '--yes', '--json'], { cwd: dir });
      expect(r.code, r.stderr).toBe(0);
      const s = steps(r.stdout);
      const count = s.count.data as { matched: number | null; estimate: { keys: number }; perNode: Array<{ n: number; estimated?: boolean }> };
      expect(count.matched).toBeNull();
      expect(count.perNode).toHaveLength(3);
      expect(count.perNode.every((p) => p.estimated)).toBe(true);
      expect(Math.abs(count.estimate.keys - 36_000) / 36_000).toBeLessThan(0.1);
      const u = s.unlink.data as { matched: number; deleted: number; perNode: Array<{ node: string; n: number }> };
      expect(u).toMatchObject({ matched: 36_000, deleted: 36_000 });
      expect(u.perNode).toHaveLength(3);
      expect(u.perNode.every((p) => p.n > 0)).toBe(true); // deleted on every master
      expect(u.perNode.reduce((a, p) => a + p.n, 0)).toBe(36_000);
      expect(s.verify.data).toMatchObject({ remaining: 0 });
      for (const n of cluster.nodes) {
        const [left] = await redisCommands(n.port, [['EVAL', COUNT, '0', 'bulk:*']], { timeoutMs: 20_000 });
        expect(left).toBe(0);
      }
      const after = await Promise.all(masters.map((n) => n.dbsize()));
      expect(after.reduce((a, b) => a + b, 0)).toBe(700 + 12_000);
    } finally {
      c.disconnect();
    }
  }, 60_000);
});
