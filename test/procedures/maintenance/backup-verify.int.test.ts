/** backup verify against moto S3, real pg_dump/pg_restore and a real test PostgreSQL; alerts to a local webhook. */
import { chmodSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { runCli, tempDir } from '../../support/cli.js';
import { writeConfig } from '../../support/config.js';
import { pgBin, startHttpService, startMoto, startPostgres, type HttpService, type MotoService, type PostgresService } from '../../support/services/index.js';
import { DR, listBucket, makeDump, putObject } from '../../support/sandbox/dr-part.js';

let moto: MotoService;
let pgSvc: PostgresService;
let hook: HttpService;
let dump: Buffer;

beforeAll(async () => {
  [moto, pgSvc, hook] = await Promise.all([startMoto(), startPostgres({ preload: [] }), startHttpService(() => ({ status: 200, body: 'ok' }))]);
  dump = await makeDump(pgSvc, join(tempDir('dump-'), 'app.dump'), 25);
});
afterAll(async () => {
  await Promise.all([moto?.stop(), pgSvc?.stop(), hook?.stop()]);
});
beforeEach(async () => {
  await moto.reset();
  hook.requests.length = 0;
  await putObject(moto, DR.backupBucket, 'database/app-2024-01-01.dump', dump.subarray(0, 100), { create: true });
  await new Promise((r) => setTimeout(r, 1100)); // LastModified has second precision: make the valid dump strictly newer
  await putObject(moto, DR.backupBucket, 'database/app-2024-01-02.dump', dump);
});

function config(over: { bucket?: string; table?: string; testUrl?: string; pgRestore?: string; protectedEnv?: boolean } = {}) {
  return writeConfig({
    environments: {
      nightly: {
        protected: over.protectedEnv ?? false,
        aws: { region: 'us-east-1', endpoint: moto.endpoint },
        notify: { slack: { webhook: `${hook.url}/hook` } },
        backups: {
          bucket: over.bucket ?? DR.backupBucket,
          prefix: 'database/',
          pgRestore: over.pgRestore ?? pgBin('pg_restore'),
          restoreTest: { url: { env: 'TEST_DATABASE_URL' }, table: over.table ?? 'users' },
        },
      },
    },
  });
}

const run = (argv: string[], cwd: string, extra: Parameters<typeof runCli>[1] = {}) =>
  runCli(argv, { cwd, ...extra, env: { ...moto.env(), TEST_DATABASE_URL: over(extra), RUNBOOK_JOURNAL_DIR: tempDir('journal-'), ...(extra.env ?? {}) } });
const over = (extra: Parameters<typeof runCli>[1]) => extra?.env?.TEST_DATABASE_URL ?? pgSvc.url;

async function databases(): Promise<string[]> {
  const c = new pg.Client({ connectionString: pgSvc.url });
  await c.connect();
  const r = await c.query<{ datname: string }>("SELECT datname FROM pg_database WHERE datname LIKE 'runbook_restore_%'");
  await c.end();
  return r.rows.map((x) => x.datname);
}
// A private temp directory for this file's process, so parallel test files cannot disturb the count.
process.env.TMPDIR = tempDir('backup-tmp-');
chmodSync(process.env.TMPDIR, 0o755); // the postgres user creates its data directory in here
const leftovers = () => readdirSync(tmpdir()).filter((f) => f.startsWith('runbook-backup-'));

describe('backup verify', () => {
  it('verifies the newest backup (by time, not name) with pg_restore --list; scriptable output, no alert', async () => {
    const before = leftovers().length;
    const { dir } = config();
    const r = await run(['backup', 'verify'], dir);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^backup\s+s3:\/\/backup-bucket\/database\/app-2024-01-02\.dump$/m);
    expect(r.stdout).toMatch(/^size\s+\d+ bytes \(matches\)$/m);
    expect(r.stdout).toMatch(/^etag\s+[0-9a-f]{32} \(md5 verified\)$/m);
    expect(r.stdout).toMatch(/^contents\s+\d+ TOC entries, 2 tables, 2 with data$/m);
    expect(r.stdout).toMatch(/^status\s+OK$/m);
    expect(hook.requests).toHaveLength(0);
    expect(leftovers().length).toBe(before);
  });

  it('restores into a scratch database, counts rows, and drops it', async () => {
    const { dir } = config();
    const r = await run(['backup', 'verify', '--restore-test', '--json'], dir);
    expect(r.code, r.stderr).toBe(0);
    const restore = JSON.parse(r.stdout).steps.find((s: { id: string }) => s.id === 'restore').data;
    expect(restore).toMatchObject({ tables: 2, table: 'users', rows: 25, dropped: true });
    expect(restore.database).toMatch(/^runbook_restore_\d{14}_[0-9a-f]{6}$/);
    expect(await databases()).toEqual([]);
    expect(r.stdout).not.toContain(pgSvc.password);
  });

  it('alerts and exits 4 on a truncated dump, and leaves no temp file', async () => {
    const before = leftovers().length;
    await new Promise((r) => setTimeout(r, 1100));
    await putObject(moto, DR.backupBucket, 'database/app-2024-01-03.dump', dump.subarray(0, Math.floor(dump.length / 2)));
    const { dir } = config();
    const r = await run(['backup', 'verify'], dir);
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/app-2024-01-03\.dump is corrupt: pg_restore --list exit 1/);
    expect(r.stdout).toMatch(/^status\s+FAILED$/m);
    expect(hook.requests).toHaveLength(1);
    expect((hook.requests[0].json as { text: string }).text).toMatch(/backup verify FAILED in nightly .*corrupt/);
    expect(leftovers().length).toBe(before);
  });

  it('drops the scratch database when the restore check fails (missing table), alerts, exit 4', async () => {
    const { dir } = config({ table: 'nosuch' });
    const r = await run(['backup', 'verify', '--restore-test'], dir);
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/restored database has no table nosuch/);
    expect(await databases()).toEqual([]);
    expect(hook.requests).toHaveLength(1);
  });

  it('alerts and exits 4 when the test server is down mid-run', async () => {
    const { dir } = config();
    const r = await run(['backup', 'verify', '--restore-test'], dir, { env: { TEST_DATABASE_URL: 'postgres://postgres:pw@127.0.0.1:9/postgres' } });
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/restore test failed: cannot connect to PostgreSQL at 127\.0\.0\.1:9/);
    expect(r.stderr).not.toContain(':pw@');
    expect(hook.requests).toHaveLength(1);
  });

  it('a missing bucket is a config error (exit 2), and still alerts', async () => {
    const { dir } = config({ bucket: 'no-such-bucket' });
    const r = await run(['backup', 'verify'], dir);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/backup bucket no-such-bucket does not exist/);
    expect(hook.requests).toHaveLength(1);
  });

  it('fails with exit 4 and an install hint when pg_restore is missing', async () => {
    const { dir } = config({ pgRestore: '/nonexistent/pg_restore' });
    const r = await run(['backup', 'verify'], dir);
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/cannot run \/nonexistent\/pg_restore/);
    expect(r.stderr).toMatch(/install the PostgreSQL client tools/);
  });

  it('a dry run downloads and lists but creates no database', async () => {
    const { dir } = config();
    const bucket = await listBucket(moto, DR.backupBucket);
    const r = await run(['backup', 'verify', '--restore-test', '--dry-run'], dir);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('DRY RUN');
    expect(r.stderr).toMatch(/create, restore, count and drop a scratch database/);
    expect(await databases()).toEqual([]);
    expect(await listBucket(moto, DR.backupBucket)).toEqual(bucket);
    expect(hook.requests).toHaveLength(0);
  });

  it('the restore test is gated in a protected environment (exit 3 without --yes; nothing created)', async () => {
    const { dir } = config({ protectedEnv: true });
    const r = await run(['backup', 'verify', '--restore-test'], dir);
    expect(r.code).toBe(3);
    expect(await databases()).toEqual([]);
  });

  it('rejects --restore-test without a restoreTest section (exit 2)', async () => {
    const c = writeConfig({ environments: { nightly: { aws: { region: 'us-east-1', endpoint: moto.endpoint }, backups: { bucket: 'b-1', prefix: 'x/' } } } });
    const r = await run(['backup', 'verify', '--restore-test'], c.dir);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--restore-test needs environments\.nightly\.backups\.restoreTest/);
  });
});
