import type { JournalReader } from '../../core/journal-reader.js';
import type { Step } from '../../core/procedure.js';
import { changeEnvStep, readEnvStep, type EnvApplied, type EnvChange } from '../shared/env-vars.js';
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

/** What the audit-mode `apply` step journals: the environment it replaced, the mode, and the audit variables' values before. */
export interface AuditApplied extends EnvApplied {
  mode: AuditMode;
  prior: AuditPrior;
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
export async function findLastAuditOn(journal: JournalReader, environment: string): Promise<AuditRecord | null> {
  // What the `apply` step journaled before it changed the variables (journal data is JSON: checked, not trusted).
  const isPrior = (v: unknown): v is AuditPrior => typeof v === 'object' && v !== null && !Array.isArray(v);
  const priorOf = (data: unknown): AuditPrior | undefined =>
    typeof data === 'object' && data !== null && 'prior' in data && isPrior(data.prior) ? data.prior : undefined;
  const run = await journal.lastEffective([...ON_PROCEDURES], {
    env: environment,
    steps: ['apply'],
    where: (r) => (r.procedure !== 'security audit-mode' || r.params.mode === 'on') && priorOf(r.effect('apply')) !== undefined,
    scan: SCAN_LIMIT,
  });
  const prior = run && priorOf(run.effect('apply'));
  return run && prior ? { fromRun: run.runId, prior } : null;
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

/** What `on` sets, or what `off` puts back (`recorded`: what the `recorded` step found in the journal). */
export function auditChange(mode: AuditMode, recorded: AuditRecord | undefined): EnvChange {
  if (mode === 'on') return { set: Object.entries(AUDIT_ON).map(([key, value]) => ({ key, value })), unset: [] };
  return auditOffChange(recorded);
}

function recordedStep<P>(): Step<P, AuditRecord> {
  return {
    id: 'recorded',
    title: 'Find what audit mode replaced (journal of the last `on` run)',
    why: 'Turning audit mode off puts back the values the last `on` found, rather than guessing; with no such run it sets LOG_LEVEL=INFO and removes AUDIT_MODE.',
    risk: 'read',
    equivalent: () => 'runbook history   # then: runbook show <run-id> of the last "security audit-mode on"',
    async run(ctx): Promise<AuditRecord> {
      const rec = await findLastAuditOn(ctx.journal, ctx.env.name);
      if (rec)
        ctx.log(
          `restoring what run ${rec.fromRun} found: ${Object.entries(rec.prior ?? {})
            .map(([k, v]) => `${k}=${v ?? '∅'}`)
            .join(' ')}`,
        );
      else ctx.log('no earlier `on` run in the journal: LOG_LEVEL=INFO, AUDIT_MODE removed');
      return rec ?? { fromRun: null, prior: null };
    },
  };
}

/** The audit-mode steps, in order (`steps`), and the one whose data a procedure's render reads. */
export interface AuditSteps<P> {
  /** `apply`: the variables changed, with what was there before. */
  apply: Step<P, AuditApplied>;
  steps: Step<P>[];
}

/**
 * The audit-mode steps: read the container's env, (off) find the recorded prior values, change the
 * two variables, wait for the rollout. A failed rollout puts the previous environment back.
 */
export function auditSteps<P extends AuditParams>(mode: (p: P) => AuditMode, opts: { canTurnOff: boolean } = { canTurnOff: true }): AuditSteps<P> {
  const current = readEnvStep<P>();
  const recorded = opts.canTurnOff ? { ...recordedStep<P>(), when: (p: P) => mode(p) === 'off' } : undefined;
  const apply = changeEnvStep<P>({
    title: 'Set LOG_LEVEL and AUDIT_MODE',
    why: 'Debug and audit logging record what happens next in detail; the change rolls the pods, which is why evidence is collected before it.',
    current,
    // `recorded` runs only for `off` (and not at all where audit mode cannot be turned off).
    change: (p, run) => auditChange(mode(p), recorded && run.find(recorded)),
    equivalent: (p, env) => {
      const set = mode(p) === 'on' ? 'LOG_LEVEL=DEBUG AUDIT_MODE=true' : 'LOG_LEVEL=<before> AUDIT_MODE-   # the values the last `on` run found';
      return `kubectl set env deployment/${deploymentName(env)} -n ${ns(env)} ${set}`;
    },
  });
  const applyWithPrior: Step<P, AuditApplied> = {
    ...apply,
    // The values before, kept in the journal: what a later `off` puts back.
    async run(ctx): Promise<AuditApplied> {
      const cur = ctx.get(current);
      const before = new Map((cur.env ?? []).map((e) => [e.name, e.value ?? null]));
      const prior: AuditPrior = Object.fromEntries(Object.keys(AUDIT_ON).map((k) => [k, before.get(k) ?? null]));
      const data = await apply.run(ctx);
      return { ...data, mode: mode(ctx.params), prior };
    },
  };
  return { apply: applyWithPrior, steps: [current, ...(recorded ? [recorded] : []), applyWithPrior, watchRolloutStep<P>()] };
}
