import { describe, expect, it } from 'vitest';
import { runCli, tempDir } from '../support/cli.js';
import { runTexts } from '../support/journal-files.js';
import { writeConfig, twoEnvironments } from '../support/config.js';
import { FakeKube, fakeFactories } from '../support/fakes/fake-kube.js';
import { ScriptedPrompter } from '../support/prompter.js';

function setup(replicas = 4) {
  const kube = new FakeKube(replicas);
  const { dir } = writeConfig(twoEnvironments());
  const journal = tempDir('journal-');
  const opts = (extra: Parameters<typeof runCli>[1] = {}) => ({
    cwd: dir,
    clientFactories: fakeFactories(kube),
    ...extra,
    env: { RUNBOOK_JOURNAL_DIR: journal, ...(extra.env ?? {}) },
  });
  return { kube, dir, journal, opts };
}

describe('CLI contract', () => {
  it('prints help with the exit codes and loads no procedure for it', async () => {
    const r = await runCli(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Exit codes:');
    expect(r.stdout).toContain('app');
  });

  it('lists procedures with their risk', async () => {
    const r = await runCli(['list']);
    expect(r.code).toBe(0);
    // What a plain run is, and when it is more (issue 12: 5 → 2 is a write; only to 0 is destructive).
    expect(r.stdout).toMatch(/app scale\s+write \(destructive to 0 replicas\)/);
    expect(r.stdout).toMatch(/db restart\s+destructive\s/);
    const j = await runCli(['list', '--json']);
    const listed = JSON.parse(j.stdout) as Array<{ name: string; risk: string; riskFor?: { usually: string } }>;
    expect(listed.map((p) => p.name)).toContain('app restart');
    expect(listed.find((p) => p.name === 'app scale')).toMatchObject({ risk: 'destructive', riskFor: { usually: 'write' } });
  });

  it('explains a procedure with the seed fixes and equivalent commands', async () => {
    const r = await runCli(['explain', 'app', 'scale']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('kubectl scale deployment/app --replicas=3 -n production');
    expect(r.stdout).toContain('What the seed runbook got wrong');
  });

  it('shows an offline plan for the built-in example without any config', async () => {
    const r = await runCli(['app', 'restart', '--dry-run=offline']);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('DRY RUN');
    expect(r.stdout).toContain('kubectl rollout restart deployment/app -n production');
  });

  it('refuses real runs against the built-in example (exit 2)', async () => {
    const r = await runCli(['app', 'restart']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/no config found/);
  });

  it.each([
    [['app', 'scale', '--replicas', '-1'], /at least 0/],
    [['app', 'scale', '--replicas', '1.5'], /whole number/],
    [['app', 'scale', '--replicas', 'many'], /whole number/],
    [['app', 'scale', '--replicas', '21'], /above this environment's limit of 20/],
    [['app', 'scale'], /required option|missing/],
    [['app', 'autoscale', '--min', '5', '--max', '2'], /--min 5 is greater than --max 2/],
    [['app', 'resources', '--cpu-request', '2', '--cpu-limit', '1'], /cpu request 2 is above its limit 1/],
    [['app', 'resources', '--memory-limit', '1GB'], /invalid --memory-limit/],
    [['app', 'resources', '--container', 'Bad_Name', '--cpu-limit', '1'], /invalid --container/],
    [['app', 'env', 'set', 'NOEQUALS'], /KEY=VALUE/],
    [['app', 'restart', '--env', 'nowhere'], /unknown environment "nowhere"/],
    [['app', 'restart', '--dry-run=maybe'], /--dry-run takes/],
    [['app', 'restart', '--confirm', 'production'], /does not match the target environment "staging"/],
    [['app', 'restart', '--timeout', 'soon'], /invalid --timeout/],
    [['app', 'frobnicate'], /unknown command/],
  ])('rejects bad input %j with exit 2 before contacting anything', async (argv, message) => {
    const { kube, opts } = setup();
    const r = await runCli(argv, opts());
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
    expect(kube.mutations).toEqual([]);
  });

  it('rejects malformed YAML and schema errors with the field path (exit 2)', async () => {
    const bad = writeConfig('environments:\n  staging: [unclosed\n');
    const r1 = await runCli(['app', 'scaling'], { cwd: bad.dir });
    expect(r1.code).toBe(2);
    expect(r1.stderr).toMatch(/malformed YAML/);
    const wrong = writeConfig({ environments: { staging: { kubernetes: { namespace: 'Bad NS', deployment: 'app' } } } });
    const r2 = await runCli(['app', 'scaling'], { cwd: wrong.dir });
    expect(r2.code).toBe(2);
    expect(r2.stderr).toMatch(/environments\.staging\.kubernetes\.namespace/);
    const typo = writeConfig({ environments: { staging: { protectd: true } } });
    const r3 = await runCli(['app', 'scaling'], { cwd: typo.dir });
    expect(r3.code).toBe(2);
    expect(r3.stderr).toMatch(/protectd/);
  });

  it('refuses a password written into the config file', async () => {
    const c = writeConfig({ environments: { staging: { postgres: { url: 'postgres://admin:hunter2@db/app' } } } });
    const r = await runCli(['app', 'scaling'], { cwd: c.dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/postgres\.url: contains a password/);
    expect(r.stderr).not.toContain('hunter2');
  });

  it('scales in an unprotected environment without a prompt, journaling every event', async () => {
    const { kube, journal, opts } = setup();
    const r = await runCli(['app', 'scale', '--replicas', '6', '--json'], opts());
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc).toMatchObject({ procedure: 'app scale', environment: 'staging', status: 'succeeded', exitCode: 0 });
    expect(doc.steps.map((s: { status: string }) => s.status)).toEqual(['succeeded', 'succeeded', 'succeeded']);
    expect(kube.mutations).toEqual(['scale deployment/app 6']);
    const files = runTexts(journal);
    expect(files).toHaveLength(1);
    const types = files[0]
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).type);
    expect(types[0]).toBe('run-start');
    expect(types.at(-1)).toBe('run-end');
    expect(types).toContain('lock');
  });

  it('fails closed without a terminal in a protected environment: exit 3, nothing changed', async () => {
    const { kube, opts } = setup();
    const r = await runCli(['app', 'scale', '--replicas', '6', '--env', 'production'], opts());
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/--yes/);
    expect(kube.mutations).toEqual([]);
  });

  it('needs --confirm <env> for a severe gate even with --yes', async () => {
    const { kube, opts } = setup();
    const r = await runCli(['app', 'scale', '--replicas', '0', '--env', 'production', '--yes'], opts());
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/--yes --confirm production/);
    expect(kube.mutations).toEqual([]);
    const ok = await runCli(['app', 'scale', '--replicas', '0', '--env', 'production', '--yes', '--confirm', 'production'], opts());
    expect(ok.code).toBe(0);
    expect(kube.mutations).toEqual(['scale deployment/app 0']);
  });

  it('asks on a terminal: a declined yes/no gate exits 3 with no change', async () => {
    const { kube, opts } = setup();
    const r = await runCli(['app', 'scale', '--replicas', '6', '--env', 'production'], opts({ tty: true, answers: [false] }));
    expect(r.code).toBe(3);
    expect(kube.mutations).toEqual([]);
  });

  it('asks for the environment name on a severe gate; a mistyped name is asked again, three wrong names decline (issue 13)', async () => {
    const { kube, opts } = setup();
    const wrong = await runCli(['app', 'scale', '--replicas', '0', '--env', 'production'], opts({ tty: true, answers: ['prod', 'prodution', 'prd'] }));
    expect(wrong.code).toBe(3);
    expect(kube.mutations).toEqual([]);
    expect((wrong.prompter as ScriptedPrompter).asked[1]).toMatch(/"prod" is not "production" \(2 tries left\)/);
    expect(wrong.stderr).toMatch(/typed wrong 3 times/);
    const slip = await runCli(['app', 'scale', '--replicas', '0', '--env', 'production'], opts({ tty: true, answers: ['prodution', 'production'] }));
    expect(slip.code, slip.stderr).toBe(0);
    expect(kube.deployments.get('app')!.spec!.replicas).toBe(0);
    kube.deployments.get('app')!.spec!.replicas = 4;
    const right = await runCli(['app', 'scale', '--replicas', '0', '--env', 'production'], opts({ tty: true, answers: ['production'] }));
    expect(right.code).toBe(0);
    expect(kube.deployments.get('app')!.spec!.replicas).toBe(0);
  });

  it('--no-input fails a gate even on a terminal', async () => {
    const { kube, opts } = setup();
    const r = await runCli(['app', 'scale', '--replicas', '6', '--env', 'production', '--no-input'], opts({ tty: true }));
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/--no-input/);
    expect(kube.mutations).toEqual([]);
  });

  it('a dry run previews with a server-side dry run and changes nothing', async () => {
    const { kube, opts } = setup();
    const r = await runCli(['app', 'scale', '--replicas', '7', '--dry-run'], opts());
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('DRY RUN');
    expect(r.stderr).toMatch(/would scale deployment\/app: 4 → 7/);
    expect(kube.mutations).toEqual([]);
  });

  it('compensates when a later step fails: the recorded count is put back (exit 1)', async () => {
    const { kube, opts } = setup(4);
    kube.failNext('watchDeployment', 1, 500);
    const r = await runCli(['app', 'scale', '--replicas', '9', '--json'], opts());
    expect(r.code).toBe(1);
    const doc = JSON.parse(r.stdout);
    expect(doc.compensations).toEqual([{ step: 'scale', status: 'succeeded' }]);
    expect(kube.deployments.get('app')!.spec!.replicas).toBe(4);
  });

  it('exits 5 with the command to run by hand when compensation also fails', async () => {
    const { kube, opts } = setup(4);
    kube.failNext('watchDeployment', 1, 500);
    const original = kube.scaleDeployment.bind(kube);
    let realCalls = 0;
    kube.scaleDeployment = async (name, replicas, o) => {
      if (!o?.dryRun && ++realCalls > 1) throw new Error('API down');
      return original(name, replicas, o);
    };
    const r = await runCli(['app', 'scale', '--replicas', '9'], opts());
    expect(r.code).toBe(5);
    expect(r.stderr).toContain('kubectl scale deployment/app --replicas=4 -n production');
  });

  it('json mode prints one JSON document even for a usage error', async () => {
    const { opts } = setup();
    const r = await runCli(['app', 'scale', '--replicas', 'x', '--json'], opts());
    expect(r.code).toBe(2);
    expect(JSON.parse(r.stdout)).toMatchObject({ status: 'error', exitCode: 2, error: { message: '--replicas must be a whole number, got "x"' } });
  });

  it('json mode prints exactly one JSON document on stdout', async () => {
    const { opts } = setup();
    const r = await runCli(['app', 'scaling', '--json'], opts());
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.steps[0].data.pods).toHaveLength(4);
  });

  it('history and show read the journal', async () => {
    const { opts } = setup();
    const first = await runCli(['app', 'scale', '--replicas', '5', '--json'], opts());
    const runId = JSON.parse(first.stdout).runId;
    const h = await runCli(['history', '--json'], opts());
    expect(JSON.parse(h.stdout)[0]).toMatchObject({ runId, procedure: 'app scale', status: 'succeeded', exitCode: 0, operator: 'tester@test' });
    const s = await runCli(['show', runId], opts());
    expect(s.code).toBe(0);
    expect(s.stdout).toMatch(/scale: succeeded/);
    const missing = await runCli(['show', '20200101T000000-abcd'], opts());
    expect(missing.code).toBe(2);
  });

  it('never prints a secret value given to env set, nor journals it', async () => {
    const { journal, opts } = setup();
    const r = await runCli(['app', 'env', 'set', 'DB_PASSWORD=sup3r-s3cret', 'MODE=fast', '--json'], opts());
    expect(r.code).toBe(0);
    expect(r.stdout + r.stderr).not.toContain('sup3r-s3cret');
    const runs = runTexts(journal);
    expect(runs).toHaveLength(1);
    expect(runs[0]).not.toContain('sup3r-s3cret');
  });
});
