// The cache procedures over an in-memory Redis fake: pattern checks, lane arithmetic, the flush's
// count → gate → delete → verify flow, partial failures, progress, --all, stats parsing, warming's
// bounded parallelism. The real server is exercised in the *.int.test.ts files beside this one.
import { describe, expect, it } from 'vitest';
import type { ClientFactories, RedisClient, RedisNode } from '../../../src/clients/index.js';
import type { SampleBatch, ScanBatch, ScanLane, ScanOp } from '../../../src/clients/redis.js';
import { fetchHttpClient } from '../../../src/clients/http.js';
import type { StepContext } from '../../../src/core/procedure.js';
import { checkPattern } from '../../../src/procedures/cache/flush.js';
import { boundedMap } from '../../../src/procedures/cache/warm.js';
import { nodeStats, readStats } from '../../../src/procedures/cache/redis-stats.js';
import {
  PartialPassError,
  Progress,
  SAMPLE_KEYS,
  lanes,
  roundEstimate,
  samplePass,
  scanPass,
  summarizeSample,
  undisturbed,
} from '../../../src/procedures/cache/scan.js';
import { runCli } from '../../support/cli.js';
import { writeConfig } from '../../support/config.js';
import type { ScriptedPrompter } from '../../support/prompter.js';

const glob = (p: string) =>
  new RegExp(
    `^${p
      .replace(/[.+^${}()|\\]/g, '\\$&')
      .replace(/\*/g, '.*')
      .replace(/\?/g, '.')}$`,
  );

/** One server: keys in insertion order, a cursor that is index + 1 ('0' starts and ends), 10 keys per call. */
class FakeNode implements RedisNode {
  keys: string[] = [];
  calls = 0;
  deleted = 0;
  flushes = 0;
  dirty = 0;
  failAfterCalls = Infinity;
  /** Writes another client makes during each call (breaks the write-counter proof). */
  foreignWritesPerCall = 0;

  constructor(
    readonly label: string,
    keys: string[],
  ) {
    this.keys = [...keys];
  }

  /** Calls by kind: the sample, counting and deleting passes. */
  readonly callsBy: Record<ScanOp | 'sample', number> = { sample: 0, count: 0, unlink: 0 };

  private call(kind: ScanOp | 'sample'): void {
    this.callsBy[kind]++;
    if (++this.calls > this.failAfterCalls) throw new Error(`the connection to Redis at ${this.label} was closed`);
    for (let i = 0; i < this.foreignWritesPerCall; i++) {
      this.keys.push(`user:late${this.calls}-${i}`);
      this.dirty++;
    }
  }

  /** Like the real script, a sample call looks at up to `limit` keys (1,000 at most here: its time budget). */
  async sampleBatch(cursor: string, pattern: string, _budgetUs: number, limit: number): Promise<SampleBatch> {
    this.call('sample');
    const start = cursor === '0' ? 0 : Number(cursor) - 1;
    const slice = this.keys.slice(start, start + Math.min(limit, 1000));
    const next = start + slice.length;
    return { cursor: next >= this.keys.length ? '0' : String(next + 1), n: slice.filter((k) => glob(pattern).test(k)).length, seen: slice.length };
  }

  async scanBatch(op: ScanOp, cursor: string, pattern: string, _budgetUs: number, lane?: ScanLane): Promise<ScanBatch> {
    expect(lane?.k ?? 1).toBe(1); // the fake's cursor is no bucket index: it asks for one lane
    this.call(op);
    const re = glob(pattern);
    const start = cursor === '0' ? 0 : Number(cursor) - 1;
    const slice = this.keys.slice(start, start + 10);
    const hits = slice.filter((k) => re.test(k));
    let next = start + 10;
    if (op === 'unlink') {
      this.keys = this.keys.filter((k) => !hits.includes(k));
      next -= hits.length;
      this.deleted += hits.length;
      this.dirty += hits.length;
    }
    return { cursor: next >= this.keys.length ? '0' : String(next + 1), n: hits.length };
  }
  async info(section?: string): Promise<Record<string, string>> {
    if (section === 'persistence') return { rdb_changes_since_last_save: String(this.dirty), rdb_last_save_time: '1' };
    return {
      keyspace_hits: '30',
      keyspace_misses: '10',
      used_memory: '1000',
      used_memory_peak: '2000',
      evicted_keys: '1',
      expired_keys: '2',
      instantaneous_ops_per_sec: '5',
      db0: `keys=${this.keys.length},expires=0,avg_ttl=0`,
    };
  }
  async dbsize(): Promise<number> {
    return this.keys.length;
  }
  async flushAsync(): Promise<number> {
    this.flushes++;
    const n = this.keys.length;
    this.keys = [];
    this.deleted += n;
    return n;
  }
}

function fakeRedis(nodes: FakeNode[]): { client: RedisClient; factories: ClientFactories } {
  const client: RedisClient = { target: 'fake:6379/0', cluster: nodes.length > 1, db: 0, scanLanes: 1, masters: () => nodes, close: async () => undefined };
  return { client, factories: { kube: () => Promise.reject(new Error('no kube here')), http: fetchHttpClient, redis: async () => client } };
}

const keys = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}:${i}`);
/** `user` matching keys and `other` others, evenly interleaved (as a hash table mixes them). */
const mixed = (user: number, other: number) =>
  Array.from({ length: user + other }, (_, i) =>
    Math.floor(((i + 1) * user) / (user + other)) > Math.floor((i * user) / (user + other)) ? `user:${i}` : `other:${i}`,
  );
const dir = writeConfig({
  default: 'staging',
  environments: { staging: { redis: { url: 'redis://fake:6379' } }, production: { protected: true, redis: { url: 'redis://fake:6379' } } },
}).dir;

function setup(nodes = [new FakeNode('fake:6379', [...keys('user', 95), ...keys('other', 40)])]) {
  const { factories } = fakeRedis(nodes);
  const run = (argv: string[], extra: Parameters<typeof runCli>[1] = {}) => runCli(['cache', ...argv], { cwd: dir, clientFactories: factories, ...extra });
  return { nodes, run };
}
const dataOf = (stdout: string, id: string) =>
  (JSON.parse(stdout) as { steps: Array<{ id: string; data: unknown }> }).steps.find((s) => s.id === id)?.data as Record<string, unknown>;

describe('checkPattern', () => {
  it.each(['user:*', 'user:?', 'user:[0-9]*', 'a\\*b', 'user:[^x]*', 'sess ion:*', '*:suffix'])('accepts %j', (p) => {
    expect(checkPattern(p)).toBe(p);
  });
  it.each([
    ['', /must not be empty/],
    ['   ', /must not be empty/],
    ['*', /matches every key/],
    ['***', /matches every key/],
    ['user:[abc', /unclosed \[/],
    ['user:[]', /empty \[\]/],
    ['user:\\', /lone backslash/],
    ['user:\n*', /control character/],
  ])('refuses %j', (p, msg) => {
    expect(() => checkPattern(p)).toThrow(msg);
  });
  it('points a match-everything pattern at --all', () => {
    try {
      checkPattern('*');
    } catch (err) {
      expect((err as { hint?: string }).hint).toMatch(/--all/);
      expect((err as { exitCode: number }).exitCode).toBe(2);
    }
  });
});

describe('SCAN lanes', () => {
  it('splits the cursor space by its reversed low bits', () => {
    expect(lanes(1)).toEqual([{ k: 1, low: 0, start: '0', boundary: '0' }]);
    expect(lanes(2).map((l) => [l.start, l.boundary])).toEqual([
      ['0', '1'],
      ['1', '0'],
    ]);
    expect(lanes(4).map((l) => [l.start, l.boundary])).toEqual([
      ['0', '2'],
      ['2', '1'],
      ['1', '3'],
      ['3', '0'],
    ]);
    expect(lanes(4).map((l) => l.low)).toEqual([0, 2, 1, 3]);
  });
});

describe('scanPass', () => {
  it('counts and deletes over every master, and says how far it got when one fails', async () => {
    const a = new FakeNode('a:1', [...keys('user', 30), ...keys('x', 5)]);
    const b = new FakeNode('b:1', keys('user', 12));
    const sig = new AbortController().signal;
    expect((await scanPass([a, b], 'count', 'user:*', { signal: sig })).perNode).toEqual([
      { node: 'a:1', n: 30 },
      { node: 'b:1', n: 12 },
    ]);
    b.failAfterCalls = b.calls + 1;
    const err = await scanPass([a, b], 'unlink', 'user:*', { signal: sig }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PartialPassError);
    expect((err as PartialPassError).done).toBe(a.deleted + b.deleted);
    expect(b.deleted).toBe(10);
  });

  it('stops at an interrupt', async () => {
    const ac = new AbortController();
    ac.abort(new Error('interrupted'));
    await expect(scanPass([new FakeNode('a', keys('user', 5))], 'unlink', 'user:*', { signal: ac.signal })).rejects.toThrow(PartialPassError);
  });
});

describe('samplePass and its estimate', () => {
  const sig = new AbortController().signal;

  it('is an exact count when the sample goes through the whole keyspace', async () => {
    const a = new FakeNode('a:1', [...keys('user', 30), ...keys('x', 5)]);
    const s = summarizeSample(await samplePass([a], 'user:*', { signal: sig }));
    expect(s).toMatchObject({ exact: 30, of: 35, perNode: [{ node: 'a:1', n: 30 }] });
    expect(s.estimate).toBeUndefined();
    expect(a.callsBy).toEqual({ sample: 1, count: 0, unlink: 0 });
  });

  it('scales what it saw by DBSIZE otherwise, looking at no more than SAMPLE_KEYS keys per master', async () => {
    const a = new FakeNode('a:1', mixed(15_000, 5_000));
    const b = new FakeNode('b:1', keys('user', 100));
    const s = summarizeSample(await samplePass([a, b], 'user:*', { signal: sig }));
    expect(s.exact).toBeUndefined();
    expect(s.sampled).toBe(SAMPLE_KEYS + 100);
    expect(s.of).toBe(20_100);
    expect(s.estimate! / 15_100).toBeGreaterThan(0.95);
    expect(s.estimate! / 15_100).toBeLessThan(1.05);
    expect(s.perNode).toEqual([
      { node: 'a:1', n: expect.any(Number), estimated: true },
      { node: 'b:1', n: 100 },
    ]);
    expect(a.callsBy.sample).toBe(SAMPLE_KEYS / 1000);
  });

  it('says when a sample could not be scaled up (the two SCANs went different ways)', () => {
    const s = summarizeSample([{ node: 'a', matched: 40, seen: -1, dbsize: 1e6, complete: false }]);
    expect(s).toMatchObject({ estimate: 40, atLeast: true });
  });

  it('rounds an estimate to two significant digits', () => {
    expect([roundEstimate(42), roundEstimate(123_456), roundEstimate(499_960), roundEstimate(0)]).toEqual([42, 120_000, 500_000, 0]);
  });
});

describe('undisturbed', () => {
  const c = (dirty: number, dbsize: number, lastSave = '1') => ({ node: 'n', dirty, dbsize, lastSave });
  it('holds only when our deletions are the only writes', () => {
    expect(undisturbed(c(10, 100), c(40, 70), 30)).toBe(true);
    expect(undisturbed(c(10, 100), c(41, 71), 30)).toBe(false); // someone wrote a key
    expect(undisturbed(c(10, 100), c(40, 69), 30)).toBe(false); // a key expired or was evicted
    expect(undisturbed(c(10, 100), c(40, 70, '2'), 30)).toBe(false); // a save reset the counter
    expect(undisturbed(null, c(40, 70), 30)).toBe(false);
  });
});

describe('cache flush --pattern (fake Redis)', () => {
  it('deletes only the matching keys and proves none is left from the write counter', async () => {
    const { nodes, run } = setup();
    const r = await run(['flush', '--pattern', 'user:*', '--yes', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(dataOf(r.stdout, 'unlink')).toMatchObject({ matched: 95, deleted: 95, undisturbed: true });
    expect(dataOf(r.stdout, 'verify')).toEqual({ remaining: 0, method: 'write counter' });
    expect(nodes[0].keys).toEqual(keys('other', 40));
  });

  it('scans again to verify when another client wrote, and reports what matches again', async () => {
    const { nodes, run } = setup();
    nodes[0].foreignWritesPerCall = 1;
    const r = await run(['flush', '--pattern', 'user:*', '--yes', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const v = dataOf(r.stdout, 'verify');
    expect(v.method).toBe('scan');
    expect(v.remaining).toBeGreaterThan(0);
    expect(r.stderr).toMatch(/keys match 'user:\*' again/);
  });

  it('--yes deletes in one pass: a bounded sample, no counting pass, the exact count at the end', async () => {
    const node = new FakeNode('fake:6379', mixed(9_000, 3_000));
    const { run } = setup([node]);
    const r = await run(['flush', '--pattern', 'user:*', '--yes', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(node.callsBy.count).toBe(0);
    expect(node.callsBy.sample).toBe(SAMPLE_KEYS / 1000);
    const c = dataOf(r.stdout, 'count');
    expect(c.matched).toBeNull();
    expect((c.estimate as { sampled: number; of: number }).sampled).toBe(SAMPLE_KEYS);
    expect(dataOf(r.stdout, 'unlink')).toMatchObject({
      matched: 9_000,
      deleted: 9_000,
      estimated: c.estimate && (c.estimate as { keys: number }).keys,
      undisturbed: true,
    });
    expect(node.keys.length).toBe(3_000);
    expect(r.stderr).toMatch(
      /delete keys matching 'user:\*' in db 0 at fake:6379: about [\d,]+ keys \(estimate from a sample of 10,000 of 12,000 keys\) → 0 keys/,
    );
  });

  it('on a terminal the gate shows the estimate, labelled, and the end the exact count', async () => {
    const node = new FakeNode('fake:6379', mixed(9_000, 3_000));
    const { run } = setup([node]);
    const r = await run(['flush', '--pattern', 'user:*'], { tty: true, answers: [true] });
    expect(r.code, r.stderr).toBe(0);
    expect((r.prompter as ScriptedPrompter).asked).toEqual(['Delete the matching keys (SCAN + UNLINK) in staging?']);
    const shown = /: about ([\d,]+) keys \(estimate from a sample of 10,000 of 12,000 keys\) → 0 keys/.exec(r.stderr);
    expect(shown, r.stderr).not.toBeNull();
    const estimate = Number(shown![1].replace(/,/g, ''));
    expect(estimate).toBeGreaterThan(8_000);
    expect(estimate).toBeLessThan(10_000);
    expect(r.stderr).toMatch(/deleted [\d,]+ of about [\d,]+ \(\d+%\) keys/);
    expect(r.stderr).toMatch(/deleted 9,000 keys in .*: the exact count \(the estimate was about [\d,]+ keys\)/);
    expect(r.stdout).toMatch(/keys matching 'user:\*'\s+9,000\s+9,000\s+0/);
    expect(node.callsBy.count).toBe(0);
  });

  it('a failure mid-way after an estimate says the total was one', async () => {
    const node = new FakeNode('fake:6379', mixed(9_000, 3_000));
    const { run } = setup([node]);
    node.failAfterCalls = SAMPLE_KEYS / 1000 + 5;
    const r = await run(['flush', '--pattern', 'user:*', '--yes']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/stopped after deleting [\d,]+ of [\d,]+ matching keys \(that total is an estimate from a sample\): the connection/);
  });

  it('--dry-run counts and changes nothing', async () => {
    const { nodes, run } = setup();
    const r = await run(['flush', '--pattern', 'user:*', '--dry-run']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/would delete keys matching 'user:\*' in db 0 at fake:6379: 95 keys → 0 keys/);
    expect(nodes[0].deleted).toBe(0);
    expect(nodes[0].callsBy.sample).toBe(0); // a dry run counts every key, as before
  });

  it('a declined gate exits 3 and deletes nothing', async () => {
    const { nodes, run } = setup();
    const r = await run(['flush', '--pattern', 'user:*'], { tty: true, answers: [false] });
    expect(r.code).toBe(3);
    expect(nodes[0].deleted).toBe(0);
  });

  it('a failure mid-way exits 1 with the count deleted so far', async () => {
    const { nodes, run } = setup();
    nodes[0].failAfterCalls = 1 + 3; // 1 call to sample (all 135 keys: an exact count), then 3 deleting batches
    const r = await run(['flush', '--pattern', 'user:*', '--yes']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/stopped after deleting 30 of 95 matching keys: the connection to Redis at fake:6379 was closed/);
    expect(r.stderr).toMatch(/run the same command again/);
    expect(nodes[0].deleted).toBe(30);
  });

  it('shows progress on a terminal and clears it afterwards; none with --quiet', async () => {
    const { run } = setup([new FakeNode('fake:6379', keys('user', 3000))]);
    const r = await run(['flush', '--pattern', 'user:*', '--yes'], { tty: true });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/\r\u001b\[2K {6}deleted [\d,]+ of 3,000 \(\d+%\) keys · [\d,]+ keys\/s/);
    // Cleared before the step's result line (the deletion is the only step with a live line: the count is a sample).
    expect(r.stderr).toMatch(/\r\u001b\[2K {6}deleted 3,000 keys in /);
    const again = setup([new FakeNode('fake:6379', keys('user', 3000))]);
    const quiet = await again.run(['flush', '--pattern', 'user:*', '--yes', '--quiet', '--json'], { tty: true });
    expect(quiet.code).toBe(0);
    expect(dataOf(quiet.stdout, 'unlink')).toMatchObject({ deleted: 3000 });
    expect(quiet.stderr).not.toMatch(/keys\/s/);
  });
});

describe('cache flush --all (fake Redis)', () => {
  it('flushes every master after the typed confirmation', async () => {
    const nodes = [new FakeNode('a:1', keys('k', 7)), new FakeNode('b:1', keys('k', 5))];
    const { run } = setup(nodes);
    const declined = await run(['flush', '--all'], { tty: true, answers: ['wrong', 'wrong', 'wrong'] });
    expect(declined.code).toBe(3);
    expect(nodes.map((n) => n.flushes)).toEqual([0, 0]);
    const r = await run(['flush', '--all', '--json'], { tty: true, answers: ['staging'] });
    expect(r.code, r.stderr).toBe(0);
    expect(dataOf(r.stdout, 'flushdb')).toEqual({ matched: 12, deleted: 12 });
    expect(nodes.map((n) => n.flushes)).toEqual([1, 1]);
  });
});

describe('Progress', () => {
  it('logs at a modest rate without a terminal', () => {
    const logged: string[] = [];
    const ctx = { reporter: { canShowLive: false, endLive: () => undefined }, log: (m: string) => logged.push(m) } as unknown as StepContext<unknown>;
    const p = new Progress(ctx, 'deleted', 1000);
    for (let i = 0; i < 1000; i++) p.add(1);
    p.end();
    expect(logged.length).toBe(0); // under 3 s: no line at all, the step's result line says it
    expect(p.count).toBe(1000);
  });
});

describe('cache stats parsing', () => {
  it('reads INFO fields and sums masters', async () => {
    const s = nodeStats('n', {
      keyspace_hits: '3',
      keyspace_misses: '1',
      db0: 'keys=10,expires=2,avg_ttl=5',
      db2: 'keys=1,expires=0,avg_ttl=0',
      used_memory: '5',
      used_memory_peak: '9',
    });
    expect(s.keyspace).toEqual({ db0: { keys: 10, expires: 2 }, db2: { keys: 1, expires: 0 } });
    const total = await readStats([new FakeNode('a', keys('x', 3)), new FakeNode('b', keys('y', 4))]);
    expect(total).toMatchObject({ hits: 60, misses: 20, hitRate: 0.75, usedMemory: 2000, peakMemory: 4000, keyspace: { db0: { keys: 7, expires: 0 } } });
  });
});

describe('boundedMap', () => {
  it('keeps at most `limit` in flight and the results in order', async () => {
    let inFlight = 0;
    let max = 0;
    const out = await boundedMap([5, 1, 3, 2, 4, 1], 2, async (ms, i) => {
      max = Math.max(max, ++inFlight);
      await new Promise((r) => setTimeout(r, ms));
      inFlight--;
      return i;
    });
    expect(out).toEqual([0, 1, 2, 3, 4, 5]);
    expect(max).toBe(2);
  });
});
