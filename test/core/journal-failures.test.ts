/**
 * Issue 13 item 5: a journal that fails mid-run (disk full) stops the run safely, and history never
 * shows a broken run file as "? ?".
 */
import { describe, expect, it } from 'vitest';
import { mkdirSync, writeFileSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { runCli, tempDir } from '../support/cli.js';
import { writeConfig, twoEnvironments } from '../support/config.js';
import { FakeKube, fakeFactories } from '../support/fakes/fake-kube.js';
import { onlyRunText, runFile } from '../support/journal-files.js';
import type { JournalWrites } from '../../src/core/journal.js';

/** A disk that takes `lines` whole lines, then half of the next one before it fails with ENOSPC. */
function diskFullAfter(lines: number): JournalWrites & { failures: number } {
  let written = 0;
  const disk = {
    failures: 0,
    write(fd: number, buffer: Buffer, offset: number, length: number): number {
      if (written >= lines) {
        writeSync(fd, buffer, offset, Math.ceil(length / 2));
        disk.failures++;
        throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', errno: -28 });
      }
      const n = writeSync(fd, buffer, offset, length);
      if (offset + n === buffer.length) written++;
      return n;
    },
    fsync() {},
  };
  return disk;
}

describe('a journal write that fails mid-run (disk full)', () => {
  it('after the scale was sent: compensation puts it back, the lock is released, one clear line, exit 1, no torn last line', async () => {
    const { dir } = writeConfig(twoEnvironments());
    const journal = tempDir();
    const kube = new FakeKube(4);
    // run-start, lock, current (start, end), scale start: the scale's step-end is the line that fails.
    const disk = diskFullAfter(5);
    const r = await runCli(['app', 'scale', '--replicas', '6', '-e', 'staging'], {
      cwd: dir,
      clientFactories: fakeFactories(kube),
      env: { RUNBOOK_JOURNAL_DIR: journal },
      journalWrites: disk,
    });
    expect(disk.failures).toBe(1);
    expect(r.code, r.stderr).toBe(1);
    expect(kube.deployments.get('app')!.spec!.replicas).toBe(4);
    expect(r.stderr).toMatch(/undo: Set the replica count|↺ undo/);
    expect(r.stderr).toMatch(/✓ undone/);
    const lines = r.stderr.split('\n').filter((l) => /ENOSPC/.test(l));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/the journal could not be written \(ENOSPC on .+\.ndjson\): the run stopped so that nothing it does goes unrecorded/);
    expect(r.stderr).not.toMatch(/\n\s+at .+:\d+:\d+/);
    expect(kube.leases.size).toBe(0);
    const text = onlyRunText(journal);
    expect(text.endsWith('\n')).toBe(true);
    const events = text
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l));
    expect(events.map((e) => e.type)).toEqual(['run-start', 'lock', 'step-start', 'step-end', 'step-start']);
  });

  it('the first line already fails: exit 2, nothing contacted, no lock', async () => {
    const { dir } = writeConfig(twoEnvironments());
    const journal = tempDir();
    const kube = new FakeKube(4);
    const r = await runCli(['app', 'scale', '--replicas', '6', '-e', 'staging'], {
      cwd: dir,
      clientFactories: fakeFactories(kube),
      env: { RUNBOOK_JOURNAL_DIR: journal },
      journalWrites: diskFullAfter(0),
    });
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/the journal could not be written \(ENOSPC on .+\); nothing was contacted or changed/);
    expect(kube.deployments.get('app')!.spec!.replicas).toBe(4);
    expect(kube.leases.size).toBe(0);
    expect(onlyRunText(journal)).toBe('');
  });
});

describe('history with broken run files', () => {
  it('an empty or half-written run file is skipped with a warning, never shown as "? ?"', async () => {
    const { dir } = writeConfig(twoEnvironments());
    const journal = tempDir();
    const kube = new FakeKube(4);
    const ok = await runCli(['app', 'scale', '--replicas', '5', '-e', 'staging'], {
      cwd: dir,
      clientFactories: fakeFactories(kube),
      env: { RUNBOOK_JOURNAL_DIR: journal },
    });
    expect(ok.code, ok.stderr).toBe(0);
    // One where this build writes runs (its day folder), one where an older build did (runs/ itself).
    const empty = runFile(journal, '20260101T000000-0000');
    mkdirSync(dirname(empty), { recursive: true });
    writeFileSync(empty, '');
    writeFileSync(join(journal, 'runs', '20260101T000001-0001.ndjson'), '{"t":"2026-01-01T00:00:01.000Z","type":"run-st');
    const h = await runCli(['history'], { cwd: dir, env: { RUNBOOK_JOURNAL_DIR: journal } });
    expect(h.code).toBe(0);
    expect(h.stdout).not.toMatch(/\?/);
    expect(h.stdout).toMatch(/app scale/);
    expect(h.stdout).not.toMatch(/20260101T00000/);
    expect(h.stderr).toMatch(/skipped 2 run files with no start record \(empty or cut off\): 20260101T000000-0000, 20260101T000001-0001/);
    const j = await runCli(['history', '--json'], { cwd: dir, env: { RUNBOOK_JOURNAL_DIR: journal } });
    expect(JSON.parse(j.stdout)).toHaveLength(1);
  });
});
