import { describe, expect, it } from 'vitest';
import { runCli, tempDir } from '../support/cli.js';
import { writeConfig } from '../support/config.js';
import { FakeKube, fakeFactories } from '../support/fakes/fake-kube.js';
import { FakeRds, fakePostgres } from '../support/fakes/fake-rds.js';
import { ScriptedPrompter } from '../support/prompter.js';
import { runTexts } from '../support/journal-files.js';
import { summaryLine } from '../../src/core/render.js';
import { colors } from '../../src/core/io.js';

const plainColors = colors(false);
import type { RunResult } from '../../src/core/reporter.js';

/** Issue 13 item 7: `db restart` gates as an operator needs them. */

function setup() {
  const kube = new FakeKube(3);
  const rds = new FakeRds();
  const { dir } = writeConfig({
    environments: {
      production: {
        protected: true,
        kubernetes: { namespace: 'production', deployment: 'app' },
        rollout: { timeout: '2s' },
        aws: { region: 'us-east-1' },
        rds: { instance: 'prod-db', pollInterval: '10ms', waitTimeout: '2s', connectTimeout: '1s' },
        postgres: { url: 'postgres://app@db.internal:5432/app' },
      },
    },
  });
  const journal = tempDir('journal-');
  const run = (answers: string[]) =>
    runCli(['db', 'restart'], {
      cwd: dir,
      tty: true,
      answers,
      clientFactories: { ...fakeFactories(kube), aws: async () => rds.clients(), postgres: fakePostgres() },
      env: { RUNBOOK_JOURNAL_DIR: journal },
    });
  const gates = () =>
    runTexts(journal).flatMap((text) =>
      text
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l))
        .filter((e) => e.type === 'gate'),
    );
  return { kube, rds, run, gates };
}

describe('db restart in a protected environment', () => {
  it('asks ONE typed confirmation up front for the whole plan; the reboot and the scale back are not asked again', async () => {
    const { kube, rds, run, gates } = setup();
    const r = await run(['production']);
    expect(r.code, r.stderr).toBe(0);
    const asked = (r.prompter as ScriptedPrompter).asked;
    expect(asked).toHaveLength(1);
    expect(asked[0]).toMatch(/Type the environment name \(production\)/);
    expect(r.stderr).toMatch(/The whole plan of db restart in production \(PROTECTED\)/);
    expect(r.stderr).toMatch(/scale deployment\/app 3 → 0: the app is DOWN/);
    expect(r.stderr).toMatch(/reboot rds\/prod-db \(usually a few minutes; waits up to 2(\.0)?s for "available", then up to 1(\.0)?s for SELECT 1\)/);
    expect(r.stderr).toMatch(/without asking again: scale deployment\/app back to 3/);
    expect(rds.calls).toContain('RebootDBInstanceCommand');
    expect(kube.deployments.get('app')!.spec!.replicas).toBe(3);
    expect(gates().map((g) => `${g.step}:${g.by}`)).toEqual(['plan:prompt', 'scale-down:plan', 'reboot:plan']);
  });

  it('a mistyped name is asked again (up to 3 tries) instead of aborting', async () => {
    const { kube, run } = setup();
    const r = await run(['prodution', 'production']);
    expect(r.code, r.stderr).toBe(0);
    expect((r.prompter as ScriptedPrompter).asked[1]).toMatch(/"prodution" is not "production" \(2 tries left\)/);
    expect(kube.deployments.get('app')!.spec!.replicas).toBe(3);
  });

  it('Enter three times declines before anything: exit 3, nothing scaled or rebooted, and it says nothing was changed', async () => {
    const { kube, rds, run } = setup();
    const r = await run(['', '', '']);
    expect(r.code).toBe(3);
    expect(kube.mutations).toEqual([]);
    expect(rds.calls).not.toContain('RebootDBInstanceCommand');
    expect(r.stderr).toMatch(/stopped at a gate; nothing was changed/);
    expect(r.stderr).not.toMatch(/putting back/);
  });
});

describe('the closing line of a declined run says what actually happened', () => {
  const base: RunResult = {
    procedure: 'db restart',
    environment: 'production',
    runId: 'R',
    dryRun: 'off',
    status: 'declined',
    exitCode: 3,
    startedAt: '',
    durationMs: 5,
    params: {},
    compensations: [],
    steps: [],
  };
  const proc = { name: 'db restart' } as never;
  it('a decline after a change that cannot be undone (a reboot) never claims nothing changed', () => {
    const line = summaryLine(
      {
        ...base,
        steps: [
          { id: 'scale-down', title: 'Scale the app to 0', risk: 'destructive', status: 'succeeded', durationMs: 1 },
          { id: 'reboot', title: 'Reboot the RDS instance', risk: 'destructive', status: 'succeeded', durationMs: 1 },
          { id: 'x', title: 'Something gated', risk: 'write', status: 'declined', durationMs: 0 },
        ],
        compensations: [{ step: 'scale-down', status: 'succeeded' }],
      },
      proc,
      plainColors,
    );
    expect(line).not.toMatch(/nothing past it changed|nothing was changed/);
    expect(line).toMatch(/put back: Scale the app to 0/);
    expect(line).toMatch(/done and not undone: Reboot the RDS instance/);
  });
  it('a decline before any change says nothing was changed', () => {
    expect(summaryLine({ ...base, steps: [{ id: 'r', title: 'Read', risk: 'read', status: 'succeeded', durationMs: 1 }] }, proc, plainColors)).toMatch(
      /nothing was changed/,
    );
  });
});
