// `cache stats` and `cache warm` against the sandbox's password-protected redis-server, with real
// warmer processes: prefixed output, bounded parallelism, timeouts, exit-code summary, hit rate.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../support/cli.js';
import { writeConfig } from '../../support/config.js';
import { startCachePart, SANDBOX_CACHE_KEYS, type CachePart } from '../../support/sandbox/cache-part.js';
import type { SandboxContext } from '../../support/sandbox/types.js';

let part: CachePart;
let dir: string;
const work = mkdtempSync(join(tmpdir(), 'cache-warm-'));
const node = process.execPath;
/** A warmer that records when it ran (for the parallelism check), sleeps, then exits with `code`. */
const timed = (name: string, ms: number, code = 0) => [
  node,
  '-e',
  `const fs=require('fs');const f=${JSON.stringify(join(work, 'spans'))};fs.appendFileSync(f,'start ${name} '+Date.now()+'\\n');console.log('warming ${name}');setTimeout(()=>{fs.appendFileSync(f,'end ${name} '+Date.now()+'\\n');console.error('done ${name}');process.exit(${code})},${ms})`,
];

beforeAll(async () => {
  part = await startCachePart({} as SandboxContext);
  const base = part.environment as { redis: unknown; cache: { warmers: Record<string, string[][]> } };
  const cache = {
    ...base.cache,
    warmers: {
      ...base.cache.warmers,
      batch: [timed('a', 300), timed('b', 300), timed('c', 300), timed('d', 300)],
      broken: [timed('ok', 10), timed('bad', 10, 3)],
      slow: [timed('forever', 60_000)],
    },
  };
  dir = writeConfig({
    default: 'staging',
    environments: { staging: { redis: base.redis, cache }, production: { protected: true, redis: base.redis, cache } },
  }).dir;
}, 60_000);
afterAll(async () => {
  await part?.stop();
});

const cli = (argv: string[], extra: Parameters<typeof runCli>[1] = {}) =>
  runCli(argv, { cwd: dir, ...extra, env: { ...part.env, PATH: process.env.PATH, ...(extra.env ?? {}) } });

describe('cache stats', () => {
  it('reports hits, misses, hit rate, keys per database and memory', async () => {
    await part.commands([
      ['GET', 'user:1'],
      ['GET', 'user:2'],
      ['GET', 'user:3'],
      ['GET', 'missing:1'],
    ]);
    const r = await cli(['cache', 'stats', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const data = JSON.parse(r.stdout).steps[0].data;
    expect(data.hits).toBeGreaterThanOrEqual(3);
    expect(data.misses).toBeGreaterThanOrEqual(1);
    expect(data.hitRate).toBeCloseTo(data.hits / (data.hits + data.misses));
    expect(data.keyspace.db0.keys).toBe(SANDBOX_CACHE_KEYS.user + SANDBOX_CACHE_KEYS.session);
    expect(data.usedMemory).toBeGreaterThan(0);
    expect(data.peakMemory).toBeGreaterThanOrEqual(data.usedMemory);
    expect(data).toHaveProperty('evictedKeys');
    expect(data).toHaveProperty('expiredKeys');
    expect(data).toHaveProperty('opsPerSec');

    const table = await cli(['cache', 'stats']);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/hit rate\s+\d+\.\d%/);
    expect(table.stdout).toMatch(/db0\s+250\s+0/);
    // Read-only: one line saying which target answered (issue 12), not the full banner of a change.
    expect(table.stderr.match(/▶.*/g)).toEqual([expect.stringMatching(/^▶ runbook cache stats → staging · redis 127\.0\.0\.1:\d+$/)]);
  });
});

describe('cache warm', () => {
  it('runs the warmers, prefixes their output, and shows the hit rate before and after', async () => {
    const r = await cli(['cache', 'warm', '--type', 'product', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout);
    const byId = Object.fromEntries(doc.steps.map((s: { id: string; data: unknown }) => [s.id, s.data]));
    expect(byId.warm.results.map((x: { exitCode: number }) => x.exitCode)).toEqual([0, 0]);
    expect(byId.after.hits - byId.before.hits).toBe(2); // MGET product:1 product:2 product:4
    expect(byId.after.misses - byId.before.misses).toBe(1);
    expect(r.stderr).toMatch(/\[redis-cli … .*product:3 three\] OK/);
    expect(r.stderr).toMatch(/\[redis-cli … MGET product:1 product:2 product:4\] two/);
    expect(r.stderr).toMatch(/hit rate \d+\.\d% → \d+\.\d%/);
    expect(await part.commands([['EXISTS', 'product:1', 'product:2', 'product:3']])).toEqual([3]);
    expect(r.stdout + r.stderr).not.toContain(part.env.SANDBOX_REDIS_PASSWORD);
  });

  it('runs at most --parallel warmers at once', async () => {
    const r = await cli(['cache', 'warm', '--type', 'batch', '--parallel', '2']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/WARMER\s+EXIT\s+DURATION/);
    expect(r.stderr).toMatch(/\[\d:node -e .*…\] warming a/);
    const events = readFileSync(join(work, 'spans'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => l.split(' '));
    const sorted = events.map(([kind, , t]) => [Number(t), kind === 'start' ? 1 : -1] as const).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    let now = 0;
    let max = 0;
    for (const [, d] of sorted) max = Math.max(max, (now += d));
    expect(max).toBe(2);
    expect(events.filter(([k]) => k === 'end')).toHaveLength(4);
  });

  it('a failing warmer fails the step (exit 1) with a summary of exit codes', async () => {
    const r = await cli(['cache', 'warm', '--type', 'broken']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/1 of 2 warmers failed: .*exited 3/);
    expect(r.stderr).toMatch(/done ok/); // the other warmer completed
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('each warmer has a timeout', async () => {
    const t0 = Date.now();
    const r = await cli(['cache', 'warm', '--type', 'slow', '--warmer-timeout', '300ms']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/1 of 1 warmers failed: .* timed out/);
    expect(Date.now() - t0).toBeLessThan(15_000);
  });

  it('--dry-run lists the commands and runs none', async () => {
    const before = await part.fingerprint();
    const r = await cli(['cache', 'warm', '--type', 'product', '--dry-run']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/would run warmer .*redis-cli .* MSET product:1/);
    expect(await part.fingerprint()).toBe(before);
  });

  it('a protected environment without a terminal or --yes fails closed (exit 3) and runs nothing', async () => {
    await part.commands([['DEL', 'product:1', 'product:2', 'product:3']]);
    const before = await part.fingerprint();
    const r = await cli(['cache', 'warm', '--type', 'product', '--env', 'production']);
    expect(r.code).toBe(3);
    expect(await part.fingerprint()).toBe(before);
  });

  it('an unknown type is a usage error naming the configured ones (exit 2)', async () => {
    const r = await cli(['cache', 'warm', '--type', 'nope']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/no cache warmers of type "nope"/);
    expect(r.stderr).toMatch(/configured types: product, batch, broken, slow/);
  });
});
