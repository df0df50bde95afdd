/**
 * The team journal on moto's S3 (a bucket with Object Lock): two operators, each with a journal
 * directory of their own, see each other's runs in `history --team`, `show` and `report new`; a run
 * that cannot reach the sink loses nothing and is caught up by the next command; a run is uploaded
 * after every step, not only at its end.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import {
  CreateBucketCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectVersionsCommand,
  PutObjectLockConfigurationCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/main.js';
import { parseEvents, runFile } from '../../src/core/journal.js';
import type { Procedure, Step } from '../../src/core/procedure.js';
import { REPO_ROOT, tempDir } from '../support/cli.js';
import { writeConfig } from '../support/config.js';
import { freePort, startMoto, type MotoService } from '../support/services/index.js';

const BUCKET = 'team-journal';
const PREFIX = 'ops';
let moto: MotoService;
let s3: S3Client;

beforeAll(async () => {
  moto = await startMoto();
  s3 = new S3Client({
    region: moto.region,
    endpoint: moto.endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
  });
  // Object Lock (versioning on): every PUT of a run is a retained version.
  await s3.send(new CreateBucketCommand({ Bucket: BUCKET, ObjectLockEnabledForBucket: true }));
  await s3.send(
    new PutObjectLockConfigurationCommand({
      Bucket: BUCKET,
      ObjectLockConfiguration: { ObjectLockEnabled: 'Enabled', Rule: { DefaultRetention: { Mode: 'GOVERNANCE', Days: 1 } } },
    }),
  );
}, 60_000);
afterAll(async () => {
  s3?.destroy();
  await moto?.stop();
});

class Capture extends Writable {
  text = '';
  override _write(chunk: Buffer | string, _enc: BufferEncoding, cb: () => void) {
    this.text += chunk.toString();
    cb();
  }
}

interface Operator {
  name: string;
  journal: string;
}

const operator = (name: string): Operator => ({ name, journal: tempDir(`journal-${name.split('@')[0]}-`) });

function config(shared: Record<string, unknown> = {}, rotate: string[][] = [['true']]) {
  return writeConfig({
    journal: { shared: { s3: { bucket: BUCKET, prefix: PREFIX, ...shared } } },
    environments: { prod: { aws: { region: 'us-east-1' }, security: { rotate } } },
  });
}

/** The CLI in-process as one operator (their own journal directory and identity). */
async function as(who: Operator, argv: string[], cwd: string, procedureOverride?: (p: Procedure) => Procedure) {
  const stdout = new Capture();
  const stderr = new Capture();
  const code = await main(argv, {
    io: {
      stdin: new PassThrough(),
      stdout,
      stderr,
      stdinIsTTY: false,
      stdoutIsTTY: false,
      stderrIsTTY: false,
      env: { ...moto.env(), HOME: tempDir('home-'), RUNBOOK_JOURNAL_DIR: who.journal, NO_COLOR: '1', USER: who.name.split('@')[0] },
      cwd,
    },
    operator: who.name,
    procedureOverride,
  });
  return { code, stdout: stdout.text, stderr: stderr.text };
}

const keyOf = (runId: string) => `${PREFIX}/runs/${runId.slice(0, 4)}/${runId.slice(4, 6)}/${runId.slice(6, 8)}/${runId}.ndjson`;
const runIdOf = (json: string) => (JSON.parse(json) as { runId: string }).runId;

async function sharedText(runId: string): Promise<string | null> {
  try {
    const r = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: keyOf(runId) }));
    return (await r.Body?.transformToString()) ?? null;
  } catch {
    return null;
  }
}

interface HistoryRow {
  runId: string;
  operator: string;
  procedure: string;
  dryRun: string;
  status: string;
  source?: string;
}

describe('the team journal on S3', () => {
  const alice = operator('alice@laptop-a');
  const bob = operator('bob@laptop-b');
  const ids: Record<string, string> = {};

  beforeAll(async () => {
    const { dir } = config();
    const rotate = await as(alice, ['security', 'rotate-secrets', '--yes', '--confirm', 'prod', '--json'], dir);
    expect(rotate.code, rotate.stderr).toBe(0);
    ids.rotate = runIdOf(rotate.stdout);
    const dry = await as(alice, ['security', 'rotate-secrets', '--dry-run', '--json'], dir);
    expect(dry.code, dry.stderr).toBe(0);
    ids.dry = runIdOf(dry.stdout);
    const info = await as(bob, ['info', '--json'], dir);
    expect(info.code, info.stderr).toBe(0);
    ids.bob = runIdOf(info.stdout);
    const bobRotates = await as(bob, ['security', 'rotate-secrets', '--yes', '--confirm', 'prod', '--json'], dir);
    expect(bobRotates.code, bobRotates.stderr).toBe(0);
    ids.bobRotate = runIdOf(bobRotates.stdout);
  }, 60_000);

  it("each operator's history --team holds the other's runs, once each; plain history only their own", async () => {
    const { dir } = config();
    const bobs = await as(bob, ['history', '--team', '--json'], dir);
    expect(bobs.code, bobs.stderr).toBe(0);
    const rows = JSON.parse(bobs.stdout) as HistoryRow[];
    expect(rows.map((r) => r.runId)).toEqual([ids.bobRotate, ids.bob, ids.dry, ids.rotate].sort().reverse());
    expect(rows.find((r) => r.runId === ids.rotate)).toMatchObject({
      operator: 'alice@laptop-a',
      procedure: 'security rotate-secrets',
      status: 'succeeded',
      source: 'team',
    });
    expect(rows.find((r) => r.runId === ids.dry)).toMatchObject({ operator: 'alice@laptop-a', dryRun: 'plan', source: 'team' });
    expect(rows.find((r) => r.runId === ids.bob)).toMatchObject({ operator: 'bob@laptop-b', source: 'local' });

    const alices = await as(alice, ['history', '--team', '-o', 'yaml', '--operator', 'bob'], dir);
    expect(alices.code, alices.stderr).toBe(0);
    expect(alices.stdout).toContain(`runId: ${ids.bob}`);
    expect(alices.stdout).toContain(`runId: ${ids.bobRotate}`);
    expect(alices.stdout).not.toContain(ids.rotate);

    const table = await as(bob, ['history', '--team', '--no-dry-runs'], dir);
    expect(table.stdout).toContain(ids.rotate);
    expect(table.stdout).not.toContain(ids.dry);
    expect((await as(bob, ['history', '--team'], dir)).stdout).toMatch(new RegExp(`${ids.dry}.*\\(dry run\\).*alice@laptop-a`));

    const plain = JSON.parse((await as(bob, ['history', '--json'], dir)).stdout) as HistoryRow[];
    expect(plain.map((r) => r.runId)).toEqual([ids.bobRotate, ids.bob].sort().reverse());
    for (const n of [1, 2, 3]) {
      const limited = JSON.parse((await as(bob, ['history', '--team', '--json', '--limit', String(n)], dir)).stdout) as HistoryRow[];
      expect(limited.map((r) => r.runId)).toEqual([ids.bobRotate, ids.bob, ids.dry, ids.rotate].sort().reverse().slice(0, n));
    }
  });

  it("show finds the other operator's run in the team journal, and says so", async () => {
    const { dir } = config();
    const r = await as(bob, ['show', ids.rotate], dir);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`run ${ids.rotate}: security rotate-secrets on prod by alice@laptop-a`);
    expect(r.stdout).toMatch(/rotate: succeeded/);
    expect(r.stderr).toContain(`(from the team journal s3://${BUCKET}/${PREFIX})`);
    const missing = await as(bob, ['show', '20200101T000000-abcd'], dir);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain(`no run 20200101T000000-abcd in ${bob.journal} or s3://${BUCKET}/${PREFIX}`);
  });

  it("report new --since holds the other operator's runs and changes", async () => {
    const { dir } = config();
    const r = await as(bob, ['report', 'new', '--title', 'Credentials leaked', '--severity', 'P2', '--since', '1h'], dir);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`alice@laptop-a ran \`runbook security rotate-secrets\` on prod (run ${ids.rotate})`);
    expect(r.stdout).toContain('Rotate the credentials');
    expect(r.stdout).toContain(`bob@laptop-b ran \`runbook security rotate-secrets\` on prod (run ${ids.bobRotate})`);
    expect(r.stdout).toContain(
      `by alice@laptop-a: succeeded (changed: Rotate the credentials (configured rotation commands)) — \`runbook show ${ids.rotate}\``,
    );
    // Real runs only, as without a team journal: the dry run is not in the report.
    expect(r.stdout).not.toContain(ids.dry);
  });

  it('each upload is a retained version of the whole run file, with who ran what as metadata', async () => {
    const versions = await s3.send(new ListObjectVersionsCommand({ Bucket: BUCKET, Prefix: keyOf(ids.rotate) }));
    expect(versions.Versions?.length).toBeGreaterThanOrEqual(2);
    expect(await sharedText(ids.rotate)).toBe(readFileSync(runFile(alice.journal, ids.rotate), 'utf8'));
    const head = await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: keyOf(ids.rotate) }));
    expect(head.Metadata).toEqual({ operator: 'alice@laptop-a', procedure: 'security rotate-secrets', environment: 'prod' });
    expect(head.ObjectLockMode).toBe('GOVERNANCE');
    expect(existsSync(join(alice.journal, 'shared-pending', ids.rotate))).toBe(false);
  });
});

describe('a sink that cannot be reached', () => {
  it('loses nothing: the run succeeds with one warning, and the next command that reaches the sink uploads it', async () => {
    const carol = operator('carol@laptop-c');
    const dave = operator('dave@laptop-d');
    const closed = await freePort();
    const down = config({ endpoint: `http://127.0.0.1:${closed}` });
    const r = await as(carol, ['info', '--json'], down.dir);
    expect(r.code, r.stderr).toBe(0);
    const id = runIdOf(r.stdout);
    const warnings = r.stderr.split('\n').filter((l) => l.includes('could not be written'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain(`the team journal s3://${BUCKET}/${PREFIX} could not be written (cannot connect: ECONNREFUSED)`);
    expect(r.stderr).not.toContain('testing');
    expect(existsSync(join(carol.journal, 'shared-pending', id))).toBe(true);
    expect(parseEvents(readFileSync(runFile(carol.journal, id), 'utf8')).at(-1)).toMatchObject({ type: 'run-end', status: 'succeeded' });
    expect(await sharedText(id)).toBeNull();

    // history --team while it is still down: a warning, and the local runs.
    const offline = await as(carol, ['history', '--team', '--json'], down.dir);
    expect(offline.code, offline.stderr).toBe(0);
    expect((JSON.parse(offline.stdout) as HistoryRow[]).map((x) => x.runId)).toEqual([id]);
    expect(offline.stderr).toContain(`the team journal s3://${BUCKET}/${PREFIX} could not be read (cannot connect: ECONNREFUSED): showing local runs only`);
    expect(offline.stderr).toContain(`1 run stays queued in ${carol.journal}/shared-pending`);
    expect(existsSync(join(carol.journal, 'shared-pending', id))).toBe(true);

    // The sink is back: carol's next command catches up, and dave sees the run.
    const { dir } = config();
    const next = await as(carol, ['history'], dir);
    expect(next.code, next.stderr).toBe(0);
    expect(next.stderr).toBe('');
    expect(existsSync(join(carol.journal, 'shared-pending', id))).toBe(false);
    expect(await sharedText(id)).toBe(readFileSync(runFile(carol.journal, id), 'utf8'));
    const seen = JSON.parse((await as(dave, ['history', '--team', '--json', '--operator', 'carol'], dir)).stdout) as HistoryRow[];
    expect(seen.map((x) => x.runId)).toEqual([id]);
  }, 60_000);

  it('history --team on a bucket that does not exist is a config error (exit 2)', async () => {
    const { dir } = writeConfig({ journal: { shared: { s3: { bucket: 'no-such-team-bucket' } } }, environments: { prod: {} } });
    const r = await as(operator('erin@laptop-e'), ['history', '--team'], dir);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      'error: the team journal s3://no-such-team-bucket could not be read (NoSuchBucket (404): bucket no-such-team-bucket does not exist)',
    );
  });

  it('a bad journal.shared is refused before anything runs', async () => {
    const { dir } = writeConfig({ journal: { shared: { s3: { bucket: 'Bad_Bucket', prefx: 'x' } } }, environments: { prod: {} } });
    const r = await as(operator('erin@laptop-e'), ['info'], dir);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('journal.shared.s3.prefx: unknown key "prefx" (did you mean prefix?)');
    expect(r.stderr).toContain('journal.shared.s3.bucket: an S3 bucket name');
  });
});

describe('uploads as the run goes', () => {
  it('the shared copy holds each finished step while the run is still going', async () => {
    const frank = operator('frank@laptop-f');
    const { dir } = config();
    // A step after the first that waits until the team journal shows the first step's end.
    const watch: Step = {
      id: 'watch-shared',
      title: 'Wait for the shared copy',
      why: 'the test looks at S3 mid-run',
      risk: 'read',
      equivalent: () => 'aws s3 cp …',
      async run(ctx) {
        const deadline = Date.now() + 10_000;
        for (;;) {
          const text = await sharedText(ctx.runId);
          const events = text ? parseEvents(text) : [];
          if (events.some((e) => e.type === 'step-end' && e.step === 'info')) return { events: events.map((e) => e.type) };
          if (Date.now() > deadline) throw new Error(`no step-end of "info" in the shared copy: ${text}`);
          await new Promise((r) => setTimeout(r, 50));
        }
      },
    };
    const override = (p: Procedure): Procedure => ({ ...p, steps: [...p.steps, watch] });
    const r = await as(frank, ['info', '--json'], dir, override);
    expect(r.code, r.stderr).toBe(0);
    const run = JSON.parse(r.stdout) as { runId: string; steps: Array<{ id: string; data?: { events: string[] } }> };
    // Mid-run, the shared copy had the first step and no end yet.
    const midRun = run.steps.find((s) => s.id === 'watch-shared')?.data?.events;
    expect(midRun).toContain('step-end');
    expect(midRun).not.toContain('run-end');
    expect(parseEvents((await sharedText(run.runId)) ?? '').at(-1)).toMatchObject({ type: 'run-end', status: 'succeeded' });
  }, 30_000);
});

describe('a run killed mid-way', () => {
  it('leaves its partial run (up to the gate) in the team journal and a marker; the next command uploads the local file again', async () => {
    const gina = operator('gina@laptop-g');
    const { dir, path } = config({}, [['sleep', '120']]);
    // The CLI from src in a process of its own (its own group, so the sleep dies with it).
    const code = `import(${JSON.stringify(join(REPO_ROOT, 'src', 'main.ts'))}).then(async (m) => { process.exitCode = await m.run(process.argv.slice(1)); })`;
    const child = spawn(process.execPath, ['--import', 'tsx', '-e', code, '--', 'security', 'rotate-secrets', '--yes', '--confirm', 'prod'], {
      cwd: REPO_ROOT,
      env: { ...process.env, ...moto.env(), RUNBOOK_CONFIG: path, RUNBOOK_JOURNAL_DIR: gina.journal, NO_COLOR: '1', USER: 'gina' },
      stdio: 'ignore',
      detached: true,
    });
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    let id = '';
    try {
      const deadline = Date.now() + 60_000;
      for (;;) {
        const files = existsSync(join(gina.journal, 'runs')) ? readdirSync(join(gina.journal, 'runs'), { recursive: true }).map(String) : [];
        const file = files.find((f) => f.endsWith('.ndjson'));
        id = file ? file.split('/').pop()!.slice(0, -'.ndjson'.length) : '';
        const local = id ? parseEvents(readFileSync(runFile(gina.journal, id), 'utf8')) : [];
        const team = id ? parseEvents((await sharedText(id)) ?? '') : [];
        if (local.some((e) => e.type === 'step-start') && team.some((e) => e.type === 'gate')) break;
        if (Date.now() > deadline) throw new Error(`the run did not reach its step: ${JSON.stringify(local)}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    } finally {
      process.kill(-child.pid!, 'SIGKILL');
      await exited;
    }
    const before = parseEvents((await sharedText(id)) ?? '').map((e) => e.type);
    // Uploaded at the gate, before the step that never ended.
    expect(before).toEqual(['run-start', 'step-start', 'gate']);
    expect(JSON.parse(readFileSync(join(gina.journal, 'shared-pending', id), 'utf8'))).toMatchObject({ pid: child.pid });

    const versions = async () => (await s3.send(new ListObjectVersionsCommand({ Bucket: BUCKET, Prefix: keyOf(id) }))).Versions?.length ?? 0;
    const uploads = await versions();
    const next = await as(gina, ['history'], dir);
    expect(await versions()).toBe(uploads + 1);
    expect(next.code, next.stderr).toBe(0);
    expect(existsSync(join(gina.journal, 'shared-pending', id))).toBe(false);
    expect(await sharedText(id)).toBe(readFileSync(runFile(gina.journal, id), 'utf8'));
    const seen = JSON.parse((await as(operator('hank@laptop-h'), ['history', '--team', '--json', '--operator', 'gina'], dir)).stdout) as HistoryRow[];
    expect(seen).toMatchObject([{ runId: id, status: 'incomplete', source: 'team' }]);
  }, 90_000);
});
