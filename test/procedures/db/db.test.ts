import { describe, expect, it } from 'vitest';
import type { ClientFactories } from '../../../src/clients/index.js';
import { alterSystemSql, MAX_CONNECTIONS_LIMIT } from '../../../src/procedures/db/max-connections.js';
import { scrubSql } from '../../../src/procedures/db/sessions.js';
import { runCli, tempDir } from '../../support/cli.js';
import { writeConfig } from '../../support/config.js';
import { FakeKube, fakeFactories } from '../../support/fakes/fake-kube.js';
import { FakeRds, fakeDbEnvironment, fakePostgres } from '../../support/fakes/fake-rds.js';

function setup(replicas: number, opts: { pgUp?: () => boolean } = {}) {
  const kube = new FakeKube(replicas);
  const rds = new FakeRds();
  const factories: ClientFactories = { ...fakeFactories(kube), aws: async () => rds.clients(), postgres: fakePostgres(opts.pgUp ?? (() => true)) };
  const { dir } = writeConfig({
    default: 'staging',
    environments: {
      staging: fakeDbEnvironment(),
    },
  });
  const journal = tempDir('journal-');
  const run = (argv: string[]) => runCli(argv, { cwd: dir, clientFactories: factories, env: { RUNBOOK_JOURNAL_DIR: journal } });
  return { kube, rds, run };
}

describe('db restart (fakes)', () => {
  it('scales back to the recorded count, not a hard-coded one, after waiting through "rebooting"', async () => {
    const { kube, rds, run } = setup(7);
    const r = await run(['db', 'restart', '--yes', '--json']);
    expect(r.code).toBe(0);
    expect(kube.mutations.filter((m) => m.startsWith('scale'))).toEqual(['scale deployment/app 0', 'scale deployment/app 7']);
    const wait = JSON.parse(r.stdout).steps.find((s: { id: string }) => s.id === 'wait-available');
    expect(wait.data.seen).toEqual(['rebooting', 'available']);
    expect(rds.calls).toContain('RebootDBInstanceCommand');
  });

  it('a reboot error puts the recorded count back (exit 1)', async () => {
    const { kube, rds, run } = setup(6);
    rds.failReboot = true;
    const r = await run(['db', 'restart', '--yes']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/RDS reboot failed: instance prod-db not found/);
    expect(kube.deployments.get('app')!.spec!.replicas).toBe(6);
  });

  it('a database that never answers fails after connectTimeout and the count is put back (exit 1)', async () => {
    const { kube, run } = setup(2, { pgUp: () => false });
    const r = await run(['db', 'restart', '--yes']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/did not answer SELECT 1 within 300ms/);
    expect(kube.deployments.get('app')!.spec!.replicas).toBe(2);
  });

  it('scale-back and its compensation both failing: exit 5 and the exact kubectl command', async () => {
    const { kube, run } = setup(4);
    const r0 = kube.scaleDeployment.bind(kube);
    let n = 0;
    kube.scaleDeployment = async (name, replicas, o) => {
      if (!o?.dryRun && replicas === 4 && n++ < 2) throw new Error('Kubernetes API: injected (500)');
      return r0(name, replicas, o);
    };
    const r = await run(['db', 'restart', '--yes', '--json']);
    expect(r.code).toBe(5);
    expect(JSON.parse(r.stdout).byHand).toEqual(['kubectl scale deployment/app --replicas=4 -n production']);
  });

  it('a non-available instance is refused before anything changes', async () => {
    const { kube, rds, run } = setup(3);
    rds.status.set('prod-db', 'modifying');
    const r = await run(['db', 'restart', '--yes']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/prod-db is "modifying", not available/);
    expect(kube.mutations).toEqual([]);
  });
});

describe('db procedures: input validation and offline use', () => {
  const cases: Array<[string, string[]]> = [
    ['max-connections 0', ['db', 'max-connections', '0']],
    ['max-connections 262144', ['db', 'max-connections', '262144']],
    ['max-connections text', ['db', 'max-connections', 'lots']],
    ['kill-idle malformed', ['db', 'kill-idle', '--idle-for', '10 minutes']],
    ['kill-long-running malformed', ['db', 'kill-long-running', '--older-than', '5mins']],
    ['slow-queries negative', ['db', 'slow-queries', '--min-mean-ms', '-1']],
    ['replication-lag text', ['db', 'replication-lag', '--max-lag-bytes', 'big']],
    ['recover bad id', ['db', 'recover', '--snapshot', '../etc']],
    ['restart bad wait', ['db', 'restart', '--wait-timeout', 'forever']],
  ];
  it.each(cases)('%s → exit 2, nothing contacted', async (_n, argv) => {
    const { kube, rds, run } = setup(3);
    const r = await run(argv);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^error: /m);
    expect(kube.mutations).toEqual([]);
    expect(rds.calls).toEqual([]);
  });

  it('every db procedure explains itself and plans offline with the built-in example', async () => {
    for (const p of ['restart', 'connections', 'kill-idle', 'kill-long-running', 'max-connections', 'slow-queries', 'locks', 'replication-lag', 'recover']) {
      const argv = p === 'max-connections' ? ['db', p, '200'] : ['db', p];
      const r = await runCli([...argv, '--dry-run=offline']);
      expect(r.code, p).toBe(0);
      const e = await runCli(['explain', 'db', p]);
      expect(e.code, p).toBe(0);
      expect(e.stdout).toContain('What the seed runbook got wrong');
    }
    const r = await runCli(['explain', 'db', 'restart']);
    expect(r.stdout).toContain('aws rds reboot-db-instance --db-instance-identifier prod-db');
    expect(r.stdout).toMatch(/Reboot the RDS instance\s+\[destructive; gate: type "example"\]/);
  });
});

describe('SQL helpers', () => {
  it('builds ALTER SYSTEM only from a validated integer', () => {
    expect(alterSystemSql(200)).toBe("ALTER SYSTEM SET max_connections = '200'");
    for (const bad of [0, -1, MAX_CONNECTIONS_LIMIT + 1, 1.5, Number.NaN, 2 ** 60]) expect(() => alterSystemSql(bad)).toThrow(/1 to 262143/);
  });

  it('masks passwords in statement text', () => {
    expect(scrubSql("ALTER ROLE app PASSWORD 'it''s-secret'")).toBe("ALTER ROLE app PASSWORD '****'");
    expect(scrubSql("create user x with encrypted password E'abc'")).toBe("create user x with encrypted password '****'");
    expect(scrubSql('CREATE ROLE y PASSWORD $pw$secret$pw$ LOGIN')).toBe("CREATE ROLE y PASSWORD '****' LOGIN");
    expect(scrubSql('SELECT 1')).toBe('SELECT 1');
  });
});
