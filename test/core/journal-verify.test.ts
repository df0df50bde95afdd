import { readFileSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Journal, newRunId } from '../../src/core/journal.js';
import { verifyChain } from '../../src/core/journal-verify.js';
import { Redactor } from '../../src/core/redact.js';
import { runCli, tempDir } from '../support/cli.js';

function journaled(): { dir: string; runId: string; path: string } {
  const dir = tempDir('runbook-verify-');
  const runId = newRunId(new Date('2026-12-03T10:00:00Z'));
  const j = new Journal(dir, runId, new Redactor(), () => new Date('2026-12-03T10:00:00Z'));
  j.append('run-start', { runId, procedure: 'app scale', environment: 'prod', params: { replicas: 5 }, operator: 'alice@laptop' });
  j.append('step-start', { step: 'read', title: 'Read', risk: 'read' });
  j.append('step-end', { step: 'read', status: 'succeeded', data: { replicas: 3 } });
  j.append('step-start', { step: 'scale', title: 'Scale', risk: 'write' });
  j.append('step-end', { step: 'scale', status: 'succeeded', data: { from: 3, to: 5 } });
  j.append('run-end', { status: 'succeeded', exitCode: 0, durationMs: 12 });
  j.close();
  return { dir, runId, path: j.path };
}

const lines = (path: string) => readFileSync(path, 'utf8').split('\n').filter(Boolean);
const rewrite = (path: string, ls: string[]) => writeFileSync(path, ls.join('\n') + '\n');

describe('the journal hash chain', () => {
  it('a run file as written verifies, every line chained to the one before', () => {
    const { runId, path } = journaled();
    const report = verifyChain(runId, readFileSync(path, 'utf8'));
    expect(report.broken).toBeUndefined();
    expect(report).toMatchObject({ intact: 6, lines: 6 });
    const parsed = lines(path).map((l) => JSON.parse(l) as { prev: string; h: string });
    for (let i = 1; i < parsed.length; i++) expect(parsed[i].prev).toBe(parsed[i - 1].h);
  });

  it('a value edited by hand fails at that line', () => {
    const { runId, path } = journaled();
    const ls = lines(path);
    ls[4] = ls[4].replace('"to":5', '"to":4');
    rewrite(path, ls);
    expect(verifyChain(runId, readFileSync(path, 'utf8')).broken).toEqual({ line: 5, problem: expect.stringContaining('edited') });
  });

  it('a removed line fails at the line after it; swapped lines at the first of them', () => {
    const { runId, path } = journaled();
    const ls = lines(path);
    rewrite(path, [...ls.slice(0, 2), ...ls.slice(3)]);
    expect(verifyChain(runId, readFileSync(path, 'utf8')).broken?.line).toBe(3);
    rewrite(path, [ls[0], ls[2], ls[1], ...ls.slice(3)]);
    expect(verifyChain(runId, readFileSync(path, 'utf8')).broken?.line).toBe(2);
  });

  it('the chain is bound to the run id; a cut-off last line and unchained lines are named', () => {
    const { runId, path } = journaled();
    const text = readFileSync(path, 'utf8');
    expect(verifyChain(newRunId(new Date('2026-12-03T11:00:00Z')), text).broken?.line).toBe(1);
    expect(verifyChain(runId, text.slice(0, -20)).broken).toEqual({ line: 6, problem: expect.stringContaining('cut off') });
    expect(verifyChain(runId, '{"t":"2026-01-01T00:00:00Z","type":"run-start"}\n').broken?.problem).toContain('no chain hashes');
    expect(verifyChain(runId, '').broken?.problem).toContain('empty');
  });

  it('runbook verify: exit 0 for an intact run, 4 naming the line for an edited one, 2 for no such run', async () => {
    const { dir, runId, path } = journaled();
    const env = { RUNBOOK_JOURNAL_DIR: dir };
    const ok = await runCli(['verify', runId], { env });
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toContain('all 6 lines intact');
    const ls = lines(path);
    ls[2] = ls[2].replace('"replicas":3', '"replicas":2');
    rewrite(path, ls);
    const bad = await runCli(['verify', runId], { env });
    expect(bad.code).toBe(4);
    expect(bad.stdout).toContain('line 3 of 6 does not match');
    const json = await runCli(['verify', runId, '--json'], { env });
    expect(JSON.parse(json.stdout)).toMatchObject({ ok: false, intact: 2, broken: { line: 3 } });
    expect((await runCli(['verify', '20261203T000000-beef'], { env })).code).toBe(2);
  });
});
