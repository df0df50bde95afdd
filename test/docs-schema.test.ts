// The documented --json envelope (docs/run-result.schema.json) holds for every procedure's output:
// each example of the catalogue as an offline dry run, and real runs that succeed, fail and put back,
// stop at a gate, or never start (usage errors).
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Ajv from 'ajv';
import { catalog } from '../src/procedures/catalog.js';
import { runCli, tempDir } from './support/cli.js';
import { twoEnvironments, writeConfig } from './support/config.js';
import { FakeKube, fakeFactories } from './support/fakes/fake-kube.js';
import { exampleConfig } from '../src/core/example-config.js';

const schema = JSON.parse(readFileSync(join(import.meta.dirname, '..', 'docs', 'run-result.schema.json'), 'utf8'));
const validate = new Ajv({ allErrors: true }).compile(schema);

// The built-in example has no ddos section (the seed has no such values): those two get one of their own.
const ddosConfig = () =>
  writeConfig({
    default: 'example',
    environments: { example: { ...exampleConfig.environments.example, ddos: { rateLimit: { requests: 10, window: 60 }, replicas: 6 } } },
  }).dir;
const OWN_CONFIG: Record<string, () => string> = { 'security ddos': ddosConfig, 'security ddos-revert': ddosConfig };

function valid(stdout: string): Record<string, unknown> {
  const doc = JSON.parse(stdout);
  const ok = validate(doc);
  expect(ok, JSON.stringify(validate.errors, null, 2)).toBe(true);
  return doc;
}

describe('the --json schema', () => {
  it('is strict: an unknown field, a float duration or a missing result is refused', () => {
    const base = {
      procedure: 'app scaling',
      env: 'x',
      environment: 'x',
      status: 'succeeded',
      exitCode: 0,
      runId: '20260101T000000-ab12',
      dryRun: 'off',
      startedAt: '2026-01-01T00:00:00.000Z',
      durationMs: 3,
      params: {},
      result: {},
      steps: [{ id: 'a', title: 'A', risk: 'read', status: 'succeeded', durationMs: 1 }],
      compensations: [],
    };
    expect(validate(base)).toBe(true);
    expect(validate({ ...base, extra: 1 })).toBe(false);
    expect(validate({ ...base, durationMs: 98.90912800000001 })).toBe(false);
    expect(validate({ ...base, steps: [{ ...base.steps[0], durationMs: 0.5 }] })).toBe(false);
    const { result: _r, ...noResult } = base;
    expect(validate(noResult)).toBe(false);
    expect(validate({ status: 'error', exitCode: 2, error: { message: 'bad' } })).toBe(true);
  });

  describe.each(catalog.map((e) => [e.name, e] as const))('%s', (name, entry) => {
    it('every example, as an offline dry run, prints a document the schema accepts', async () => {
      const proc = await entry.load();
      expect(proc.examples.length).toBeGreaterThan(0);
      for (const example of proc.examples) {
        const r = await runCli([...name.split(' '), ...example, '--dry-run=offline', '--json'], {
          cwd: OWN_CONFIG[name]?.(),
          env: { KUBECONFIG: '/nonexistent', AWS_ENDPOINT_URL: 'http://127.0.0.1:9' },
        });
        expect(r.code, `${example.join(' ')}: ${r.stderr}`).toBe(0);
        const doc = valid(r.stdout);
        expect(doc).toMatchObject({ procedure: name, env: 'example', status: 'planned', dryRun: 'offline' });
      }
    });
  });

  it('real runs: a read, a write, a failure put back, a declined gate and a usage error', async () => {
    const kube = new FakeKube(4);
    const { dir } = writeConfig(twoEnvironments());
    const opts = { cwd: dir, clientFactories: fakeFactories(kube), env: { RUNBOOK_JOURNAL_DIR: tempDir() } };

    const read = await runCli(['app', 'scaling', '--json'], opts);
    expect(read.code, read.stderr).toBe(0);
    const readDoc = valid(read.stdout);
    const stepIds = (readDoc.steps as Array<{ id: string; data?: unknown }>).filter((s) => s.data !== undefined).map((s) => s.id);
    expect(Object.keys(readDoc.result as object).sort()).toEqual(stepIds.sort());
    expect(stepIds.length).toBeGreaterThan(0);

    const write = await runCli(['app', 'scale', '--replicas', '6', '--json'], opts);
    expect(write.code, write.stderr).toBe(0);
    expect(valid(write.stdout)).toMatchObject({ procedure: 'app scale', env: 'staging', environment: 'staging', status: 'succeeded', exitCode: 0 });

    kube.failNext('watchDeployment', 1, 500);
    const failed = await runCli(['app', 'scale', '--replicas', '9', '--json'], opts);
    expect(failed.code).toBe(1);
    const failedDoc = valid(failed.stdout);
    expect(failedDoc).toMatchObject({ status: 'failed', exitCode: 1, compensations: [{ status: 'succeeded' }] });

    const declined = await runCli(['app', 'scale', '--replicas', '0', '--no-input', '--json'], opts);
    expect(declined.code).toBe(3);
    expect(valid(declined.stdout)).toMatchObject({ status: 'declined', exitCode: 3 });

    const plan = await runCli(['app', 'restart', '--dry-run', '--json'], opts);
    expect(plan.code, plan.stderr).toBe(0);
    expect(valid(plan.stdout)).toMatchObject({ status: 'planned', dryRun: 'plan' });

    const usage = await runCli(['app', 'scale', '--replicas', 'many', '--json'], opts);
    expect(usage.code).toBe(2);
    expect(valid(usage.stdout)).toMatchObject({ status: 'error', exitCode: 2 });

    for (const argv of [
      ['info', '--json'],
      ['report', 'new', '--title', 't', '--severity', 'p2', '--json'],
    ]) {
      const r = await runCli(argv, opts);
      expect(r.code, r.stderr).toBe(0);
      valid(r.stdout);
    }
  });
});
