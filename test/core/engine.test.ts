import { describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli, tempDir } from '../support/cli.js';
import { writeConfig, twoEnvironments } from '../support/config.js';
import { FakeKube, fakeFactories } from '../support/fakes/fake-kube.js';
import { runFile, runIds } from '../support/journal-files.js';
import { findConfigPath } from '../../src/core/config.js';
import { InterruptedError } from '../../src/core/errors.js';
import { rolloutStatus } from '../../src/procedures/shared/rollout.js';

/** A deployment whose rollout never completes: the watch keeps reporting it unavailable. */
function stuckKube(): FakeKube {
  const kube = new FakeKube(4);
  const scale = kube.scaleDeployment.bind(kube);
  kube.scaleDeployment = async (name, replicas, o) => {
    const r = await scale(name, replicas, o);
    if (!o?.dryRun) kube.deployments.get(name)!.status!.availableReplicas = 0;
    return r;
  };
  return kube;
}

describe('engine', () => {
  it('config precedence: --config, then $RUNBOOK_CONFIG, then ./runbook.yaml, then the user config', () => {
    const cwd = tempDir();
    const xdg = tempDir();
    mkdirSync(join(xdg, 'runbook'));
    writeFileSync(join(xdg, 'runbook', 'config.yaml'), 'environments: {}');
    expect(findConfigPath(undefined, { XDG_CONFIG_HOME: xdg }, cwd)).toBe(join(xdg, 'runbook', 'config.yaml'));
    writeFileSync(join(cwd, 'runbook.yaml'), 'environments: {}');
    expect(findConfigPath(undefined, { XDG_CONFIG_HOME: xdg }, cwd)).toBe(join(cwd, 'runbook.yaml'));
    expect(findConfigPath(undefined, { XDG_CONFIG_HOME: xdg, RUNBOOK_CONFIG: '/etc/rb.yaml' }, cwd)).toBe('/etc/rb.yaml');
    expect(findConfigPath('flag.yaml', { RUNBOOK_CONFIG: '/etc/rb.yaml' }, cwd)).toBe(join(cwd, 'flag.yaml'));
    expect(findConfigPath(undefined, { XDG_CONFIG_HOME: tempDir() }, tempDir())).toBeNull();
  });

  it('$RUNBOOK_ENV selects the environment; --env wins over it', async () => {
    const kube = new FakeKube();
    const { dir } = writeConfig(twoEnvironments());
    const a = await runCli(['app', 'scaling', '--json'], { cwd: dir, clientFactories: fakeFactories(kube), env: { RUNBOOK_ENV: 'production' } });
    expect(JSON.parse(a.stdout).environment).toBe('production');
    const b = await runCli(['app', 'scaling', '--json', '-e', 'staging'], {
      cwd: dir,
      clientFactories: fakeFactories(kube),
      env: { RUNBOOK_ENV: 'production' },
    });
    expect(JSON.parse(b.stdout).environment).toBe('staging');
  });

  it("the config's journal.dir holds the journal when $RUNBOOK_JOURNAL_DIR is not set; history reads it", async () => {
    const kube = new FakeKube();
    const journal = tempDir();
    const { dir } = writeConfig({ ...twoEnvironments(), journal: { dir: journal } });
    const r = await runCli(['app', 'scale', '--replicas', '5', '--json'], {
      cwd: dir,
      clientFactories: fakeFactories(kube),
      env: { RUNBOOK_JOURNAL_DIR: undefined },
    });
    expect(r.code).toBe(0);
    const runId = JSON.parse(r.stdout).runId;
    expect(runIds(journal)).toEqual([runId]);
    expect(existsSync(runFile(journal, runId))).toBe(true);
    const h = await runCli(['history', '--json'], { cwd: dir, env: { RUNBOOK_JOURNAL_DIR: undefined } });
    expect(JSON.parse(h.stdout).map((x: { runId: string }) => x.runId)).toEqual([runId]);
  });

  it('--timeout stops a run that takes too long and compensates (exit 1)', async () => {
    const kube = stuckKube();
    const { dir } = writeConfig(twoEnvironments());
    const r = await runCli(['app', 'scale', '--replicas', '6', '--timeout', '300ms', '--json'], { cwd: dir, clientFactories: fakeFactories(kube) });
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout).error.message).toMatch(/--timeout/);
    expect(kube.deployments.get('app')!.spec!.replicas).toBe(4);
  });

  it('an interrupt compensates and exits 130; a second interrupt skips compensation and says what to do by hand', async () => {
    const { dir } = writeConfig(twoEnvironments());
    const once = stuckKube();
    const first = new AbortController();
    const hard = new AbortController();
    setTimeout(() => first.abort(new InterruptedError('SIGINT')), 100);
    const r1 = await runCli(['app', 'scale', '--replicas', '6'], {
      cwd: dir,
      clientFactories: fakeFactories(once),
      interrupts: { signal: first.signal, hard: hard.signal },
    });
    expect(r1.code).toBe(130);
    expect(once.deployments.get('app')!.spec!.replicas).toBe(4);

    const twice = stuckKube();
    const f2 = new AbortController();
    const h2 = new AbortController();
    setTimeout(() => {
      f2.abort(new InterruptedError('SIGINT'));
      h2.abort(new InterruptedError('SIGINT'));
    }, 100);
    const r2 = await runCli(['app', 'scale', '--replicas', '6'], {
      cwd: dir,
      clientFactories: fakeFactories(twice),
      interrupts: { signal: f2.signal, hard: h2.signal },
    });
    expect(r2.code).toBe(5);
    expect(r2.stderr).toMatch(/skipped by a second interrupt/);
    expect(r2.stderr).toContain('kubectl scale deployment/app --replicas=4 -n production');
    expect(twice.deployments.get('app')!.spec!.replicas).toBe(6);
  });

  it('SIGTERM exits 143', async () => {
    const { dir } = writeConfig(twoEnvironments());
    const kube = stuckKube();
    const first = new AbortController();
    setTimeout(() => first.abort(new InterruptedError('SIGTERM')), 100);
    const r = await runCli(['app', 'scale', '--replicas', '6'], {
      cwd: dir,
      clientFactories: fakeFactories(kube),
      interrupts: { signal: first.signal, hard: new AbortController().signal },
    });
    expect(r.code).toBe(143);
  });

  it('resume continues a failed run from its first unfinished step with the recorded data', async () => {
    const { dir } = writeConfig(twoEnvironments());
    const journal = tempDir();
    const kube = new FakeKube(4);
    // The scale-back fails and so does its retry: exit 5, replicas left at 6.
    kube.failNext('watchDeployment', 1, 500);
    const scale = kube.scaleDeployment.bind(kube);
    let real = 0;
    kube.scaleDeployment = async (n, r, o) => {
      if (!o?.dryRun && ++real === 2) throw new Error('API down');
      return scale(n, r, o);
    };
    const failed = await runCli(['app', 'scale', '--replicas', '6', '--json'], {
      cwd: dir,
      clientFactories: fakeFactories(kube),
      env: { RUNBOOK_JOURNAL_DIR: journal },
    });
    expect(failed.code).toBe(5);
    const runId = JSON.parse(failed.stdout).runId;
    const resumed = await runCli(['resume', runId, '--json'], { cwd: dir, clientFactories: fakeFactories(kube), env: { RUNBOOK_JOURNAL_DIR: journal } });
    expect(resumed.code, resumed.stderr).toBe(0);
    const doc = JSON.parse(resumed.stdout);
    expect(doc.steps.map((s: { status: string }) => s.status)).toEqual(['skipped', 'skipped', 'succeeded']);
    expect(doc.steps[1].data).toEqual({ from: 4, to: 6 });
  });

  it('resume without -c, from another directory, uses the config and environment the run used (issue 13)', async () => {
    const { dir, path } = writeConfig(twoEnvironments());
    const journal = tempDir();
    const kube = new FakeKube(4);
    kube.failNext('watchDeployment', 1, 500);
    const failed = await runCli(['app', 'scale', '--replicas', '6', '-e', 'staging', '--json'], {
      cwd: dir,
      clientFactories: fakeFactories(kube),
      env: { RUNBOOK_JOURNAL_DIR: journal },
    });
    expect(failed.code).not.toBe(0);
    const runId = JSON.parse(failed.stdout).runId;
    // Elsewhere, with no runbook.yaml around: before, "unknown environment".
    const resumed = await runCli(['resume', runId, '--json'], { cwd: tempDir(), clientFactories: fakeFactories(kube), env: { RUNBOOK_JOURNAL_DIR: journal } });
    expect(resumed.code, resumed.stderr + resumed.stdout).toBe(0);
    expect(resumed.stderr).toContain(`on staging, config ${path}`);
    expect(JSON.parse(resumed.stdout).environment).toBe('staging');
    // Another environment than the run's is refused, not silently swapped.
    const other = await runCli(['resume', runId, '-e', 'production'], {
      cwd: dir,
      clientFactories: fakeFactories(kube),
      env: { RUNBOOK_JOURNAL_DIR: journal },
    });
    expect(other.code).toBe(2);
    expect(other.stderr).toMatch(/ran on environment "staging", not "production"/);
  });

  it.each([
    [{ metadata: { generation: 2 }, spec: { replicas: 3 }, status: { observedGeneration: 1 } }, false, /spec update/],
    [{ metadata: { generation: 2 }, spec: { replicas: 3 }, status: { observedGeneration: 2, updatedReplicas: 1, replicas: 3 } }, false, /1 of 3 updated/],
    [
      { metadata: { generation: 2 }, spec: { replicas: 3 }, status: { observedGeneration: 2, updatedReplicas: 3, replicas: 4, availableReplicas: 3 } },
      false,
      /1 old replicas pending termination/,
    ],
    [
      { metadata: { generation: 2 }, spec: { replicas: 3 }, status: { observedGeneration: 2, updatedReplicas: 3, replicas: 3, availableReplicas: 2 } },
      false,
      /2 of 3 updated replicas available/,
    ],
    [
      { metadata: { generation: 2 }, spec: { replicas: 3 }, status: { observedGeneration: 2, updatedReplicas: 3, replicas: 3, availableReplicas: 3 } },
      true,
      /3 of 3 updated/,
    ],
    [{ metadata: { generation: 2 }, spec: { replicas: 0 }, status: { observedGeneration: 2 } }, true, /0 of 0/],
  ])('rollout status follows kubectl rollout status (%#)', (d, done, message) => {
    const s = rolloutStatus(d as never);
    expect(s.done).toBe(done);
    expect(s.message).toMatch(message);
  });
});
