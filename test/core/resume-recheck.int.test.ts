/**
 * Resume after kill -9 re-checks the world (issue 13, item 3; the fault suite's (c) beyond db restart):
 * a run is stopped right after a changing step, with no compensation (a second interrupt, as kill -9
 * leaves it) and its journal cut after that step; the world is changed behind its back; `resume` then
 * runs the step again, or stops, but never skips a step whose postcondition no longer holds. Against
 * the real services: the Kubernetes API server, the status page, moto (Route 53, ECS).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { parse } from 'yaml';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { InterruptedError } from '../../src/core/errors.js';
import { runFile as journalRunFile } from '../../src/core/journal.js';
import { runCli, tempDir, type CliOptions } from '../support/cli.js';
import { startSandbox, type Sandbox } from '../support/sandbox/index.js';
import { DR, batchTo, drState } from '../support/sandbox/dr-part.js';
import { freePort, type MotoService } from '../support/services/index.js';
import type { Deployment, NodeObject } from '../support/cluster/index.js';
import { derivedConfig, tappedFactories } from '../procedures/db/support.js';

let sb: Sandbox;
let journal: string;

beforeAll(async () => {
  sb = await startSandbox({ parts: ['kubernetes', 'incident', 'dr'] });
}, 180_000);
afterAll(async () => {
  await sb?.stop();
});
beforeEach(async () => {
  journal = tempDir('runbook-resume-journal-');
  sb.kube.faults.clear();
  if ((await replicas()) !== 3) await setReplicas(3);
  await sb.kube.waitForRollout('app', { timeoutMs: 30_000 });
});

async function cli(argv: string[], extra: CliOptions = {}) {
  return runCli(argv, { ...extra, env: { ...sb.env, RUNBOOK_JOURNAL_DIR: journal, ...(extra.env ?? {}) } });
}

async function deployment(): Promise<Deployment> {
  return (await sb.kube.get<Deployment>('deployments', sb.namespace, 'app'))!;
}

async function replicas(): Promise<number> {
  return (await deployment()).spec.replicas ?? -1;
}

async function setReplicas(n: number): Promise<void> {
  await sb.kube.patch('deployments', sb.namespace, 'app', { spec: { replicas: n } });
}

async function envVar(name: string): Promise<string | undefined> {
  return (await deployment()).spec.template.spec.containers[0]!.env?.find((e) => e.name === name)?.value;
}

/** Someone else's `kubectl set env` (a strategic merge on the container's env). */
async function setEnvBehindItsBack(vars: Record<string, string>): Promise<void> {
  // A merge patch replaces the list: the containers are sent whole, with the variables changed.
  const containers = (await deployment()).spec.template.spec.containers.map((c, i) =>
    i === 0 ? { ...c, env: [...(c.env ?? []).filter((e) => !(e.name in vars)), ...Object.entries(vars).map(([name, value]) => ({ name, value }))] } : c,
  );
  await sb.kube.patch('deployments', sb.namespace, 'app', { spec: { template: { spec: { containers } } } });
}

/**
 * Runs `argv` and stops it hard (no compensation, as kill -9) at the first client event `at` accepts
 * once `after` has been seen; returns the run id.
 */
async function killedAt(argv: string[], after: string, at: (event: string) => boolean, extra: CliOptions = {}): Promise<{ runId: string; events: string[] }> {
  const ctl = new AbortController();
  const hard = new AbortController();
  const events: string[] = [];
  const r = await cli([...argv, '--json'], {
    ...extra,
    interrupts: { signal: ctl.signal, hard: hard.signal },
    clientFactories: tappedFactories((e) => {
      events.push(e);
      if (!ctl.signal.aborted && events.includes(after) && e !== after && at(e)) {
        ctl.abort(new InterruptedError('SIGINT'));
        hard.abort(new InterruptedError('SIGINT'));
      }
    }),
  });
  expect(ctl.signal.aborted, `never stopped: ${r.stderr}`).toBe(true);
  return { runId: JSON.parse(r.stdout).runId as string, events };
}

function runFile(runId: string): string {
  return journalRunFile(journal, runId);
}

function journalLines(runId: string): Array<Record<string, unknown>> {
  return readFileSync(runFile(runId), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** Cuts a run's journal after the line where `step` ended: what kill -9 right after that step leaves. */
function killedAfter(runId: string, step: string): void {
  const lines = readFileSync(runFile(runId), 'utf8').split('\n').filter(Boolean);
  const at = lines.findIndex((l) => JSON.parse(l).type === 'step-end' && JSON.parse(l).step === step);
  expect(at, `no step-end of ${step} in run ${runId}`).toBeGreaterThan(0);
  writeFileSync(runFile(runId), lines.slice(0, at + 1).join('\n') + '\n');
}

function statuses(stdout: string): Record<string, string> {
  return Object.fromEntries(JSON.parse(stdout).steps.map((s: { id: string; status: string }) => [s.id, s.status]));
}

const scaled = (events: string[]) => events.filter((e) => /^kube:scaleDeployment:\d+$/.test(e));

describe('resume after kill -9 re-checks what the journal says is done', () => {
  it('app scale: killed after the scale, someone scales to 2 → resume re-reads the count, scales to 5 again, waits for the rollout', async () => {
    const { runId } = await killedAt(['app', 'scale', '--replicas', '5', '--yes'], 'kube:scaleDeployment:5', (e) => e === 'kube:watchDeployment');
    killedAfter(runId, 'scale');
    expect(await replicas()).toBe(5);
    await setReplicas(2);

    const events: string[] = [];
    const resumed = await cli(['resume', runId, '--yes', '--json'], { clientFactories: tappedFactories((e) => void events.push(e)) });
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stderr).toMatch(
      /Record the current replica count: done in run \S+, [\dms. ]+ ago, but deployment\/app has 2 replica\(s\) now, 3 were recorded .*; running it again/,
    );
    expect(resumed.stderr).toMatch(/Scale the deployment: done in run \S+, [\dms. ]+ ago, but deployment\/app has 2 replica\(s\), not 5 .*; running it again/);
    expect(statuses(resumed.stdout)).toEqual({ current: 'succeeded', scale: 'succeeded', rollout: 'succeeded' });
    // The count to put back on failure is the one there now, not the stale 3.
    expect(JSON.parse(resumed.stdout).steps[1].data).toEqual({ from: 2, to: 5 });
    expect(scaled(events)).toEqual(['kube:scaleDeployment:5']);
    expect(await replicas()).toBe(5);
    expect(await sb.kube.rolloutComplete('app')).toBe(true);
  });

  it('app scale: when the world still matches, resume skips the done steps (re-checked) and changes nothing again', async () => {
    const { runId } = await killedAt(['app', 'scale', '--replicas', '4', '--yes'], 'kube:scaleDeployment:4', (e) => e === 'kube:watchDeployment');
    killedAfter(runId, 'scale');
    const events: string[] = [];
    const resumed = await cli(['resume', runId, '--yes', '--json'], { clientFactories: tappedFactories((e) => void events.push(e)) });
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stderr).toMatch(/Scale the deployment — done in run \S+, [\dms. ]+ ago \(re-checked\)/);
    expect(statuses(resumed.stdout)).toEqual({ current: 'skipped', scale: 'skipped', rollout: 'succeeded' });
    expect(scaled(events)).toEqual([]);
    expect(await replicas()).toBe(4);
  });

  it('a run resumed twice (killed again after the first resume) skips what the first run did, keeps when it was done, and finishes', async () => {
    const first = await killedAt(['app', 'scale', '--replicas', '4', '--yes'], 'kube:scaleDeployment:4', (e) => e === 'kube:watchDeployment');
    killedAfter(first.runId, 'scale');
    const doneAt = journalLines(first.runId).find((l) => l.type === 'step-end' && l.step === 'scale')!.t as string;

    // The first resume is killed too, in the rollout: its journal carries the steps of the first run.
    const second = await killedAt(['resume', first.runId, '--yes'], 'kube:getDeployment', (e) => e === 'kube:watchDeployment');
    expect(scaled(second.events)).toEqual([]);
    killedAfter(second.runId, 'scale');
    const carried = journalLines(second.runId).find((l) => l.type === 'step-end' && l.step === 'scale')!;
    expect(carried).toMatchObject({ status: 'succeeded', carriedFrom: first.runId, doneAt });

    const events: string[] = [];
    const third = await cli(['resume', second.runId, '--yes', '--json'], { clientFactories: tappedFactories((e) => void events.push(e)) });
    expect(third.code, third.stderr).toBe(0);
    expect(statuses(third.stdout)).toEqual({ current: 'skipped', scale: 'skipped', rollout: 'succeeded' });
    expect(third.stderr).toMatch(new RegExp(`Scale the deployment — done in run ${second.runId}, [\\dms. ]+ ago \\(re-checked\\)`));
    expect(scaled(events)).toEqual([]);
    // Still the time the first run really did it, two resumes later.
    const again = journalLines(JSON.parse(third.stdout).runId).find((l) => l.type === 'step-end' && l.step === 'scale')!;
    expect(again).toMatchObject({ carriedFrom: second.runId, doneAt });
    expect(JSON.parse(third.stdout).steps[1].data).toEqual({ from: 3, to: 4 });
    expect(await replicas()).toBe(4);
    expect(await sb.kube.rolloutComplete('app')).toBe(true);
  });

  it('app env set: killed after the change, someone sets the variable back → resume re-reads the environment and sets it again', async () => {
    const { runId } = await killedAt(['app', 'env', 'set', 'RATE_LIMIT=100', '--yes'], 'kube:patchDeployment', (e) => e === 'kube:watchDeployment');
    killedAfter(runId, 'apply');
    expect(await envVar('RATE_LIMIT')).toBe('100');
    await setEnvBehindItsBack({ RATE_LIMIT: '7' });
    await sb.kube.waitForRollout('app', { timeoutMs: 30_000 });

    const resumed = await cli(['resume', runId, '--yes', '--json']);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stderr).toMatch(
      /Set the environment variables: done in run \S+, [\dms. ]+ ago, but in container \S+, RATE_LIMIT is "7", not "100" \(expected: the variables are set \(or removed\) as asked\); running it again/,
    );
    expect(statuses(resumed.stdout)).toEqual({ current: 'succeeded', apply: 'succeeded', rollout: 'succeeded' });
    // What a failed rollout puts back is what was there now (7), not what the first run read.
    const previous = JSON.parse(resumed.stdout).steps[1].data.previous as Array<{ name: string; value?: string }>;
    expect(previous.find((e) => e.name === 'RATE_LIMIT')?.value).toBe('7');
    expect(await envVar('RATE_LIMIT')).toBe('100');
    expect(await sb.kube.rolloutComplete('app')).toBe(true);
    // Tidy: the variable is not left for the next test.
    expect((await cli(['app', 'env', 'unset', 'RATE_LIMIT', '--yes'])).code).toBe(0);
  });

  it('app rollback: killed after the rollback, someone changes the template again → resume stops rather than roll back over it, with the command to look', async () => {
    expect((await cli(['app', 'env', 'set', 'RELEASE=2', '--yes'])).code).toBe(0);
    try {
      const first = await cli(['app', 'rollback', '--yes', '--json']);
      expect(first.code, first.stderr).toBe(0);
      const runId = JSON.parse(first.stdout).runId as string;
      killedAfter(runId, 'rollback');
      expect(await envVar('RELEASE')).toBeUndefined();
      // Untouched, the rollback re-checks as done (the template is revision 1's again).
      const dry = await cli(['resume', runId, '--dry-run']);
      expect(dry.code, dry.stderr).toBe(0);
      expect(dry.stderr).toMatch(/Roll back the pod template — done in run \S+, [\dms. ]+ ago \(re-checked\)/);
      // Someone ships again while the run is dead.
      expect((await cli(['app', 'env', 'set', 'RELEASE=3', '--yes'])).code).toBe(0);

      const events: string[] = [];
      const resumed = await cli(['resume', runId, '--yes'], { clientFactories: tappedFactories((e) => void events.push(e)) });
      expect(resumed.code, resumed.stderr).toBe(1);
      expect(resumed.stderr).toMatch(
        /resume stopped before "Roll back the pod template": it was done in run \S+, [\dms. ]+ ago, but the deployment runs the template rolled back to no longer holds \(the pod template of deployment\/app .* is not that of revision \d+ .*\), and running it again is not safe/,
      );
      expect(resumed.stderr).toMatch(/kubectl rollout history deployment\/app -n \S+/);
      expect(events.filter((e) => e === 'kube:patchDeployment')).toEqual([]);
      expect(await envVar('RELEASE')).toBe('3');
    } finally {
      await sb.kube.waitForRollout('app', { timeoutMs: 30_000 });
      expect((await cli(['app', 'env', 'unset', 'RELEASE', '--yes'])).code).toBe(0);
    }
  });

  it('outage recover: killed after the staged scale-up, someone scales the app down to 1 → resume re-reads the count and scales up again, never down', async () => {
    expect((await cli(['outage', 'start', '--yes'])).code).toBe(0);
    await setReplicas(0);
    await sb.kube.waitForRollout('app', { timeoutMs: 30_000 });
    const { runId } = await killedAt(
      ['outage', 'recover', '--steps', '1,2,4', '--interval', '5s', '--yes'],
      'kube:scaleDeployment:4',
      (e) => e === 'kube:getDeployment',
    );
    killedAfter(runId, 'scale');
    expect(await replicas()).toBe(4);
    expect(await envVar('MAINTENANCE_MODE')).toBe('true');
    await setReplicas(1);
    await sb.kube.waitForRollout('app', { timeoutMs: 30_000 });

    const events: string[] = [];
    const resumed = await cli(['resume', runId, '--yes', '--json'], { clientFactories: tappedFactories((e) => void events.push(e)) });
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stderr).toMatch(
      /Record the current replica count: done in run \S+, [\dms. ]+ ago, but deployment\/app has 1 replica\(s\) now, 0 were recorded/,
    );
    expect(resumed.stderr).toMatch(
      /Scale up in stages, checking health between: done in run \S+, [\dms. ]+ ago, but deployment\/app has 1 replica\(s\), 4 were reached .*; running it again/,
    );
    const s = statuses(resumed.stdout);
    expect([s.outage, s.replicas, s.scale, s.apply, s.rollout]).toEqual(['skipped', 'succeeded', 'succeeded', 'succeeded', 'succeeded']);
    // From the 1 there now: 2 → 4, never back to 1 or below.
    expect(scaled(events)).toEqual(['kube:scaleDeployment:2', 'kube:scaleDeployment:4']);
    expect(await replicas()).toBe(4);
    expect(await envVar('MAINTENANCE_MODE')).toBeUndefined();
    await setReplicas(3);
  });
});

describe('security isolate: resume after kill -9', () => {
  type NodeObj = NodeObject & { spec?: { unschedulable?: boolean } };
  const node = async (name: string) => (await sb.kube.get<NodeObj>('nodes', undefined, name))!;
  const release = (name: string) =>
    sb.kube.patch('nodes', undefined, name, { spec: { unschedulable: null }, metadata: { labels: { quarantine: null } } }, 'merge');

  it('killed before the run ended, someone uncordons a node → resume cordons it again, keeping what the nodes were before the run', async () => {
    const [n1, n2] = sb.kube.nodes as [string, string];
    const first = await cli(['security', 'isolate', '--nodes', `${n1},${n2}`, '--yes', '--json']);
    expect(first.code, first.stderr).toBe(0);
    const runId = JSON.parse(first.stdout).runId as string;
    killedAfter(runId, 'isolate');
    // Someone uncordons node 2 while the run is dead (the label stays).
    await sb.kube.patch('nodes', undefined, n2, { spec: { unschedulable: null } }, 'merge');

    const resumed = await cli(['resume', runId, '--yes', '--json']);
    try {
      expect(resumed.code, resumed.stderr).toBe(0);
      expect(resumed.stderr).toMatch(
        new RegExp(
          `Cordon the nodes and label them quarantine=true: done in run \\S+, [\\dms. ]+ ago, but node/${n2} is schedulable, quarantine=true .*; running it again`,
        ),
      );
      expect(statuses(resumed.stdout)).toEqual({ nodes: 'skipped', isolate: 'succeeded' });
      for (const n of [n1, n2]) expect(await node(n)).toMatchObject({ metadata: { labels: { quarantine: 'true' } }, spec: { unschedulable: true } });
      // What a failure would put back is what the nodes were before the first run: neither cordoned nor labelled.
      const changed = JSON.parse(resumed.stdout).steps[1].data.nodes as Array<{ name: string; cordoned: boolean; labelled: boolean }>;
      expect(changed.map((c) => [c.name, c.cordoned, c.labelled])).toEqual([
        [n1, true, true],
        [n2, true, true],
      ]);
    } finally {
      await release(n1);
      await release(n2);
    }
  });
});

describe('dr failover: resume after kill -9', () => {
  let moto: MotoService;
  let zoneId: string;
  let endpoint: string;

  async function aws() {
    const r53m = await import('@aws-sdk/client-route-53');
    const ecsm = await import('@aws-sdk/client-ecs');
    const cfg = (region: string) => ({ region, endpoint, credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' } });
    return {
      async pointAt(ip: string) {
        const r53 = new r53m.Route53Client(cfg('us-east-1'));
        await r53.send(new r53m.ChangeResourceRecordSetsCommand({ HostedZoneId: zoneId, ChangeBatch: batchTo(ip) as never }));
        r53.destroy();
      },
      async desired(side: { region: string; cluster: string; service: string }, n: number) {
        const ecs = new ecsm.ECSClient(cfg(side.region));
        await ecs.send(new ecsm.UpdateServiceCommand({ cluster: side.cluster, service: side.service, desiredCount: n }));
        ecs.destroy();
      },
    };
  }

  /** The sandbox config with the DR health URL on a closed port: the health step fails (exit 4), nothing is undone. */
  async function unhealthyDr(): Promise<Record<string, string>> {
    const closed = await freePort();
    return derivedConfig(sb, (e) => {
      const dr = e.dr as { dr: { health: Record<string, unknown> } };
      dr.dr.health = { ...dr.dr.health, url: `http://127.0.0.1:${closed}/health`, attempts: 1 };
    });
  }

  /** A failover that stopped after `step` (its journal cut there), with DNS at DR and DR scaled up. */
  async function failoverKilledAfter(step: 'dns' | 'scale'): Promise<string> {
    const r = await cli(['dr', 'failover', '--yes', '--confirm', 'sandbox', '--json'], { env: await unhealthyDr() });
    expect(r.code, r.stderr).toBe(4);
    const runId = JSON.parse(r.stdout).runId as string;
    killedAfter(runId, step);
    expect(await drState(moto, zoneId)).toMatchObject({ records: [`${DR.record} A 60 ${DR.drIp}`], primary: 4, dr: 10 });
    return runId;
  }

  beforeAll(() => {
    const cfg = parse(readFileSync(sb.configPath, 'utf8'));
    endpoint = cfg.environments.sandbox.aws.endpoint as string;
    zoneId = cfg.environments.sandbox.dr.route53.hostedZoneId as string;
    moto = { endpoint } as MotoService;
  });
  beforeEach(async () => {
    const a = await aws();
    await a.pointAt(DR.primaryIp);
    await a.desired(DR.primary, 4);
    await a.desired(DR.dr, 0);
  });

  it('killed after the DNS change, someone points DNS back at the primary → resume stops before moving users again, with the command to look', async () => {
    const runId = await failoverKilledAfter('dns');
    await (await aws()).pointAt(DR.primaryIp);

    const resumed = await cli(['resume', runId, '--yes', '--confirm', 'sandbox', '-c', sb.configPath]);
    expect(resumed.code, resumed.stderr).toBe(1);
    expect(resumed.stderr).toMatch(
      /resume stopped before "Point DNS at the DR region \(Route 53\)": it was done in run \S+, [\dms. ]+ ago, but every record of the failover change batch is as the batch wants \(DNS points at DR\) no longer holds \(api\.example\.com\. A is .*10\.0\.0\.10.*\), and running it again is not safe/,
    );
    expect(resumed.stderr).toMatch(/aws route53 list-resource-record-sets --hosted-zone-id \S+/);
    // DNS stays where someone put it; nothing was stopped.
    expect(await drState(moto, zoneId)).toMatchObject({ records: [`${DR.record} A 60 ${DR.primaryIp}`], primary: 4 });
  });

  it('killed after the DR scale-up, someone scales DR back to 0 → resume scales it up again before the health check and the stop', async () => {
    const runId = await failoverKilledAfter('scale');
    await (await aws()).desired(DR.dr, 0);

    const resumed = await cli(['resume', runId, '--yes', '--confirm', 'sandbox', '--json', '-c', sb.configPath]);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stderr).toMatch(/Point DNS at the DR region \(Route 53\) — done in run \S+, [\dms. ]+ ago \(re-checked\)/);
    expect(resumed.stderr).toMatch(
      /Scale the DR ECS service up: done in run \S+, [\dms. ]+ ago, but ecs us-west-2 dr-cluster\/app wants 0, not 10 .*; running it again/,
    );
    expect(statuses(resumed.stdout)).toEqual({
      inspect: 'skipped',
      dns: 'skipped',
      sync: 'skipped',
      scale: 'succeeded',
      health: 'succeeded',
      stop: 'succeeded',
    });
    expect(await drState(moto, zoneId)).toEqual({ records: [`${DR.record} A 60 ${DR.drIp}`], primary: 0, dr: 10 });
  });
});
