import { describe, expect, it } from 'vitest';
import { runCli, tempDir } from '../../support/cli.js';
import { writeConfig, twoEnvironments } from '../../support/config.js';
import { FakeKube, fakeFactories } from '../../support/fakes/fake-kube.js';

describe('report new', () => {
  it('fills the seed template from the journal: who ran what, the changes, failures and put-backs', async () => {
    const kube = new FakeKube(4);
    const { dir } = writeConfig(twoEnvironments());
    const journal = tempDir();
    const opts = { cwd: dir, clientFactories: fakeFactories(kube), env: { RUNBOOK_JOURNAL_DIR: journal } };
    expect((await runCli(['app', 'scale', '--replicas', '6'], opts)).code).toBe(0);
    kube.failNext('watchDeployment', 1, 500);
    expect((await runCli(['app', 'scale', '--replicas', '9'], opts)).code).toBe(1);
    expect((await runCli(['app', 'scale', '--replicas', '7', '--dry-run'], opts)).code).toBe(0);

    // No config needed: the report reads only the journal.
    const r = await runCli(['report', 'new', '--title', 'Checkout errors', '--severity', 'P2', '--impact', 'checkout for 20% of users'], {
      cwd: tempDir(),
      env: { RUNBOOK_JOURNAL_DIR: journal },
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^# Incident Report: Checkout errors$/m);
    expect(r.stdout).toMatch(/^\*\*Severity\*\*: P2/m);
    expect(r.stdout).toMatch(/^\*\*Impact\*\*: checkout for 20% of users$/m);
    expect(r.stdout).toMatch(/^\*\*Duration\*\*: \d\d:\d\d - \d\d:\d\d UTC/m);
    expect(r.stdout).toMatch(/- \d\d:\d\d - tester@test ran `runbook app scale` on staging/);
    expect(r.stdout).toMatch(/- \d\d:\d\d - Scale the deployment: scale deployment\/app 4 → 6/);
    expect(r.stdout).toMatch(/- \d\d:\d\d - failed: Wait for the rollout to complete: /);
    expect(r.stdout).toMatch(/- \d\d:\d\d - put back \(Scale the deployment\): succeeded/);
    expect(r.stdout).not.toMatch(/4 → 7|6 → 7/); // dry runs changed nothing and are left out
    expect(r.stdout).toMatch(/## Root Cause\n\[Detailed explanation/);
    expect(r.stdout.match(/`runbook app scale` on staging by tester@test/g)).toHaveLength(2);
  });

  it('--run limits the report to the given runs; unknown or malformed ids are usage errors', async () => {
    const kube = new FakeKube(4);
    const { dir } = writeConfig(twoEnvironments());
    const journal = tempDir();
    const opts = { cwd: dir, clientFactories: fakeFactories(kube), env: { RUNBOOK_JOURNAL_DIR: journal } };
    const a = JSON.parse((await runCli(['app', 'scale', '--replicas', '5', '--json'], opts)).stdout).runId;
    await runCli(['app', 'scale', '--replicas', '6'], opts);
    const r = await runCli(['report', 'new', '--title', 'x', '--severity', 'P3', '--run', a, '--json'], opts);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).steps[0].data.runs.map((x: { runId: string }) => x.runId)).toEqual([a]);
    expect((await runCli(['report', 'new', '--title', 'x', '--severity', 'P3', '--run', '20200101T000000-abcd'], opts)).code).toBe(2);
    expect((await runCli(['report', 'new', '--title', 'x', '--severity', 'P3', '--run', 'nope'], opts)).code).toBe(2);
    expect((await runCli(['report', 'new', '--title', 'x', '--severity', 'P9'], opts)).code).toBe(2);
  });
});

describe('report new: what counts', () => {
  it('leaves out runs that only read unless --all-runs; severity is any case', async () => {
    const kube = new FakeKube(4);
    const { dir } = writeConfig(twoEnvironments());
    const journal = tempDir();
    const opts = { cwd: dir, clientFactories: fakeFactories(kube), env: { RUNBOOK_JOURNAL_DIR: journal } };
    expect((await runCli(['app', 'scaling'], opts)).code).toBe(0);
    expect((await runCli(['app', 'scale', '--replicas', '6'], opts)).code).toBe(0);
    expect((await runCli(['app', 'scaling'], opts)).code).toBe(0);
    // A write declined at its gate changed nothing, but it is part of the story.
    expect((await runCli(['app', 'scale', '--replicas', '0', '--no-input'], opts)).code).toBe(3);

    const report = (...extra: string[]) =>
      runCli(['report', 'new', '--title', 'x', '--severity', 'p1', '--json', ...extra], { cwd: tempDir(), env: { RUNBOOK_JOURNAL_DIR: journal } });
    const r = await report();
    expect(r.code, r.stderr).toBe(0);
    const data = JSON.parse(r.stdout).result.collect;
    expect(data.runs.map((x: { procedure: string }) => x.procedure)).toEqual(['app scale', 'app scale']);
    expect(data.readOnlyLeftOut).toBe(2);
    expect(data.timeline.some((e: { text: string }) => e.text.includes('app scaling'))).toBe(false);

    const all = JSON.parse((await report('--all-runs')).stdout).result.collect;
    expect(all.runs.map((x: { procedure: string }) => x.procedure).sort()).toEqual(['app scale', 'app scale', 'app scaling', 'app scaling', 'report new']);
    expect(all.readOnlyLeftOut).toBe(0);

    const md = await runCli(['report', 'new', '--title', 'x', '--severity', 'p1'], { cwd: tempDir(), env: { RUNBOOK_JOURNAL_DIR: journal } });
    expect(md.stdout).toMatch(/^\*\*Severity\*\*: P1 {2}$/m);
    // The report is the output: no step progress, no run id line.
    expect(md.stderr).toBe('');
    const bad = await runCli(['report', 'new', '--title', 'x', '--severity', 'p4'], { cwd: tempDir(), env: { RUNBOOK_JOURNAL_DIR: journal } });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--severity must be one of P1, P2, P3');
  });
});
