import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { runCli, tempDir } from '../../support/cli.js';
import { runFile, runIds } from '../../support/journal-files.js';
import { startSandbox, type Sandbox } from '../../support/sandbox/index.js';
import { STATUSPAGE_TOKEN } from '../../support/sandbox/incident-part.js';
import { startHttpService, type HttpService } from '../../support/services/index.js';
import type { Deployment } from '../../support/cluster/index.js';

let sb: Sandbox;

function cli(argv: string[], extra: Parameters<typeof runCli>[1] = {}) {
  return runCli(argv, { ...extra, env: { ...sb.env, ...(extra.env ?? {}) } });
}

async function deployment(): Promise<Deployment> {
  const d = await sb.kube.get<Deployment>('deployments', sb.namespace, 'app');
  if (!d) throw new Error('deployment app is gone');
  return d;
}

async function envVar(name: string): Promise<string | undefined> {
  return (await deployment()).spec.template.spec.containers[0]!.env?.find((e) => e.name === name)?.value;
}

/** The fake status page, reached through the sandbox part's fingerprint and HTTP API. */
async function incidents(): Promise<Array<{ id: string; name: string; status: string; incident_updates: Array<{ body: string }> }>> {
  const cfg = parse(readFileSync(sb.configPath, 'utf8'));
  const res = await fetch(`${cfg.environments.sandbox.statuspage.url}/incidents`, { headers: { authorization: `OAuth ${STATUSPAGE_TOKEN}` } });
  return (await res.json()) as never;
}

async function openIncidents() {
  return (await incidents()).filter((i) => i.status !== 'resolved');
}

/** A copy of the sandbox config with some environment fields replaced. */
function configWith(name: string, patch: Record<string, unknown>): string {
  const cfg = parse(readFileSync(sb.configPath, 'utf8'));
  Object.assign(cfg.environments.sandbox, patch);
  const path = join(sb.dir, `${name}.yaml`);
  writeFileSync(path, stringify(cfg));
  return path;
}

/** Writes to deployment/app itself (spec, scale) — not the controllers' status updates. */
function appWrites(): number {
  return sb.kube.mutations().filter((m) => m.path.includes('/deployments/app') && !m.path.endsWith('/status')).length;
}

async function scaleTo(n: number) {
  const r = await cli(['app', 'scale', '--replicas', String(n), '--yes']);
  expect(r.code, r.stderr).toBe(0);
}

let health: HttpService;
let healthyUpTo = Infinity;

beforeAll(async () => {
  sb = await startSandbox({ parts: ['kubernetes', 'incident'] });
  // A health URL that fails once the deployment has more replicas than the test allows.
  health = await startHttpService(async (req) =>
    req.pathname === '/health' && ((await deployment()).spec.replicas ?? 0) <= healthyUpTo
      ? { status: 200, body: { ok: true } }
      : { status: 503, body: { ok: false } },
  );
}, 60_000);
afterAll(async () => {
  await health?.stop();
  await sb?.stop();
});
beforeEach(async () => {
  sb.kube.faults.clear();
  healthyUpTo = Infinity;
  await sb.kube.waitForRollout('app', { timeoutMs: 30_000 });
});

describe('outage start / recover against the Kubernetes API server and a Statuspage API', () => {
  it('start → recover: incident opened and journaled, services and dependencies checked, maintenance on; then staged scale-up, maintenance off, the same incident resolved', async () => {
    const journal = tempDir('runbook-journal-');
    const before = (await incidents()).length;
    const r = await cli(['outage', 'start', '--title', 'Checkout down', '--json'], { env: { RUNBOOK_JOURNAL_DIR: journal } });
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout);
    const data = Object.fromEntries(doc.steps.map((s: { id: string; data: unknown }) => [s.id, s.data]));
    expect(doc.steps.map((s: { id: string; status: string }) => `${s.id}:${s.status}`)).toEqual([
      'incident:succeeded',
      'services:succeeded',
      'dependencies:succeeded',
      'current:succeeded',
      'apply:succeeded',
      'rollout:succeeded',
    ]);
    const all = await incidents();
    expect(all.length).toBe(before + 1);
    const created = all.find((i) => i.id === data.incident.id)!;
    expect(created).toMatchObject({ name: 'Checkout down', status: 'investigating' });
    expect(data.services.services).toEqual([{ service: 'api', pods: 3, ready: 3, notReady: [] }]);
    expect(data.dependencies.dependencies.map((d: { name: string; ok: boolean }) => `${d.name}:${d.ok}`)).toEqual([
      'payment-gateway:true',
      'auth-service:true',
      'cdn:true',
    ]);
    expect(await envVar('MAINTENANCE_MODE')).toBe('true');
    expect(await sb.kube.rolloutComplete('app')).toBe(true);
    // The incident id is in the journal; the token is nowhere.
    expect(runIds(journal)).toEqual([doc.runId]);
    const text = readFileSync(runFile(journal, doc.runId), 'utf8');
    expect(text).toContain(data.incident.id);
    expect(text + r.stdout + r.stderr).not.toContain(STATUSPAGE_TOKEN);

    // The outage took the app down to 0; recovery goes 1 → 2 → 4 with health checks between.
    await scaleTo(0);
    const rec = await cli(['outage', 'recover', '--steps', '1,2,4', '--interval', '5s', '--json'], { env: { RUNBOOK_JOURNAL_DIR: journal } });
    expect(rec.code, rec.stderr).toBe(0);
    const rdoc = JSON.parse(rec.stdout);
    const rdata = Object.fromEntries(rdoc.steps.map((s: { id: string; data: unknown }) => [s.id, s.data]));
    expect(rdata['find-incident']).toMatchObject({ source: 'journal', incident: { id: data.incident.id, status: 'investigating' } });
    expect(rdata.scale.stages.map((s: { replicas: number }) => s.replicas)).toEqual([1, 2, 4]);
    expect(rdata.scale.stages.every((s: { healthAttempts: number }) => s.healthAttempts >= 1)).toBe(true);
    expect((await deployment()).spec.replicas).toBe(4);
    expect(await envVar('MAINTENANCE_MODE')).toBeUndefined();
    expect(await envVar('MODE')).toBe('normal');
    expect(await sb.kube.rolloutComplete('app')).toBe(true);
    const resolved = (await incidents()).find((i) => i.id === data.incident.id)!;
    expect(resolved.status).toBe('resolved');
    // Each scale went through the scale subresource, in order.
    const scales = sb.kube
      .mutations()
      .filter((m) => m.path.endsWith('/deployments/app/scale'))
      .slice(-3);
    expect(scales.map((m) => (m.body as { spec: { replicas: number } }).spec.replicas)).toEqual([1, 2, 4]);

    // Issue 13 item 10: the completed recovery closed the outage; a second recover refuses (exit 4)
    // instead of reporting success (it used to "succeed", and would scale a healthy app up).
    const seen = appWrites();
    const again = await cli(['outage', 'recover', '--json'], { env: { RUNBOOK_JOURNAL_DIR: journal } });
    expect(again.code, again.stderr).toBe(4);
    expect(again.stderr).toMatch(/no open outage in sandbox/);
    expect(appWrites()).toBe(seen);
    expect((await deployment()).spec.replicas).toBe(4);
  });

  it('--dry-run changes nothing (no incident, no patch persisted); declined gate and missing --yes exit 3 with no change', async () => {
    const before = await sb.fingerprint();
    const count = (await incidents()).length;
    const r = await cli(['outage', 'start', '--dry-run']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/DRY RUN/);
    expect(r.stderr).toMatch(/would open incident on status page/);
    expect(r.stderr).toMatch(/MAINTENANCE_MODE/);
    expect(await sb.fingerprint()).toEqual(before);
    expect((await incidents()).length).toBe(count);

    // No outage open: a dry run of recover says it would refuse (exit 4), and plans nothing.
    const rec = await cli(['outage', 'recover', '--dry-run', '--steps', '5,6']);
    expect(rec.code, rec.stderr).toBe(4);
    expect(rec.stderr).toMatch(/no open outage in sandbox/);
    expect(rec.stderr).not.toMatch(/5 → 6/);
    expect(await sb.fingerprint()).toEqual(before);

    const closed = await cli(['outage', 'start', '--env', 'sandbox-protected']);
    expect(closed.code).toBe(3);
    expect(closed.stderr).toMatch(/--yes/);
    const declined = await cli(['outage', 'start', '--env', 'sandbox-protected'], { tty: true, answers: [false] });
    expect(declined.code, declined.stderr).toBe(3);
    expect(await sb.fingerprint()).toEqual(before);
    expect((await incidents()).length).toBe(count);
  });

  it('start: when maintenance mode cannot be set, the incident is resolved as opened in error (exit 1)', async () => {
    const before = await sb.fingerprint();
    const count = (await incidents()).length;
    // The real server refuses every change to the deployment (an admission policy), dry runs included.
    const allow = await sb.kube.denyWrites({
      resources: ['deployments'],
      apiGroups: ['apps'],
      operations: ['UPDATE'],
      message: 'deployments are frozen for the audit',
    });
    let r;
    try {
      r = await cli(['outage', 'start', '--json']);
    } finally {
      await allow();
    }
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/deployments are frozen for the audit/);
    const doc = JSON.parse(r.stdout);
    expect(doc.compensations).toEqual([{ step: 'incident', status: 'succeeded' }]);
    const all = await incidents();
    expect(all.length).toBe(count + 1);
    const last = all[all.length - 1];
    expect(last.status).toBe('resolved');
    expect(last.incident_updates[0].body).toMatch(/Opened in error/);
    expect(await sb.fingerprint()).toEqual(before);
  });

  it('start: a status page that refuses the token fails first, with a hint, and changes nothing', async () => {
    const before = await sb.fingerprint();
    const r = await cli(['outage', 'start'], { env: { STATUSPAGE_TOKEN: 'wrong-token' } });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/status page POST \/incidents: HTTP 401/);
    expect(r.stderr).toMatch(/statuspage\.token/);
    expect(r.stderr).not.toContain('wrong-token');
    expect(await sb.fingerprint()).toEqual(before);
  });

  it('recover: a stage that is not healthy stops the run at the count reached, maintenance stays on, the incident stays open, exit 1 with what to do', async () => {
    const journal = tempDir('runbook-journal-');
    const start = await cli(['outage', 'start', '--json'], { env: { RUNBOOK_JOURNAL_DIR: journal } });
    expect(start.code, start.stderr).toBe(0);
    const id = JSON.parse(start.stdout).steps[0].data.id;
    await scaleTo(0);
    healthyUpTo = 2;
    const path = configWith('recover-health', { health: { url: `${health.url}/health`, attempts: 3, interval: '100ms', timeout: '1s' } });
    const r = await cli(['outage', 'recover', '--steps', '1,2,4', '--interval', '1s', '--json'], {
      env: { RUNBOOK_JOURNAL_DIR: journal, RUNBOOK_CONFIG: path },
    });
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/stopped at 4 replicas \(stage 3 of 3\): .*not healthy within 1\.0s .*HTTP 503/);
    expect(r.stderr).toMatch(/runbook outage recover --steps 4/);
    expect(r.stderr).toMatch(/last healthy at 2: runbook app scale --replicas 2/);
    expect(JSON.parse(r.stdout).compensations).toEqual([]);
    expect((await deployment()).spec.replicas).toBe(4);
    expect(await envVar('MAINTENANCE_MODE')).toBe('true');
    expect((await incidents()).find((i) => i.id === id)!.status).toBe('investigating');

    // Fixed: the rest of the recovery, with the incident named explicitly this time.
    healthyUpTo = Infinity;
    const done = await cli(['outage', 'recover', '--steps', '4', '--incident', id], { env: { RUNBOOK_CONFIG: path } });
    expect(done.code, done.stderr).toBe(0);
    expect(await envVar('MAINTENANCE_MODE')).toBeUndefined();
    expect((await incidents()).find((i) => i.id === id)!.status).toBe('resolved');
  });

  it('recover without any recorded incident (maintenance mode on, set from another machine) warns, resolves nothing and turns maintenance off', async () => {
    const before = await openIncidents();
    const set = await cli(['app', 'env', 'set', 'MAINTENANCE_MODE=true', '--yes']);
    expect(set.code, set.stderr).toBe(0);
    const r = await cli(['outage', 'recover', '--steps', '1']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/no open incident recorded by "outage start"/);
    expect(await openIncidents()).toEqual(before);
    expect(await envVar('MAINTENANCE_MODE')).toBeUndefined();
  });

  it('recover with no open outage (nothing in the journal, maintenance off, no --incident) refuses: exit 4, nothing changed', async () => {
    await scaleTo(3);
    const seen = appWrites();
    const r = await cli(['outage', 'recover', '--yes']);
    expect(r.code, r.stderr).toBe(4);
    expect(r.stderr).toMatch(/no open outage in sandbox: .*nothing was changed/);
    expect(appWrites()).toBe(seen);
    expect((await deployment()).spec.replicas).toBe(3);
  });

  it('bad input is rejected before anything is contacted (exit 2)', async () => {
    const seen = sb.kube.requests.length;
    for (const args of [
      ['recover', '--steps', '4,2'],
      ['recover', '--steps', '0,1'],
      ['recover', '--steps', 'one'],
      ['recover', '--steps', '1,100'],
      ['recover', '--interval', 'soon'],
      ['recover', '--incident', '../admin'],
      ['start', '--title', ''],
      ['start', '--container', 'Bad_Name'],
    ]) {
      const r = await cli(['outage', ...args]);
      expect(r.code, args.join(' ')).toBe(2);
    }
    expect(sb.kube.requests.length).toBe(seen);
  });
});
