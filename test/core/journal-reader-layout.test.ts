// Issue 11: the journal's cost grows with what is shown, not what is stored. Run files are laid out
// by day (runs/YYYY/MM/DD/<id>.ndjson); reading the newest runs lists only the newest days; old
// builds' flat files (runs/<id>.ndjson) are still read; retention prunes by day.
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { findRunFile, listRunFiles, openJournal } from '../../src/core/journal-reader.js';
import { pruneJournal } from '../../src/core/journal-retention.js';
import { Journal, runFile } from '../../src/core/journal.js';
import { Redactor } from '../../src/core/redact.js';
import { tempDir } from '../support/cli.js';

// Every directory the code under test lists, to prove what it does not list.
const listed = vi.hoisted(() => ({ paths: [] as string[] }));
vi.mock('node:fs', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs')>();
  const readdir = fs.promises.readdir as (...a: unknown[]) => Promise<unknown>;
  return {
    ...fs,
    promises: {
      ...fs.promises,
      readdir: ((path: string, ...rest: unknown[]) => {
        listed.paths.push(String(path));
        return readdir(path, ...rest);
      }) as typeof fs.promises.readdir,
    },
  };
});

beforeEach(() => {
  listed.paths = [];
});

function idAt(iso: string, suffix = '0000'): string {
  return `${iso.replace(/[-:]/g, '').replace(/\.\d+Z$|Z$/, '')}-${suffix}`;
}

function runText(id: string, at: string, extra: Record<string, unknown> = {}): string {
  const lines = [
    { t: at, type: 'run-start', runId: id, procedure: 'app scale', environment: 'staging', params: {}, operator: 'tester@test', dryRun: 'off', ...extra },
    { t: at, type: 'step-start', step: 'scale', title: 'scale', risk: 'write' },
    { t: at, type: 'step-end', step: 'scale', status: 'succeeded', data: { from: 1 } },
    { t: at, type: 'run-end', status: 'succeeded', exitCode: 0, durationMs: 5 },
  ];
  return lines.map((l) => JSON.stringify(l)).join('\n') + '\n';
}

/** A run started at `at` (its id made then, unless `idTime` says when), in the day layout or (`flat`) as older builds wrote it. */
function writeRun(dir: string, at: string, opts: { flat?: boolean; suffix?: string; idTime?: string; extra?: Record<string, unknown> } = {}): string {
  const id = idAt(opts.idTime ?? at, opts.suffix);
  const path = opts.flat ? join(dir, 'runs', `${id}.ndjson`) : runFile(dir, id);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, runText(id, at, opts.extra));
  return id;
}

async function all<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

const warnings = () => {
  const seen: string[] = [];
  return { seen, warn: (m: string) => seen.push(m) };
};

describe('the day layout', () => {
  it('runFile puts a run under the UTC day of its id; a name that is not a run id stays in runs/', () => {
    expect(runFile('/j', '20260304T050607-beef')).toBe('/j/runs/2026/03/04/20260304T050607-beef.ndjson');
    expect(runFile('/j', 'hand-made')).toBe('/j/runs/hand-made.ndjson');
  });

  it('the Journal writes there, and the reader reads it back', async () => {
    const dir = tempDir('journal-layout-');
    const id = '20260304T050607-beef';
    const journal = new Journal(dir, id, new Redactor(), () => new Date('2026-03-04T05:06:08Z'));
    journal.append('run-start', { procedure: 'app scale', environment: 'staging', params: {}, operator: 'o', dryRun: 'off' });
    journal.append('run-end', { status: 'succeeded', exitCode: 0, durationMs: 1 });
    journal.close();
    expect(journal.path).toBe(join(dir, 'runs', '2026', '03', '04', `${id}.ndjson`));
    expect(existsSync(journal.path)).toBe(true);
    const j = openJournal(dir);
    expect((await j.runs()).map((r) => [r.runId, r.status])).toEqual([[id, 'succeeded']]);
    expect(await findRunFile(dir, id)).toBe(journal.path);
  });

  it('old flat files and day directories are read together, newest first, by id', async () => {
    const dir = tempDir('journal-layout-');
    const ids = [
      writeRun(dir, '2025-12-31T23:59:00Z', { flat: true }),
      writeRun(dir, '2026-01-01T00:00:00Z'),
      writeRun(dir, '2026-01-01T00:01:00Z', { flat: true }),
      writeRun(dir, '2026-01-02T00:00:00Z'),
      writeRun(dir, '2027-02-01T00:00:00Z'),
    ];
    // The same run in both places (copied by hand) is one run.
    writeRun(dir, '2026-01-01T00:00:00Z', { flat: true });
    const j = openJournal(dir);
    const newestFirst = [...ids].reverse();
    expect((await j.runs()).map((r) => r.runId)).toEqual(newestFirst);
    expect((await all(listRunFiles(dir))).map((e) => e.id)).toEqual(newestFirst);
    // By id, wherever the file is.
    expect((await j.run(ids[2]))?.startedAt).toBe('2026-01-01T00:01:00Z');
    expect((await j.events(ids[0])).map((e) => e.type)).toEqual(['run-start', 'step-start', 'step-end', 'run-end']);
    expect(await findRunFile(dir, ids[0])).toBe(join(dir, 'runs', `${ids[0]}.ndjson`));
    expect(await findRunFile(dir, ids[1])).toBe(runFile(dir, ids[1]));
    expect(await findRunFile(dir, '20260101T000000-dead')).toBeNull();
    expect(await j.run('20260101T000000-dead')).toBeNull();
    await expect(j.events('20260101T000000-dead')).rejects.toThrow(/ENOENT/);
    expect((await j.lastEffective('app scale', { env: 'staging' }))?.runId).toBe(ids[4]);
    expect((await openJournal(dir, { current: ids[4] }).lastEffective('app scale', { env: 'staging', scan: 1 }))?.runId).toBe(ids[3]);
  });

  it('the newest runs are read from the newest days alone: older days are never listed', async () => {
    const dir = tempDir('journal-layout-');
    for (let day = 1; day <= 28; day++) for (const h of ['08', '16']) writeRun(dir, `2026-02-${String(day).padStart(2, '0')}T${h}:00:00Z`);
    writeRun(dir, '2025-06-01T00:00:00Z');
    const j = openJournal(dir);
    const shown = await j.runs({ limit: 3 });
    expect(shown.map((r) => r.startedAt)).toEqual(['2026-02-28T16:00:00Z', '2026-02-28T08:00:00Z', '2026-02-27T16:00:00Z']);
    // runs/, the year, the month, then the days read ahead for the next few files: not the whole month, not 2025.
    const runs = join(dir, 'runs');
    expect(listed.paths[0]).toBe(runs);
    expect(listed.paths).toContain(join(runs, '2026', '02'));
    expect(listed.paths).not.toContain(join(runs, '2025'));
    expect(listed.paths).not.toContain(join(runs, '2026', '02', '01'));
    expect(listed.paths.length).toBeLessThan(15);
    // A time window lists its days (and the one before, for ids made just before a start record) and no older one.
    listed.paths = [];
    const since = await j.runs({ since: Date.parse('2026-02-27T00:00:00Z') });
    expect(since).toHaveLength(4);
    expect(listed.paths.filter((p) => p.startsWith(`${join(runs, '2026', '02')}/`))).toEqual([
      join(runs, '2026', '02', '28'),
      join(runs, '2026', '02', '27'),
      join(runs, '2026', '02', '26'),
    ]);
    // Everything, when asked for.
    expect(await j.runs()).toHaveLength(57);
  });

  it('a window across midnight reads the day before, for a run whose id was made before its start record', async () => {
    const dir = tempDir('journal-layout-');
    writeRun(dir, '2026-01-01T23:40:00Z');
    const late = writeRun(dir, '2026-01-02T00:01:00Z', { idTime: '2026-01-01T23:55:00Z' });
    const next = writeRun(dir, '2026-01-02T00:05:00Z');
    const since = Date.parse('2026-01-02T00:00:00Z');
    expect((await openJournal(dir).runs({ since })).map((r) => r.runId)).toEqual([next, late]);
  });

  it('a corrupt, half-written or unreadable run file in a day directory is skipped with a warning, never fatal', async () => {
    const dir = tempDir('journal-layout-');
    const good = writeRun(dir, '2026-01-01T00:00:00Z');
    const day = dirname(runFile(dir, good));
    writeFileSync(join(day, '20260101T000100-0000.ndjson'), '{"t":"2026-01-01T00:01:00.000Z","type":"run-st');
    writeFileSync(join(day, '20260101T000200-0000.ndjson'), '\u0000garbage\n');
    mkdirSync(join(day, '20260101T000300-0000.ndjson'));
    // A day "directory" that is a file, and a month that cannot be listed, are nothing to read.
    mkdirSync(join(dir, 'runs', '2026', '02'), { recursive: true });
    writeFileSync(join(dir, 'runs', '2026', '02', '03'), 'not a directory');
    const w = warnings();
    const j = openJournal(dir, w);
    expect((await j.runs()).map((r) => r.runId)).toEqual([good]);
    expect(w.seen).toEqual(['skipped 3 run files with no start record (empty or cut off): 20260101T000100-0000, 20260101T000200-0000, 20260101T000300-0000']);
    expect((await j.lastEffective('app scale', { env: 'staging' }))?.runId).toBe(good);
    expect(w.seen).toHaveLength(1);
  });
});

describe('retention with the day layout', () => {
  const NOW = new Date('2026-06-01T12:00:00Z');

  function files(dir: string): string[] {
    return readdirSync(join(dir, 'runs'), { recursive: true })
      .map(String)
      .filter((f) => f.endsWith('.ndjson') || f.endsWith('.txt'))
      .sort();
  }

  it('deletes the runs that started before the cutoff, in day directories and old flat files, and removes the days left empty', async () => {
    const dir = tempDir('journal-layout-');
    const ids = {
      flatOld: writeRun(dir, '2026-01-01T00:00:00Z', { flat: true }),
      oldYear: writeRun(dir, '2025-12-31T00:00:00Z'),
      oldDay: writeRun(dir, '2026-03-02T11:00:00Z'),
      cutDayBefore: writeRun(dir, '2026-03-03T11:00:00Z'),
      cutDayAfter: writeRun(dir, '2026-03-03T13:00:00Z'),
      recent: writeRun(dir, '2026-06-01T11:59:00Z'),
      flatRecent: writeRun(dir, '2026-05-01T00:00:00Z', { flat: true }),
      current: writeRun(dir, '2024-01-01T00:00:00Z', { suffix: 'cafe' }),
    };
    writeFileSync(join(dir, 'runs', '2026', '03', '02', 'notes.txt'), 'keep me');
    // 90 days before NOW is 2026-03-03T12:00Z.
    const deleted = await pruneJournal(dir, () => '90d', { now: NOW, current: ids.current });
    expect(deleted).toEqual([ids.oldYear, ids.flatOld, ids.oldDay, ids.cutDayBefore].sort());
    expect(files(dir)).toEqual(
      [
        `${ids.flatRecent}.ndjson`,
        join('2024', '01', '01', `${ids.current}.ndjson`),
        join('2026', '03', '02', 'notes.txt'),
        join('2026', '03', '03', `${ids.cutDayAfter}.ndjson`),
        join('2026', '06', '01', `${ids.recent}.ndjson`),
      ].sort(),
    );
    // The emptied year is gone; a day holding another file stays.
    expect(existsSync(join(dir, 'runs', '2025'))).toBe(false);
    expect(existsSync(join(dir, 'runs', '2026', '03', '02'))).toBe(true);
    expect((await openJournal(dir).runs({ includeDryRuns: true })).map((r) => r.runId)).toEqual([ids.recent, ids.flatRecent, ids.cutDayAfter, ids.current]);
  });

  it('lists only the days before the cutoff, and never removes a directory a run may be writing into', async () => {
    const dir = tempDir('journal-layout-');
    const yesterday = writeRun(dir, '2026-05-31T11:00:00Z');
    writeRun(dir, '2026-06-01T11:30:00Z');
    for (let day = 10; day <= 28; day++) writeRun(dir, `2026-05-${day}T00:00:00Z`);
    const deleted = await pruneJournal(dir, () => '1h', { now: NOW, force: true });
    expect(deleted).toHaveLength(20);
    expect(deleted).toContain(yesterday);
    // Today's and yesterday's directories are kept, empty or not.
    expect(existsSync(join(dir, 'runs', '2026', '06', '01'))).toBe(true);
    expect(existsSync(join(dir, 'runs', '2026', '05', '31'))).toBe(true);
    expect(existsSync(join(dir, 'runs', '2026', '05', '28'))).toBe(false);
    // With a long keep, no day after the cutoff is listed.
    const april = writeRun(dir, '2026-04-15T00:00:00Z');
    const march = writeRun(dir, '2026-03-01T00:00:00Z');
    listed.paths = [];
    expect(await pruneJournal(dir, () => '90d', { now: NOW, force: true })).toEqual([march]);
    const runs = join(dir, 'runs');
    expect(listed.paths).toContain(join(runs, '2026', '03'));
    for (const month of ['04', '05', '06']) expect(listed.paths.filter((p) => p.startsWith(join(runs, '2026', month)))).toEqual([]);
    expect(existsSync(runFile(dir, april))).toBe(true);
  });
});
