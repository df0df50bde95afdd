import { createReadStream, createWriteStream } from 'node:fs';
import { lstat, open, readdir, rename, stat, unlink, utimes } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { dirname, join, relative, sep } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { byText } from '../../core/format.js';

/** A file found under the log directory. */
export interface LogFile {
  /** Path relative to the log directory, with "/" separators (also the archive key suffix). */
  rel: string;
  size: number;
  mtimeMs: number;
}

export interface DirScan {
  logs: LogFile[];
  gz: LogFile[];
  /** `.gz.tmp` files: what an interrupted run left; never complete, never uploaded. */
  partial: LogFile[];
}

/** Lists regular files under `dir` (recursively, symlinks not followed). Throws the fs error (ENOENT, EACCES …). */
export async function scanDir(dir: string): Promise<DirScan> {
  const names = await readdir(dir, { recursive: true });
  const out: DirScan = { logs: [], gz: [], partial: [] };
  await Promise.all(
    names.map(async (name) => {
      const full = join(dir, name);
      let st;
      try {
        st = await lstat(full);
      } catch {
        return; // vanished meanwhile
      }
      if (!st.isFile()) return;
      const f: LogFile = { rel: relative(dir, full).split(sep).join('/'), size: st.size, mtimeMs: st.mtimeMs };
      if (name.endsWith('.log')) out.logs.push(f);
      else if (name.endsWith('.gz.tmp')) out.partial.push(f);
      else if (name.endsWith('.gz')) out.gz.push(f);
    }),
  );
  for (const list of [out.logs, out.gz, out.partial]) list.sort((a, b) => byText(a.rel, b.rel));
  return out;
}

async function fsyncPath(path: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export interface Compressed {
  rel: string;
  bytesIn: number;
  bytesOut: number;
}

/**
 * Compresses one file atomically: gzip into `<file>.gz.tmp`, fsync, keep the original's mtime,
 * rename to `<file>.gz`, fsync the directory, and only then remove the original. On any error or
 * abort the temporary file is removed, so no half-written `.gz` ever exists. A file that changed
 * while being compressed is left alone (something still writes to it).
 */
export async function compressFile(dir: string, f: LogFile, opts: { signal?: AbortSignal; level?: number } = {}): Promise<Compressed> {
  const src = join(dir, f.rel);
  const tmp = `${src}.gz.tmp`;
  const dst = `${src}.gz`;
  const before = await stat(src);
  try {
    await pipeline(createReadStream(src), createGzip({ level: opts.level ?? 6 }), createWriteStream(tmp, { flags: 'w', mode: before.mode & 0o666 }), {
      signal: opts.signal,
    });
    await fsyncPath(tmp);
    const after = await stat(src);
    if (after.size !== before.size || after.mtimeMs !== before.mtimeMs) throw new Error(`${f.rel} changed while it was being compressed; left as is`);
    await utimes(tmp, before.atime, before.mtime);
    await rename(tmp, dst);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  await fsyncPath(dirname(dst));
  await unlink(src);
  return { rel: f.rel, bytesIn: before.size, bytesOut: (await stat(dst)).size };
}

/** Runs `fn` over `items` with at most `limit` in flight; stops starting new ones once `signal` aborts. */
export async function boundedPool<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>, signal?: AbortSignal): Promise<Array<PromiseSettledResult<R>>> {
  const results: Array<PromiseSettledResult<R>> = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      if (signal?.aborted) {
        results[i] = { status: 'rejected', reason: signal.reason };
        continue;
      }
      try {
        results[i] = { status: 'fulfilled', value: await fn(items[i]) };
      } catch (err) {
        results[i] = { status: 'rejected', reason: err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  return results;
}

/**
 * zlib streams run on libuv's thread pool; two files in flight per core keep every core compressing
 * while the other file of the pair waits on its fsync (measured: 2 per core beat 1 per core by ~20%
 * on 2 cores; worker_threads were slower than the pool).
 */
export function defaultParallelism(): number {
  return Math.min(64, availableParallelism() * 2);
}
