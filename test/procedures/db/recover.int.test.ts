/**
 * db recover against moto (RDS snapshots and restore), PostgreSQL (the restored database is mapped to
 * the `recovered` database) and the Kubernetes API server (DATABASE_HOST, rollout).
 */
import { DescribeDBInstancesCommand } from '@aws-sdk/client-rds';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { runCli, tempDir, type CliOptions } from '../../support/cli.js';
import { startSandbox, type Sandbox } from '../../support/sandbox/index.js';
import { deleteRdsInstance, RECOVERED_USERS, type DatabasePart } from '../../support/sandbox/database-part.js';
import type { Deployment } from '../../support/cluster/index.js';
import { databasePart, derivedConfig, journalText } from './support.js';

let sb: Sandbox;
let db: DatabasePart;
const journal = tempDir('runbook-db-journal-');
const outputs: string[] = [];

async function cli(argv: string[], extra: CliOptions = {}) {
  const r = await runCli(argv, { ...extra, env: { ...sb.env, RUNBOOK_JOURNAL_DIR: journal, ...(extra.env ?? {}) } });
  outputs.push(r.stdout, r.stderr);
  return r;
}

async function hostVar(): Promise<string | undefined> {
  const d = (await sb.kube.get<Deployment>('deployments', sb.namespace, 'app'))!;
  return d.spec.template.spec.containers[0]!.env?.find((e) => e.name === 'DATABASE_HOST')?.value;
}

async function instances(): Promise<string[]> {
  const out = await db.rds.send(new DescribeDBInstancesCommand({}));
  return (out.DBInstances ?? []).map((i) => i.DBInstanceIdentifier ?? '').sort();
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
  await sb.kube.failPods(undefined);
  if ((await instances()).includes('prod-db-recovered')) await deleteRdsInstance(db.rds, 'prod-db-recovered');
  if ((await hostVar()) !== undefined) {
    const d = (await sb.kube.get<Deployment>('deployments', sb.namespace, 'app'))!;
    const c = d.spec.template.spec.containers[0]!;
    c.env = (c.env ?? []).filter((e) => e.name !== 'DATABASE_HOST');
    await sb.kube.put(d);
  }
  await sb.kube.waitForRollout('app', { timeoutMs: 30_000 });
});

describe('db recover', () => {
  it('restores the snapshot, waits, verifies read-only, points DATABASE_HOST at the new endpoint and watches the rollout; a re-run reuses its own restore', async () => {
    const r = await cli(['db', 'recover', '--snapshot', 'prod-db-snap-1', '--yes', '--json']);
    expect(r.stderr).toContain('rds prod-db');
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout);
    const byId = Object.fromEntries(doc.steps.map((s: { id: string }) => [s.id, s]));
    expect(byId.verify.data.first).toEqual({ count: String(RECOVERED_USERS) });
    const endpoint = byId['wait-available'].data.endpoint.address;
    expect(endpoint).toMatch(/^prod-db-recovered\./);
    expect(await instances()).toContain('prod-db-recovered');
    expect(await hostVar()).toBe(endpoint);
    expect(await sb.kube.rolloutComplete('app')).toBe(true);

    const again = await cli(['db', 'recover', '--snapshot', 'prod-db-snap-1', '--yes', '--json']);
    expect(again.code).toBe(0);
    const steps = Object.fromEntries(JSON.parse(again.stdout).steps.map((s: { id: string; status: string }) => [s.id, s.status]));
    expect(steps).toMatchObject({ restore: 'skipped', verify: 'succeeded', switch: 'skipped' });
  });

  it('--dry-run lists the snapshots for real and previews the restore and the switch; nothing changes', async () => {
    const before = await sb.fingerprint();
    const r = await cli(['db', 'recover', '--snapshot', 'prod-db-snap-2', '--dry-run']);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/would restore rds\/prod-db-recovered: ∅ → from snapshot prod-db-snap-2/);
    expect(r.stderr).toMatch(/would set DATABASE_HOST in api: ∅ → <restored endpoint>/);
    expect(await sb.fingerprint()).toEqual(before);
  });

  it('asks which snapshot on a terminal; a declined switch leaves the app as it was (exit 3)', async () => {
    const before = await hostVar();
    const r = await cli(['db', 'recover'], { tty: true, answers: ['prod-db-snap-2', false] });
    expect(r.code).toBe(3);
    expect(r.prompter).toBeDefined();
    expect(r.stderr).toMatch(/SNAPSHOT\s+CREATED/);
    expect(r.stderr).toMatch(/verify result: \{"count":"20"\}/);
    expect(await hostVar()).toBe(before);
    // Fails closed without a terminal: no prompt, no change.
    const fp = await sb.fingerprint();
    expect((await cli(['db', 'recover', '--snapshot', 'prod-db-snap-2', '--env', 'sandbox-protected'])).code).toBe(3);
    expect(await sb.fingerprint()).toEqual(fp);
  });

  it('without --snapshot and without a terminal: exit 2 with the list and a hint; unknown or malformed snapshot: exit 2 before any change', async () => {
    const before = await sb.fingerprint();
    const r = await cli(['db', 'recover', '--yes']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/prod-db-snap-1/);
    expect(r.stderr).toMatch(/hint: the newest is .*runbook db recover --snapshot /);
    const unknown = await cli(['db', 'recover', '--snapshot', 'no-such-snapshot', '--yes']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/unknown snapshot "no-such-snapshot"/);
    const bad = await cli(['db', 'recover', '--snapshot', 'snap;rm -rf', '--yes']);
    expect(bad.code).toBe(2);
    expect(await sb.fingerprint()).toEqual(before);
  });

  it('a rollout that fails after the switch puts the previous DATABASE_HOST back (exit 1); the restored instance is kept', async () => {
    const env = derivedConfig(sb, (e) => {
      // Long enough for a healthy rollout on the real cluster: what fails it is the never-ready pod.
      e.rollout = { timeout: '6s' };
    });
    await sb.kube.failPods('never-ready');
    const r = await cli(['db', 'recover', '--snapshot', 'prod-db-snap-1', '--yes'], { env });
    await sb.kube.failPods(undefined);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/rollout of deployment\/app not complete after 6(\.0)?s: 1 of 3 updated replicas/);
    expect(r.stderr).toMatch(/undo: Point the app at the restored database/);
    expect(r.stderr).toMatch(/✓ undone/);
    expect(await hostVar()).toBeUndefined();
    expect(await instances()).toContain('prod-db-recovered');
  });

  it('a failing verify query stops before the switch (exit 1); the table name is quoted as an identifier', async () => {
    const env = derivedConfig(sb, (e) => {
      (e.rds as { recovery: Record<string, unknown> }).recovery.verifyTable = 'public.Users';
    });
    const r = await cli(['db', 'recover', '--snapshot', 'prod-db-snap-1', '--yes'], { env });
    expect(r.code).toBe(1);
    // "Users" quoted keeps its case, so it is not the users table: proof the name went through escapeIdentifier.
    expect(r.stderr).toMatch(/the verify query failed on the restored database: relation "public.Users" does not exist/);
    expect(await hostVar()).toBeUndefined();
  });

  it('refuses to reuse an instance restored from another snapshot', async () => {
    expect((await cli(['db', 'recover', '--snapshot', 'prod-db-snap-2', '--yes'])).code).toBe(0);
    const host = await hostVar();
    const r = await cli(['db', 'recover', '--snapshot', 'prod-db-snap-1', '--yes']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/rds\/prod-db-recovered already exists \(restored from prod-db-snap-2\)/);
    expect(await hostVar()).toBe(host);
  });

  it('no password from a URL appears in any output or journal line', () => {
    const everything = outputs.join('\n') + journalText(journal);
    expect(everything).not.toContain(db.pg.password);
  });
});
