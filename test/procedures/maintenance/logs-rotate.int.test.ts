/** logs rotate on real files (mtimes set with utimes) and a moto S3 archive. */
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { runCli, tempDir } from '../../support/cli.js';
import { writeConfig } from '../../support/config.js';
import { startMoto, type MotoService } from '../../support/services/index.js';
import { DR, listBucket, putObject, startFaultProxy, type FaultProxy } from '../../support/sandbox/dr-part.js';

let moto: MotoService;
let proxy: FaultProxy;
const DAY = 86_400_000;

beforeAll(async () => {
  moto = await startMoto();
  proxy = await startFaultProxy(moto);
});
afterAll(async () => {
  await proxy?.stop();
  await moto?.stop();
});
beforeEach(async () => {
  await moto.reset();
  proxy.fault = null;
  await putObject(moto, DR.logsBucket, 'archive/.keep', '', { create: true });
});

function content(name: string, lines = 2000): string {
  let s = '';
  for (let i = 0; i < lines; i++) s += `2024-01-01T00:00:${String(i % 60).padStart(2, '0')}Z ${name} GET /api/users/${i} 200 ${i * 7}ms\n`;
  return s;
}

/** A log dir: 3 old logs (10 days), 1 fresh log, 1 old .gz (40 days), 1 recent .gz (20 days), in a subdir too. */
function logDir(): { dir: string; originals: Record<string, string> } {
  const dir = tempDir('logs-');
  mkdirSync(join(dir, 'worker'));
  const originals: Record<string, string> = {};
  const put = (rel: string, data: string | Buffer, ageDays: number) => {
    writeFileSync(join(dir, rel), data);
    const t = (Date.now() - ageDays * DAY) / 1000;
    utimesSync(join(dir, rel), t, t);
    if (typeof data === 'string') originals[rel] = data;
  };
  put('app-1.log', content('app-1'), 10);
  put('app-2.log', content('app-2'), 10);
  put('worker/w-1.log', content('w-1'), 12);
  put('today.log', content('today', 10), 0);
  put('old.log.gz', Buffer.from('1f8b08000000000000034b cafe', 'hex'), 40);
  put('recent.log.gz', Buffer.from('1f8b0800000000000003 beef', 'hex'), 20);
  return { dir, originals };
}

const snapshot = (dir: string) =>
  readdirSync(dir, { recursive: true })
    .map(String)
    .filter((f) => statSync(join(dir, f)).isFile())
    .map((f) => `${f} ${statSync(join(dir, f)).size} ${Math.round(statSync(join(dir, f)).mtimeMs / 1000)}`)
    .sort();

function config(extra: Record<string, unknown> = {}, endpoint?: string) {
  return writeConfig({ environments: { ops: { aws: { region: 'us-east-1', endpoint: endpoint ?? moto.endpoint }, logs: { tail: 50, ...extra } } } });
}
const run = (argv: string[], cwd: string, extra: Parameters<typeof runCli>[1] = {}) =>
  runCli(argv, { cwd, ...extra, env: { ...moto.env(), RUNBOOK_JOURNAL_DIR: tempDir('journal-'), ...(extra.env ?? {}) } });

describe('logs rotate', () => {
  it('compresses old logs atomically (bytes identical after gunzip, mtime kept), archives, and deletes old local .gz behind the gate', async () => {
    const { dir, originals } = logDir();
    const { dir: cwd } = config({ dir, archive: `s3://${DR.logsBucket}/archive` });
    const mtime = statSync(join(dir, 'app-1.log')).mtimeMs;
    const r = await run(['logs', 'rotate', '--yes'], cwd);
    expect(r.code, r.stderr).toBe(0);
    for (const rel of ['app-1.log', 'app-2.log', 'worker/w-1.log']) {
      expect(existsSync(join(dir, rel))).toBe(false);
      expect(gunzipSync(readFileSync(join(dir, `${rel}.gz`))).toString()).toBe(originals[rel]);
    }
    expect(Math.round(statSync(join(dir, 'app-1.log.gz')).mtimeMs)).toBe(Math.round(mtime));
    expect(existsSync(join(dir, 'today.log'))).toBe(true);
    expect(existsSync(join(dir, 'old.log.gz'))).toBe(false); // 40 days, archived first
    expect(existsSync(join(dir, 'recent.log.gz'))).toBe(true);
    const remote = (await listBucket(moto, DR.logsBucket)).map((l) => l.split(' ')[0]);
    expect(remote).toEqual([
      'archive/.keep',
      'archive/app-1.log.gz',
      'archive/app-2.log.gz',
      'archive/old.log.gz',
      'archive/recent.log.gz',
      'archive/worker/w-1.log.gz',
    ]);
    expect(r.stdout).toMatch(/compressed\s+3/);
    expect(r.stdout).toMatch(/uploaded\s+5/);
    expect(
      readdirSync(dir, { recursive: true })
        .map(String)
        .filter((f) => f.endsWith('.tmp')),
    ).toEqual([]);
  });

  it('a second run uploads nothing (same size and MD5) and never deletes remote objects without --prune', async () => {
    const { dir } = logDir();
    const { dir: cwd } = config({ dir, archive: `s3://${DR.logsBucket}/archive` });
    expect((await run(['logs', 'rotate', '--yes'], cwd)).code).toBe(0);
    await putObject(moto, DR.logsBucket, 'archive/ancient.log.gz', 'x');
    const before = await listBucket(moto, DR.logsBucket);
    const again = await run(['logs', 'rotate', '--yes', '--json'], cwd);
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout).steps.find((s: { id: string }) => s.id === 'archive').status).toBe('skipped');
    expect(await listBucket(moto, DR.logsBucket)).toEqual(before);
  });

  it('--prune deletes archive objects missing locally, only behind its gate', async () => {
    const { dir } = logDir();
    const { dir: cwd } = config({ dir, archive: `s3://${DR.logsBucket}/archive` });
    await putObject(moto, DR.logsBucket, 'archive/ancient.log.gz', 'x');
    const declined = await run(['logs', 'rotate', '--prune'], cwd, { tty: true, answers: [false] });
    expect(declined.code).toBe(3);
    expect((await listBucket(moto, DR.logsBucket)).some((l) => l.startsWith('archive/ancient.log.gz'))).toBe(true);
    const r = await run(['logs', 'rotate', '--prune', '--yes'], cwd);
    expect(r.code, r.stderr).toBe(0);
    expect((await listBucket(moto, DR.logsBucket)).some((l) => l.startsWith('archive/ancient.log.gz'))).toBe(false);
    expect((await listBucket(moto, DR.logsBucket)).some((l) => l.startsWith('archive/.keep'))).toBe(true);
  });

  it('a dry run lists every file and changes nothing (local or remote)', async () => {
    const { dir } = logDir();
    const { dir: cwd } = config({ dir, archive: `s3://${DR.logsBucket}/archive` });
    const before = snapshot(dir);
    const remote = await listBucket(moto, DR.logsBucket);
    const r = await run(['logs', 'rotate', '--dry-run'], cwd);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('DRY RUN');
    expect(r.stderr).toMatch(/compress app-1\.log/);
    expect(r.stderr).toMatch(/upload s3:\/\/logs-bucket\/archive\/worker\/w-1\.log\.gz/);
    expect(r.stderr).toMatch(/delete old\.log\.gz/);
    expect(snapshot(dir)).toEqual(before);
    expect(await listBucket(moto, DR.logsBucket)).toEqual(remote);
  });

  it('declining the local delete gate keeps the old .gz (exit 3) but keeps the (safe) compression and upload', async () => {
    const { dir } = logDir();
    const { dir: cwd } = config({ dir, archive: `s3://${DR.logsBucket}/archive` });
    const r = await run(['logs', 'rotate'], cwd, { tty: true, answers: [false] });
    expect(r.code).toBe(3);
    expect(existsSync(join(dir, 'old.log.gz'))).toBe(true);
    expect(existsSync(join(dir, 'app-1.log.gz'))).toBe(true);
  });

  it('keeps local archives that could not be uploaded (S3 failure mid-way → exit 1, nothing deleted)', async () => {
    const { dir } = logDir();
    proxy.fault = (req) =>
      req.method === 'PUT' && req.path.includes('old.log.gz')
        ? { status: 500, headers: { 'content-type': 'application/xml' }, body: '<Error><Code>InternalError</Code><Message>injected</Message></Error>' }
        : null;
    const { dir: cwd } = config({ dir, archive: `s3://${DR.logsBucket}/archive` }, proxy.endpoint);
    const r = await run(['logs', 'rotate', '--yes'], cwd);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/1 upload\(s\) failed .*old\.log\.gz: AWS InternalError/);
    expect(existsSync(join(dir, 'old.log.gz'))).toBe(true);
    expect(existsSync(join(dir, 'app-1.log.gz'))).toBe(true);
  });

  it('an interrupted run leaves no half-written file; the next run clears leftovers and finishes', async () => {
    const dir = tempDir('logs-big-');
    const old = (Date.now() - 10 * DAY) / 1000;
    const originals: Record<string, string> = {};
    for (let i = 0; i < 12; i++) {
      originals[`big-${i}.log`] = content(`big-${i}`, 60_000);
      writeFileSync(join(dir, `big-${i}.log`), originals[`big-${i}.log`]);
      utimesSync(join(dir, `big-${i}.log`), old, old);
    }
    writeFileSync(join(dir, 'crashed.log.gz.tmp'), 'half'); // what a kill -9 would leave
    const { dir: cwd } = config({ dir });
    const abort = new AbortController();
    setTimeout(() => abort.abort(new Error('interrupted')), 150);
    const r = await run(['logs', 'rotate', '--yes'], cwd, { interrupts: { signal: abort.signal, hard: new AbortController().signal } });
    expect(r.code).not.toBe(0);
    await new Promise((res) => setTimeout(res, 500)); // let aborted streams finish their clean-up
    const files = readdirSync(dir);
    expect(files.filter((f) => f.endsWith('.gz.tmp'))).toEqual([]);
    for (const f of files.filter((x) => x.endsWith('.gz'))) expect(gunzipSync(readFileSync(join(dir, f))).toString()).toBe(originals[f.replace(/\.gz$/, '')]);
    const second = await run(['logs', 'rotate', '--yes'], cwd);
    expect(second.code, second.stderr).toBe(0);
    expect(readdirSync(dir).sort()).toEqual(
      Object.keys(originals)
        .map((f) => `${f}.gz`)
        .sort(),
    );
  });

  it.each([
    [['logs', 'rotate'], /missing --dir/],
    [['logs', 'rotate', '--yes', '--dir', '/nonexistent/logs'], /cannot read log directory \/nonexistent\/logs: ENOENT/],
    [['logs', 'rotate', '--yes', '--dir', '/etc/hostname'], /cannot read log directory \/etc\/hostname: ENOTDIR/],
    [['logs', 'rotate', '--dir', '/tmp', '--compress-after', 'soon'], /invalid --compress-after/],
    [['logs', 'rotate', '--dir', '/tmp', '--compress-after', '30d', '--delete-after', '7d'], /must be longer than --compress-after/],
    [['logs', 'rotate', '--dir', '/tmp', '--archive', 'http://bucket/x'], /not an S3 URL/],
    [['logs', 'rotate', '--dir', '/tmp', '--prune'], /--prune needs an archive/],
  ])('rejects %j with exit 2', async (argv, message) => {
    const { dir: cwd } = config();
    const r = await run(argv, cwd);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
  });

  it('a missing archive bucket is exit 2 before anything is compressed', async () => {
    const { dir } = logDir();
    const before = snapshot(dir);
    const { dir: cwd } = config({ dir, archive: 's3://no-such-bucket/archive' });
    const r = await run(['logs', 'rotate', '--yes'], cwd);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/archive bucket no-such-bucket does not exist/);
    expect(snapshot(dir)).toEqual(before);
  });
});
