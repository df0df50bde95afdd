import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../../support/cli.js';
import { boundedPool, compressFile, scanDir } from '../../../src/procedures/maintenance/log-files.js';
import { settings } from '../../../src/procedures/maintenance/logs-rotate.js';

const env = (logs: Record<string, unknown> = {}, aws = true) =>
  ({ name: 'ops', builtIn: false, configPath: null, config: { logs, ...(aws ? { aws: { region: 'us-east-1' } } : {}) } }) as never;

describe('compressFile', () => {
  it('writes .gz with identical bytes after gunzip, keeps the mtime, removes the original, leaves no .tmp', async () => {
    const dir = tempDir('lz-');
    writeFileSync(join(dir, 'a.log'), 'x'.repeat(100_000));
    utimesSync(join(dir, 'a.log'), 1_700_000_000, 1_700_000_000);
    const r = await compressFile(dir, { rel: 'a.log', size: 100_000, mtimeMs: 0 });
    expect(r.bytesIn).toBe(100_000);
    expect(readdirSync(dir)).toEqual(['a.log.gz']);
    expect(gunzipSync(readFileSync(join(dir, 'a.log.gz'))).toString()).toBe('x'.repeat(100_000));
    expect(statSync(join(dir, 'a.log.gz')).mtimeMs).toBe(1_700_000_000_000);
  });

  it('an abort removes the temporary file and keeps the original', async () => {
    const dir = tempDir('lz-');
    writeFileSync(join(dir, 'a.log'), Buffer.alloc(20_000_000, 'abc'));
    const ac = new AbortController();
    const p = compressFile(dir, { rel: 'a.log', size: 0, mtimeMs: 0 }, { signal: ac.signal });
    setTimeout(() => ac.abort(new Error('stop')), 5);
    await expect(p).rejects.toThrow();
    expect(readdirSync(dir)).toEqual(['a.log']);
  });
});

describe('boundedPool', () => {
  it('never runs more than the limit at once, and keeps results in order', async () => {
    let inFlight = 0;
    let peak = 0;
    const r = await boundedPool([1, 2, 3, 4, 5, 6, 7], 3, async (n) => {
      inFlight++;
      peak = Math.max(peak, inFlight);
      await new Promise((res) => setTimeout(res, 5));
      inFlight--;
      if (n === 4) throw new Error('four');
      return n * 2;
    });
    expect(peak).toBe(3);
    expect(r.map((x) => (x.status === 'fulfilled' ? x.value : 'err'))).toEqual([2, 4, 6, 'err', 10, 12, 14]);
  });
});

describe('scanDir', () => {
  it('finds logs, archives and partial files recursively, not following symlinks', async () => {
    const dir = tempDir('ls-');
    mkdirSync(join(dir, 'sub'));
    for (const f of ['a.log', 'sub/b.log', 'c.log.gz', 'd.log.gz.tmp', 'e.txt']) writeFileSync(join(dir, f), 'x');
    const s = await scanDir(dir);
    expect(s.logs.map((f) => f.rel)).toEqual(['a.log', 'sub/b.log']);
    expect(s.gz.map((f) => f.rel)).toEqual(['c.log.gz']);
    expect(s.partial.map((f) => f.rel)).toEqual(['d.log.gz.tmp']);
    expect(existsSync(join(dir, 'e.txt'))).toBe(true);
  });
});

describe('settings', () => {
  const p = { prune: false };
  it('takes flags over the logs section over the seed defaults', () => {
    expect(settings({ ...p, dir: '/x' }, env()).compressAfterMs).toBe(7 * 86_400_000);
    expect(settings({ ...p }, env({ dir: '/y', compressAfter: '2d', deleteAfter: '10d' })).deleteAfterMs).toBe(10 * 86_400_000);
    expect(settings({ ...p, dir: '/x', archive: 's3://logs-bucket/a/b' }, env()).archive).toEqual({
      url: 's3://logs-bucket/a/b',
      bucket: 'logs-bucket',
      prefix: 'a/b/',
    });
  });
  it.each([
    [{ prune: false }, {}, /missing --dir/],
    [{ prune: true, dir: '/x' }, {}, /--prune needs an archive/],
    [{ prune: false, dir: '/x', compressAfter: 10, deleteAfter: 5 }, {}, /must be longer/],
    [{ prune: false, dir: '/x', archive: 's3://A_B/x' }, {}, /not an S3 URL/],
  ])('rejects %j', (params, logs, message) => {
    expect(() => settings(params as never, env(logs))).toThrow(message);
  });
  it('needs aws for an archive', () => {
    expect(() => settings({ prune: false, dir: '/x', archive: 's3://bucket/x' }, env({}, false))).toThrow(/needs an aws section/);
  });
});
