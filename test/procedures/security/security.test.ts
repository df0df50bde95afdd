import { failAfter } from '../../support/inject.js';
import { openJournal } from '../../../src/core/journal-reader.js';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { StepError, UsageError } from '../../../src/core/errors.js';
import type { Procedure } from '../../../src/core/procedure.js';
import { auditOffChange, findLastAuditOn } from '../../../src/procedures/security/audit-logging.js';
import { logTasks } from '../../../src/procedures/security/evidence-collection.js';
import { validateNodeNames } from '../../../src/procedures/security/nodes.js';
import { maskRotationOutput } from '../../../src/procedures/security/rotation.js';
import { runCli, tempDir } from '../../support/cli.js';
import { twoEnvironments, writeConfig } from '../../support/config.js';
import { FakeKube, fakeFactories } from '../../support/fakes/fake-kube.js';
import { runFile } from '../../support/journal-files.js';
import type { V1Pod } from '@kubernetes/client-node';

describe('node names', () => {
  it.each([
    [
      ['node-1', 'node-1', 'ip-10-0-0-1.ec2.internal'],
      ['node-1', 'ip-10-0-0-1.ec2.internal'],
    ],
  ])('de-duplicates valid RFC 1123 names %j', (given, expected) => {
    const p = { nodes: given };
    validateNodeNames(p);
    expect(p.nodes).toEqual(expected);
  });
  it.each([[[]], [['Node-1']], [['node_1']], [['-node']], [['a'.repeat(254)]]])('rejects %j', (nodes) => {
    expect(() => validateNodeNames({ nodes })).toThrow(UsageError);
  });
});

describe('rotation output masking', () => {
  it.each([
    ['API_TOKEN=abc123def456ghi789jkl012', 'API_TOKEN=****'],
    ['password: hunter2', 'password: ****'],
    ['new key AKIAIOSFODNN7EXAMPLE1234 issued', 'new key **** issued'],
    ['rotated 3 credentials in 2s', 'rotated 3 credentials in 2s'],
    ['user=admin', 'user=admin'],
  ])('%s → %s', (line, masked) => {
    expect(maskRotationOutput(line)).toBe(masked);
  });
});

describe('evidence tasks', () => {
  it('collects every container (init too) and the previous instance only where it restarted', () => {
    const pod = {
      metadata: { name: 'p' },
      spec: { initContainers: [{ name: 'init' }], containers: [{ name: 'a' }, { name: 'b' }] },
      status: {
        containerStatuses: [
          { name: 'a', restartCount: 3 },
          { name: 'b', restartCount: 0 },
        ],
        initContainerStatuses: [{ name: 'init', restartCount: 0 }],
      },
    } as unknown as V1Pod;
    expect(logTasks([pod]).map((t) => `${t.container}${t.previous ? '(prev)' : ''}`)).toEqual(['init', 'a', 'a(prev)', 'b']);
  });
});

describe('audit-mode off: what the journal recorded', () => {
  function journal(
    runs: Array<{
      id: string;
      procedure: string;
      env?: string;
      mode?: string;
      prior?: Record<string, string | null>;
      compensated?: boolean;
      applied?: boolean;
      dryRun?: string;
    }>,
  ): string {
    const dir = tempDir('security-unit-journal-');
    for (const r of runs) {
      const lines: unknown[] = [
        { t: '', type: 'run-start', procedure: r.procedure, environment: r.env ?? 'staging', dryRun: r.dryRun ?? 'off', params: { mode: r.mode } },
      ];
      if (r.applied !== false) lines.push({ t: '', type: 'step-end', step: 'apply', status: 'succeeded', data: { prior: r.prior } });
      if (r.compensated) lines.push({ t: '', type: 'compensation', step: 'apply', status: 'succeeded' });
      const file = runFile(dir, r.id);
      mkdirSync(dirname(file), { recursive: true });
      writeFileSync(file, lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
    }
    return dir;
  }

  it('takes the newest successful, uncompensated on run of this environment', async () => {
    const dir = journal([
      { id: '20260101T000000-0001', procedure: 'security audit-mode', mode: 'on', prior: { LOG_LEVEL: 'WARN', AUDIT_MODE: null } },
      { id: '20260101T000001-0002', procedure: 'security breach', prior: { LOG_LEVEL: 'ERROR', AUDIT_MODE: null } },
      { id: '20260101T000002-0003', procedure: 'security audit-mode', mode: 'on', prior: { LOG_LEVEL: 'X', AUDIT_MODE: null }, compensated: true },
      { id: '20260101T000003-0004', procedure: 'security audit-mode', mode: 'on', prior: { LOG_LEVEL: 'Y', AUDIT_MODE: null }, env: 'production' },
      { id: '20260101T000004-0005', procedure: 'security audit-mode', mode: 'off', prior: { LOG_LEVEL: 'Z', AUDIT_MODE: null } },
      { id: '20260101T000005-0006', procedure: 'security audit-mode', mode: 'on', applied: false },
      { id: '20260101T000006-0007', procedure: 'security audit-mode', mode: 'on', prior: { LOG_LEVEL: 'D', AUDIT_MODE: null }, dryRun: 'plan' },
    ]);
    expect(await findLastAuditOn(openJournal(dir), 'staging')).toEqual({ fromRun: '20260101T000001-0002', prior: { LOG_LEVEL: 'ERROR', AUDIT_MODE: null } });
    expect(await findLastAuditOn(openJournal(tempDir()), 'staging')).toBeNull();
  });

  it('restores recorded values, unsets what was absent, and defaults to LOG_LEVEL=INFO without a record', () => {
    expect(auditOffChange({ fromRun: 'x', prior: { LOG_LEVEL: 'WARN', AUDIT_MODE: null } })).toEqual({
      set: [{ key: 'LOG_LEVEL', value: 'WARN' }],
      unset: ['AUDIT_MODE'],
    });
    expect(auditOffChange({ fromRun: 'x', prior: { LOG_LEVEL: null, AUDIT_MODE: 'false' } })).toEqual({
      set: [{ key: 'AUDIT_MODE', value: 'false' }],
      unset: ['LOG_LEVEL'],
    });
    expect(auditOffChange(null)).toEqual({ set: [{ key: 'LOG_LEVEL', value: 'INFO' }], unset: ['AUDIT_MODE'] });
  });
});

describe('security isolate with an in-memory cluster', () => {
  it('dry run: previews each node, no mutation', async () => {
    const kube = new FakeKube();
    const { dir } = writeConfig(twoEnvironments());
    const r = await runCli(['security', 'isolate', '--nodes', 'node-1,node-2', '--dry-run', '--json'], { cwd: dir, clientFactories: fakeFactories(kube) });
    expect(r.code, r.stderr).toBe(0);
    expect(kube.mutations).toEqual([]);
    const changes = JSON.parse(r.stdout).steps[1].changes;
    expect(changes.map((c: { target: string; before: string; after: string }) => `${c.target}: ${c.before} → ${c.after}`)).toEqual([
      'node/node-1: schedulable, quarantine=∅ → unschedulable, quarantine=true',
      'node/node-2: schedulable, quarantine=∅ → unschedulable, quarantine=true',
    ]);
  });

  it('compensation puts back only what the run changed', async () => {
    const kube = new FakeKube();
    kube.nodes.get('node-2')!.spec = { unschedulable: true };
    kube.nodes.get('node-2')!.metadata!.labels!.quarantine = 'suspect';
    const before = structuredClone([...kube.nodes.values()]);
    const { dir } = writeConfig(twoEnvironments());
    const r = await runCli(['security', 'isolate', '--nodes', 'node-1,node-2', '--json'], {
      cwd: dir,
      clientFactories: fakeFactories(kube),
      procedureOverride: failAfter('isolate'),
    });
    expect(r.code, r.stderr).toBe(1);
    expect(JSON.parse(r.stdout).compensations).toEqual([{ step: 'isolate', status: 'succeeded' }]);
    expect([...kube.nodes.values()]).toEqual(before);
  });

  it('a failed undo exits 5 and says what to type', async () => {
    const kube = new FakeKube();
    const { dir } = writeConfig(twoEnvironments());
    const override = (proc: Procedure): Procedure => {
      const p = failAfter('isolate')(proc);
      return {
        ...p,
        steps: p.steps.map((s) =>
          s.id === 'injected-failure'
            ? {
                ...s,
                run: async () => {
                  kube.failNext('patchNode', 5);
                  throw new StepError('injected failure');
                },
              }
            : s,
        ),
      };
    };
    const r = await runCli(['security', 'isolate', '--nodes', 'node-1', '--json'], {
      cwd: dir,
      clientFactories: fakeFactories(kube),
      procedureOverride: override,
    });
    expect(r.code).toBe(5);
    expect(JSON.parse(r.stdout).byHand).toEqual(['kubectl uncordon node-1 && kubectl label nodes node-1 quarantine-']);
  });

  it('protected environment: a declined typed confirmation changes nothing (exit 3)', async () => {
    const kube = new FakeKube();
    const { dir } = writeConfig(twoEnvironments());
    const r = await runCli(['security', 'isolate', '--nodes', 'node-1', '-e', 'production'], {
      cwd: dir,
      clientFactories: fakeFactories(kube),
      tty: true,
      answers: ['staging', 'staging', 'staging'],
    });
    expect(r.code).toBe(3);
    expect(kube.mutations).toEqual([]);
  });
});

describe('security evidence with an in-memory cluster', () => {
  it('writes one file per container log and a manifest', async () => {
    const kube = new FakeKube(2);
    const { dir } = writeConfig(twoEnvironments());
    const parent = tempDir('security-unit-evidence-');
    const r = await runCli(['security', 'evidence', '--dir', parent, '--json'], { cwd: dir, clientFactories: fakeFactories(kube) });
    expect(r.code, r.stderr).toBe(0);
    const folder = JSON.parse(r.stdout).steps[0].data.folder as string;
    expect(readdirSync(folder).sort()).toEqual(['MANIFEST.sha256', 'app-0__api.log', 'app-1__api.log', 'events.json', 'manifest.json']);
    expect(readFileSync(join(folder, 'app-0__api.log'), 'utf8')).toBe('app-0 started\napp-0 ready\n');
  });
});

describe('security rotate-secrets config', () => {
  it('without security.rotate it is a usage error (exit 2) before anything runs', async () => {
    const { dir } = writeConfig(twoEnvironments());
    const r = await runCli(['security', 'rotate-secrets', '--yes', '--confirm', 'staging'], { cwd: dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/no security.rotate commands/);
  });
});

describe('security breach with an in-memory cluster', () => {
  it('without a notify channel it says plainly that the security team was not told', async () => {
    const kube = new FakeKube(1);
    const { dir } = writeConfig(twoEnvironments());
    const r = await runCli(['security', 'breach', '--nodes', 'node-1'], { cwd: dir, clientFactories: fakeFactories(kube) });
    expect(r.code, r.stderr).toBe(0);
    expect(kube.nodes.get('node-1')!.spec!.unschedulable).toBe(true);
    expect(r.stdout).toMatch(/security team NOT notified/);
    expect(r.stdout).toMatch(/evidence folder: /);
  });
});
