import { openJournal } from '../../../src/core/journal-reader.js';
import { describe, expect, it } from 'vitest';
import { mkdtempSync } from 'node:fs';
import { runCli } from '../../support/cli.js';
import { writeConfig } from '../../support/config.js';
import { FakeKube, fakeFactories } from '../../support/fakes/fake-kube.js';
import type { ScriptedPrompter } from '../../support/prompter.js';
import { runTexts } from '../../support/journal-files.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Journal } from '../../../src/core/journal.js';
import { Redactor } from '../../../src/core/redact.js';
import type { ResolvedEnvironment } from '../../../src/core/config.js';
import { incidentFromJournal } from '../../../src/procedures/outage/statuspage.js';
import { stagesOf } from '../../../src/procedures/outage/recover.js';

const env = { name: 'prod', config: {}, builtIn: false, configPath: null } as unknown as ResolvedEnvironment;

function journalWith(dir: string, runId: string, events: Array<[Parameters<Journal['append']>[0], Record<string, unknown>]>) {
  const j = new Journal(dir, runId, new Redactor(), () => new Date('2026-01-01T00:00:00Z'));
  for (const [type, fields] of events) j.append(type, fields);
  j.close();
}

function ctx(dir: string) {
  return { env, journal: openJournal(dir) };
}

describe('outage recover', () => {
  it("stages: the seed's 1,2,4 by default, else the given counts", () => {
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
        ...(undone
          ? ([['compensation', { step: 'incident', status: 'succeeded' }]] as Array<[Parameters<Journal['append']>[0], Record<string, unknown>]>)
          : []),
        ['run-end', { status: undone ? 'failed' : 'succeeded', exitCode: undone ? 1 : 0 }],
      ]);
    start('20260101T000000-aaaa', 'prod', 'off', 'inc-old');
    start('20260101T000100-bbbb', 'prod', 'off', 'inc-new');
    start('20260101T000200-cccc', 'staging', 'off', 'inc-staging');
    start('20260101T000300-dddd', 'prod', 'plan', 'inc-dry');
    expect(await incidentFromJournal(ctx(dir))).toEqual({
      runId: '20260101T000100-bbbb',
      incident: { id: 'inc-new', name: 'Service Outage', status: 'investigating' },
    });
    // A later start whose incident was resolved as opened in error leaves nothing to resolve.
    start('20260101T000400-eeee', 'prod', 'off', 'inc-error', true);
    expect(await incidentFromJournal(ctx(dir))).toBeNull();
  });
});

/** Issue 13 items 7 (gate review) and 10 (recover with no open outage), with the in-memory Kubernetes. */
describe('outage recover: an open outage is required, and one confirmation covers the whole recovery', () => {
  function setup(opts: { protected?: boolean } = {}) {
    const kube = new FakeKube(0);
    const { dir } = writeConfig({
      environments: {
        production: { ...(opts.protected ? { protected: true } : {}), kubernetes: { namespace: 'production', deployment: 'app' }, rollout: { timeout: '2s' } },
      },
    });
    const journal = mkdtempSync(join(tmpdir(), 'journal-'));
    const run = (argv: string[], extra: Parameters<typeof runCli>[1] = {}) =>
      runCli(['outage', 'recover', '--steps', '1,2,4', ...argv], {
        cwd: dir,
        clientFactories: fakeFactories(kube),
        ...extra,
        env: { RUNBOOK_JOURNAL_DIR: journal },
      });
    const gates = (procedure = 'outage recover') =>
      runTexts(journal).flatMap((text) => {
        const events = text
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l));
        return events[0].procedure === procedure ? events.filter((e) => e.type === 'gate').map((e) => `${e.step}:${e.decision}${e.by ? `:${e.by}` : ''}`) : [];
      });
    /** An `outage start` run in this journal that turned maintenance mode on. */
    const recordStart = (runId = '20260101T000000-aaaa') => {
      journalWith(journal, runId, [
        ['run-start', { procedure: 'outage start', environment: 'production', dryRun: 'off' }],
        ['step-end', { step: 'apply', status: 'succeeded', data: { container: 'api', index: 0, previous: [] } }],
        ['run-end', { status: 'succeeded', exitCode: 0 }],
      ]);
      kube.deployments.get('app')!.spec!.template.spec!.containers[0].env!.push({ name: 'MAINTENANCE_MODE', value: 'true' });
    };
    const maintenance = () => kube.deployments.get('app')!.spec!.template.spec!.containers[0].env!.some((e) => e.name === 'MAINTENANCE_MODE');
    return { kube, run, gates, recordStart, maintenance, journal };
  }

  it('no outage start in the journal, maintenance mode off, no --incident: exit 4 with one clear line, nothing scaled', async () => {
    const { kube, run } = setup();
    kube.deployments.get('app')!.spec!.replicas = 3;
    const r = await run(['--yes']);
    expect(r.code, r.stderr).toBe(4);
    expect(r.stderr).toMatch(
      /no open outage in production: no "outage start" in the journal since the last completed recovery, MAINTENANCE_MODE is not set on deployment\/app, and no --incident was given; nothing was changed/,
    );
    expect(r.stderr).toMatch(/runbook app scale --replicas <n>/);
    expect(kube.mutations).toEqual([]);
    expect(kube.deployments.get('app')!.spec!.replicas).toBe(3);
  });

  it('a dry run says the same (exit 4) instead of planning a scale-up', async () => {
    const { kube, run } = setup();
    const r = await run(['--dry-run']);
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/no open outage in production/);
    expect(kube.mutations).toEqual([]);
  });

  it('an outage closed by a completed recovery is not open any more: a second recover refuses', async () => {
    const { kube, run, recordStart } = setup();
    recordStart();
    const first = await run(['--yes']);
    expect(first.code, first.stderr).toBe(0);
    expect(kube.deployments.get('app')!.spec!.replicas).toBe(4);
    const before = kube.mutations.length;
    const again = await run(['--yes']);
    expect(again.code).toBe(4);
    expect(kube.mutations.length).toBe(before);
  });

  it("maintenance mode on (an outage opened from another machine's journal) counts as open", async () => {
    const { kube, run, maintenance } = setup();
    kube.deployments.get('app')!.spec!.template.spec!.containers[0].env!.push({ name: 'MAINTENANCE_MODE', value: 'true' });
    const r = await run(['--yes']);
    expect(r.code, r.stderr).toBe(0);
    expect(kube.deployments.get('app')!.spec!.replicas).toBe(4);
    expect(maintenance()).toBe(false);
  });

  it('protected: ONE confirmation up front for scaling back, maintenance off (not one per step)', async () => {
    const { kube, run, gates, recordStart, maintenance } = setup({ protected: true });
    recordStart();
    const r = await run([], { tty: true, answers: [true] });
    expect(r.code, r.stderr).toBe(0);
    const asked = (r.prompter as ScriptedPrompter).asked;
    expect(asked).toHaveLength(1);
    expect(asked[0]).toMatch(/Approve the whole plan above \(outage recover in production\)/);
    expect(r.stderr).toMatch(/scale deployment\/app 0 → 1 → 2 → 4, each stage healthy within 1m/);
    expect(r.stderr).toMatch(/turn maintenance mode off/);
    expect(gates()).toEqual(['plan:approved:prompt', 'scale:approved:plan', 'apply:approved:plan']);
    expect(kube.deployments.get('app')!.spec!.replicas).toBe(4);
    expect(maintenance()).toBe(false);
  });

  it('protected: a "no" at that confirmation changes nothing (exit 3)', async () => {
    const { kube, run, gates, recordStart, maintenance } = setup({ protected: true });
    recordStart();
    const r = await run([], { tty: true, answers: [false] });
    expect(r.code).toBe(3);
    expect(gates()).toEqual(['plan:declined']);
    expect(kube.mutations).toEqual([]);
    expect(kube.deployments.get('app')!.spec!.replicas).toBe(0);
    expect(maintenance()).toBe(true);
  });
});
