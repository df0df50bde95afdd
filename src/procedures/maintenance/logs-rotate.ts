import { rm, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { S3Object } from '../../clients/s3-objects.js';
import { awsErrorMessage } from '../../clients/aws.js';
import type { ResolvedEnvironment } from '../../core/config.js';
import { formatDuration, parseDuration } from '../../core/duration.js';
import { StepError, UsageError, errorMessage } from '../../core/errors.js';
import { defineProcedure, stepFor, type Change, type StepContext } from '../../core/procedure.js';
import { table } from '../../core/table.js';
import { boundedPool, compressFile, defaultParallelism, scanDir, type LogFile } from './log-files.js';
import { byText } from '../../core/format.js';

export interface LogsRotateParams {
  dir?: string;
  compressAfter?: number;
  deleteAfter?: number;
  archive?: string;
  prune: boolean;
  parallel?: number;
}

type Ctx = StepContext<LogsRotateParams>;

interface Settings {
  dir: string;
  compressAfterMs: number;
  deleteAfterMs: number;
  archive?: { url: string; bucket: string; prefix: string };
  parallel: number;
}

interface Scan {
  dir: string;
  toCompress: LogFile[];
  gz: LogFile[];
  partialRemoved: string[];
  remote: S3Object[] | null;
}

interface Archived {
  uploaded: string[];
  unchanged: string[];
  /** Local files known to be in the archive with the same bytes. */
  safe: string[];
  failed: string[];
  remoteOnly: string[];
}

function parseArchive(url: string, field: string) {
  const m = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/(.*))?$/.exec(url);
  if (!m) throw new UsageError(`${field}: not an S3 URL "${url}"`, 'use s3://bucket/prefix');
  const p = (m[2] ?? '').replace(/^\/+/, '');
  return { url, bucket: m[1], prefix: p && !p.endsWith('/') ? `${p}/` : p };
}

/** Flags over the environment's `logs` section over the seed's defaults (7 days, 30 days). */
export function settings(p: LogsRotateParams, env: ResolvedEnvironment): Settings {
  const l = env.config.logs ?? {};
  const dir = p.dir ?? l.dir;
  if (!dir) throw new UsageError('missing --dir', `pass --dir /var/log/app or set environments.${env.name}.logs.dir`);
  const compressAfterMs = p.compressAfter ?? parseDuration(l.compressAfter ?? '7d', 'logs.compressAfter');
  const deleteAfterMs = p.deleteAfter ?? parseDuration(l.deleteAfter ?? '30d', 'logs.deleteAfter');
  if (deleteAfterMs <= compressAfterMs)
    throw new UsageError(`--delete-after (${formatDuration(deleteAfterMs)}) must be longer than --compress-after (${formatDuration(compressAfterMs)})`);
  const archiveUrl = p.archive ?? l.archive;
  const archive = archiveUrl ? parseArchive(archiveUrl, p.archive ? '--archive' : `environments.${env.name}.logs.archive`) : undefined;
  if (archive && !env.config.aws) throw new UsageError(`--archive needs an aws section in environment "${env.name}"`);
  if (p.prune && !archive) throw new UsageError('--prune needs an archive (--archive s3://bucket/prefix or logs.archive)');
  return { dir, compressAfterMs, deleteAfterMs, archive, parallel: p.parallel ?? l.parallel ?? defaultParallelism() };
}

const mb = (n: number) => `${(n / 1048576).toFixed(1)} MB`;
const scanOf = (ctx: Ctx) => ctx.get(scan);

/** Local `.gz` files after this run's compression: in a dry run, predicted from the scan. */
function gzAfterCompress(ctx: Ctx): LogFile[] {
  const s = scanOf(ctx);
  const done = ctx.find(compress);
  const fromLogs = s.toCompress.map((f) => ({ rel: `${f.rel}.gz`, size: done?.files.find((c) => c.rel === f.rel)?.bytesOut ?? -1, mtimeMs: f.mtimeMs }));
  const compressed = new Set(done ? done.files.map((c) => c.rel) : s.toCompress.map((f) => f.rel));
  return [...s.gz.filter((g) => !compressed.has(g.rel.replace(/\.gz$/, ''))), ...fromLogs.filter((g) => compressed.has(g.rel.replace(/\.gz$/, '')))].sort(
    (a, b) => byText(a.rel, b.rel),
  );
}

async function localGz(ctx: Ctx): Promise<LogFile[]> {
  if (ctx.dryRun !== 'off') return gzAfterCompress(ctx);
  return (await scanDir(settings(ctx.params, ctx.env).dir)).gz;
}

const step = stepFor<LogsRotateParams>();

// No postcondition: logrotate's own state file is its record, and `logrotate -f` again would force another rotation; resume
// takes the journal's word (exit 0).
const logrotate = step({
  id: 'logrotate',
  title: 'Run logrotate',
  why: 'Lets logrotate rotate the live files first, when the environment configures it.',
  risk: 'write',
  when: (_p, env) => Boolean(env.config.logs?.logrotate),
  equivalent: (_p, env) => (env.config.logs?.logrotate ?? ['logrotate', '-f', '/etc/logrotate.d/application']).join(' '),
  plan: async (ctx) => [{ action: 'run', target: ctx.env.config.logs!.logrotate!.join(' ') }],
  async run(ctx) {
    const [file, ...args] = ctx.env.config.logs!.logrotate!;
    const r = await (await ctx.clients.processes()).run(file, args, { signal: ctx.signal, timeoutMs: 10 * 60_000 });
    if (r.exitCode !== 0) throw new StepError(`${file} exited ${r.exitCode}: ${r.stderr.trim().split('\n').pop() ?? ''}`);
    return { exitCode: 0 };
  },
});

const scan = step({
  id: 'scan',
  title: 'Find logs to compress and archives to keep or delete',
  why: 'Reads the directory (and the archive listing) so the plan names every file; clears .gz.tmp files an interrupted run left.',
  risk: 'read',
  equivalent: (p, env) =>
    `find ${p.dir ?? env.config.logs?.dir ?? '/var/log/app'} -type f \\( -name '*.log' -mtime +${Math.round((p.compressAfter ?? parseDuration(env.config.logs?.compressAfter ?? '7d')) / 86_400_000)} -o -name '*.gz' \\)`,
  async run(ctx): Promise<Scan> {
    const s = settings(ctx.params, ctx.env);
    let found;
    try {
      found = await scanDir(s.dir);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new UsageError(
        `cannot read log directory ${s.dir}: ${code ?? errorMessage(err)}`,
        code === 'EACCES' ? 'run as a user that can read and write it' : 'check --dir / logs.dir',
      );
    }
    let remote: S3Object[] | null = null;
    if (s.archive) {
      const s3 = await ctx.clients.s3();
      try {
        await s3.headBucket(s.archive.bucket);
        remote = await s3.listObjects(s.archive.bucket, s.archive.prefix);
      } catch (err) {
        if ((err as { name?: string }).name === 'NoSuchBucket')
          throw new UsageError(`archive bucket ${s.archive.bucket} does not exist`, 'check --archive / logs.archive');
        throw new StepError(`cannot list ${s.archive.url}: ${awsErrorMessage(err)}`);
      }
    }
    const partialRemoved: string[] = [];
    if (ctx.dryRun === 'off') {
      for (const p of found.partial) {
        await rm(join(s.dir, p.rel), { force: true });
        partialRemoved.push(p.rel);
      }
      if (partialRemoved.length) ctx.log(`removed ${partialRemoved.length} partial file(s) left by an interrupted run`);
    }
    const cutoff = ctx.now().getTime() - s.compressAfterMs;
    return { dir: s.dir, toCompress: found.logs.filter((f) => f.mtimeMs < cutoff), gz: found.gz, partialRemoved, remote };
  },
  postcondition: {
    describe: 'the directory and the archive are as listed',
    // Every later step acts on this listing (what to compress, what the archive holds, what may be deleted),
    // and a listing is only true when it is taken: a resume lists again (a read; it also clears .gz.tmp files).
    check: async () => ({ holds: false, found: 'a listing is re-taken on resume' }),
  },
});

const compress = step({
  id: 'compress',
  title: 'Compress old logs (all cores, atomic)',
  why: "gzip into .gz.tmp → fsync → rename → remove the original, two files per core in flight; the .gz keeps the log's modification time, as gzip does.",
  risk: 'write',
  equivalent: (p, env) =>
    `find ${p.dir ?? env.config.logs?.dir ?? '/var/log/app'} -name '*.log' -mtime +${Math.round((p.compressAfter ?? parseDuration(env.config.logs?.compressAfter ?? '7d')) / 86_400_000)} -print0 | xargs -0 -P "$(nproc)" -n 1 gzip`,
  async plan(ctx): Promise<Change[]> {
    return scanOf(ctx).toCompress.map((f) => ({ action: 'compress', target: f.rel, before: mb(f.size), after: `${f.rel}.gz` }));
  },
  async run(ctx) {
    const s = settings(ctx.params, ctx.env);
    const files = scanOf(ctx).toCompress;
    let doneCount = 0;
    const t0 = performance.now();
    const results = await boundedPool(
      files,
      s.parallel,
      async (f) => {
        const r = await compressFile(s.dir, f, { signal: ctx.signal });
        doneCount++;
        if (doneCount % 20 === 0 || doneCount === files.length) ctx.log(`compressed ${doneCount}/${files.length}`);
        return r;
      },
      ctx.signal,
    );
    if (ctx.signal.aborted) throw ctx.signal.reason;
    const ok = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    const failed = results.flatMap((r, i) => (r.status === 'rejected' ? [`${files[i].rel}: ${errorMessage(r.reason)}`] : []));
    for (const f of failed) ctx.reporter.warn(`not compressed: ${f}`);
    const data = {
      files: ok,
      failed,
      bytesIn: ok.reduce((a, c) => a + c.bytesIn, 0),
      bytesOut: ok.reduce((a, c) => a + c.bytesOut, 0),
      ms: Math.round(performance.now() - t0),
    };
    if (failed.length && ok.length === 0) throw new StepError(`could not compress any of ${files.length} files: ${failed[0]}`);
    return data;
  },
  postcondition: {
    describe: 'no log older than the threshold is left uncompressed',
    // Compressing again works from the listing taken again (atomic per file): safe.
    async check(ctx) {
      const left = scanOf(ctx).toCompress;
      return left.length === 0 ? { holds: true } : { holds: false, found: `${left.length} log(s) to compress: ${left.map((f) => f.rel).join(', ')}` };
    },
  },
});

const archive = step({
  id: 'archive',
  title: 'Upload new or changed archives to S3',
  why: 'Uploads each .gz the archive lacks or holds with different bytes (size, then MD5 against the ETag); never deletes anything remote.',
  risk: 'write',
  when: (p, env) => Boolean(p.archive ?? env.config.logs?.archive),
  equivalent: (p, env) =>
    `aws s3 sync ${p.dir ?? env.config.logs?.dir ?? '/var/log/app'} ${p.archive ?? env.config.logs?.archive} --exclude '*' --include '*.gz'   # no --delete`,
  async plan(ctx) {
    const s = settings(ctx.params, ctx.env);
    const a = s.archive!;
    const remote = new Map((scanOf(ctx).remote ?? []).map((o) => [o.key, o]));
    const changes: Change[] = [];
    for (const f of await localGz(ctx)) {
      const o = remote.get(a.prefix + f.rel);
      const target = `s3://${a.bucket}/${a.prefix}${f.rel}`;
      if (!o) changes.push({ action: 'upload', target, after: f.size >= 0 ? mb(f.size) : '(compressed in this run)' });
      else if (f.size >= 0 && !(await sameBytes(ctx, join(s.dir, f.rel), o)))
        changes.push({ action: 'replace (different bytes)', target, before: mb(o.size), after: mb(f.size) });
    }
    return changes;
  },
  async run(ctx): Promise<Archived> {
    const s = settings(ctx.params, ctx.env);
    const a = s.archive!;
    const s3 = await ctx.clients.s3();
    const remote = new Map((scanOf(ctx).remote ?? []).map((o) => [o.key, o]));
    const local = await localGz(ctx);
    const out: Archived = { uploaded: [], unchanged: [], safe: [], failed: [], remoteOnly: [] };
    const results = await boundedPool(
      local,
      4,
      async (f) => {
        const file = join(s.dir, f.rel);
        const key = a.prefix + f.rel;
        const md5 = await s3.fileMd5(file);
        const o = remote.get(key);
        if (o && matches(o, md5)) return { rel: f.rel, uploaded: false };
        const etag = await s3.uploadFile(a.bucket, key, file, md5.base64, { signal: ctx.signal });
        if (etag && etag !== md5.hex) throw new Error(`uploaded ETag ${etag} does not match MD5 ${md5.hex}`);
        return { rel: f.rel, uploaded: true };
      },
      ctx.signal,
    );
    if (ctx.signal.aborted) throw ctx.signal.reason;
    results.forEach((r, i) => {
      if (r.status === 'fulfilled') {
        (r.value.uploaded ? out.uploaded : out.unchanged).push(r.value.rel);
        out.safe.push(r.value.rel);
      } else
        out.failed.push(
          `${local[i].rel}: ${r.reason instanceof Error && 'name' in r.reason && (r.reason as { $metadata?: unknown }).$metadata ? awsErrorMessage(r.reason) : errorMessage(r.reason)}`,
        );
    });
    const localKeys = new Set(local.map((f) => a.prefix + f.rel));
    out.remoteOnly = [...remote.keys()].filter((k) => k.endsWith('.gz') && !localKeys.has(k)).sort();
    if (out.failed.length)
      throw new StepError(
        `${out.failed.length} upload(s) failed (${out.uploaded.length} uploaded): ${out.failed[0]}`,
        'nothing local was deleted; run again to retry',
      );
    return out;
  },
  postcondition: {
    describe: 'the archive still holds every file uploaded or found there, with the same bytes',
    // The local deletion trusts this step's list: re-checked against the archive listed again, and
    // uploading again (what the archive lacks) is safe.
    async check(ctx, data) {
      const s = settings(ctx.params, ctx.env);
      const a = s.archive!;
      const remote = new Map((scanOf(ctx).remote ?? []).map((o) => [o.key, o]));
      const local = new Map((await localGz(ctx)).map((f) => [f.rel, f]));
      const lost: string[] = [];
      for (const rel of data.safe) {
        const o = remote.get(a.prefix + rel);
        if (!o || (local.has(rel) && !(await sameBytes(ctx, join(s.dir, rel), o)))) lost.push(rel);
      }
      return lost.length === 0 ? { holds: true } : { holds: false, found: `s3://${a.bucket}/${a.prefix} lacks (or holds other bytes of) ${lost.join(', ')}` };
    },
  },
});

const prune = step({
  id: 'prune',
  title: 'Delete archive objects that no longer exist locally',
  why: 'Only with --prune: this is what `aws s3 sync --delete` did silently. Every key is listed before the gate.',
  risk: 'destructive',
  when: (p) => p.prune,
  equivalent: (p, env) => `aws s3 rm ${p.archive ?? env.config.logs?.archive}/<key>   # for each key listed`,
  async plan(ctx) {
    const a = settings(ctx.params, ctx.env).archive!;
    return (await remoteOnly(ctx)).map((o) => ({ action: 'delete', target: `s3://${a.bucket}/${o.key}`, before: mb(o.size) }));
  },
  async run(ctx) {
    const a = settings(ctx.params, ctx.env).archive!;
    const keys = (await remoteOnly(ctx)).map((o) => o.key);
    const r = await (await ctx.clients.s3()).deleteObjects(a.bucket, keys);
    if (r.errors.length) throw new StepError(`could not delete ${r.errors.length} object(s): ${r.errors[0]}`, `${r.deleted.length} were deleted`);
    return r;
  },
  postcondition: {
    describe: 'no archive object is left without a local file',
    // Pruning again deletes what is remote-only in the listing taken again, listed before the gate: safe.
    async check(ctx) {
      const left = await remoteOnly(ctx);
      return left.length === 0
        ? { holds: true }
        : { holds: false, found: `${left.length} archive object(s) have no local file: ${left.map((o) => o.key).join(', ')}` };
    },
  },
});

const deleteOld = step({
  id: 'delete',
  title: 'Delete old local archives',
  why: 'Frees disk space. With an archive configured, only .gz files the archive holds with the same bytes are deleted.',
  risk: 'destructive',
  equivalent: (p, env) =>
    `find ${p.dir ?? env.config.logs?.dir ?? '/var/log/app'} -name '*.gz' -mtime +${Math.round((p.deleteAfter ?? parseDuration(env.config.logs?.deleteAfter ?? '30d')) / 86_400_000)} -delete`,
  async plan(ctx) {
    return (await deletable(ctx)).map((f) => ({ action: 'delete', target: f.rel, before: f.size >= 0 ? mb(f.size) : '(compressed in this run)' }));
  },
  async run(ctx) {
    const s = settings(ctx.params, ctx.env);
    const deleted: string[] = [];
    for (const f of await deletable(ctx)) {
      await unlink(join(s.dir, f.rel));
      deleted.push(f.rel);
    }
    return { deleted };
  },
  postcondition: {
    describe: 'the local archives it deleted are gone',
    // Deleting again picks what is deletable now (old, and confirmed in the archive): safe.
    async check(ctx, data) {
      const present = new Set((await scanDir(settings(ctx.params, ctx.env).dir)).gz.map((f) => f.rel));
      const back = data.deleted.filter((rel) => present.has(rel));
      return back.length === 0 ? { holds: true } : { holds: false, found: `${back.join(', ')} ${back.length === 1 ? 'is' : 'are'} there again` };
    },
  },
});

export default defineProcedure<LogsRotateParams>({
  name: 'logs rotate',
  summary: 'Compress old logs in parallel (atomically), archive them to S3 without remote deletion, delete old local archives (gated)',
  seedFixes: [
    '`find -exec gzip {} \\;` compresses one file at a time; this uses every core (node:zlib streams, one file per core in flight).',
    'A gzip killed half-way leaves a truncated .gz next to the original; here each file is written to .gz.tmp, fsynced and renamed, and the original is removed only after that — an interrupted run leaves no half file (and the next run clears any .gz.tmp).',
    '`aws s3 sync --delete` deletes from the archive whatever was cleaned up locally — after 30 days the archive is wiped too. Remote objects are never deleted unless --prune is given, behind its own gate.',
    'Uploads are compared by size and MD5/ETag and sent with Content-MD5, so S3 rejects a corrupted transfer.',
    'Local .gz files are deleted only once the archive is known to hold the same bytes (when an archive is configured), and behind a gate.',
  ],
  params: [
    { name: 'dir', flag: '--dir <path>', description: 'the log directory (default: logs.dir)', type: 'string' },
    {
      name: 'compressAfter',
      flag: '--compress-after <duration>',
      description: 'compress *.log older than this (default: logs.compressAfter or 7d)',
      type: 'duration',
    },
    {
      name: 'deleteAfter',
      flag: '--delete-after <duration>',
      description: 'delete local *.gz older than this (default: logs.deleteAfter or 30d)',
      type: 'duration',
    },
    { name: 'archive', flag: '--archive <s3url>', description: 'archive .gz files to s3://bucket/prefix (default: logs.archive)', type: 'string' },
    { name: 'prune', flag: '--prune', description: 'also delete archive objects that no longer exist locally (gated)', type: 'boolean', default: false },
    { name: 'parallel', flag: '--parallel <n>', description: 'files compressed at once (default: twice the number of cores)', type: 'int', min: 1, max: 64 },
  ],
  examples: [[], ['--dir', '/var/log/app', '--compress-after', '7d', '--delete-after', '30d', '--archive', 's3://logs-bucket/archive']],
  requires: [],
  validate: (p, env) => void settings(p, env),
  steps: [logrotate, scan, compress, archive, prune, deleteOld],
  render(run) {
    const rows: Array<[string, string | number, string]> = [];
    const c = run.find(compress);
    const found = run.find(scan);
    if (found?.partialRemoved.length) rows.push(['partial removed', found.partialRemoved.length, found.partialRemoved.join(' ')]);
    if (c)
      rows.push([
        'compressed',
        c.files.length,
        `${mb(c.bytesIn)} → ${mb(c.bytesOut)} in ${formatDuration(c.ms)}${c.failed.length ? `; ${c.failed.length} left as is` : ''}`,
      ]);
    const a = run.find(archive);
    if (a) rows.push(['uploaded', a.uploaded.length, `${a.unchanged.length} already archived`]);
    const p = run.find(prune);
    if (p) rows.push(['pruned (remote)', p.deleted.length, '']);
    const d = run.find(deleteOld);
    if (d) rows.push(['deleted (local)', d.deleted.length, d.deleted.join(' ')]);
    return rows.length ? table(['ACTION', 'FILES', 'DETAIL'], rows) : 'nothing to do\n';
  },
});

/** Archive objects (.gz) under the prefix with no local file: what --prune deletes. */
async function remoteOnly(ctx: Ctx): Promise<S3Object[]> {
  const a = settings(ctx.params, ctx.env).archive!;
  const local = new Set((await localGz(ctx)).map((f) => a.prefix + f.rel));
  return (scanOf(ctx).remote ?? []).filter((o) => o.key.endsWith('.gz') && !local.has(o.key));
}

/** Same bytes as the archived object: size, then MD5 against a single-part ETag (a multipart ETag is trusted on size). */
function matches(o: S3Object, md5: { hex: string; size: number }): boolean {
  return o.size === md5.size && (o.etag === md5.hex || /-\d+$/.test(o.etag));
}

async function sameBytes(ctx: Ctx, file: string, o: S3Object): Promise<boolean> {
  const { fileMd5 } = await ctx.clients.s3();
  return matches(o, await fileMd5(file));
}

/** Local .gz files past the delete threshold — and, when archiving, only those the archive holds with the same bytes. */
async function deletable(ctx: Ctx): Promise<LogFile[]> {
  const s = settings(ctx.params, ctx.env);
  const cutoff = ctx.now().getTime() - s.deleteAfterMs;
  const old = (await localGz(ctx)).filter((f) => f.mtimeMs < cutoff);
  if (!s.archive) return old;
  const a = s.archive;
  const uploaded = new Set(ctx.find(archive)?.safe ?? []);
  const remote = new Map((scanOf(ctx).remote ?? []).map((o) => [o.key, o]));
  const out: LogFile[] = [];
  for (const f of old) {
    const o = remote.get(a.prefix + f.rel);
    // In a dry run, the archive step would have uploaded what is missing.
    const safe = uploaded.has(f.rel) || ctx.dryRun !== 'off' || (o !== undefined && (await sameBytes(ctx, join(s.dir, f.rel), o)));
    if (safe) out.push(f);
    else ctx.reporter.warn(`kept ${f.rel}: not confirmed in the archive`);
  }
  return out;
}
