import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import type pg from 'pg';
import { runCli } from '../../support/cli.js';
import { startSandbox, type Sandbox } from '../../support/sandbox/index.js';
import type { DatabasePart } from '../../support/sandbox/database-part.js';
import type { CachePart } from '../../support/sandbox/cache-part.js';
import type { Pod } from '../../support/cluster/index.js';

let sb: Sandbox;
let db: DatabasePart;
let cache: CachePart;

function cli(argv: string[], extra: Parameters<typeof runCli>[1] = {}) {
  return runCli(argv, { ...extra, env: { ...sb.env, ...(extra.env ?? {}) } });
}

function stepData(stdout: string): Record<string, any> {
  return Object.fromEntries(JSON.parse(stdout).steps.map((s: { id: string; data: unknown }) => [s.id, s.data]));
}

beforeAll(async () => {
  sb = await startSandbox({ parts: ['kubernetes', 'database', 'cache'] });
  db = sb.parts.find((p) => p.name === 'database') as DatabasePart;
  cache = sb.parts.find((p) => p.name === 'cache') as CachePart;
}, 120_000);
afterAll(async () => {
  await sb?.stop();
});
beforeEach(async () => {
  sb.kube.faults.clear();
  await sb.kube.waitForRollout('app', { timeoutMs: 30_000 });
});

describe('incident latency against real PostgreSQL (primary + replica), Redis and the Kubernetes API server', () => {
  it('finds the slow statement, the root blocker, hot pods and a cold cache, and maps each to its command', async () => {
    const admin = await db.connect('postgres', 'latency-test');
    const holder = await db.connect('postgres', 'latency-holder');
    const waiter = await db.connect('postgres', 'latency-waiter');
    let waiting: Promise<unknown> | undefined;
    try {
      await admin.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
      await admin.query('SELECT pg_stat_statements_reset()');
      for (let i = 0; i < 3; i++) await admin.query('SELECT pg_sleep(0.25), $1::int AS latency_probe', [i]);
      await admin.query('CREATE TABLE IF NOT EXISTS latency_lock (id int)');
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE latency_lock IN ACCESS EXCLUSIVE MODE');
      waiting = waiter.query('SELECT count(*) FROM latency_lock').catch(() => undefined);
      await new Promise((r) => setTimeout(r, 1200));
      // Hot pods: 450m of a 500m limit each.
      const pods = await sb.kube.list<Pod>('pods', { namespace: sb.namespace, labelSelector: 'app=api' });
      for (const p of pods) await sb.kube.setPodUsage(p.metadata.name, { api: { cpu: '450m', memory: '200Mi' } });
      // A cold cache: misses outnumber hits.
      await cache.commands([['CONFIG', 'RESETSTAT'], ['GET', 'user:1'], ...Array.from({ length: 9 }, (_, i) => ['GET', `missing:${i}`])]);

      const r = await cli(['incident', 'latency', '--min-mean-ms', '200', '--older-than', '1s', '--json']);
      expect(r.code, r.stderr).toBe(0);
      const d = stepData(r.stdout);
      expect(d.slow.queries.some((q: { query: string }) => q.query.includes('latency_probe'))).toBe(true);
      expect(d.locks.blocked.some((b: { application: string }) => b.application === 'latency-waiter')).toBe(true);
      expect(d.locks.blocking.find((b: { application: string }) => b.application === 'latency-holder')).toMatchObject({ root: true });
      expect(d.primary.standbys.length).toBe(1);
      expect(d.replicas.replicas[0]).toMatchObject({ name: 'replica', ok: true });
      expect(d.cpu.pods.length).toBe(3);
      expect(d.cpu.pods[0]).toMatchObject({ cpu: 0.45, limit: 0.5 });
      expect(d.cache.hitRate).toBeCloseTo(0.1, 5);
      const s = d.suggest.suggestions.join('\n');
      expect(s).toMatch(/pods use 90% of their CPU on average: runbook app scale --replicas 5/);
      expect(s).toMatch(/block 1 other\(s\): runbook db kill-long-running --older-than 1s/);
      expect(s).toMatch(/slowest statement \d+ ms on average/);
      expect(s).toMatch(/cache hit rate 10\.0% is below 80\.0%.*runbook cache flush --pattern 'slow:\*'/);
      // Reading changed nothing: the blocker is still there, the waiter still waits.
      const [{ n }] = (
        await admin.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'latency-waiter' AND wait_event_type = 'Lock'`)
      ).rows;
      expect(n).toBe(1);
    } finally {
      await holder.query('ROLLBACK').catch(() => undefined);
      await waiting;
      for (const c of [admin, holder, waiter] as pg.Client[]) await c.end().catch(() => undefined);
    }
  });

  it('nothing wrong → nothing suggested; --dry-run reads and changes nothing', async () => {
    for (const p of await sb.kube.list<Pod>('pods', { namespace: sb.namespace, labelSelector: 'app=api' }))
      await sb.kube.setPodUsage(p.metadata.name, { api: { cpu: '50m', memory: '100Mi' } });
    await cache.commands([
      ['CONFIG', 'RESETSTAT'],
      ['GET', 'user:1'],
      ['GET', 'user:2'],
    ]);
    const before = await sb.fingerprint();
    const r = await cli(['incident', 'latency', '--min-mean-ms', '60000', '--dry-run', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).status).toBe('planned');
    expect(stepData(r.stdout).suggest.suggestions).toEqual([]);
    expect(await sb.fingerprint()).toEqual(before);
    const t = await cli(['incident', 'latency', '--min-mean-ms', '60000']);
    expect(t.code, t.stderr).toBe(0);
    expect(t.stdout).toMatch(/nothing stands out/);
  });

  it('one unreachable service does not hide the others: a dead replica and no metrics API are reported, the rest still runs', async () => {
    const cfg = parse(readFileSync(sb.configPath, 'utf8'));
    cfg.environments.sandbox.postgres.replicas = [{ name: 'gone', url: { env: 'GONE_URL' } }];
    const path = join(sb.dir, 'latency-broken.yaml');
    writeFileSync(path, stringify(cfg));
    sb.kube.faults.add({
      method: 'GET',
      path: /metrics\.k8s\.io/,
      times: Infinity,
      status: 503,
      message: 'the server is currently unable to handle the request',
    });
    const r = await cli(['incident', 'latency', '--json'], {
      env: { RUNBOOK_CONFIG: path, GONE_URL: 'postgres://postgres@127.0.0.1:9/postgres?connect_timeout=1' },
    });
    expect(r.code, r.stderr).toBe(0);
    const d = stepData(r.stdout);
    expect(d.replicas.replicas[0]).toMatchObject({ name: 'gone', ok: false });
    expect(d.cpu).toMatchObject({ available: false });
    expect(r.stderr).toMatch(/pod metrics unavailable/);
    expect(d.slow.queries).toBeDefined();
    expect(d.suggest.suggestions.join('\n')).toMatch(/replica gone is not serving/);
  });

  it('bad input exits 2 before anything is contacted', async () => {
    const seen = sb.kube.requests.length;
    for (const args of [
      ['--min-hit-rate', '120'],
      ['--older-than', 'forever'],
      ['--limit', '0'],
    ]) {
      const r = await cli(['incident', 'latency', ...args]);
      expect(r.code, args.join(' ')).toBe(2);
    }
    expect(sb.kube.requests.length).toBe(seen);
  });
});
