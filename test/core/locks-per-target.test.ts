import { describe, expect, it } from 'vitest';
import { runCli, tempDir } from '../support/cli.js';
import { twoEnvironments, writeConfig } from '../support/config.js';
import { FakeKube, fakeFactories } from '../support/fakes/fake-kube.js';
import { FakeRds, fakePostgres } from '../support/fakes/fake-rds.js';
import { runIds } from '../support/journal-files.js';
import { acquireLocks, leaseName, lockTargets } from '../../src/core/lock.js';
import { catalog } from '../../src/procedures/catalog.js';
import { LockHeldError } from '../../src/core/errors.js';

/** Issue 13 item 6: Leases are named by what is changed, not by the procedure. */

function dbEnv() {
  return {
    environments: {
      staging: {
        kubernetes: { namespace: 'production', deployment: 'app' },
        rollout: { timeout: '2s' },
        aws: { region: 'us-east-1' },
        rds: { instance: 'prod-db', pollInterval: '10ms', waitTimeout: '2s', connectTimeout: '10s' },
        postgres: { url: 'postgres://app@db.internal:5432/app' },
      },
    },
  };
}

const until = async (what: string, cond: () => boolean, ms = 5000) => {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
};

describe('lease names', () => {
  it('are named by the target, fit an RFC 1123 label, and never collide by truncation', () => {
    expect(leaseName('deployment/app')).toBe('runbook-deployment-app');
    expect(leaseName('rds/prod-db')).toBe('runbook-rds-prod-db');
    const long = 'x'.repeat(80);
    const a = leaseName(`deployment/${long}a`);
    const b = leaseName(`deployment/${long}b`);
    expect(a).not.toBe(b);
    for (const n of [a, b, leaseName('node/Node_1.example')]) expect(n).toMatch(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/);
    // Two targets that only differ in characters a label cannot hold do not share a lease.
    expect(leaseName('node/a.b')).not.toBe(leaseName('node/a-b'));
  });

  it('every locking procedure names a deployment/rds/… target, never its own name', async () => {
    const env = {
      name: 'staging',
      config: { kubernetes: { deployment: 'app', namespace: 'ns' }, rds: { instance: 'prod-db', recovery: {} }, redis: {}, protected: false },
    } as never;
    const byProc: Record<string, string[]> = {};
    for (const e of catalog) {
      const p = await e.load();
      if (!p.locks) continue;
      const params = { nodes: ['node-1'] } as never;
      byProc[p.name] = p.locks(params, env);
      for (const t of byProc[p.name]) expect(t).toMatch(/^(deployment|rds|postgres|redis|node|route53|ecs|waf)\/[^/]/);
    }
    expect(byProc['app scale']).toEqual(['deployment/app']);
    expect(byProc['db restart']).toEqual(expect.arrayContaining(['deployment/app', 'rds/prod-db']));
    // Without rds.url, the primary PostgreSQL is the RDS instance's database: kill-idle and restart share it.
    expect(byProc['db kill-idle']).toEqual(['rds/prod-db']);
    expect(byProc['security isolate']).toEqual(['node/node-1']);
    expect(lockTargets.postgres({ name: 'staging', config: { rds: { instance: 'prod-db', url: 'x' } } } as never)).toBe('postgres/staging');
  });
});

describe('locks per target', () => {
  it('`app scale` is refused with exit 6 (holder, run, since) while `db restart` holds the deployment with the app at 0', async () => {
    const kube = new FakeKube(3);
    const rds = new FakeRds();
    let dbUp = false;
    const { dir } = writeConfig(dbEnv());
    const journal = tempDir('journal-');
    const factories = { ...fakeFactories(kube), aws: async () => rds.clients(), postgres: fakePostgres(() => dbUp) };
    const opts = { cwd: dir, clientFactories: factories, env: { RUNBOOK_JOURNAL_DIR: journal } };
    const restart = runCli(['db', 'restart', '--yes'], opts);
    // The app is at 0 and the database being rebooted: SELECT 1 is still refused.
    await until('the scale-down and reboot', () => kube.mutations.includes('scale deployment/app 0') && rds.calls.includes('RebootDBInstanceCommand'));
    expect([...kube.leases.keys()].sort()).toEqual(['runbook-deployment-app', 'runbook-rds-prod-db']);

    const scale = await runCli(['app', 'scale', '--replicas', '5', '--yes'], opts);
    expect(scale.code).toBe(6);
    expect(scale.stderr).toMatch(/runbook-deployment-app is held by tester@test run \d{8}T\d{6}-[0-9a-f]{4} since \d{4}-\d\d-\d\dT/);
    expect(kube.mutations).not.toContain('scale deployment/app 5');
    expect(kube.deployments.get('app')!.spec!.replicas).toBe(0);

    dbUp = true;
    const r = await restart;
    expect(r.code).toBe(0);
    expect(kube.deployments.get('app')!.spec!.replicas).toBe(3);
    expect(kube.leases.size).toBe(0);
  });

  it('a run needing several targets takes all or none: one held elsewhere → exit 6 and the others released', async () => {
    const kube = new FakeKube(3);
    const now = new Date();
    await kube.createLease({
      name: 'runbook-rds-prod-db',
      holder: 'alice@laptop run 20261129T030000-beef',
      durationSeconds: 60,
      acquireTime: now,
      renewTime: now,
    });
    const rds = new FakeRds();
    const { dir } = writeConfig(dbEnv());
    const r = await runCli(['db', 'restart', '--yes'], {
      cwd: dir,
      clientFactories: { ...fakeFactories(kube), aws: async () => rds.clients(), postgres: fakePostgres() },
    });
    expect(r.code).toBe(6);
    expect(r.stderr).toMatch(/runbook-rds-prod-db is held by alice@laptop run 20261129T030000-beef since 20/);
    expect([...kube.leases.keys()]).toEqual(['runbook-rds-prod-db']);
    expect(kube.mutations).toEqual([]);
  });

  it('takes leases in a stable (sorted) order whatever order the procedure lists them', async () => {
    const kube = new FakeKube(1);
    const order: string[] = [];
    const create = kube.createLease.bind(kube);
    kube.createLease = async (l) => (order.push(l.name), create(l));
    const lock = await acquireLocks(kube, ['rds/b', 'deployment/a', 'rds/b', 'node/c'], { operator: 'o', runId: 'r' }, () => new Date());
    expect(order).toEqual(['runbook-deployment-a', 'runbook-node-c', 'runbook-rds-b']);
    await lock.release();
    expect(kube.leases.size).toBe(0);
  });

  it('read-only procedures and read-only runs take no lease', async () => {
    const kube = new FakeKube(3);
    const { dir } = writeConfig(twoEnvironments());
    const create = kube.createLease.bind(kube);
    let created = 0;
    kube.createLease = async (l) => (created++, create(l));
    expect((await runCli(['app', 'scaling'], { cwd: dir, clientFactories: fakeFactories(kube) })).code).toBe(0);
    expect(created).toBe(0);
  });

  it('an expired Lease is deleted when found, then taken afresh', async () => {
    const kube = new FakeKube(3);
    const old = new Date(Date.now() - 10 * 60_000);
    await kube.createLease({
      name: 'runbook-deployment-app',
      holder: 'crashed@laptop run 20200101T000000-dead',
      durationSeconds: 60,
      acquireTime: old,
      renewTime: old,
    });
    const del = kube.deleteLease.bind(kube);
    const deleted: string[] = [];
    kube.deleteLease = async (n, v) => (deleted.push(`${n}@${v}`), del(n, v));
    const { dir } = writeConfig(twoEnvironments());
    const r = await runCli(['app', 'scale', '--replicas', '5'], { cwd: dir, clientFactories: fakeFactories(kube) });
    expect(r.code).toBe(0);
    // Deleted at the version read (found expired), then our own deleted at release.
    expect(deleted[0]).toBe('runbook-deployment-app@1');
    expect(deleted).toHaveLength(2);
    expect(kube.leases.size).toBe(0);
  });

  it("`resume` of this operator's own crashed run takes its Lease over at once; another operator's is still refused", async () => {
    const kube = new FakeKube(4);
    const { dir } = writeConfig(twoEnvironments());
    const journal = tempDir('journal-');
    const opts = { cwd: dir, clientFactories: fakeFactories(kube), env: { RUNBOOK_JOURNAL_DIR: journal } };
    kube.failNext('watchDeployment', 1, 500);
    expect((await runCli(['app', 'scale', '--replicas', '6'], opts)).code).toBe(1);
    const [crashed] = runIds(journal);
    // As if the process had been killed: its Lease, fresh, still names it.
    const now = new Date();
    await kube.createLease({ name: 'runbook-deployment-app', holder: `tester@test run ${crashed}`, durationSeconds: 60, acquireTime: now, renewTime: now });
    const r = await runCli(['resume', crashed, '--yes'], opts);
    expect(r.stderr).not.toMatch(/is held by/);
    expect(r.code).toBe(0);
    expect(kube.deployments.get('app')!.spec!.replicas).toBe(6);
    expect(kube.leases.size).toBe(0);

    // Someone else's run (or another operator's) is not taken over.
    const before = new Set(runIds(journal));
    kube.failNext('watchDeployment', 1, 500);
    expect((await runCli(['app', 'scale', '--replicas', '7'], opts)).code).toBe(1);
    const [second] = runIds(journal).filter((id) => !before.has(id));
    await kube.createLease({ name: 'runbook-deployment-app', holder: `bob@desk run ${second}`, durationSeconds: 60, acquireTime: now, renewTime: now });
    const other = await runCli(['resume', second, '--yes'], opts);
    expect(other.code).toBe(6);
    expect(other.stderr).toMatch(/held by bob@desk/);
  });

  it('acquireLocks refuses a live lease of another holder with LockHeldError', async () => {
    const kube = new FakeKube(1);
    const now = new Date();
    await kube.createLease({ name: 'runbook-node-n1', holder: 'x run y', durationSeconds: 60, acquireTime: now, renewTime: now });
    await expect(acquireLocks(kube, ['deployment/a', 'node/n1'], { operator: 'o', runId: 'r' }, () => now)).rejects.toBeInstanceOf(LockHeldError);
    expect([...kube.leases.keys()]).toEqual(['runbook-node-n1']);
  });
});
