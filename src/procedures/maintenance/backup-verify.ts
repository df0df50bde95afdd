import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import type { S3Object } from '../../clients/s3-objects.js';
import { awsErrorMessage } from '../../clients/aws.js';
import { pgTarget, type PgConnection } from '../../clients/postgres.js';
import type { ResolvedEnvironment } from '../../core/config.js';
import { formatDuration, parseDuration } from '../../core/duration.js';
import { CheckFailedError, RunbookError, UsageError, errorMessage } from '../../core/errors.js';
import { defineProcedure, stepFor, type StepContext } from '../../core/procedure.js';
import { byText } from '../../core/format.js';

export interface BackupVerifyParams {
  restoreTest: boolean;
}

type Ctx = StepContext<BackupVerifyParams>;

interface Listing {
  bucket: string;
  prefix: string;
  count: number;
  newest: S3Object;
  ageMs: number;
  recent: S3Object[];
}

interface Downloaded {
  dir: string;
  file: string;
  bytes: number;
  etag: string;
  etagCheck: string;
}

interface Toc {
  restoreRequested: boolean;
  entries: number;
  tables: number;
  tableData: number;
}

interface Restored {
  database: string;
  server: string;
  tables: number;
  table: string;
  rows: number;
  dropped: boolean;
}

function backups(env: ResolvedEnvironment) {
  const b = env.config.backups;
  if (!b) throw new UsageError(`environment "${env.name}" has no backups section`, `add environments.${env.name}.backups: { bucket, prefix }`);
  return b;
}

/** Alerts through the environment's notify section; an alert that cannot be sent is reported, never fatal. */
async function alert(ctx: Ctx, what: string): Promise<void> {
  const b = backups(ctx.env);
  const msg = `runbook backup verify FAILED in ${ctx.env.name} (s3://${b.bucket}/${b.prefix}): ${what}`;
  if (ctx.dryRun !== 'off') return;
  try {
    const sent = await ctx.clients.notify(msg);
    if (sent.length === 0) ctx.reporter.warn('no notify channel configured: nobody was alerted');
    for (const s of sent) if (!s.ok) ctx.reporter.warn(`alert via ${s.channel} failed: ${s.detail}`);
  } catch (err) {
    ctx.reporter.warn(`alert could not be sent: ${errorMessage(err)}`);
  }
}

/** Alert, then fail with exit 4 (or keep a usage error's exit 2). */
async function fail(ctx: Ctx, err: RunbookError | string): Promise<never> {
  const e = typeof err === 'string' ? new CheckFailedError(err) : err;
  await alert(ctx, e.message);
  throw e;
}

const workDir = (ctx: Ctx) => ctx.find(download)?.dir;
async function removeWorkDir(ctx: Ctx): Promise<void> {
  const dir = workDir(ctx);
  if (dir) await rm(dir, { recursive: true, force: true });
}

/** A scratch database name: generated, and checked against a strict pattern before it is used as an identifier. */
export function scratchDatabaseName(now: Date): string {
  const stamp = now.toISOString().replace(/[-:T]/g, '').slice(0, 14);
  const name = `runbook_restore_${stamp}_${randomBytes(3).toString('hex')}`;
  if (!/^runbook_restore_\d{14}_[0-9a-f]{6}$/.test(name)) throw new Error(`generated an unexpected database name ${name}`);
  return name;
}

const quoteIdent = (name: string) => {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new Error(`refusing identifier ${name}`);
  return `"${name}"`;
};

/** libpq variables for pg_restore from a connection URL: the password travels in the environment, never in argv. */
export function libpqEnv(url: string, database: string): Record<string, string> {
  const u = new URL(url);
  const env: Record<string, string> = { PGDATABASE: database };
  if (u.hostname) env.PGHOST = decodeURIComponent(u.hostname);
  if (u.port) env.PGPORT = u.port;
  if (u.username) env.PGUSER = decodeURIComponent(u.username);
  if (u.password) env.PGPASSWORD = decodeURIComponent(u.password);
  const ssl = u.searchParams.get('sslmode');
  if (ssl) env.PGSSLMODE = ssl;
  return env;
}

function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

const step = stepFor<BackupVerifyParams>();

const list = step({
  id: 'list',
  title: 'Find the newest backup in S3',
  why: 'The newest object under the prefix by modification time is the one a restore would use.',
  risk: 'read',
  equivalent: (_p, env) =>
    `aws s3api list-objects-v2 --bucket ${env.config.backups?.bucket ?? '$BUCKET'} --prefix '${env.config.backups?.prefix ?? ''}' --query 'sort_by(Contents,&LastModified)[-10:]'`,
  async run(ctx): Promise<Listing> {
    const b = backups(ctx.env);
    const s3 = await ctx.clients.s3();
    try {
      await s3.headBucket(b.bucket, b.region);
    } catch (err) {
      const name = (err as { name?: string }).name;
      if (name === 'NoSuchBucket')
        return fail(ctx, new UsageError(`backup bucket ${b.bucket} does not exist`, `check environments.${ctx.env.name}.backups.bucket`));
      return fail(ctx, `cannot reach backup bucket ${b.bucket}: ${awsErrorMessage(err)}`);
    }
    let objects: S3Object[];
    try {
      objects = (await s3.listObjects(b.bucket, b.prefix, b.region)).filter((o) => !o.key.endsWith('/') && o.size > 0);
    } catch (err) {
      return fail(ctx, `cannot list s3://${b.bucket}/${b.prefix}: ${awsErrorMessage(err)}`);
    }
    if (objects.length === 0) return fail(ctx, `no backups under s3://${b.bucket}/${b.prefix}`);
    objects.sort((x, y) => byText(y.lastModified, x.lastModified) || byText(y.key, x.key));
    const newest = objects[0];
    const ageMs = ctx.now().getTime() - new Date(newest.lastModified).getTime();
    if (b.maxAge && ageMs > parseDuration(b.maxAge)) return fail(ctx, `newest backup ${newest.key} is ${formatDuration(ageMs)} old (limit ${b.maxAge})`);
    ctx.log(`newest: ${newest.key} (${newest.size} bytes, ${newest.lastModified})`);
    return { bucket: b.bucket, prefix: b.prefix, count: objects.length, newest, ageMs, recent: objects.slice(0, 10) };
  },
});

const download = step({
  id: 'download',
  title: 'Stream the newest backup to a temporary file',
  why: 'Streaming keeps memory flat for any dump size; the size and ETag prove the file is the object S3 holds.',
  risk: 'read',
  equivalent: (_p, env) => `aws s3 cp s3://${env.config.backups?.bucket ?? '$BUCKET'}/${env.config.backups?.prefix ?? ''}$LATEST_BACKUP "$(mktemp -d)/"`,
  async run(ctx): Promise<Downloaded> {
    const b = backups(ctx.env);
    const l = ctx.get(list);
    const dir = await mkdtemp(join(tmpdir(), 'runbook-backup-'));
    const file = join(dir, basename(l.newest.key).replace(/[^\w.-]/g, '_') || 'backup.dump');
    try {
      const r = await (
        await ctx.clients.s3()
      ).downloadObject(b.bucket, l.newest.key, file, { etag: l.newest.etag, size: l.newest.size }, { region: b.region, signal: ctx.signal });
      if (r.bytes !== r.expectedBytes || r.bytes !== l.newest.size)
        throw new CheckFailedError(`downloaded ${r.bytes} bytes of ${l.newest.key}, expected ${l.newest.size}`);
      if (!r.etagMatches) throw new CheckFailedError(`${l.newest.key}: the downloaded bytes do not match ETag ${r.etag} (${r.etagCheck})`);
      return { dir, file, bytes: r.bytes, etag: r.etag, etagCheck: r.etagCheck };
    } catch (err) {
      await rm(dir, { recursive: true, force: true });
      if (ctx.signal.aborted) throw err;
      return fail(ctx, err instanceof RunbookError ? err : `cannot download ${l.newest.key}: ${awsErrorMessage(err)}`);
    }
  },
});

const verify = step({
  id: 'verify',
  title: 'Check the dump with pg_restore --list',
  why: 'pg_restore reads the whole table of contents of a custom-format dump; a truncated or corrupt file fails here.',
  risk: 'read',
  equivalent: (_p, env) => `${env.config.backups?.pgRestore ?? 'pg_restore'} --list "$FILE" > /dev/null`,
  async run(ctx): Promise<Toc> {
    const b = backups(ctx.env);
    const d = ctx.get(download);
    const processes = await ctx.clients.processes();
    try {
      let r;
      try {
        r = await processes.run(b.pgRestore, ['--list', d.file], { signal: ctx.signal, timeoutMs: 10 * 60_000 });
      } catch (err) {
        throw new CheckFailedError(`${errorMessage(err)}`, 'install the PostgreSQL client tools, or set backups.pgRestore');
      }
      if (r.exitCode !== 0)
        throw new CheckFailedError(
          `backup ${ctx.get(list).newest.key} is corrupt: pg_restore --list exit ${r.exitCode}: ${r.stderr.split('\n').find(Boolean) ?? ''}`.trim(),
        );
      const lines = r.stdout.split('\n').filter((x) => x.trim() && !x.startsWith(';'));
      const toc = {
        restoreRequested: ctx.params.restoreTest,
        entries: lines.length,
        tables: lines.filter((x) => / TABLE /.test(x) && !/ TABLE DATA /.test(x)).length,
        tableData: lines.filter((x) => / TABLE DATA /.test(x)).length,
      };
      if (toc.entries === 0) throw new CheckFailedError(`backup ${ctx.get(list).newest.key} has an empty table of contents`);
      return toc;
    } catch (err) {
      await removeWorkDir(ctx);
      if (ctx.signal.aborted) throw err;
      return fail(ctx, err as RunbookError);
    }
  },
});

const restore = step({
  id: 'restore',
  title: 'Restore into a scratch database on the test server',
  why: 'Only a restore proves a backup restores. A fresh database with a generated name is created on the TEST server, counted, and always dropped.',
  // Only a write when asked for: without --restore-test the run changes nothing anywhere.
  risk: (p) => (p.restoreTest ? 'write' : 'read'),
  when: (p) => p.restoreTest,
  secrets: ['backupsRestoreTest'],
  equivalent: (_p, env) =>
    `createdb runbook_restore_$STAMP && pg_restore --no-owner --no-acl --exit-on-error -d runbook_restore_$STAMP "$FILE" && psql -d runbook_restore_$STAMP -c 'SELECT count(*) FROM ${env.config.backups?.restoreTest?.table ?? 'users'}'; dropdb runbook_restore_$STAMP`,
  async plan(ctx) {
    const rt = backups(ctx.env).restoreTest!;
    const url = ctx.clients.secret(rt.url, `environments.${ctx.env.name}.backups.restoreTest.url`);
    return [
      {
        action: 'create, restore, count and drop a scratch database',
        target: pgTarget(url),
        after: `runbook_restore_<timestamp>_<random>; rows of ${rt.table}`,
      },
    ];
  },
  async run(ctx): Promise<Restored> {
    const b = backups(ctx.env);
    const rt = b.restoreTest!;
    const d = ctx.get(download);
    const url = ctx.clients.secret(rt.url, `environments.${ctx.env.name}.backups.restoreTest.url`);
    const processes = await ctx.clients.processes();
    const name = scratchDatabaseName(ctx.now());
    let created = false;
    let result: Omit<Restored, 'dropped'> | undefined;
    let failure: unknown;
    let admin: PgConnection | undefined;
    try {
      admin = await ctx.clients.postgres(url);
      await admin.query(`CREATE DATABASE ${quoteIdent(name)}`);
      created = true;
      ctx.log(`created scratch database ${name} on ${pgTarget(url)}`);
      const r = await processes.run(b.pgRestore, ['--no-owner', '--no-acl', '--exit-on-error', '-d', name, d.file], {
        env: { ...process.env, ...libpqEnv(url, name) },
        signal: ctx.signal,
        timeoutMs: 60 * 60_000,
      });
      if (r.exitCode !== 0)
        throw new CheckFailedError(`restore of ${ctx.get(list).newest.key} failed: pg_restore exit ${r.exitCode}: ${r.stderr.split('\n').find(Boolean) ?? ''}`);
      const db = await ctx.clients.postgres(withDatabase(url, name));
      try {
        const [t] = await db.query<{ n: string }>(
          "SELECT count(*)::text AS n FROM information_schema.tables WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')",
        );
        const parts = rt.table.split('.');
        const exists = await db.query<{ oid: string | null }>('SELECT to_regclass($1)::text AS oid', [rt.table]);
        if (!exists[0]?.oid) throw new CheckFailedError(`restored database has no table ${rt.table}`);
        const [c] = await db.query<{ n: string }>(`SELECT count(*)::text AS n FROM ${parts.map(quoteIdent).join('.')}`);
        result = { database: name, server: pgTarget(url), tables: Number(t.n), table: rt.table, rows: Number(c.n) };
      } finally {
        await db.close();
      }
      if (result.rows < rt.minRows) throw new CheckFailedError(`restored ${rt.table} has ${result.rows} rows (expected at least ${rt.minRows})`);
    } catch (err) {
      failure = err;
    }
    let dropped = false;
    if (created && admin) {
      try {
        await admin.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`);
        dropped = true;
      } catch (err) {
        ctx.reporter.error(`could not drop scratch database ${name}: ${errorMessage(err)}`, `drop it by hand: psql -c 'DROP DATABASE "${name}"'`);
      }
    }
    await removeWorkDir(ctx);
    if (failure) {
      if (ctx.signal.aborted) throw failure;
      return fail(ctx, failure instanceof RunbookError ? failure : `restore test failed: ${errorMessage(failure)}`);
    }
    return { ...result!, dropped };
  },
});

const cleanup = step({
  id: 'cleanup',
  title: 'Remove the temporary file',
  why: 'A database dump is sensitive; it does not outlive the run.',
  risk: 'read',
  equivalent: () => 'rm -rf "$TMPDIR"',
  async run(ctx) {
    await removeWorkDir(ctx);
    return { removed: workDir(ctx) ?? null };
  },
});

export default defineProcedure<BackupVerifyParams>({
  name: 'backup verify',
  summary: 'Check the newest database backup in S3: streamed download, size/ETag, pg_restore --list, optional restore test',
  seedFixes: [
    '`aws s3 ls | tail -1` is sorted by name, not time, and lists "PRE" folders; this picks the newest object by LastModified under the prefix.',
    'The download is streamed to a private temp file (never held in memory), pinned to the listed ETag, and its size and MD5/ETag are checked.',
    'The seed only echoes an alert when pg_restore fails and a failed download goes unnoticed; every failure here alerts through the configured notify channels and exits 4 for cron.',
    'The seed restores into a fixed `test_restore` database that must already exist and is never cleaned; this creates a fresh, generated scratch database on the TEST server and always drops it.',
    'The seed never checks the restore: this counts tables and the rows of a configured table.',
  ],
  params: [
    {
      name: 'restoreTest',
      flag: '--restore-test',
      description: 'also restore into a scratch database on the configured test PostgreSQL',
      type: 'boolean',
      default: false,
    },
  ],
  examples: [[], ['--restore-test']],
  requires: ['aws'],
  // A failure alert that cannot be sent would go unnoticed by cron: its webhook is resolved up front.
  secrets: ['notify'],
  validate(p, env) {
    const b = backups(env);
    if (p.restoreTest && !b.restoreTest)
      throw new UsageError(
        `--restore-test needs environments.${env.name}.backups.restoreTest`,
        'add restoreTest: { url: { env: TEST_DATABASE_URL }, table: users }',
      );
  },
  steps: [list, download, verify, restore, cleanup],
  render(run) {
    const l = run.find(list);
    if (!l) return '';
    const d = run.find(download);
    const t = run.find(verify);
    const r = run.find(restore);
    const rows: Array<[string, string]> = [
      ['backup', `s3://${l.bucket}/${l.newest.key}`],
      ['modified', `${l.newest.lastModified} (${formatDuration(l.ageMs)} ago; ${l.count} backups under the prefix)`],
    ];
    if (d)
      rows.push(
        ['size', `${d.bytes} bytes (matches)`],
        ['etag', `${d.etag} (${d.etagCheck === 'unverifiable' ? 'not verifiable: checked size only' : `${d.etagCheck} verified`})`],
      );
    if (t) rows.push(['contents', `${t.entries} TOC entries, ${t.tables} tables, ${t.tableData} with data`]);
    if (r) rows.push(['restore', `${r.database} on ${r.server}: ${r.tables} tables, ${r.table} ${r.rows} rows (${r.dropped ? 'dropped' : 'NOT dropped'})`]);
    rows.push(['status', t && (!t.restoreRequested || r) ? 'OK' : 'FAILED']);
    return rows.map(([k, v]) => `${k.padEnd(9)} ${v}`).join('\n') + '\n';
  },
});
