// Issue 10/11: one reader of the journal (typed events, newest first, reading only what is asked for),
// `lastEffective` for "what is still in effect", and retention (journal.keep).
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { configSchema } from '../../src/core/config-schema.js';
import { openJournal } from '../../src/core/journal-reader.js';
import { pruneJournal, PRUNE_MARKER } from '../../src/core/journal-retention.js';
import { runIdFloor, runIdTime } from '../../src/core/journal.js';
import { runCli, tempDir } from '../support/cli.js';
import { twoEnvironments, writeConfig } from '../support/config.js';
import { FakeKube, fakeFactories } from '../support/fakes/fake-kube.js';

type Line = Record<string, unknown>;

/** A run id for a time (ids sort by time, as newRunId's do). */
function idAt(iso: string, suffix = '0000'): string {
  return `${iso.replace(/[-:]/g, '').replace(/\.\d+Z$|Z$/, '')}-${suffix}`;
}

interface RunSpec {
  at: string;
  suffix?: string;
  procedure?: string;
  env?: string;
  dryRun?: string;
  params?: Record<string, unknown>;
  /** step id → data: a write step that succeeded. */
  steps?: Record<string, unknown>;
  /** steps put back. */
  undone?: string[];
  /** a read step that succeeded. */
  reads?: string[];
  end?: { status: string; exitCode: number } | null;
}

function writeRun(dir: string, r: RunSpec): string {
  const id = idAt(r.at, r.suffix);
  const lines: Line[] = [
    {
      t: r.at,
      type: 'run-start',
      runId: id,
      procedure: r.procedure ?? 'app scale',
      environment: r.env ?? 'staging',
      params: r.params ?? {},
      operator: 'tester@test',
      dryRun: r.dryRun ?? 'off',
    },
  ];
  for (const s of r.reads ?? []) {
    lines.push({ t: r.at, type: 'step-start', step: s, title: s, risk: 'read' });
    lines.push({ t: r.at, type: 'step-end', step: s, status: 'succeeded', data: {} });
  }
  for (const [s, data] of Object.entries(r.steps ?? {})) {
    lines.push({ t: r.at, type: 'step-start', step: s, title: s, risk: 'write' });
    lines.push({ t: r.at, type: 'step-end', step: s, status: 'succeeded', data });
  }
  for (const s of r.undone ?? []) lines.push({ t: r.at, type: 'compensation', step: s, status: 'succeeded' });
  if (r.end !== null) lines.push({ t: r.at, type: 'run-end', status: r.end?.status ?? 'succeeded', exitCode: r.end?.exitCode ?? 0, durationMs: 5 });
  mkdirSync(join(dir, 'runs'), { recursive: true });
  writeFileSync(join(dir, 'runs', `${id}.ndjson`), lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
  return id;
}

function journalOf(runs: RunSpec[]): { dir: string; ids: string[] } {
  const dir = tempDir('journal-reader-');
  return { dir, ids: runs.map((r) => writeRun(dir, r)) };
}

function warnings() {
  const seen: string[] = [];
  return { seen, warn: (m: string) => seen.push(m) };
}

describe('run ids and time', () => {
  it('an id says when it was made; the floor of a time sorts with the ids', () => {
    const id = idAt('2026-03-04T05:06:07Z', 'beef');
    expect(runIdTime(id)).toBe(Date.parse('2026-03-04T05:06:07Z'));
    expect(runIdTime('not-a-run')).toBeNull();
    expect(runIdFloor(Date.parse('2026-03-04T05:06:07Z')) <= id).toBe(true);
    expect(runIdFloor(Date.parse('2026-03-04T05:06:07.500Z')) > id).toBe(true);
  });
});

describe('runs()', () => {
  const { dir, ids } = journalOf([
    { at: '2026-01-01T00:00:00Z' },
    { at: '2026-01-01T01:00:00Z', env: 'production' },
    { at: '2026-01-01T02:00:00Z', dryRun: 'plan' },
    { at: '2026-01-01T03:00:00Z', procedure: 'db restart' },
    { at: '2026-01-01T04:00:00Z', end: null },
  ]);

  it('newest first, dry runs left out unless asked for, with the summary and typed events', async () => {
    const j = openJournal(dir);
    const runs = await j.runs();
    expect(runs.map((r) => r.runId)).toEqual([ids[4], ids[3], ids[1], ids[0]]);
    expect(runs[0].status).toBe('incomplete');
    expect(runs[0].end).toBeUndefined();
    expect(runs[1]).toMatchObject({
      procedure: 'db restart',
      environment: 'staging',
      operator: 'tester@test',
      dryRun: 'off',
      status: 'succeeded',
      exitCode: 0,
      durationMs: 5,
      startedAt: '2026-01-01T03:00:00Z',
    });
    expect(runs[1].start.type).toBe('run-start');
    expect((await j.runs({ includeDryRuns: true })).map((r) => r.runId)).toContain(ids[2]);
  });

  it('limit, since, procedure and env', async () => {
    const j = openJournal(dir);
    expect((await j.runs({ limit: 2 })).map((r) => r.runId)).toEqual([ids[4], ids[3]]);
    expect((await j.runs({ since: Date.parse('2026-01-01T01:00:00Z') })).map((r) => r.runId)).toEqual([ids[4], ids[3], ids[1]]);
    expect((await j.runs({ since: new Date('2026-01-01T03:30:00Z'), includeDryRuns: true })).map((r) => r.runId)).toEqual([ids[4]]);
    expect((await j.runs({ procedure: 'db restart' })).map((r) => r.runId)).toEqual([ids[3]]);
    expect((await j.runs({ env: 'production' })).map((r) => r.runId)).toEqual([ids[1]]);
    expect(await j.runs({ since: Date.parse('2027-01-01T00:00:00Z') })).toEqual([]);
  });

  it('the run in progress is never among them; events() and run() read one run', async () => {
    const j = openJournal(dir, { current: ids[4] });
    expect((await j.runs({ limit: 1 })).map((r) => r.runId)).toEqual([ids[3]]);
    expect((await j.events(ids[3])).map((e) => e.type)).toEqual(['run-start', 'run-end']);
    expect((await j.run(ids[0]))?.procedure).toBe('app scale');
    expect(await j.run('20200101T000000-dead')).toBeNull();
    await expect(j.events('20200101T000000-dead')).rejects.toThrow();
  });

  it('an empty journal directory, or none at all, has no runs', async () => {
    expect(await openJournal(tempDir()).runs()).toEqual([]);
    expect(await openJournal(join(tempDir(), 'nowhere')).lastEffective('app scale', { env: 'staging' })).toBeNull();
  });

  it('reads only as far as it needs: a broken file older than what is shown is never opened', async () => {
    const d = tempDir('journal-reader-');
    mkdirSync(join(d, 'runs'));
    writeFileSync(join(d, 'runs', '20250101T000000-0000.ndjson'), 'garbage');
    // More than the reader reads ahead, all newer than the broken one.
    for (let i = 0; i < 40; i++) writeRun(d, { at: `2026-01-01T00:${String(i).padStart(2, '0')}:00Z` });
    const w = warnings();
    const j = openJournal(d, w);
    expect(await j.runs({ limit: 5 })).toHaveLength(5);
    expect(await j.runs({ since: Date.parse('2026-01-01T00:30:00Z') })).toHaveLength(10);
    expect(w.seen).toEqual([]);
    // Asked for everything, it gets there, and says so once.
    expect(await j.runs()).toHaveLength(40);
    expect(w.seen).toEqual(['skipped 1 run file with no start record (empty or cut off): 20250101T000000-0000']);
  });
});

describe('broken run files', () => {
  it('an empty, cut-off, garbage or unreadable file is skipped with one warning; a torn last line keeps the run', async () => {
    const { dir, ids } = journalOf([{ at: '2026-01-01T00:00:00Z' }, { at: '2026-01-01T00:05:00Z' }]);
    writeFileSync(join(dir, 'runs', '20260101T000100-0000.ndjson'), '');
    writeFileSync(join(dir, 'runs', '20260101T000200-0000.ndjson'), '{"t":"2026-01-01T00:02:00.000Z","type":"run-st');
    writeFileSync(join(dir, 'runs', '20260101T000300-0000.ndjson'), 'null\n42\n"x"\n[1]\n{"type":"nonsense","t":"x"}\n\u0000\u0001\n');
    mkdirSync(join(dir, 'runs', '20260101T000400-0000.ndjson'));
    // A crash mid-line: what came before it is intact.
    writeFileSync(
      join(dir, 'runs', ids[1] + '.ndjson'),
      readFileSync(join(dir, 'runs', ids[1] + '.ndjson'), 'utf8').replace(/\{"t"[^\n]*"run-end"[^\n]*\n$/, '{"t":"2026-01-01T00:05:01Z","type":"step-'),
    );
    const w = warnings();
    const j = openJournal(dir, w);
    const runs = await j.runs({ includeDryRuns: true });
    expect(runs.map((r) => [r.runId, r.status])).toEqual([
      [ids[1], 'incomplete'],
      [ids[0], 'succeeded'],
    ]);
    expect(w.seen).toEqual([
      'skipped 4 run files with no start record (empty or cut off): 20260101T000100-0000, 20260101T000200-0000, 20260101T000300-0000, 20260101T000400-0000',
    ]);
    // Once per reader: looking again says nothing new.
    await j.runs();
    expect(await j.lastEffective('app scale', { env: 'staging' })).toBeNull();
    expect(w.seen).toHaveLength(1);
  });
});

describe('lastEffective()', () => {
  const on = (at: string, extra: Partial<RunSpec> = {}): RunSpec => ({
    at,
    procedure: 'security audit-mode',
    params: { mode: 'on' },
    steps: { apply: { prior: { LOG_LEVEL: at } } },
    ...extra,
  });

  it('the newest real run in the environment whose change was not put back: dry runs, compensated runs and other environments are passed over', async () => {
    const { dir, ids } = journalOf([
      on('2026-01-01T00:00:00Z'),
      on('2026-01-01T00:01:00Z'),
      on('2026-01-01T00:02:00Z', { undone: ['apply'] }),
      on('2026-01-01T00:03:00Z', { env: 'production' }),
      on('2026-01-01T00:04:00Z', { dryRun: 'plan' }),
      { at: '2026-01-01T00:05:00Z', procedure: 'app scale', steps: { scale: { from: 1 } } },
      on('2026-01-01T00:06:00Z', { steps: {}, reads: ['current'] }),
    ]);
    const j = openJournal(dir);
    const run = await j.lastEffective('security audit-mode', { env: 'staging' });
    expect(run?.runId).toBe(ids[1]);
    expect(run?.effect('apply')).toEqual({ prior: { LOG_LEVEL: '2026-01-01T00:01:00Z' } });
    expect(run?.done('apply')?.status).toBe('succeeded');
    expect(run?.undone('apply')).toBe(false);
    expect((await j.lastEffective('security audit-mode', { env: 'production' }))?.runId).toBe(ids[3]);
    expect(await j.lastEffective('security audit-mode', { env: 'nowhere' })).toBeNull();
    // Several procedures; the run in progress is never its own "last".
    expect((await j.lastEffective(['security audit-mode', 'app scale'], { env: 'staging' }))?.runId).toBe(ids[5]);
    expect((await openJournal(dir, { current: ids[5] }).lastEffective(['security audit-mode', 'app scale'], { env: 'staging' }))?.runId).toBe(ids[1]);
  });

  it('steps name the changes that count; where passes over a run or ends the search', async () => {
    const { dir, ids } = journalOf([
      { at: '2026-01-01T00:00:00Z', procedure: 'outage start', steps: { incident: { id: 'old' }, apply: {} } },
      { at: '2026-01-01T00:01:00Z', procedure: 'outage start', steps: { apply: {} } },
      { at: '2026-01-01T00:02:00Z', procedure: 'outage start', steps: { incident: { id: 'err' } }, undone: ['incident'] },
    ]);
    const j = openJournal(dir);
    expect((await j.lastEffective('outage start', { env: 'staging', steps: ['incident'] }))?.runId).toBe(ids[0]);
    expect((await j.lastEffective('outage start', { env: 'staging', steps: ['incident', 'apply'] }))?.runId).toBe(ids[1]);
    const where = (r: { done(s: string): unknown; undone(s: string): boolean }) =>
      !r.done('incident') ? false : r.undone('incident') ? ('none' as const) : true;
    expect(await j.lastEffective('outage start', { env: 'staging', steps: ['incident'], where })).toBeNull();
    // A typed handle on a step reads its data typed.
    const incident = { id: 'incident', run: async (): Promise<{ id: string }> => ({ id: '' }) };
    const run = await j.lastEffective('outage start', { env: 'staging', steps: [incident] });
    const data: { id: string } | undefined = run?.effect(incident);
    expect(data).toEqual({ id: 'old' });
  });

  it('a later closing run (a revert, a completed recovery) leaves nothing in effect', async () => {
    const { dir, ids } = journalOf([
      { at: '2026-01-01T00:00:00Z', procedure: 'security ddos', steps: { waf: { names: ['x'] } } },
      { at: '2026-01-01T00:01:00Z', procedure: 'security ddos-revert', end: { status: 'failed', exitCode: 1 } },
    ]);
    const j = openJournal(dir);
    expect((await j.lastEffective('security ddos', { env: 'staging' }))?.runId).toBe(ids[0]);
    expect(await j.lastEffective('security ddos', { env: 'staging', closedBy: { procedure: 'security ddos-revert' } })).toBeNull();
    // Only a closing run that passes its own test closes (a recovery that completed).
    expect(
      (await j.lastEffective('security ddos', { env: 'staging', closedBy: { procedure: 'security ddos-revert', where: (r) => r.exitCode === 0 } }))?.runId,
    ).toBe(ids[0]);
    // A dry-run revert closes nothing.
    writeRun(dir, { at: '2026-01-01T00:02:00Z', procedure: 'security ddos', steps: { waf: {} } });
    writeRun(dir, { at: '2026-01-01T00:03:00Z', procedure: 'security ddos-revert', dryRun: 'plan' });
    expect((await j.lastEffective('security ddos', { env: 'staging', closedBy: { procedure: 'security ddos-revert' } }))?.runId).toBe(
      idAt('2026-01-01T00:02:00Z'),
    );
  });

  it('large run files: a start record longer than what is read first, a long run after a short start', async () => {
    const big = 'x'.repeat(10_000);
    const { dir, ids } = journalOf([
      on('2026-01-01T00:00:00Z', { params: { mode: 'on', note: big } }),
      on('2026-01-01T00:01:00Z', { steps: { apply: { prior: { LOG_LEVEL: 'WARN' }, blob: big } } }),
    ]);
    const j = openJournal(dir);
    expect((await j.lastEffective('security audit-mode', { env: 'staging' }))?.effect('apply')).toEqual({ prior: { LOG_LEVEL: 'WARN' }, blob: big });
    expect((await j.lastEffective('security audit-mode', { env: 'staging', where: (r) => r.params.note === big }))?.runId).toBe(ids[0]);
    expect((await j.runs()).map((r) => r.runId)).toEqual([ids[1], ids[0]]);
  });

  it('scan bounds how many of the newest run files are looked at', async () => {
    const { dir, ids } = journalOf([on('2026-01-01T00:00:00Z'), { at: '2026-01-01T00:01:00Z' }, { at: '2026-01-01T00:02:00Z' }]);
    const j = openJournal(dir);
    expect(await j.lastEffective('security audit-mode', { env: 'staging', scan: 2 })).toBeNull();
    expect((await j.lastEffective('security audit-mode', { env: 'staging', scan: 3 }))?.runId).toBe(ids[0]);
  });
});

describe('retention (journal.keep)', () => {
  const NOW = new Date('2026-06-01T12:00:00Z');

  function oldAndNew() {
    return journalOf([{ at: '2026-01-01T00:00:00Z' }, { at: '2026-02-28T11:59:00Z' }, { at: '2026-03-10T00:00:00Z' }, { at: '2026-06-01T11:59:00Z' }]);
  }

  it('deletes runs that started longer ago than keep, by their ids, never the run in progress or other files', async () => {
    const { dir, ids } = oldAndNew();
    writeFileSync(join(dir, 'runs', 'notes.txt'), 'keep me');
    writeFileSync(join(dir, 'runs', 'hand-made.ndjson'), '');
    const current = idAt('2025-01-01T00:00:00Z', 'cafe'); // a clock gone wrong: still this run's
    writeRun(dir, { at: '2025-01-01T00:00:00Z', suffix: 'cafe' });
    expect(await pruneJournal(dir, () => '90d', { now: NOW, current })).toEqual([ids[0], ids[1]]);
    expect(readdirSync(join(dir, 'runs')).sort()).toEqual([`${current}.ndjson`, `${ids[2]}.ndjson`, `${ids[3]}.ndjson`, 'hand-made.ndjson', 'notes.txt']);
    expect(existsSync(join(dir, PRUNE_MARKER))).toBe(true);
  });

  it('at most once a day: the keep setting is not even read until then; unset keeps everything', async () => {
    const { dir, ids } = oldAndNew();
    let asked = 0;
    const keep = () => {
      asked++;
      return undefined;
    };
    expect(await pruneJournal(dir, keep, { now: NOW })).toEqual([]);
    expect(await pruneJournal(dir, () => '1d', { now: new Date(NOW.getTime() + 3_600_000) })).toBeNull();
    expect(asked).toBe(1);
    expect(readdirSync(join(dir, 'runs'))).toHaveLength(ids.length);
    // A day later it looks again.
    expect(await pruneJournal(dir, () => '30d', { now: new Date(NOW.getTime() + 86_400_000) })).toEqual([ids[0], ids[1], ids[2]]);
    // A marker from the future (the clock went back) does not hold it off.
    expect(await pruneJournal(dir, () => '1h', { now: new Date('2026-06-01T13:00:00Z') })).toEqual([ids[3]]);
  });

  it('a problem is a warning, never a failure', async () => {
    const { dir } = oldAndNew();
    const w = warnings();
    expect(await pruneJournal(dir, async () => Promise.reject(new Error('config gone')), { now: NOW, ...w })).toEqual([]);
    expect(w.seen[0]).toMatch(/could not be pruned \(journal\.keep\): config gone/);
  });

  it('the config takes journal.keep as a duration of at least a day', () => {
    const parse = (journal: unknown) => configSchema.safeParse({ journal, environments: { a: {} } });
    expect(parse({ keep: '90d' }).success).toBe(true);
    expect(parse({ dir: '/var/lib/runbook', keep: '400d' }).success).toBe(true);
    expect(parse({ keep: '1h' }).success).toBe(false);
    expect(parse({ keep: '90' }).success).toBe(false);
  });

  it('a changing run prunes; a dry run or a read does not', async () => {
    const config = { ...twoEnvironments(), journal: { keep: '30d' } };
    const { dir } = writeConfig(config);
    const journal = tempDir('runbook-journal-');
    const old = writeRun(journal, { at: '2020-01-01T00:00:00Z' });
    const kube = new FakeKube(4);
    const opts = { cwd: dir, clientFactories: fakeFactories(kube), env: { RUNBOOK_JOURNAL_DIR: journal } };
    expect((await runCli(['app', 'scale', '--replicas', '5', '--dry-run'], opts)).code).toBe(0);
    expect((await runCli(['history'], opts)).stdout).toContain(old);
    expect(existsSync(join(journal, 'runs', `${old}.ndjson`))).toBe(true);
    const r = await runCli(['app', 'scale', '--replicas', '5'], opts);
    expect(r.code, r.stderr).toBe(0);
    expect(existsSync(join(journal, 'runs', `${old}.ndjson`))).toBe(false);
    // The dry run and this one, in the day layout.
    expect(readdirSync(join(journal, 'runs'), { recursive: true }).filter((f) => String(f).endsWith('.ndjson'))).toHaveLength(2);
  });
});

describe('ctx.journal', () => {
  it('report new reads the window it is asked for, through the reader, leaving out itself and dry runs', async () => {
    const kube = new FakeKube(4);
    const { dir } = writeConfig(twoEnvironments());
    const journal = tempDir('runbook-journal-');
    // An old run outside the window, and a broken file older still: neither is read.
    writeRun(journal, { at: '2020-01-01T00:00:00Z', procedure: 'db restart' });
    writeFileSync(join(journal, 'runs', '20190101T000000-0000.ndjson'), '');
    const opts = { cwd: dir, clientFactories: fakeFactories(kube), env: { RUNBOOK_JOURNAL_DIR: journal } };
    expect((await runCli(['app', 'scale', '--replicas', '6'], opts)).code).toBe(0);
    const r = await runCli(['report', 'new', '--title', 't', '--severity', 'P3', '--since', '1h', '--json'], opts);
    expect(r.code, r.stderr).toBe(0);
    const runs = JSON.parse(r.stdout).steps[0].data.runs;
    expect(runs.map((x: { procedure: string }) => x.procedure)).toEqual(['app scale']);
    expect(Object.keys(runs[0]).sort()).toEqual([
      'changes',
      'dryRun',
      'durationMs',
      'environment',
      'exitCode',
      'operator',
      'procedure',
      'runId',
      'startedAt',
      'status',
    ]);
    expect(r.stderr).not.toMatch(/skipped/);
  });
});

describe('history filters (issue 12)', () => {
  const now = new Date('2026-06-01T12:00:00Z');
  const setup = () =>
    journalOf([
      { at: '2026-06-01T08:00:00Z', procedure: 'db restart', env: 'production', suffix: 'aaaa' },
      { at: '2026-06-01T11:00:00Z', procedure: 'app scale', env: 'staging', suffix: 'bbbb', end: { status: 'failed', exitCode: 1 } },
      { at: '2026-06-01T11:30:00Z', procedure: 'app scale', env: 'production', suffix: 'cccc' },
      { at: '2026-06-01T11:45:00Z', procedure: 'app scale', env: 'production', suffix: 'dddd', dryRun: 'plan' },
    ]);
  const history = (dir: string, args: string[]) => runCli(['history', '--json', ...args], { env: { RUNBOOK_JOURNAL_DIR: dir }, now: () => now });
  const ids = (stdout: string) => (JSON.parse(stdout) as Array<{ runId: string }>).map((r) => r.runId.slice(-4));

  it('by procedure, environment (-e), time window, status, operator and without dry runs', async () => {
    const { dir } = setup();
    expect(ids((await history(dir, [])).stdout)).toEqual(['dddd', 'cccc', 'bbbb', 'aaaa']);
    expect(ids((await history(dir, ['--procedure', 'app scale'])).stdout)).toEqual(['dddd', 'cccc', 'bbbb']);
    expect(ids((await history(dir, ['--procedure', 'app-scale', '-e', 'production'])).stdout)).toEqual(['dddd', 'cccc']);
    expect(ids((await history(dir, ['--since', '2h'])).stdout)).toEqual(['dddd', 'cccc', 'bbbb']);
    expect(ids((await history(dir, ['--status', 'failed'])).stdout)).toEqual(['bbbb']);
    expect(ids((await history(dir, ['--operator', 'tester', '--no-dry-runs', '--limit', '2'])).stdout)).toEqual(['cccc', 'bbbb']);
    expect(ids((await history(dir, ['--operator', 'someone-else'])).stdout)).toEqual([]);
  });

  it('a mistyped procedure or status is a usage error with a suggestion (exit 2)', async () => {
    const { dir } = setup();
    const p = await history(dir, ['--procedure', 'db restat']);
    expect(p.code).toBe(2);
    expect(p.stderr).toMatch(/did you mean "db restart"/);
    const s = await history(dir, ['--status', 'faild']);
    expect(s.code).toBe(2);
    expect(s.stderr).toMatch(/did you mean "failed"/);
  });
});
