import { describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Procedure } from '../../src/core/procedure.js';
import { runCli, tempDir } from '../support/cli.js';
import { writeConfig } from '../support/config.js';
import { FakeKube } from '../support/fakes/fake-kube.js';
import { recordContacts } from '../support/fakes/contacts.js';
import { FakeRds, fakePostgres } from '../support/fakes/fake-rds.js';

/** One environment with every section a procedure may read a secret from; `patch` swaps in references. */
function environment(patch: (env: Record<string, any>) => void = () => undefined) {
  const env: Record<string, any> = {
    kubernetes: { namespace: 'production', deployment: 'app' },
    rollout: { timeout: '2s' },
    aws: { region: 'us-east-1' },
    rds: { instance: 'prod-db', pollInterval: '10ms', waitTimeout: '2s', connectTimeout: '300ms' },
    postgres: { url: 'postgres://app@db.internal:5432/app', replicas: [{ name: 'r1', url: 'postgres://app@replica.internal:5432/app' }] },
    redis: { url: 'redis://cache.internal:6379' },
    notify: { slack: { webhook: 'https://hooks.example.invalid/T000' } },
    circuitBreaker: { url: 'https://breaker.example.invalid/toggle' },
    statuspage: { url: 'https://status.example.invalid/v1/pages/p1', token: { env: 'STATUSPAGE_TOKEN' } },
    metrics: { url: 'https://metrics.example.invalid/errors' },
    backups: { bucket: 'backups-bucket', prefix: 'db/', restoreTest: { url: 'postgres://test@testdb.internal:5432/postgres', table: 'users' } },
    ddos: {},
    cloudflare: { zoneId: 'zone1', token: { env: 'CLOUDFLARE_TOKEN' } },
  };
  patch(env);
  return { default: 'staging', environments: { staging: env } };
}

function setup(patch?: (env: Record<string, any>) => void, replicas = 3) {
  const kube = new FakeKube(replicas);
  const rds = new FakeRds();
  const awsCalls = rds.calls;
  const { factories, contacts } = recordContacts({ kube: async () => kube, aws: async () => rds.clients(), postgres: fakePostgres() });
  const { dir } = writeConfig(environment(patch));
  const journal = tempDir('journal-');
  // The references every case keeps resolvable; each case takes one away.
  const base = { STATUSPAGE_TOKEN: 'sp-token-123456', CLOUDFLARE_TOKEN: 'cf-token-123456' };
  const run = (argv: string[], env: Record<string, string | undefined> = {}) =>
    runCli(argv, { cwd: dir, clientFactories: factories, env: { RUNBOOK_JOURNAL_DIR: journal, ...base, ...env } });
  return { kube, awsCalls, contacts, run };
}

const env = (name: string) => ({ env: name });

describe('secrets are resolved before the lock and before any contact', () => {
  it('unset DATABASE_URL; runbook db restart --yes → exit 2 and nothing scaled, rebooted or locked', async () => {
    const { kube, awsCalls, contacts, run } = setup((e) => (e.postgres.url = env('DATABASE_URL')));
    const r = await run(['db', 'restart', '--yes']);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/environments\.staging\.postgres\.url: environment variable DATABASE_URL is not set; nothing was contacted or changed/);
    expect(r.stderr).toMatch(/hint: set DATABASE_URL/);
    expect(contacts).toEqual([]);
    expect(kube.mutations).toEqual([]);
    expect(kube.leases.size).toBe(0);
    expect(awsCalls).toEqual([]);
    expect(r.stderr).not.toMatch(/resume/);
  });

  it('a dry run (plan) with the secret unset is exit 2 too, never "DRY RUN complete"', async () => {
    const { contacts, run } = setup((e) => (e.postgres.url = env('DATABASE_URL')));
    const r = await run(['db', 'restart', '-n']);
    expect(r.code).toBe(2);
    expect(r.stderr).not.toMatch(/DRY RUN complete/);
    expect(contacts).toEqual([]);
  });

  it('--dry-run=offline needs no secret and contacts nothing', async () => {
    const { contacts, run } = setup((e) => (e.postgres.url = env('DATABASE_URL')));
    const r = await run(['db', 'restart', '--dry-run=offline'], { STATUSPAGE_TOKEN: undefined, CLOUDFLARE_TOKEN: undefined });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('$DATABASE_URL');
    expect(contacts).toEqual([]);
  });

  it('with the secret set the run goes ahead, and the secret is never printed', async () => {
    const { kube, contacts, run } = setup((e) => (e.postgres.url = env('DATABASE_URL')));
    const r = await run(['db', 'restart', '--yes', '--json'], { DATABASE_URL: 'postgres://app:pw-very-secret@db.internal:5432/app' });
    expect(r.code, r.stderr).toBe(0);
    expect(kube.mutations).toEqual(['scale deployment/app 0', 'scale deployment/app 3']);
    expect(contacts).toContain('postgres');
    expect(r.stdout + r.stderr).not.toContain('pw-very-secret');
  });

  it('names every unresolvable secret at once', async () => {
    const { contacts, run } = setup((e) => {
      e.postgres.url = env('DATABASE_URL');
      e.notify.slack.webhook = env('SLACK_WEBHOOK_URL');
    });
    const r = await run(['db', 'restart', '--yes']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/DATABASE_URL is not set/);
    expect(r.stderr).toMatch(/SLACK_WEBHOOK_URL is not set/);
    expect(r.stderr.match(/^error: /gm)).toHaveLength(1);
    expect(contacts).toEqual([]);
  });

  it('an unreadable secret file is exit 2 before contact', async () => {
    const missing = join(tempDir(), 'no-such-token');
    const { contacts, run } = setup((e) => (e.statuspage.token = { file: missing }));
    const r = await run(['outage', 'start', '--yes']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`cannot read secret file ${missing}`);
    expect(contacts).toEqual([]);
  });

  it('a readable secret file works', async () => {
    const file = join(tempDir(), 'token');
    writeFileSync(file, 'file-token-abcdef\n');
    const { contacts, run } = setup((e) => (e.statuspage.token = { file }));
    const r = await run(['outage', 'start', '--dry-run']);
    expect(r.code, r.stderr).toBe(0);
    expect(contacts).toContain('kube');
  });

  const cases: Array<[string, string[], (e: Record<string, any>) => void, string]> = [
    [
      'db restart: the webhook of its announcement (the Lease was taken first)',
      ['db', 'restart', '--yes'],
      (e) => (e.notify.slack.webhook = env('SLACK_WEBHOOK_URL')),
      'SLACK_WEBHOOK_URL',
    ],
    [
      'security breach: the webhook (it cordoned first)',
      ['security', 'breach', '--nodes', 'node-1', '--yes'],
      (e) => (e.notify.slack.webhook = env('SLACK_WEBHOOK_URL')),
      'SLACK_WEBHOOK_URL',
    ],
    ['cache flush: redis.password', ['cache', 'flush', '--pattern', 'user:*', '--yes'], (e) => (e.redis.password = env('REDIS_PASSWORD')), 'REDIS_PASSWORD'],
    ['cache stats: redis.url', ['cache', 'stats'], (e) => (e.redis.url = env('REDIS_URL')), 'REDIS_URL'],
    ['db connections: postgres.url', ['db', 'connections'], (e) => (e.postgres.url = env('DATABASE_URL')), 'DATABASE_URL'],
    ['db kill-idle: postgres.url', ['db', 'kill-idle', '--idle-for', '10m', '--yes'], (e) => (e.postgres.url = env('DATABASE_URL')), 'DATABASE_URL'],
    ['db replication-lag: a replica url', ['db', 'replication-lag'], (e) => (e.postgres.replicas[0].url = env('REPLICA_URL')), 'REPLICA_URL'],
    ['app circuit-breaker: its token', ['app', 'circuit-breaker', 'enable', '--yes'], (e) => (e.circuitBreaker.token = env('CB_TOKEN')), 'CB_TOKEN'],
    ['outage start: statuspage.token', ['outage', 'start', '--yes'], () => undefined, 'STATUSPAGE_TOKEN'],
    ['outage recover: statuspage.token', ['outage', 'recover', '--yes'], () => undefined, 'STATUSPAGE_TOKEN'],
    ['incident errors: metrics.token', ['incident', 'errors'], (e) => (e.metrics.token = env('METRICS_TOKEN')), 'METRICS_TOKEN'],
    ['incident latency: postgres.url', ['incident', 'latency'], (e) => (e.postgres.url = env('DATABASE_URL')), 'DATABASE_URL'],
    ['backup verify: the alert webhook', ['backup', 'verify'], (e) => (e.notify.slack.webhook = env('SLACK_WEBHOOK_URL')), 'SLACK_WEBHOOK_URL'],
    [
      'backup verify --restore-test: the test database',
      ['backup', 'verify', '--restore-test', '--yes'],
      (e) => (e.backups.restoreTest.url = env('TEST_DATABASE_URL')),
      'TEST_DATABASE_URL',
    ],
    [
      'db recover: rds.recovery.url',
      ['db', 'recover', '--snapshot', 'prod-db-snap-1', '--yes'],
      (e) => (e.rds.recovery = { url: env('RECOVERY_URL') }),
      'RECOVERY_URL',
    ],
    ['security ddos: cloudflare.token', ['security', 'ddos', '--yes'], () => undefined, 'CLOUDFLARE_TOKEN'],
    ['security ddos revert: cloudflare.token', ['security', 'ddos-revert', '--yes'], () => undefined, 'CLOUDFLARE_TOKEN'],
  ];
  it.each(cases)('%s unset → exit 2, zero contacts, in real and dry runs', async (_name, argv, patch, variable) => {
    for (const mode of [[], ['--dry-run']]) {
      const { kube, contacts, run } = setup(patch);
      const r = await run([...argv, ...mode], { [variable]: undefined });
      expect(r.code, `${argv.join(' ')} ${mode.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toContain(`${variable} is not set`);
      expect(r.stderr).not.toMatch(/\n\s+at /);
      expect(r.stderr).not.toMatch(/resume/);
      expect(contacts).toEqual([]);
      expect(kube.mutations).toEqual([]);
      expect(kube.leases.size).toBe(0);
    }
  });

  it('tests hold procedures to their declared secrets: reading an undeclared one fails the run', async () => {
    const sneaky = (proc: Procedure): Procedure => ({
      ...proc,
      steps: [
        {
          id: 'sneaky',
          title: 'Read a secret nobody declared',
          why: 'test',
          risk: 'read',
          equivalent: () => 'true',
          async run(ctx) {
            return { length: ctx.clients.secret(ctx.env.config.statuspage!.token, 'environments.staging.statuspage.token').length };
          },
        },
        ...proc.steps,
      ],
    });
    const { factories } = recordContacts({ kube: async () => new FakeKube() });
    const { dir } = writeConfig(environment());
    const failed = await runCli(['app', 'scaling'], {
      cwd: dir,
      clientFactories: factories,
      procedureOverride: sneaky,
      env: { STATUSPAGE_TOKEN: 'sp-token-123456' },
    });
    expect(failed.code).toBe(2);
    expect(failed.stderr).toMatch(/statuspage\.token was read but not resolved before the run/);
    const lax = await runCli(['app', 'scaling'], {
      cwd: dir,
      clientFactories: factories,
      procedureOverride: sneaky,
      env: { STATUSPAGE_TOKEN: 'sp-token-123456', RUNBOOK_STRICT_SECRETS: undefined },
    });
    expect(lax.code, lax.stderr).toBe(0);
  });
});
