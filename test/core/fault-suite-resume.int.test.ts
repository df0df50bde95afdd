// The fault suite of issue 13, case (c): every changing procedure of the catalogue, with its first example,
// against the full sandbox (a real Kubernetes control plane, PostgreSQL, Redis, moto): stopped dead right
// after a changing step ends (the first changing step and the last: each is a run and a resume, so the
// product of every step is left to the per-procedure tests), the world changed behind its back where that is
// cheap, then `runbook resume` → it re-checks that step before skipping it, runs it again (or stops) when it
// no longer holds, ends with the world as the procedure intends, and leaves no Lease.
// Stopped dead: the run's own interrupts fired from inside the journal write of that step's `step-end`
// line (after it is on disk), the second one too, so nothing is compensated, and the run file is cut after
// that line, which is what kill -9 at that moment leaves (the Lease a killed process keeps is tested in
// test/procedures/db/restart.int.test.ts). New procedures are covered automatically; a changing step with no
// postcondition must be named in NO_POSTCONDITION with the reason skipping it on resume is right.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, fsyncSync, readFileSync, utimesSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { NEEDS_LIVE_PROCESS } from '../support/sandbox/live-process.js';
import { catalog } from '../../src/procedures/catalog.js';
import type { Procedure } from '../../src/core/procedure.js';
import { procedureRisk, stepRisk } from '../../src/core/procedure.js';
import { InterruptedError } from '../../src/core/errors.js';
import { exampleConfig } from '../../src/core/example-config.js';
import { selectEnvironment } from '../../src/core/config.js';
import { runFile, type JournalWrites } from '../../src/core/journal.js';
import { runCli, tempDir, type CliOptions } from '../support/cli.js';
import { startSandbox, type Sandbox, type SandboxPart } from '../support/sandbox/index.js';
import { deleteRdsInstance, type DatabasePart } from '../support/sandbox/database-part.js';
import type { CachePart } from '../support/sandbox/cache-part.js';
import type { DdosPart } from '../support/sandbox/ddos-part.js';
import type { KubeObject, NodeObject } from '../support/cluster/index.js';

let sb: Sandbox;

beforeAll(async () => {
  sb = await startSandbox();
}, 180_000);
afterAll(async () => {
  await sb?.stop();
});

function cli(argv: string[], journal: string, extra: CliOptions = {}) {
  return runCli(argv, { ...extra, env: { ...sb.env, RUNBOOK_JOURNAL_DIR: journal, ...(extra.env ?? {}) } });
}

async function leases(): Promise<string[]> {
  return (await sb.kube.list('leases', { namespace: sb.namespace })).map((l) => l.metadata.name).filter((n) => n.startsWith('runbook-'));
}

/** Journal writes that, once `step`'s step-end line is written and synced, stop the run dead (both interrupts: no compensation). */
function stopAfter(step: string, stop: () => void): JournalWrites & { seen: () => string | undefined } {
  let status: string | undefined;
  return {
    write(fd, buffer, offset, length) {
      const n = writeSync(fd, buffer, offset, length);
      const line = buffer.toString('utf8', offset, offset + length).trim();
      if (status === undefined && line.includes('"type":"step-end"')) {
        const ev = JSON.parse(line) as { step?: string; status?: string };
        if (ev.step === step) status = ev.status;
      }
      return n;
    },
    fsync(fd) {
      fsyncSync(fd);
      if (status !== undefined) stop();
    },
    seen: () => status,
  };
}

/** Cuts a run's journal after the line where `step` ended: what kill -9 right after that step leaves. */
function cutAfter(journal: string, runId: string, step: string): void {
  const file = runFile(journal, runId);
  const lines = readFileSync(file, 'utf8').split('\n').filter(Boolean);
  const at = lines.findIndex((l) => JSON.parse(l).type === 'step-end' && JSON.parse(l).step === step);
  expect(at, `no step-end of ${step} in run ${runId}`).toBeGreaterThan(0);
  writeFileSync(file, lines.slice(0, at + 1).join('\n') + '\n');
}

function stepEnd(journal: string, runId: string, step: string): { data?: unknown } {
  return readFileSync(runFile(journal, runId), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l))
    .find((e) => e.type === 'step-end' && e.step === step);
}

/**
 * The Leases a killed run still holds (its process never released them): put back as it held them, fresh, so
 * the resume has to take over its own run's Leases rather than wait out a minute. Returns their names.
 */
async function keepLeases(journal: string, runId: string): Promise<string[]> {
  const lock = readFileSync(runFile(journal, runId), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l))
    .find((e) => e.type === 'lock') as { lease: string } | undefined;
  const names = lock ? lock.lease.split(', ') : [];
  // A Lease's times are MicroTime on the wire: exactly six fractional digits.
  const now = new Date().toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
  for (const name of names)
    await sb.kube.put({
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name, namespace: sb.namespace, labels: { 'app.kubernetes.io/managed-by': 'runbook' } },
      spec: { holderIdentity: `tester@test run ${runId}`, leaseDurationSeconds: 60, acquireTime: now, renewTime: now },
    } as never);
  return names;
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * Changing steps with no postcondition, and why resume may take the journal's word for them: nothing
 * live says whether they are done, and running them again would do the thing twice.
 */
const NO_POSTCONDITION: Record<string, string> = {
  'security rotate-secrets rotate': 'nothing live says a credential was rotated; the commands again would rotate twice',
  'security breach rotate': 'nothing live says a credential was rotated; the commands again would rotate twice',
  'cache warm warm': 'a cache keeps no record of having been warmed; the warmers exited 0 (journaled), and are not run twice on that word',
  'logs rotate logrotate': "logrotate's state file is its record; logrotate -f again would force another rotation",
  'pod gc gc': 'a collection leaves nothing to read back; its heap numbers are what it returned',
  'backup verify restore': 'a restore test (--restore-test) is a measurement in a scratch database it always drops: nothing lasting to re-check',
};

/** What must have run first for a procedure to have work to do (recovering needs an open outage). */
const BEFORE: Record<string, string[]> = { 'outage recover': ['outage', 'start'] };

/**
 * Before each stop: what puts back the world a procedure's later step changes, once the resume after an earlier
 * stop has finished the whole run (else that step would find nothing to change, and not be done).
 */
const SETUP: Record<string, () => Promise<unknown>> = {
  'db recover': () => patchContainer({ DATABASE_HOST: null }),
  'outage start': () => patchContainer({ MAINTENANCE_MODE: null }),
  'security ddos': async () => void (part<DdosPart>('ddos').cloudflare.level = 'medium'),
  'security ddos-revert': async () => void (part<DdosPart>('ddos').cloudflare.level = 'under_attack'),
};

/** The resumed run, as `--json` prints it. */
interface Resumed {
  runId: string;
  steps: Array<{ id: string; status: string; data?: any }>;
}

interface WorldChange {
  /** Someone else's change while the run is dead, undoing what the step did (`data`: what the step journaled). */
  change(data: any): Promise<unknown>;
  /** Resume runs the step again (the default), or stops before it (running it again is not safe). */
  expect?: 'rerun' | 'stop';
  /** The world after the resume: as the procedure intends, not as the stale journal says. */
  after?(resumed: Resumed): Promise<void>;
}

type Deployment = KubeObject & {
  spec: {
    replicas?: number;
    template: {
      metadata?: { annotations?: Record<string, string> };
      spec: { containers: Array<{ name: string; env?: Array<{ name: string; value?: string }>; resources?: { requests?: Record<string, string> } }> };
    };
  };
};
const deployment = async () => (await sb.kube.get<Deployment>('deployments', sb.namespace, 'app'))!;
const replicas = async () => (await deployment()).spec.replicas ?? -1;
const setReplicas = (n: number) => sb.kube.patch('deployments', sb.namespace, 'app', { spec: { replicas: n } });
const envVar = async (name: string) => (await deployment()).spec.template.spec.containers[0]!.env?.find((e) => e.name === name)?.value;
/** Someone else's `kubectl set env` / `kubectl set resources` on the first container (a merge patch: the containers are sent whole). */
async function patchContainer(vars: Record<string, string | null>, resources?: { requests: Record<string, string> }): Promise<void> {
  const containers = (await deployment()).spec.template.spec.containers.map((c, i) => {
    if (i > 0) return c;
    const env = [...(c.env ?? []).filter((e) => !(e.name in vars))];
    for (const [name, value] of Object.entries(vars)) if (value !== null) env.push({ name, value });
    return { ...c, env, ...(resources ? { resources: { ...c.resources, requests: { ...c.resources?.requests, ...resources.requests } } } : {}) };
  });
  await sb.kube.patch('deployments', sb.namespace, 'app', { spec: { template: { spec: { containers } } } });
}
const part = <T extends SandboxPart>(name: string) => sb.parts.find((p) => p.name === name) as T;
const sandboxConfig = () => parse(readFileSync(sb.configPath, 'utf8')).environments.sandbox;
const stepData = (r: Resumed, id: string) => r.steps.find((s) => s.id === id)?.data;
type NodeObj = NodeObject & { spec?: { unschedulable?: boolean } };

/** Per procedure and step: how the world is changed behind the dead run's back. Steps not named keep the world as the step left it. */
const WORLD: Record<string, Record<string, WorldChange>> = {
  'app restart': {
    restart: {
      // A re-apply of the manifest drops the restart stamp: the old pods are back.
      change: () =>
        sb.kube.patch('deployments', sb.namespace, 'app', { spec: { template: { metadata: { annotations: { 'kubectl.kubernetes.io/restartedAt': null } } } } }),
      async after(r) {
        expect((await deployment()).spec.template.metadata?.annotations?.['kubectl.kubernetes.io/restartedAt']).toBe(stepData(r, 'restart').restartedAt);
      },
    },
  },
  'app autoscale': {
    apply: {
      async change() {
        for (const h of await sb.kube.list('horizontalpodautoscalers', { namespace: sb.namespace }))
          await sb.kube.remove('horizontalpodautoscalers', sb.namespace, h.metadata.name);
      },
      async after() {
        const hpas = await sb.kube.list<KubeObject & { spec?: { minReplicas?: number; maxReplicas?: number } }>('horizontalpodautoscalers', {
          namespace: sb.namespace,
        });
        expect(hpas.map((h) => [h.spec?.minReplicas, h.spec?.maxReplicas])).toEqual([[2, 10]]);
        // A live autoscaler would change the deployment under the procedures after this one.
        for (const h of hpas) await sb.kube.remove('horizontalpodautoscalers', sb.namespace, h.metadata.name);
      },
    },
  },
  'app resources': {
    patch: {
      change: () => patchContainer({}, { requests: { cpu: '250m' } }),
      async after() {
        expect((await deployment()).spec.template.spec.containers[0]!.resources?.requests?.cpu).toBe('500m');
      },
    },
  },
  'app rollback': {
    // Someone ships a new template while the run is dead: rolling back over it is not a resume's call.
    rollback: { change: () => patchContainer({ RELEASE: 'shipped-since' }), expect: 'stop' },
  },
  'app env set': {
    apply: {
      change: () => patchContainer({ RATE_LIMIT: '7' }),
      after: async () => expect(await envVar('RATE_LIMIT')).toBe('100'),
    },
  },
  'app env unset': {
    apply: {
      change: () => patchContainer({ RATE_LIMIT: '7' }),
      after: async () => expect(await envVar('RATE_LIMIT')).toBeUndefined(),
    },
  },
  'app circuit-breaker': {
    switch: {
      async change() {
        expect((await fetch(`${sandboxConfig().circuitBreaker.url}/disable`, { method: 'POST' })).status).toBe(200);
      },
      async after() {
        expect(await (await fetch(sandboxConfig().circuitBreaker.url)).json()).toEqual({ enabled: true });
      },
    },
  },
  'db restart': {
    // Someone brings the app back while the database is about to be rebooted: scaled to 0 again first.
    'scale-down': { change: () => setReplicas(3), after: async () => expect(await replicas()).toBe(3) },
    'scale-back': { change: () => setReplicas(0), after: async () => expect(await replicas()).toBe(3) },
  },
  'db max-connections': {
    alter: {
      async change() {
        const c = await part<DatabasePart>('database').connect();
        try {
          await c.query('ALTER SYSTEM RESET max_connections');
          await c.query('SELECT pg_reload_conf()');
        } finally {
          await c.end();
        }
      },
      async after() {
        const c = await part<DatabasePart>('database').connect();
        try {
          const r = await c.query(
            "SELECT setting FROM pg_file_settings WHERE name = 'max_connections' AND sourcefile LIKE '%postgresql.auto.conf' ORDER BY seqno DESC LIMIT 1",
          );
          expect(r.rows).toEqual([{ setting: '200' }]);
        } finally {
          await c.end();
        }
      },
    },
  },
  'db recover': {
    // Someone deletes the restored instance: restored again (and waited for again), never switched to a ghost.
    restore: {
      change: (d: { instance: string }) => deleteRdsInstance(part<DatabasePart>('database').rds, d.instance),
      async after(r) {
        expect(stepData(r, 'restore')).toMatchObject({ snapshot: 'prod-db-snap-1' });
        expect(r.steps.find((s) => s.id === 'wait-available')?.status).toBe('succeeded');
      },
    },
    switch: {
      change: () => patchContainer({ DATABASE_HOST: 'old-db.internal' }),
      after: async (r) => expect(await envVar('DATABASE_HOST')).toBe(stepData(r, 'switch').host),
    },
  },
  'cache flush': {
    // The application writes user:* keys again: deleted again, counted.
    unlink: {
      change: () => part<CachePart>('cache').reseed(),
      async after() {
        expect(await part<CachePart>('cache').commands([['EVAL', "return #redis.call('KEYS', ARGV[1])", '0', 'user:*']])).toEqual([0]);
      },
    },
  },
  'outage start': {
    apply: {
      change: () => patchContainer({ MAINTENANCE_MODE: null }),
      after: async () => expect(await envVar('MAINTENANCE_MODE')).toBe('true'),
    },
  },
  'logs rotate': {
    // A log past the threshold appears (another writer): compressed too, from a listing taken again.
    compress: {
      async change() {
        const file = join(sandboxConfig().logs.dir, 'late.log');
        writeFileSync(file, 'a late line\n'.repeat(100));
        const old = new Date(Date.now() - 10 * 86_400_000);
        utimesSync(file, old, old);
      },
      async after() {
        const dir = sandboxConfig().logs.dir;
        expect([existsSync(join(dir, 'late.log')), existsSync(join(dir, 'late.log.gz'))]).toEqual([false, true]);
      },
    },
  },
  'security isolate': {
    isolate: {
      change: () => sb.kube.patch('nodes', undefined, sb.kube.nodes[1]!, { spec: { unschedulable: null } }, 'merge'),
      async after() {
        for (const n of sb.kube.nodes.slice(0, 2)) expect((await sb.kube.get<NodeObj>('nodes', undefined, n))?.spec?.unschedulable).toBe(true);
      },
    },
  },
  'security ddos': {
    cloudflare: {
      change: async () => void (part<DdosPart>('ddos').cloudflare.level = 'medium'),
      after: async () => expect(part<DdosPart>('ddos').cloudflare.level).toBe('under_attack'),
    },
  },
  'security ddos-revert': {
    cloudflare: {
      change: async () => void (part<DdosPart>('ddos').cloudflare.level = 'under_attack'),
      after: async () => expect(part<DdosPart>('ddos').cloudflare.level).toBe('medium'),
    },
  },
};

/** The world changes that were made (a step of WORLD that is never reached or never done would test nothing). */
const changed = new Set<string>();
let leasesKept = 0;

const exampleEnv = selectEnvironment({ config: exampleConfig, path: null }, undefined, {});
const entries = await Promise.all(catalog.filter((e) => !NEEDS_LIVE_PROCESS.has(e.name)).map(async (e) => ({ entry: e, proc: (await e.load()) as Procedure })));
const changing = entries.filter((x) => procedureRisk(x.proc, {} as never, exampleEnv) !== 'read');

it('every changing step of every procedure has a postcondition, or is named with the reason resume may skip it unchecked', async () => {
  const all = await Promise.all(catalog.map(async (e) => ({ name: e.name, proc: (await e.load()) as Procedure })));
  const missing: string[] = [];
  for (const { name, proc } of all)
    for (const s of proc.steps) {
      const risks = typeof s.risk === 'function' ? [stepRisk(s, {} as never, exampleEnv), 'write'] : [s.risk];
      if (risks.some((r) => r !== 'read') && !s.postcondition && !s.restores && !NO_POSTCONDITION[`${name} ${s.id}`]) missing.push(`${name} ${s.id}`);
    }
  expect(missing).toEqual([]);
  for (const key of Object.keys(NO_POSTCONDITION)) {
    const [proc, step] = [key.slice(0, key.lastIndexOf(' ')), key.slice(key.lastIndexOf(' ') + 1)];
    const p = all.find((x) => x.name === proc)?.proc;
    expect(
      p?.steps.find((s) => s.id === step),
      `${key} names no step`,
    ).toBeDefined();
    expect(p?.steps.find((s) => s.id === step)?.postcondition, `${key} has a postcondition after all`).toBeUndefined();
  }
});

describe.each(changing.map((x) => [x.entry.name, x] as const))('%s', (name, { proc }) => {
  const words = name.split(' ');
  const real = (args: string[]) => [...words, ...args, '--yes', '--confirm', 'sandbox', '--json'];

  it('(c) stopped dead after its first and last changing step, the world changed → resume re-checks, never acts on the stale journal, no Lease left', async () => {
    const args = sb.localize(proc.examples[0] ?? []);
    const offline = await cli([...words, ...args, '--dry-run=offline', '--json'], tempDir('runbook-resume-fault-'));
    expect(offline.code, offline.stderr).toBe(0);
    const planned = (JSON.parse(offline.stdout).steps as Array<{ id: string; title: string; status: string; risk: string }>).filter(
      (s) => s.status === 'planned' && s.risk !== 'read',
    );
    expect(planned.length).toBeGreaterThan(0);
    const ks = [...new Set([planned[0], planned.at(-1)!])];
    for (const k of ks) {
      const at = `${name}, stopped after ${k.id}`;
      const journal = tempDir('runbook-resume-fault-');
      await SETUP[name]?.();
      if (BEFORE[name]) {
        const first = await cli([...BEFORE[name], '--yes', '--confirm', 'sandbox', '--json'], journal);
        expect(first.code, first.stderr).toBe(0);
      }
      const ctl = new AbortController();
      const hard = new AbortController();
      const writes = stopAfter(k.id, () => {
        if (ctl.signal.aborted) return;
        ctl.abort(new InterruptedError('SIGINT'));
        hard.abort(new InterruptedError('SIGINT'));
      });
      const r = await cli(real(args), journal, { interrupts: { signal: ctl.signal, hard: hard.signal }, journalWrites: writes });
      expect(ctl.signal.aborted, `${at}: never got there (exit ${r.code}): ${r.stderr}`).toBe(true);
      const runId = JSON.parse(r.stdout).runId as string;
      cutAfter(journal, runId, k.id);
      const kept = await keepLeases(journal, runId);
      leasesKept += kept.length;
      const done = writes.seen() === 'succeeded';

      const world = done ? WORLD[name]?.[k.id] : undefined;
      if (world) {
        await world.change(stepEnd(journal, runId, k.id).data);
        changed.add(`${name} ${k.id}`);
      }

      const resumed = await cli(['resume', runId, '--yes', '--confirm', 'sandbox', '--json'], journal);
      const step = proc.steps.find((s) => s.id === k.id)!;
      const title = escape(k.title);
      const when = `run ${runId}, [\\dms. ]+ ago`;
      if (!done) {
        // Nothing to change then: not done, so not skipped now.
        expect(resumed.stderr, at).not.toMatch(new RegExp(`${title} — done in run`));
      } else if (world?.expect === 'stop') {
        expect(resumed.code, `${at}: ${resumed.stderr}`).toBe(1);
        expect(resumed.stderr, at).toMatch(new RegExp(`resume stopped before "${title}": it was done in ${when}, but .* no longer holds`));
      } else if (world) {
        expect(resumed.stderr, at).toMatch(new RegExp(`${title}: done in ${when}, but .*; running it again`));
      } else if (step.postcondition) {
        expect(resumed.stderr, at).toMatch(new RegExp(`${title} — done in ${when} \\(re-checked\\)`));
      } else {
        expect(NO_POSTCONDITION[`${name} ${k.id}`], `${at}: skipped unchecked`).toBeDefined();
        expect(resumed.stderr, at).toMatch(new RegExp(`${title} — done in ${when}$`, 'm'));
      }
      if (world?.expect !== 'stop') {
        expect([0, 4], `${at}: exit ${resumed.code}: ${resumed.stderr}`).toContain(resumed.code);
        const doc = JSON.parse(resumed.stdout) as { steps: Array<{ id: string; status: string }> };
        const status = doc.steps.find((s) => s.id === k.id)?.status;
        // Done and still holding: skipped. Done but undone behind its back: run again. Not done: planned afresh (either).
        if (done) expect(status, at).toBe(world ? 'succeeded' : 'skipped');
        else expect(['succeeded', 'skipped'], at).toContain(status);
      }
      if (world?.expect !== 'stop') await world?.after?.(JSON.parse(resumed.stdout) as Resumed);
      // The dead run's own Leases were taken over, and released with the resumed run's.
      if (kept.length) expect(resumed.stderr, at).not.toMatch(/is held by/);
      expect(await leases(), at).toEqual([]);
    }
  }, 300_000);
});

it('(c) every world change of WORLD was made (its step was reached and done), and killed runs left Leases to take over', () => {
  expect(leasesKept).toBeGreaterThan(10);
  expect([...changed].sort()).toEqual(
    Object.entries(WORLD)
      .flatMap(([proc, steps]) => Object.keys(steps).map((step) => `${proc} ${step}`))
      .sort(),
  );
});
