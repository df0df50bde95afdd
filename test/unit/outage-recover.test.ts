import { describe, expect, it } from 'vitest';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Journal } from '../../src/core/journal.js';
import { Redactor } from '../../src/core/redact.js';
import type { ResolvedEnvironment } from '../../src/core/config.js';
import type { IO } from '../../src/core/io.js';
import { incidentFromJournal } from '../../src/procedures/steps/outage-statuspage.js';
import { stagesOf } from '../../src/procedures/outage-recover.js';

const env = { name: 'prod', config: {}, builtIn: false, configPath: null } as unknown as ResolvedEnvironment;

function journalWith(dir: string, runId: string, events: Array<[Parameters<Journal['append']>[0], Record<string, unknown>]>) {
  const j = new Journal(dir, runId, new Redactor(), () => new Date('2026-01-01T00:00:00Z'));
  for (const [type, fields] of events) j.append(type, fields);
  j.close();
}

function ctx(dir: string) {
  return { env, io: { env: { RUNBOOK_JOURNAL_DIR: dir } } as unknown as IO };
}

describe('outage recover', () => {
  it('stages: the seed\'s 1,2,4 by default, else the given counts', () => {
    expect(stagesOf({ interval: 1000 })).toEqual([1, 2, 4]);
    expect(stagesOf({ interval: 1000, steps: ['3', '6'] })).toEqual([3, 6]);
    expect(() => stagesOf({ interval: 1000, steps: ['0'] })).toThrow(/at least 1/);
  });

  it('finds the incident of the newest real outage start in this environment, skipping dry runs, other environments and taken-back incidents', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'journal-'));
    expect(await incidentFromJournal(ctx(dir))).toBeNull();
    const start = (runId: string, environment: string, dryRun: string, id: string, undone = false) =>
      journalWith(dir, runId, [
        ['run-start', { procedure: 'outage start', environment, dryRun }],
        ['step-end', { step: 'incident', status: 'succeeded', data: { id, name: 'Service Outage', status: 'investigating' } }],
        ...(undone ? ([['compensation', { step: 'incident', status: 'succeeded' }]] as Array<[Parameters<Journal['append']>[0], Record<string, unknown>]>) : []),
        ['run-end', { status: undone ? 'failed' : 'succeeded', exitCode: undone ? 1 : 0 }],
      ]);
    start('20260101T000000-aaaa', 'prod', 'off', 'inc-old');
    start('20260101T000100-bbbb', 'prod', 'off', 'inc-new');
    start('20260101T000200-cccc', 'staging', 'off', 'inc-staging');
    start('20260101T000300-dddd', 'prod', 'plan', 'inc-dry');
    expect(await incidentFromJournal(ctx(dir))).toEqual({ runId: '20260101T000100-bbbb', incident: { id: 'inc-new', name: 'Service Outage', status: 'investigating' } });
    // A later start whose incident was resolved as opened in error leaves nothing to resolve.
    start('20260101T000400-eeee', 'prod', 'off', 'inc-error', true);
    expect(await incidentFromJournal(ctx(dir))).toBeNull();
  });
});
