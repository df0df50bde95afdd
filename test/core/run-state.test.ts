// Issue 13 item 10: `runbook show` on a run with no end record (killed, crashed) says what state it
// left — steps done, the one in progress, compensations that did or did not run — and what to do next.
import { describe, expect, it } from 'vitest';
import { Journal, type JournalEventType } from '../../src/core/journal.js';
import { Redactor } from '../../src/core/redact.js';
import { runCli, tempDir } from '../support/cli.js';

type Ev = [JournalEventType, Record<string, unknown>];
const ID = '20260101T000000-abcd';

function journalWith(events: Ev[], runId = ID): string {
  const dir = tempDir('runbook-show-');
  let n = 0;
  const j = new Journal(dir, runId, new Redactor(), () => new Date(Date.UTC(2026, 0, 1, 0, 0, n++)));
  for (const [type, fields] of events) j.append(type, fields);
  j.close();
  return dir;
}

const start = (extra: Record<string, unknown> = {}): Ev => [
  'run-start',
  { runId: ID, procedure: 'db restart', environment: 'default', params: {}, operator: 'tester@test', dryRun: 'off', ...extra },
];
const DOWN = 'Scale the app to 0 (stop traffic to the database)';
const begun: Ev[] = [
  start(),
  ['lock', { lease: 'runbook-deployment-app', namespace: 'default' }],
  ['step-start', { step: 'record', title: 'Record the current replicas and check the instance', risk: 'read' }],
  ['step-end', { step: 'record', status: 'succeeded', data: { replicas: 3 } }],
  ['step-start', { step: 'announce', title: 'Announce the maintenance', risk: 'write' }],
  ['step-end', { step: 'announce', status: 'succeeded', data: { sent: ['slack'] } }],
  ['step-start', { step: 'scale-down', title: DOWN, risk: 'write' }],
  ['step-end', { step: 'scale-down', status: 'succeeded', data: { from: 3 }, changes: [{ action: 'scale', target: 'deployment/app' }] }],
];

async function show(dir: string, json = false) {
  return runCli(['show', ID, ...(json ? ['--json'] : [])], { env: { RUNBOOK_JOURNAL_DIR: dir } });
}

describe('show on an incomplete run', () => {
  it('killed mid-step: the steps done, the one in progress, no compensation ran, the lease, and resume as the next step', async () => {
    const dir = journalWith([...begun, ['step-start', { step: 'reboot', title: 'Reboot the RDS instance', risk: 'destructive' }]]);
    const r = await show(dir);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/status incomplete/);
    expect(r.stdout).toMatch(/never finished/);
    expect(r.stdout).toContain(`done:         ${DOWN} (its change stands)`);
    expect(r.stdout).toMatch(/done: +Record the current replicas and check the instance\n/);
    expect(r.stdout).toMatch(/in progress: +Reboot the RDS instance \(started 2026-01-01T00:00:08\.000Z, never recorded as finished/);
    expect(r.stdout).toMatch(
      /undo: +none ran \(the run stopped before putting anything back\): Scale the app to 0 \(stop traffic to the database\); Announce the maintenance/,
    );
    expect(r.stdout).toMatch(/lock: +lease runbook-deployment-app \(namespace default\) may still be held/);
    expect(r.stdout).toContain(`Next: runbook resume ${ID}`);
  });

  it('killed while putting back: which compensations ran, which failed (with the by-hand command), which never ran', async () => {
    const dir = journalWith([
      ...begun,
      ['step-start', { step: 'drained', title: 'Wait for the app pods to stop', risk: 'read' }],
      ['step-end', { step: 'drained', status: 'failed', error: 'timed out' }],
      ['compensation', { step: 'scale-down', status: 'failed', error: 'connection refused', byHand: 'kubectl scale deployment/app --replicas=3 -n default' }],
    ]);
    const r = await show(dir);
    expect(r.code).toBe(0);
    expect(r.stdout).not.toMatch(/in progress:/);
    expect(r.stdout).toContain(`undo:         ${DOWN} — could not be put back (connection refused)`);
    expect(r.stdout).toContain('undo:         Announce the maintenance — not put back: the process stopped before it got there');
    expect(r.stdout).toContain(`Next: runbook resume ${ID}`);
    expect(r.stdout).toMatch(/or by hand:\n +kubectl scale deployment\/app --replicas=3 -n default/);
  });

  it('a compensation that succeeded is shown as put back, and its step no longer as done', async () => {
    const dir = journalWith([
      ...begun,
      ['step-start', { step: 'drained', title: 'Wait for the app pods to stop', risk: 'read' }],
      ['step-end', { step: 'drained', status: 'failed', error: 'timed out' }],
      ['compensation', { step: 'scale-down', status: 'succeeded' }],
    ]);
    const r = await show(dir);
    expect(r.stdout).toContain(`undo:         ${DOWN} — put back`);
    expect(r.stdout).not.toContain(`done:         ${DOWN}`);
    const j = JSON.parse((await show(dir, true)).stdout);
    expect(j.status).toBe('incomplete');
    expect(j.left.compensations).toEqual([
      { step: 'scale-down', title: DOWN, status: 'succeeded' },
      { step: 'announce', title: 'Announce the maintenance', status: 'not run' },
    ]);
    expect(j.left.resumeBlocker).toBeNull();
  });

  it('when resume cannot finish it (secret values were given), says so and gives the recorded by-hand commands', async () => {
    const dir = journalWith([
      start({ procedure: 'app env set', params: { vars: ['DB_PASSWORD=****'] } }),
      ['step-start', { step: 'set', title: 'Set the variables', risk: 'write' }],
      ['step-end', { step: 'set', status: 'succeeded', changes: [{ action: 'set', target: 'deployment/app' }] }],
      ['step-start', { step: 'rollout', title: 'Wait for the rollout', risk: 'read' }],
      ['step-end', { step: 'rollout', status: 'failed', error: 'stalled' }],
      ['compensation', { step: 'set', status: 'failed', error: 'forbidden', byHand: 'kubectl rollout undo deployment/app -n default' }],
    ]);
    const r = await show(dir);
    expect(r.stdout).toMatch(/Next: this run cannot be resumed: run .* was given secret values/);
    expect(r.stdout).not.toContain('runbook resume');
    expect(r.stdout).toMatch(/by hand:\n +kubectl rollout undo deployment\/app -n default/);
  });

  it('an incomplete dry run changed nothing', async () => {
    const dir = journalWith([
      start({ dryRun: 'plan' }),
      ['step-start', { step: 'record', title: 'Record the current replicas and check the instance', risk: 'read' }],
    ]);
    const r = await show(dir);
    expect(r.stdout).toMatch(/a dry run: nothing was changed/);
    expect(r.stdout).toMatch(/Next: run the command again/);
  });

  it('a resumed run killed again: the steps it carried over from the run it resumed are done, their changes standing', async () => {
    const dir = journalWith([
      start({ resumedFrom: '20251231T000000-abcd' }),
      [
        'step-end',
        { step: 'record', status: 'succeeded', durationMs: 0, data: { replicas: 3 }, carriedFrom: '20251231T000000-abcd', doneAt: '2025-12-31T00:00:01.000Z' },
      ],
      [
        'step-end',
        { step: 'scale-down', status: 'succeeded', durationMs: 0, data: { from: 3 }, carriedFrom: '20251231T000000-abcd', doneAt: '2025-12-31T00:00:02.000Z' },
      ],
      ['step-start', { step: 'reboot', title: 'Reboot the RDS instance', risk: 'destructive' }],
    ]);
    const r = await show(dir);
    expect(r.stdout).toContain(`done:         ${DOWN} (its change stands)`);
    expect(r.stdout).toMatch(/done: +Record the current replicas and check the instance\n/);
    expect(r.stdout).toMatch(/in progress: +Reboot the RDS instance/);
  });

  it('a run that finished gets no such section', async () => {
    const dir = journalWith([...begun, ['run-end', { status: 'failed', exitCode: 1, durationMs: 5 }]]);
    const r = await show(dir);
    expect(r.stdout).toMatch(/status failed, exit 1/);
    expect(r.stdout).not.toMatch(/never finished/);
    expect(JSON.parse((await show(dir, true)).stdout).left).toBeUndefined();
  });
});
