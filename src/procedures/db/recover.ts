import { shellQuote } from '../../core/shell.js';
import { lockTargets } from '../../core/lock.js';
import { escapeIdentifier } from '../../clients/postgres.js';
import { RESTORED_FROM_TAG, type RdsSnapshot } from '../../clients/rds.js';
import type { ResolvedEnvironment } from '../../core/config.js';
import { describeRef } from '../../core/config.js';
import { formatDuration, parseDuration } from '../../core/duration.js';
import { StepError, UsageError, errorMessage } from '../../core/errors.js';
import { defineProcedure, stepFor, type StepContext } from '../../core/procedure.js';
import { table } from '../../core/table.js';
import { restoreContainer } from '../shared/container-patch.js';
import { rdsDatabaseRef, rdsOf, withPg } from './rds.js';
import { envPatch, readEnvStep, shown } from '../shared/env-vars.js';
import { deploymentName, ns } from '../shared/pods.js';
import { watchRolloutStep } from '../shared/rollout.js';

export interface DbRecoverParams {
  snapshot?: string;
  container?: string;
}

/** RDS snapshot identifiers, manual or automated (`rds:` prefix). */
const SNAPSHOT_ID = /^(rds:)?[A-Za-z][A-Za-z0-9-]{0,254}$/;

interface Chosen {
  snapshot: RdsSnapshot;
  available: number;
}

interface Restored {
  instance: string;
  endpoint: { address: string; port: number };
  seen: string[];
}

function target(env: ResolvedEnvironment): string {
  const r = rdsOf(env);
  return r.recovery.instance ?? `${r.instance}-recovered`;
}

/** The verify query from config, or `SELECT count(*)` of the configured table (quoted by pg). */
async function verifySql(env: ResolvedEnvironment): Promise<string> {
  const r = rdsOf(env).recovery;
  if (r.verifyQuery) return r.verifyQuery;
  const parts = await Promise.all(r.verifyTable.split('.').map((p) => escapeIdentifier(p)));
  return `SELECT count(*) AS count FROM ${parts.join('.')}`;
}

function verifySqlText(env: ResolvedEnvironment): string {
  const r = rdsOf(env).recovery;
  return r.verifyQuery ?? `SELECT count(*) FROM ${r.verifyTable}`;
}

/** The restored database: rds.recovery.url, else the instance's URL with the restored endpoint's host and port. */
function recoveredUrl(ctx: StepContext<DbRecoverParams>, endpoint: { address: string; port: number }): string {
  const r = rdsOf(ctx.env);
  if (r.recovery.url) return ctx.clients.secret(r.recovery.url, `environments.${ctx.env.name}.rds.recovery.url`);
  const base = r.url ?? ctx.env.config.postgres?.url;
  if (!base) throw new UsageError(`no way to connect to the restored database`, `set environments.${ctx.env.name}.rds.recovery.url, or rds.url / postgres.url`);
  const u = new URL(ctx.clients.secret(base, `environments.${ctx.env.name}.rds.url`));
  u.hostname = endpoint.address;
  u.port = String(endpoint.port);
  return u.toString();
}

function hostVariable(env: ResolvedEnvironment): string {
  return rdsOf(env).recovery.hostVariable;
}

function snapshotTable(snapshots: RdsSnapshot[]): string {
  return table(
    ['SNAPSHOT', 'CREATED', 'TYPE', 'STATUS', 'ENGINE', 'GB'],
    snapshots.map((s) => [s.id, s.createdAt ?? '', s.type ?? '', s.status ?? '', s.engine ?? '', s.allocatedGb ?? '']),
  );
}

const step = stepFor<DbRecoverParams>();

const snapshots = step({
  id: 'snapshots',
  title: 'List the snapshots and choose one',
  why: 'The recovery point: the newest snapshot is not always the right one (it may contain the damage).',
  risk: 'read',
  equivalent: (_p, env) =>
    `aws rds describe-db-snapshots --db-instance-identifier ${env.config.rds?.instance} --query 'DBSnapshots[*].[DBSnapshotIdentifier,SnapshotCreateTime,Status]' --output table`,
  async run(ctx): Promise<Chosen> {
    const rds = await ctx.clients.rds();
    const r = rdsOf(ctx.env);
    const snapshots = await rds.listSnapshots(r.instance, ctx.signal);
    let chosen: RdsSnapshot | undefined;
    if (ctx.params.snapshot) {
      chosen = snapshots.find((s) => s.id === ctx.params.snapshot) ?? (await rds.findSnapshot(ctx.params.snapshot, ctx.signal)) ?? undefined;
      if (!chosen) {
        throw new UsageError(
          `unknown snapshot "${ctx.params.snapshot}"${snapshots.length ? '' : ` (${r.instance} has no snapshots)`}`,
          snapshots.length
            ? `snapshots of ${r.instance}: ${snapshots
                .slice(0, 10)
                .map((s) => s.id)
                .join(', ')}`
            : 'aws rds describe-db-snapshots lists them',
        );
      }
    } else {
      const usable = snapshots.filter((s) => s.status === undefined || s.status === 'available');
      if (!usable.length) throw new StepError(`${r.instance} has no available snapshot`, 'aws rds describe-db-snapshots --snapshot-type manual|automated');
      for (const line of snapshotTable(usable).trimEnd().split('\n')) ctx.log(line);
      if (!ctx.interactive) {
        throw new UsageError(
          'choose the snapshot to restore with --snapshot <id>; there is no terminal to ask on',
          `the newest is ${usable[0].id}: runbook db recover --snapshot ${usable[0].id}`,
        );
      }
      const id = await ctx.prompter.select(
        `Snapshot of ${r.instance} to restore into ${target(ctx.env)}:`,
        usable.map((s) => ({ name: `${s.id}  ${s.createdAt ?? ''}  ${s.type ?? ''}`.trimEnd(), value: s.id })),
        ctx.signal,
      );
      chosen = usable.find((s) => s.id === id);
      if (!chosen) throw new UsageError(`unknown snapshot "${id}"`);
    }
    if (chosen.status && chosen.status !== 'available') throw new StepError(`snapshot ${chosen.id} is "${chosen.status}", not available`);
    ctx.log(`chosen: ${chosen.id}${chosen.createdAt ? ` (${chosen.createdAt})` : ''}`);
    return { snapshot: chosen, available: snapshots.length };
  },
});

const restore = step({
  id: 'restore',
  title: 'Restore the snapshot into a new instance',
  why: 'A new instance: the damaged one stays untouched for comparison. It is not deleted on a later failure — a restore takes long and is worth keeping; delete it by hand when done.',
  risk: 'write',
  equivalent: (p, env) =>
    `aws rds restore-db-instance-from-db-snapshot --db-instance-identifier ${target(env)} --db-snapshot-identifier ${p.snapshot ?? '<snapshot-id>'}`,
  async plan(ctx) {
    const chosen = ctx.get(snapshots).snapshot;
    const rds = await ctx.clients.rds();
    const existing = await rds.describeInstance(target(ctx.env), ctx.signal);
    if (existing) {
      if (existing.tags[RESTORED_FROM_TAG] === chosen.id) {
        ctx.log(`rds/${existing.id} already restored from ${chosen.id} (${existing.status}); using it`);
        return [];
      }
      throw new StepError(
        `rds/${existing.id} already exists${existing.tags[RESTORED_FROM_TAG] ? ` (restored from ${existing.tags[RESTORED_FROM_TAG]})` : ''}`,
        `delete it (aws rds delete-db-instance --db-instance-identifier ${existing.id}) or set environments.${ctx.env.name}.rds.recovery.instance to another name`,
      );
    }
    return [{ action: 'restore', target: `rds/${target(ctx.env)}`, before: '∅', after: `from snapshot ${chosen.id}` }];
  },
  async run(ctx) {
    const chosen = ctx.get(snapshots).snapshot;
    const rds = await ctx.clients.rds();
    const i = await rds.restoreFromSnapshot(chosen.id, target(ctx.env));
    return { instance: i.id, snapshot: chosen.id, status: i.status };
  },
  postcondition: {
    describe: 'the restored instance exists, restored from the snapshot, and is not being deleted',
    // Restoring again creates the instance anew from the same snapshot (the damaged one stays untouched),
    // and refuses if another instance took the name: safe. Its wait, and what reads its endpoint, re-check too.
    async check(ctx, data) {
      const i = await (await ctx.clients.rds()).describeInstance(data.instance, ctx.signal);
      if (!i) return { holds: false, found: `rds/${data.instance} does not exist` };
      if (i.tags[RESTORED_FROM_TAG] !== data.snapshot)
        return { holds: false, found: `rds/${data.instance} was not restored from ${data.snapshot} (${i.tags[RESTORED_FROM_TAG] ?? 'untagged'})` };
      if (/^delet/.test(i.status)) return { holds: false, found: `rds/${data.instance} is "${i.status}"` };
      return { holds: true };
    },
  },
});

const waitAvailable = step({
  id: 'wait-available',
  title: 'Wait until the restored instance is available',
  why: 'A restore takes minutes to hours; the wait has its own limit (rds.waitTimeout, --timeout overall).',
  risk: 'read',
  followsWrite: true,
  equivalent: (_p, env) => `aws rds wait db-instance-available --db-instance-identifier ${target(env)}`,
  plan: async (ctx) => [{ action: 'poll DescribeDBInstances for', target: `rds/${target(ctx.env)}`, after: `available within ${rdsOf(ctx.env).waitTimeout}` }],
  async run(ctx): Promise<Restored> {
    const rds = await ctx.clients.rds();
    const r = rdsOf(ctx.env);
    const out = await rds.waitAvailable(target(ctx.env), {
      timeoutMs: parseDuration(r.waitTimeout),
      intervalMs: parseDuration(r.pollInterval),
      signal: ctx.signal,
      onStatus: (s) => ctx.log(`rds/${target(ctx.env)}: ${s}`),
    });
    if (!out.endpoint) throw new StepError(`rds/${target(ctx.env)} is available but has no endpoint`);
    ctx.log(`endpoint ${out.endpoint.address}:${out.endpoint.port} after ${formatDuration(out.waitedMs)}`);
    return { instance: target(ctx.env), endpoint: out.endpoint, seen: out.seen };
  },
  postcondition: {
    describe: 'the restored instance is available at the endpoint recorded',
    // A wait: waiting again is safe, and the endpoint the app is pointed at must be the one there now.
    async check(ctx, data) {
      const i = await (await ctx.clients.rds()).describeInstance(data.instance, ctx.signal);
      if (!i) return { holds: false, found: `rds/${data.instance} does not exist` };
      if (i.status !== 'available') return { holds: false, found: `rds/${data.instance} is "${i.status}"` };
      if (i.endpoint?.address !== data.endpoint.address || i.endpoint.port !== data.endpoint.port)
        return {
          holds: false,
          found: `rds/${data.instance} answers at ${i.endpoint ? `${i.endpoint.address}:${i.endpoint.port}` : 'no endpoint'}, not ${data.endpoint.address}:${data.endpoint.port}`,
        };
      return { holds: true };
    },
  },
});

const verify = step({
  id: 'verify',
  title: 'Verify the restored data',
  why: 'A read-only query on the restored database, so you see what you are about to switch to before the gate.',
  risk: 'read',
  followsWrite: true,
  equivalent: (_p, env) =>
    `psql "${env.config.rds?.recovery.url ? describeRef(env.config.rds.recovery.url) : `<${rdsDatabaseRef(env)} with the restored endpoint>`}" -c "${verifySqlText(env)}"`,
  plan: async (ctx) => [{ action: 'run read-only', target: `the restored database on rds/${target(ctx.env)}`, after: verifySqlText(ctx.env) }],
  async run(ctx) {
    const restored = ctx.get(waitAvailable);
    const url = recoveredUrl(ctx, restored.endpoint);
    const sql = await verifySql(ctx.env);
    return withPg(
      ctx,
      async (c) => {
        await c.query('BEGIN TRANSACTION READ ONLY');
        try {
          const rows = await c.query(sql);
          if (!rows.length) throw new StepError(`the verify query returned no row: ${verifySqlText(ctx.env)}`, 'check rds.recovery.verifyQuery / verifyTable');
          const first = rows[0];
          ctx.log(`verify: ${verifySqlText(ctx.env)} → ${JSON.stringify(first)}`);
          return { target: c.target, query: verifySqlText(ctx.env), rows: rows.length, first };
        } catch (err) {
          if (err instanceof StepError) throw err;
          throw new StepError(`the verify query failed on the restored database: ${errorMessage(err)}`, 'check rds.recovery.verifyQuery / verifyTable');
        } finally {
          await c.query('ROLLBACK').catch(() => undefined);
        }
      },
      url,
    );
  },
});

const current = readEnvStep<DbRecoverParams>();

const switchHost = step({
  id: 'switch',
  title: 'Point the app at the restored database',
  why: 'Sets the host variable to the restored endpoint (a rolling update); gated, because the app then reads and writes the restored data.',
  risk: 'destructive',
  equivalent: (_p, env) =>
    `kubectl set env deployment/${env.config.kubernetes?.deployment} ${hostVariable(env)}=<restored endpoint> -n ${env.config.kubernetes?.namespace}`,
  async plan(ctx) {
    const cur = ctx.get(current);
    const restored = ctx.find(waitAvailable);
    const key = hostVariable(ctx.env);
    const before = (cur.env ?? []).find((e) => e.name === key)?.value;
    const after = restored?.endpoint.address;
    if (after !== undefined && before === after) return [];
    const verified = ctx.find(verify);
    if (verified) ctx.log(`verify result: ${JSON.stringify(verified.first)}`);
    if (after !== undefined) {
      const kube = await ctx.clients.kube();
      await kube.patchDeployment(deploymentName(ctx.env), envPatch(cur.container, { set: [{ key, value: after }], unset: [] }, cur.env), 'strategic', {
        dryRun: true,
      });
    }
    return [
      {
        action: 'set',
        target: `${key} in ${cur.container}`,
        before: shown(key, before),
        after: after === undefined ? '<restored endpoint>' : shown(key, after),
        validated: after !== undefined,
      },
    ];
  },
  async run(ctx) {
    const cur = ctx.get(current);
    const restored = ctx.get(waitAvailable);
    const kube = await ctx.clients.kube();
    await kube.patchDeployment(
      deploymentName(ctx.env),
      envPatch(cur.container, { set: [{ key: hostVariable(ctx.env), value: restored.endpoint.address }], unset: [] }, cur.env),
      'strategic',
    );
    return { container: cur.container, index: cur.index, previous: cur.env, host: restored.endpoint.address };
  },
  async undo(ctx, d) {
    await restoreContainer(await ctx.clients.kube(), deploymentName(ctx.env), d.index, d.container, 'env', d.previous);
  },
  undoByHand: (ctx, d) => {
    const key = hostVariable(ctx.env);
    const prev = (d.previous ?? []).find((e) => e.name === key)?.value;
    return `kubectl set env deployment/${deploymentName(ctx.env)} ${prev === undefined ? `${key}-` : shellQuote(`${key}=${prev}`)} -n ${ns(ctx.env)}`;
  },
  postcondition: {
    describe: 'the app points at the restored database',
    // Setting the host again is the run's own (gated) request, from the environment read again and the
    // endpoint re-checked: safe.
    async check(ctx, d) {
      const dep = await (await ctx.clients.kube()).getDeployment(deploymentName(ctx.env));
      const key = hostVariable(ctx.env);
      const value = dep.spec?.template.spec?.containers.find((c) => c.name === d.container)?.env?.find((e) => e.name === key)?.value;
      return value === d.host
        ? { holds: true }
        : { holds: false, found: `${key} in container ${d.container} is ${shown(key, value)}, not ${shown(key, d.host)}` };
    },
  },
});

const rollout = watchRolloutStep<DbRecoverParams>();

export default defineProcedure<DbRecoverParams>({
  name: 'db recover',
  summary: 'Restore a snapshot into a new instance, verify it, then point the app at it',
  seedFixes: [
    'The seed reads the snapshot id with `read -p`, so it cannot run unattended and accepts anything; this lists the snapshots, lets you choose (or takes --snapshot), and checks the id exists before any change.',
    "The seed's $SNAPSHOT_ID is unquoted and unchecked; ids are validated and passed to the API as values.",
    'The seed verifies with a bare psql that needs a password prompt; the verify query runs read-only, with the credentials of the environment.',
    'The seed switches the app without asking; switching is gated (you see the verify result first), and a failed rollout puts the previous DATABASE_HOST back.',
    'Re-running (or resuming) after an interruption recognises the instance it already restored (tag runbook/restored-from-snapshot) instead of failing.',
  ],
  params: [
    { name: 'snapshot', flag: '--snapshot <id>', description: 'the DB snapshot to restore (default: choose from the list)', type: 'string' },
    { name: 'container', flag: '--container <name>', description: 'the container whose DATABASE_HOST is set (default: the only one)', type: 'k8sName' },
  ],
  examples: [['--snapshot', 'prod-db-snap-1'], []],
  requires: ['kubernetes', 'aws', 'rds'],
  secrets: ['rdsRecovery'],
  kube: ['getDeployment', 'patchDeployment', 'watchDeployment', 'listPods', 'listReplicaSets'],
  // The restored instance, and the deployment it points the app at.
  locks: (_p, env) => [lockTargets.rds(env, target(env)), lockTargets.deployment(env)],
  validate(p) {
    if (p.snapshot !== undefined && !SNAPSHOT_ID.test(p.snapshot)) {
      throw new UsageError(
        `invalid --snapshot "${p.snapshot}"`,
        'a DB snapshot identifier: a letter, then letters, digits and hyphens (automated ones start with rds:)',
      );
    }
  },
  steps: [snapshots, restore, waitAvailable, verify, current, switchHost, rollout],
  render(run) {
    const chosen = run.find(snapshots);
    const restored = run.find(waitAvailable);
    const verified = run.find(verify);
    const sw = run.find(switchHost);
    const out: string[] = [];
    if (chosen) out.push(`snapshot ${chosen.snapshot.id}${chosen.snapshot.createdAt ? ` (${chosen.snapshot.createdAt})` : ''}`);
    if (restored) out.push(`restored into rds/${restored.instance} at ${restored.endpoint.address}:${restored.endpoint.port}`);
    if (verified) out.push(`verify: ${verified.query} → ${JSON.stringify(verified.first)}`);
    if (sw) out.push(`the app now uses ${sw.host}`);
    return out.join('\n') + (out.length ? '\n' : '');
  },
});
