/**
 * db restart and resume against real services: the Kubernetes API server, moto (RDS), PostgreSQL
 * and a local Slack webhook. Faults are injected for real (moto instance deleted mid-run, a closed
 * PostgreSQL port, Kubernetes 500s, interrupts at each step).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { StartDBInstanceCommand, StopDBInstanceCommand } from '@aws-sdk/client-rds';
import { execa } from 'execa';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { InterruptedError } from '../../../src/core/errors.js';
import { freePort } from '../../support/services/index.js';
import { runCli, tempDir, type CliOptions } from '../../support/cli.js';
import { ScriptedPrompter } from '../../support/prompter.js';
import { startSandbox, type Sandbox } from '../../support/sandbox/index.js';
import { deleteRdsInstance, type DatabasePart } from '../../support/sandbox/database-part.js';
import type { Deployment } from '../../support/cluster/index.js';
import { databasePart, derivedConfig, journalText, tappedFactories, until } from './support.js';
import { runFile } from '../../support/journal-files.js';

// Named by what is changed (issue 13): the deployment it scales to 0 and the instance it reboots.
const LEASE = 'runbook-deployment-app';
let sb: Sandbox;
let db: DatabasePart;
const journal = tempDir('runbook-db-journal-');
const outputs: string[] = [];

async function replicas(): Promise<number> {
  return (await sb.kube.get<Deployment>('deployments', sb.namespace, 'app'))!.spec.replicas ?? -1;
}

async function setReplicas(n: number): Promise<void> {
  await sb.kube.patch('deployments', sb.namespace, 'app', { spec: { replicas: n } });
}

const lease = () => sb.kube.get('leases', sb.namespace, LEASE);

async function cli(argv: string[], extra: CliOptions = {}) {
  const r = await runCli(argv, { ...extra, env: { ...sb.env, RUNBOOK_JOURNAL_DIR: journal, ...(extra.env ?? {}) } });
  outputs.push(r.stdout, r.stderr);
  return r;
}

function interrupts(): { ctl: AbortController; hard: AbortController; opts: { signal: AbortSignal; hard: AbortSignal } } {
  const ctl = new AbortController();
  const hard = new AbortController();
  return { ctl, hard, opts: { signal: ctl.signal, hard: hard.signal } };
}

function runIdOf(stderr: string): string {
  const m = /run (\d{8}T\d{6}-[0-9a-f]{4})/.exec(stderr);
  if (!m) throw new Error(`no run id in: ${stderr}`);
  return m[1];
}

beforeAll(async () => {
  sb = await startSandbox({ parts: ['kubernetes', 'database'] });
  db = databasePart(sb);
});
afterAll(async () => {
  await sb?.stop();
});
beforeEach(async () => {
  sb.kube.faults.clear();
  db.slack.onMessage = undefined;
  await db.reseedRds();
  if ((await replicas()) !== 3) await setReplicas(3);
  await sb.kube.waitForRollout('app', { timeoutMs: 30_000 });
});

describe('db restart', () => {
  it('announces, scales to 0, reboots, waits, SELECT 1, restores the recorded count, watches the rollout, announces done', async () => {
    await setReplicas(5);
    await sb.kube.waitForRollout('app', { timeoutMs: 30_000 });
    const events: string[] = [];
    const before = db.slack.requests.length;
    const r = await cli(['db', 'restart', '--yes', '--json'], { clientFactories: tappedFactories((e) => void events.push(e)) });
    expect(r.stderr).toContain('rds prod-db');
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.steps.map((s: { id: string; status: string }) => `${s.id}:${s.status}`)).toEqual([
      // The count is read first, then the plan approved, then the maintenance announced (issue 13).
      'record:succeeded',
      'announce:succeeded',
      'scale-down:succeeded',
      'drained:succeeded',
      'reboot:succeeded',
      'wait-available:succeeded',
      'select-1:succeeded',
      'scale-back:succeeded',
      'rollout:succeeded',
      'announce-done:succeeded',
    ]);
    expect(doc.steps[0].data.replicas).toBe(5);
    // The order of the real calls: scale to 0 before the reboot, SELECT 1 before scaling back to the recorded 5.
    const order = ['kube:scaleDeployment:0', 'rds:RebootDBInstanceCommand', 'pg:connect', 'kube:scaleDeployment:5'].map((e) => events.indexOf(e));
    expect(order.every((i) => i >= 0)).toBe(true);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
    expect(await replicas()).toBe(5);
    expect(await sb.kube.rolloutComplete('app')).toBe(true);
    const texts = db.slack.requests.slice(before).map((q) => (q.json as { text: string; channel: string }).text);
    expect(texts).toHaveLength(2);
    expect(texts[0]).toMatch(/Database restart of prod-db \(sandbox\) starting/);
    expect(texts[1]).toMatch(/done; the app is back at 5 replica/);
    // The lease was taken for the run and released after it.
    expect(sb.kube.mutations().some((m) => m.method === 'POST' && m.path.endsWith('/leases'))).toBe(true);
    expect(await lease()).toBeUndefined();
  });

  it('--dry-run reads for real, previews every write (server-validated scale), changes nothing and announces nothing', async () => {
    const before = await sb.fingerprint();
    const r = await cli(['db', 'restart', '--dry-run']);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('DRY RUN');
    expect(r.stderr).toMatch(/would scale deployment\/app: 3 → 0 \(validated by the server\)/);
    expect(r.stderr).toMatch(/would reboot rds\/prod-db: available → rebooting → available/);
    expect(r.stderr).toMatch(/would scale deployment\/app: 0 \(after the scale-down\) → 3 \(recorded\)/);
    expect(r.stderr).toMatch(/would announce slack webhook \$SLACK_WEBHOOK_URL/);
    expect(await sb.fingerprint()).toEqual(before);
  });

  it('fails closed without a terminal (exit 3); protected: ONE typed confirmation up front for the whole plan, a mistyped name asked again, no gate on scaling back (issue 13)', async () => {
    const before = await sb.fingerprint();
    const r = await cli(['db', 'restart']);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/--yes/);
    expect(await sb.fingerprint()).toEqual(before);

    const sent: string[] = [];
    db.slack.onMessage = (text) => void sent.push(text);
    // Three wrong names: declined before anything, the announcement included; it says nothing changed.
    const events: string[] = [];
    const no = await cli(['db', 'restart', '--env', 'sandbox-protected'], {
      tty: true,
      answers: ['nope', 'sandbox', 'protected'],
      clientFactories: tappedFactories((e) => void events.push(e)),
    });
    expect(no.code).toBe(3);
    expect((no.prompter as ScriptedPrompter).asked).toHaveLength(3);
    expect(no.stderr).toMatch(/typed wrong 3 times/);
    expect(no.stderr).toMatch(/stopped at a gate; nothing was changed/);
    expect(events.filter((e) => /scaleDeployment:\d|RebootDBInstance/.test(e))).toEqual([]);
    expect(sent).toEqual([]);
    expect(await replicas()).toBe(3);

    // One slip, then the name: that one approval covers the scale-down, the reboot and the way back.
    const yes = await cli(['db', 'restart', '--env', 'sandbox-protected'], { tty: true, answers: ['sandbox-protectd', 'sandbox-protected'] });
    expect(yes.code, yes.stderr).toBe(0);
    const asked = (yes.prompter as ScriptedPrompter).asked;
    expect(asked).toHaveLength(2);
    expect(asked[1]).toMatch(/"sandbox-protectd" is not "sandbox-protected" \(2 tries left\)/);
    // The plan shown says what goes down, for how long, and what comes back.
    expect(yes.stderr).toMatch(/scale deployment\/app 3 → 0: the app is DOWN/);
    expect(yes.stderr).toMatch(/reboot rds\/prod-db \(usually a few minutes; waits up to \S+ for "available"/);
    expect(yes.stderr).toMatch(/without asking again: scale deployment\/app back to 3/);
    // The announcement went out only after the approval (the prompts were all answered first).
    expect(sent).toHaveLength(2);
    expect(yes.stderr.indexOf('The whole plan')).toBeLessThan(yes.stderr.indexOf('Announce the maintenance'));
    expect(await replicas()).toBe(3);
  });

  it('RDS reboot error (the instance vanished) → the recorded count is restored, exit 1', async () => {
    const r = await cli(['db', 'restart', '--yes'], {
      clientFactories: tappedFactories(async (e) => {
        if (e === 'rds:RebootDBInstanceCommand') await deleteRdsInstance(db.rds, 'prod-db');
      }),
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/RDS reboot failed: instance prod-db not found/);
    expect(r.stderr).toMatch(/undo: Scale the app to 0/);
    expect(await replicas()).toBe(3);
  });

  it.each([
    ['DATABASE_URL', /postgres\.url: environment variable DATABASE_URL is not set/],
    ['SLACK_WEBHOOK_URL', /notify\.slack\.webhook: environment variable SLACK_WEBHOOK_URL is not set/],
  ])('unset %s; runbook db restart --yes → exit 2 before the Lease, the webhook or any Kubernetes/RDS request (issue 13)', async (variable, message) => {
    for (const mode of [['--yes'], ['-n']]) {
      const events: string[] = [];
      const hooks = db.slack.requests.length;
      sb.kube.requests.length = 0;
      const r = await cli(['db', 'restart', ...mode], { env: { [variable]: undefined }, clientFactories: tappedFactories((e) => void events.push(e)) });
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stderr).not.toMatch(/resume|DRY RUN complete/);
      expect(events).toEqual([]);
      expect(sb.kube.requests).toEqual([]);
      expect(db.slack.requests.length).toBe(hooks);
      expect(await lease()).toBeUndefined();
      expect(await replicas()).toBe(3);
    }
  });

  it('an unknown RDS instance in the config fails before anything changes', async () => {
    const env = derivedConfig(sb, (e) => {
      (e.rds as Record<string, unknown>).instance = 'no-such-db';
    });
    sb.kube.requests.length = 0;
    const r = await cli(['db', 'restart', '--yes'], { env });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/RDS instance no-such-db not found/);
    expect(sb.kube.mutations().filter((m) => m.path.includes('/deployments'))).toEqual([]);
    expect(await replicas()).toBe(3);
  });

  it('PostgreSQL not answering before the timeout → the recorded count is restored, exit 1; resume after the fix completes', async () => {
    const closed = await freePort();
    const env = derivedConfig(sb, (e) => {
      const rds = e.rds as Record<string, unknown>;
      rds.url = { env: 'CLOSED_DATABASE_URL' };
      rds.connectTimeout = '1500ms';
    });
    env.CLOSED_DATABASE_URL = `postgres://postgres:${db.pg.password}@127.0.0.1:${closed}/postgres`;
    const r = await cli(['db', 'restart', '--yes'], { env });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/did not answer SELECT 1 within 1\.5s/);
    expect(await replicas()).toBe(3);

    // Resume with the working config (-c: without it, resume uses the config the run used): done
    // steps are re-checked and skipped, the undone scale-down runs again.
    const id = runIdOf(r.stderr);
    const resumed = await cli(['resume', id, '--yes', '-c', sb.configPath]);
    expect(resumed.code).toBe(0);
    expect(resumed.stderr).toMatch(/Reboot the RDS instance — done in run/);
    expect(resumed.stderr).toMatch(/\[3\/10\] Scale the app to 0/);
    expect(await replicas()).toBe(3);
  });

  it('Kubernetes 500 on the scale-back: compensation restores the recorded count (exit 1); if that fails too, exit 5 with the exact command', async () => {
    const fault = (times: number) =>
      tappedFactories((e) => {
        if (e === 'rds:RebootDBInstanceCommand') sb.kube.faults.add({ method: 'PATCH', path: /\/deployments\/app\/scale$/, times, status: 500 });
      });
    const r = await cli(['db', 'restart', '--yes'], { clientFactories: fault(1) });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/✓ undone/);
    expect(await replicas()).toBe(3);

    const p = await cli(['db', 'restart', '--yes', '--json'], { clientFactories: fault(2) });
    expect(p.code).toBe(5);
    const doc = JSON.parse(p.stdout);
    expect(doc.byHand).toEqual([`kubectl scale deployment/app --replicas=3 -n ${sb.namespace}`]);
    expect(p.stderr).toContain(`run by hand: kubectl scale deployment/app --replicas=3 -n ${sb.namespace}`);
    expect(await replicas()).toBe(0);
    // The instruction is exact: the real kubectl run with it puts the app back.
    const [file, ...args] = doc.byHand[0].split(' ');
    await execa(file, [...args, '--cache-dir', tempDir('kubectl-cache-')], { env: { ...process.env, KUBECONFIG: sb.env.KUBECONFIG } });
    expect(await replicas()).toBe(3);
  });

  const interruptAt: Array<[string, (events: string[]) => boolean]> = [
    ['announce', (ev) => ev.filter((e) => e.startsWith('slack:')).length === 1],
    ['record', (ev) => ev.includes('kube:getDeployment') && !ev.includes('kube:scaleDeployment:0')],
    ['scale-down', (ev) => ev[ev.length - 1] === 'kube:scaleDeployment:0'],
    ['drained', (ev) => ev[ev.length - 1] === 'kube:watchDeployment' && !ev.includes('rds:RebootDBInstanceCommand')],
    ['reboot', (ev) => ev[ev.length - 1] === 'rds:RebootDBInstanceCommand'],
    ['wait-available', (ev) => ev.includes('rds:RebootDBInstanceCommand') && ev[ev.length - 1] === 'rds:DescribeDBInstancesCommand'],
    ['select-1', (ev) => ev[ev.length - 1] === 'pg:connect'],
    ['scale-back', (ev) => ev[ev.length - 1] === 'kube:scaleDeployment:3'],
    ['rollout', (ev) => ev.includes('kube:scaleDeployment:3') && ev[ev.length - 1] === 'kube:watchDeployment'],
    ['announce-done', (ev) => ev.filter((e) => e.startsWith('slack:')).length === 2],
  ];

  it.each(interruptAt)('SIGINT during %s: exit 130 and the app ends at its recorded count', async (step, when) => {
    const { ctl, opts } = interrupts();
    const events: string[] = [];
    const hit = (e: string) => {
      events.push(e);
      if (!ctl.signal.aborted && when(events)) ctl.abort(new InterruptedError('SIGINT'));
    };
    db.slack.onMessage = (text) => hit(`slack:${text}`);
    const r = await cli(['db', 'restart', '--yes', '--json'], { interrupts: opts, clientFactories: tappedFactories(hit) });
    expect(ctl.signal.aborted).toBe(true);
    expect(r.code).toBe(130);
    const doc = JSON.parse(r.stdout);
    const status = Object.fromEntries(doc.steps.map((s: { id: string; status: string }) => [s.id, s.status]));
    // The interrupt lands in that step, or (for a write, which is let finish) right after it.
    const ids = doc.steps.map((s: { id: string }) => s.id);
    const at = ids.indexOf(step);
    expect(['failed', 'succeeded']).toContain(status[step]);
    for (const later of ids.slice(at + 2)) expect(status[later]).toBe('not-run');
    expect(doc.compensations.every((c: { status: string }) => c.status === 'succeeded')).toBe(true);
    expect(await replicas()).toBe(3);
    expect(await lease()).toBeUndefined();
  });

  it('a second interrupt skips compensation: exit 5 with the command; resume brings the recorded count back from the journal', async () => {
    const { ctl, hard, opts } = interrupts();
    const r = await cli(['db', 'restart', '--yes', '--json'], {
      interrupts: opts,
      clientFactories: tappedFactories((e) => {
        if (e === 'pg:connect') {
          ctl.abort(new InterruptedError('SIGINT'));
          hard.abort(new InterruptedError('SIGINT'));
        }
      }),
    });
    expect(r.code).toBe(5);
    const doc = JSON.parse(r.stdout);
    expect(doc.byHand[0]).toBe(`kubectl scale deployment/app --replicas=3 -n ${sb.namespace}`);
    // The announcement's "stopped" follow-up was skipped too, so it is listed for the operator.
    expect(doc.byHand.slice(1)).toEqual([expect.stringMatching(/^tell the people you announced to/)]);
    expect(await replicas()).toBe(0);

    // The deployment now says 0: only the journal knows the count was 3.
    const resumed = await cli(['resume', doc.runId, '--yes', '--json']);
    expect(resumed.code).toBe(0);
    const rdoc = JSON.parse(resumed.stdout);
    const byId = Object.fromEntries(rdoc.steps.map((s: { id: string; status: string; data?: unknown }) => [s.id, s]));
    expect(byId.record.status).toBe('skipped');
    expect(byId.record.data.replicas).toBe(3);
    expect(byId['scale-down'].status).toBe('skipped');
    expect(byId['select-1'].status).toBe('succeeded');
    expect(byId['scale-back'].status).toBe('succeeded');
    expect(await replicas()).toBe(3);
    const show = await cli(['show', rdoc.runId]);
    expect(show.stdout).toMatch(/scale-back: succeeded/);
  });

  /** Cuts a run's journal after the line where `step` ended: what kill -9 right after that step leaves. */
  function killedAfter(runId: string, step: string): void {
    const file = runFile(journal, runId);
    const lines = readFileSync(file, 'utf8').split('\n').filter(Boolean);
    const at = lines.findIndex((l) => JSON.parse(l).type === 'step-end' && JSON.parse(l).step === step);
    expect(at).toBeGreaterThan(0);
    writeFileSync(file, lines.slice(0, at + 1).join('\n') + '\n');
  }

  it('killed after the scale-down, someone scales the app back to 3: resume scales it down again before the reboot, never reboots under traffic (issue 13)', async () => {
    const { ctl, hard, opts } = interrupts();
    const first = await cli(['db', 'restart', '--yes', '--json'], {
      interrupts: opts,
      clientFactories: tappedFactories((e) => {
        if (e === 'kube:watchDeployment' && !ctl.signal.aborted) {
          ctl.abort(new InterruptedError('SIGINT'));
          hard.abort(new InterruptedError('SIGINT'));
        }
      }),
    });
    const runId = JSON.parse(first.stdout).runId as string;
    killedAfter(runId, 'scale-down');
    expect(await replicas()).toBe(0);
    // Someone brings the app back while the run is dead.
    await setReplicas(3);
    await sb.kube.waitForRollout('app', { timeoutMs: 30_000 });

    const atReboot: Array<{ want: number; pods: number }> = [];
    const events: string[] = [];
    const resumed = await cli(['resume', runId, '--yes', '--json'], {
      clientFactories: tappedFactories(async (e) => {
        events.push(e);
        if (e === 'rds:RebootDBInstanceCommand') {
          const d = (await sb.kube.get<Deployment>('deployments', sb.namespace, 'app'))!;
          atReboot.push({ want: d.spec.replicas ?? -1, pods: (d as { status?: { replicas?: number } }).status?.replicas ?? 0 });
        }
      }),
    });
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stderr).toMatch(
      /Scale the app to 0 \(stop traffic to the database\): done in run \S+, [\dms. ]+ ago, but deployment\/app has 3 replica\(s\), so the database has traffic again \(expected: the app is at 0 replicas\); running it again/,
    );
    const byId = Object.fromEntries(JSON.parse(resumed.stdout).steps.map((s: { id: string }) => [s.id, s]));
    expect(byId.record.status).toBe('skipped');
    expect(byId['scale-down'].status).toBe('succeeded');
    expect(byId.drained.status).toBe('succeeded');
    expect(byId.reboot.status).toBe('succeeded');
    // The reboot happened with the app at 0 and its pods gone.
    expect(atReboot).toEqual([{ want: 0, pods: 0 }]);
    expect(events.indexOf('kube:scaleDeployment:0')).toBeLessThan(events.indexOf('rds:RebootDBInstanceCommand'));
    expect(await replicas()).toBe(3);
    const notes = readFileSync(runFile(journal, JSON.parse(resumed.stdout).runId), 'utf8');
    expect(notes).toMatch(/resume: scale-down was done in run \S+, but the app is at 0 replicas no longer holds/);
  });

  it('resume --dry-run after a run whose changes were put back: the count is re-read (3, not the stale 4), the app is not taken down again for a reboot already done (issue 13)', async () => {
    await setReplicas(4);
    await sb.kube.waitForRollout('app', { timeoutMs: 30_000 });
    const closed = await freePort();
    const env = derivedConfig(sb, (e) => {
      const rds = e.rds as Record<string, unknown>;
      rds.url = { env: 'CLOSED_DATABASE_URL' };
      rds.connectTimeout = '1s';
    });
    env.CLOSED_DATABASE_URL = `postgres://postgres:${db.pg.password}@127.0.0.1:${closed}/postgres`;
    const r = await cli(['db', 'restart', '--yes'], { env });
    expect(r.code).toBe(1);
    expect(await replicas()).toBe(4);
    await setReplicas(3);
    await sb.kube.waitForRollout('app', { timeoutMs: 30_000 });

    const id = runIdOf(r.stderr);
    const before = await sb.fingerprint();
    const dry = await cli(['resume', id, '--dry-run', '--json', '-c', sb.configPath]);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stderr).not.toMatch(/4 → 0/);
    expect(dry.stderr).toMatch(
      /Record the current replicas and check the instance: done in run \S+, [\dms. ]+ ago, but deployment\/app has 3 replica\(s\) now, 4 were recorded/,
    );
    expect(dry.stderr).toMatch(/Reboot the RDS instance — done in run \S+, [\dms. ]+ ago \(re-checked\)/);
    const byId = Object.fromEntries(JSON.parse(dry.stdout).steps.map((s: { id: string }) => [s.id, s]));
    expect(byId.record.data.replicas).toBe(3);
    expect(byId['scale-down'].status).toBe('planned');
    expect(byId['scale-down'].changes ?? []).toEqual([]);
    expect(byId['scale-back'].changes[0].after).toBe('3 (recorded)');
    expect(await sb.fingerprint()).toEqual(before);
  });

  it("resume stops, with the command to look, when the instance a done reboot left is not rebooting or available (a second reboot is not a resume's call)", async () => {
    const { ctl, hard, opts } = interrupts();
    const first = await cli(['db', 'restart', '--yes', '--json'], {
      interrupts: opts,
      clientFactories: tappedFactories((e) => {
        if (e === 'pg:connect' && !ctl.signal.aborted) {
          ctl.abort(new InterruptedError('SIGINT'));
          hard.abort(new InterruptedError('SIGINT'));
        }
      }),
    });
    const runId = JSON.parse(first.stdout).runId as string;
    killedAfter(runId, 'reboot');
    await db.rds.send(new StopDBInstanceCommand({ DBInstanceIdentifier: 'prod-db' }));
    const events: string[] = [];
    const resumed = await cli(['resume', runId, '--yes'], { clientFactories: tappedFactories((e) => void events.push(e)) });
    await db.rds.send(new StartDBInstanceCommand({ DBInstanceIdentifier: 'prod-db' }));
    expect(resumed.code).toBe(1);
    expect(resumed.stderr).toMatch(
      /resume stopped before "Reboot the RDS instance": it was done in run \S+, [\dms. ]+ ago, but the instance is rebooting or available again no longer holds \(rds\/prod-db is "stopped"\), and running it again is not safe/,
    );
    expect(resumed.stderr).toMatch(/aws rds describe-db-instances --db-instance-identifier prod-db/);
    expect(events).not.toContain('rds:RebootDBInstanceCommand');
    // The app is put back to the recorded count on the way out.
    expect(await replicas()).toBe(3);
  });

  it("two concurrent runs: the second exits 6 naming the holder, run id and since when; a crashed run's lease expires", async () => {
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    db.slack.onMessage = () => held;
    const first = cli(['db', 'restart', '--yes']);
    await until('the lease', async () => (await lease()) !== undefined, 30_000);
    const second = await cli(['db', 'restart', '--yes']);
    // Another procedure changing the same deployment is refused too (issue 13: locks per target).
    const scale = await cli(['app', 'scale', '--replicas', '5', '--yes']);
    expect(await sb.kube.get('leases', sb.namespace, 'runbook-rds-prod-db')).toBeDefined();
    release();
    expect(second.code).toBe(6);
    expect(second.stderr).toMatch(/runbook-(deployment-app|rds-[a-z0-9-]+) is held by tester@test run \d{8}T\d{6}-[0-9a-f]{4} since \d{4}-\d\d-\d\dT/);
    expect(scale.code, scale.stderr).toBe(6);
    expect(scale.stderr).toMatch(/runbook-deployment-app is held by tester@test run \d{8}T\d{6}-[0-9a-f]{4} since \d{4}-\d\d-\d\dT/);
    const a = await first;
    expect(a.code).toBe(0);
    expect(await replicas()).not.toBe(5);

    // A Lease's times are MicroTime on the wire: exactly six fractional digits.
    const old = new Date(Date.now() - 10 * 60_000).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
    await sb.kube.put({
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name: LEASE, namespace: sb.namespace },
      spec: { holderIdentity: 'crashed@laptop run 20200101T000000-dead', leaseDurationSeconds: 60, acquireTime: old, renewTime: old },
    } as never);
    const after = await cli(['db', 'restart', '--yes']);
    expect(after.code).toBe(0);
    // The expired lease was deleted when found and ours released: nothing is left behind.
    expect(await sb.kube.list('leases', { namespace: sb.namespace })).toEqual([]);
  });

  it('no password from a URL appears in any output or journal line', () => {
    const everything = outputs.join('\n') + journalText(journal);
    expect(everything.length).toBeGreaterThan(1000);
    expect(everything).not.toContain(db.pg.password);
    expect(everything).not.toContain('sandbox-master-pw');
  });
});
