import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { journalDir, readRun } from '../../core/journal.js';
import type { Step, StepContext } from '../../core/procedure.js';
import { changeEnvStep, readEnvStep, type EnvChange, type EnvState } from '../shared/env-vars.js';
import { deploymentName, ns } from '../shared/pods.js';
import { watchRolloutStep } from '../shared/rollout.js';

export type AuditMode = 'on' | 'off';

/** The variables audit mode changes, and their values while it is on. */
export const AUDIT_ON: Record<string, string> = { LOG_LEVEL: 'DEBUG', AUDIT_MODE: 'true' };
/** Used by `off` when no earlier `on` run recorded what was there. */
const AUDIT_DEFAULT_OFF: EnvChange = { set: [{ key: 'LOG_LEVEL', value: 'INFO' }], unset: ['AUDIT_MODE'] };

/** Each audit variable's value before `on` (null: it was not set). */
export type AuditPrior = Record<string, string | null>;

export interface AuditRecord {
  fromRun: string | null;
  prior: AuditPrior | null;
}

interface AuditParams {
  container?: string;
}

/** Procedures whose journal holds an audit-mode `on` (the `apply` step's data carries `prior`). */
const ON_PROCEDURES = new Set(['security audit-mode', 'security breach']);
const SCAN_LIMIT = 500;

/**
 * The newest successful, uncompensated `on` in this environment that actually changed something,
 * read from the journal; null when there is none.
 */
export async function findLastAuditOn(dir: string, environment: string, excludeRun?: string): Promise<AuditRecord | null> {
  let names: string[];
  try {
    names = await readdir(join(dir, 'runs'));
  } catch {
    return null;
  }
  const ids = names
    .filter((n) => n.endsWith('.ndjson'))
    .map((n) => n.slice(0, -'.ndjson'.length))
    .filter((id) => id !== excludeRun)
    .sort()
    .reverse()
    .slice(0, SCAN_LIMIT);
  for (const id of ids) {
    const events = await readRun(dir, id).catch(() => []);
    const start = events.find((e) => e.type === 'run-start');
    if (!start || start.environment !== environment || start.dryRun !== 'off' || !ON_PROCEDURES.has(String(start.procedure))) continue;
    if (start.procedure === 'security audit-mode' && (start.params as { mode?: string } | undefined)?.mode !== 'on') continue;
    const applied = events.find((e) => e.type === 'step-end' && e.step === 'apply' && e.status === 'succeeded');
    const undone = events.some((e) => e.type === 'compensation' && e.step === 'apply' && e.status === 'succeeded');
    const prior = (applied?.data as { prior?: AuditPrior } | undefined)?.prior;
    if (applied && !undone && prior) return { fromRun: id, prior };
  }
  return null;
}

/** What `off` sets: the recorded prior values (unset where there was none), else LOG_LEVEL=INFO without AUDIT_MODE. */
export function auditOffChange(rec: AuditRecord | null | undefined): EnvChange {
  if (!rec?.prior) return AUDIT_DEFAULT_OFF;
  const change: EnvChange = { set: [], unset: [] };
  for (const key of Object.keys(AUDIT_ON)) {
    const v = rec.prior[key];
    if (v === null || v === undefined) change.unset.push(key);
    else change.set.push({ key, value: v });
  }
  return change;
}

export function auditChange(mode: AuditMode, state: Record<string, unknown>): EnvChange {
  if (mode === 'on') return { set: Object.entries(AUDIT_ON).map(([key, value]) => ({ key, value })), unset: [] };
  return auditOffChange(state.recorded as AuditRecord | undefined);
}

function recordedStep<P>(): Step<P> {
  return {
    id: 'recorded',
    title: 'Find what audit mode replaced (journal of the last `on` run)',
    why: 'Turning audit mode off puts back the values the last `on` found, rather than guessing; with no such run it sets LOG_LEVEL=INFO and removes AUDIT_MODE.',
    risk: 'read',
    equivalent: () => 'runbook history   # then: runbook show <run-id> of the last "security audit-mode on"',
    async run(ctx: StepContext<P>): Promise<AuditRecord> {
      const rec = await findLastAuditOn(journalDir(ctx.io.env, ctx.env.journalDir), ctx.env.name, ctx.runId);
      if (rec) ctx.log(`restoring what run ${rec.fromRun} found: ${Object.entries(rec.prior ?? {}).map(([k, v]) => `${k}=${v ?? '∅'}`).join(' ')}`);
      else ctx.log('no earlier `on` run in the journal: LOG_LEVEL=INFO, AUDIT_MODE removed');
      return rec ?? { fromRun: null, prior: null };
    },
  };
}

/**
 * The audit-mode steps: read the container's env, (off) find the recorded prior values, change the
 * two variables, wait for the rollout. A failed rollout puts the previous environment back.
 */
export function auditSteps<P extends AuditParams>(mode: (p: P) => AuditMode, opts: { canTurnOff: boolean } = { canTurnOff: true }): Step<P>[] {
  const apply = changeEnvStep<P>({
    title: 'Set LOG_LEVEL and AUDIT_MODE',
    why: 'Debug and audit logging record what happens next in detail; the change rolls the pods, which is why evidence is collected before it.',
    change: (p, state) => auditChange(mode(p), state),
    equivalent: (p, env) => {
      const set = mode(p) === 'on' ? 'LOG_LEVEL=DEBUG AUDIT_MODE=true' : 'LOG_LEVEL=<before> AUDIT_MODE-   # the values the last `on` run found';
      return `kubectl set env deployment/${deploymentName(env)} -n ${ns(env)} ${set}`;
    },
  });
  const applyWithPrior: Step<P> = {
    ...apply,
    // The values before, kept in the journal: what a later `off` puts back.
    async run(ctx) {
      const cur = ctx.state.current as EnvState;
      const before = new Map((cur.env ?? []).map((e) => [e.name, e.value ?? null]));
      const prior: AuditPrior = Object.fromEntries(Object.keys(AUDIT_ON).map((k) => [k, before.get(k) ?? null]));
      const data = (await apply.run(ctx)) as Record<string, unknown>;
      return { ...data, mode: mode(ctx.params), prior };
    },
  };
  const recorded: Step<P>[] = opts.canTurnOff ? [{ ...recordedStep<P>(), when: (p: P) => mode(p) === 'off' }] : [];
  return [readEnvStep<P>(), ...recorded, applyWithPrior, watchRolloutStep<P>()];
}
