import type { CompensationEvent, JournalEvent, LockEvent, RunEndEvent, RunStartEvent } from './journal.js';
import type { Procedure } from './procedure.js';
import { REDACTED } from './redact.js';

/** What an incomplete run (no end record: killed or crashed) left behind, read from its journal. */
export interface LeftState {
  /** Steps that finished and were not put back: their changes stand. */
  done: Array<{ step: string; title: string; changes: boolean; undoable: boolean }>;
  /** The step that started and never recorded an end: its change may or may not have happened. */
  inProgress: { step: string; title: string; startedAt: string } | null;
  /** Whether the run had begun putting things back when it stopped. */
  compensating: boolean;
  compensations: Array<{ step: string; title: string; status: 'succeeded' | 'failed' | 'skipped' | 'not run'; error?: string; byHand?: string }>;
  /** Leases the run took: held until they expire (a resume by the same operator takes them over). */
  leases: string[];
  /** Why `runbook resume` cannot finish this run, or null when it can. */
  resumeBlocker: { message: string; hint?: string } | null;
  byHand: string[];
}

/** Why a resume of this run cannot work, or null. The same rules `runbook resume` enforces. */
export function resumeBlocker(runId: string, events: readonly JournalEvent[], known: boolean): { message: string; hint?: string } | null {
  const start = events.find((e): e is RunStartEvent => e.type === 'run-start');
  if (!start) return { message: `run ${runId} has no start record` };
  const end = [...events].reverse().find((e): e is RunEndEvent => e.type === 'run-end');
  if (end && end.status === 'succeeded') return { message: `run ${runId} already succeeded; nothing to resume` };
  if (start.dryRun && start.dryRun !== 'off') return { message: `run ${runId} was a dry run; run the procedure again instead` };
  if (JSON.stringify(start.params ?? {}).includes(REDACTED)) {
    return {
      message: `run ${runId} was given secret values, which the journal never keeps`,
      hint: `run the command again instead: runbook ${String(start.procedure)} …`,
    };
  }
  if (!known) return { message: `run ${runId} is of an unknown procedure "${String(start.procedure)}"` };
  return null;
}

export function leftState(runId: string, events: readonly JournalEvent[], proc: Procedure<never> | undefined): LeftState {
  const titles = new Map<string, string>();
  for (const s of proc?.steps ?? []) titles.set(s.id, s.title);
  const risks = new Map<string, string>();
  for (const e of events) {
    if (e.type !== 'step-start') continue;
    if (typeof e.title === 'string') titles.set(String(e.step), e.title);
    // The first start of a step names its risk (as before: a resumed step's later start does not).
    if (!risks.has(String(e.step))) risks.set(String(e.step), String(e.risk ?? ''));
  }
  const title = (id: string) => titles.get(id) ?? id;
  const undoable = (id: string) => Boolean(proc?.steps.find((s) => s.id === id)?.undo);
  const declaredRisk = (id: string) => {
    const r = proc?.steps.find((s) => s.id === id)?.risk;
    return typeof r === 'string' ? r : '';
  };

  const ended = new Set<string>();
  const succeeded: Array<{ step: string; risk: string; changes: boolean }> = [];
  let inProgress: LeftState['inProgress'] = null;
  let failedStep = false;
  for (const e of events) {
    if (e.type === 'step-start') {
      const step = String(e.step);
      inProgress = { step, title: title(step), startedAt: e.t };
      ended.delete(step);
    } else if (e.type === 'step-end') {
      const step = String(e.step);
      ended.add(step);
      if (inProgress?.step === step) inProgress = null;
      if (e.status === 'failed') failedStep = true;
      // A step a resume carried over (done in the run it resumed) has no start here: its risk is the procedure's.
      if (e.status === 'succeeded')
        succeeded.push({ step, risk: risks.get(step) ?? declaredRisk(step), changes: Array.isArray(e.changes) && e.changes.length > 0 });
    }
  }
  const compEvents = events.filter((e): e is CompensationEvent => e.type === 'compensation');
  const compensating = compEvents.length > 0 || failedStep || events.some((e) => e.type === 'gate' && e.decision === 'declined');
  const compByStep = new Map(compEvents.map((e) => [String(e.step), e]));
  const compensations: LeftState['compensations'] = [];
  // Compensation runs newest first: list it that way, with the ones the process never reached.
  for (const s of [...succeeded].reverse()) {
    const c = compByStep.get(s.step);
    if (c)
      compensations.push({
        step: s.step,
        title: title(s.step),
        status: c.status,
        error: typeof c.error === 'string' ? c.error : undefined,
        byHand: typeof c.byHand === 'string' ? c.byHand : undefined,
      });
    else if (undoable(s.step)) compensations.push({ step: s.step, title: title(s.step), status: 'not run' });
  }
  const putBack = new Set(compensations.filter((c) => c.status === 'succeeded').map((c) => c.step));
  const done = succeeded
    .filter((s) => !putBack.has(s.step))
    .map((s) => ({ step: s.step, title: title(s.step), changes: s.changes || (s.risk !== '' && s.risk !== 'read'), undoable: undoable(s.step) }));
  const leases = events
    .filter((e): e is LockEvent => e.type === 'lock' && typeof e.lease === 'string')
    .map((e) => `${e.lease}${e.namespace ? ` (namespace ${String(e.namespace)})` : ''}`);
  const byHand = compensations.flatMap((c) => (c.status !== 'succeeded' && c.byHand ? [c.byHand] : []));
  return { done, inProgress, compensating, compensations, leases, resumeBlocker: resumeBlocker(runId, events, proc !== undefined), byHand };
}

/** The lines `runbook show` prints for an incomplete run: the state it left and what to do next. */
export function describeLeft(runId: string, procedure: string, s: LeftState, dryRun: boolean): string[] {
  const lines = ['', 'This run never finished (no end record: the process was killed or crashed). What it left:'];
  if (dryRun) {
    lines.push('  a dry run: nothing was changed');
    lines.push('Next: run the command again.');
    return lines;
  }
  if (s.done.length) for (const d of s.done) lines.push(`  done:         ${d.title}${d.changes ? ' (its change stands)' : ''}`);
  else lines.push('  done:         no step finished');
  if (s.inProgress)
    lines.push(`  in progress:  ${s.inProgress.title} (started ${s.inProgress.startedAt}, never recorded as finished: it may or may not have taken effect)`);
  if (s.compensating) {
    for (const c of s.compensations) {
      const what =
        c.status === 'succeeded'
          ? 'put back'
          : c.status === 'failed'
            ? `could not be put back${c.error ? ` (${c.error})` : ''}`
            : c.status === 'skipped'
              ? 'putting back was skipped'
              : 'not put back: the process stopped before it got there';
      lines.push(`  undo:         ${c.title} — ${what}`);
    }
  } else if (s.compensations.length) {
    lines.push(`  undo:         none ran (the run stopped before putting anything back): ${s.compensations.map((c) => c.title).join('; ')}`);
  }
  for (const l of s.leases) lines.push(`  lock:         lease ${l} may still be held until it expires (your resume takes it over)`);
  if (s.resumeBlocker === null) {
    lines.push(`Next: runbook resume ${runId}   (re-checks each done step live before skipping it, then carries on)`);
    if (s.byHand.length) lines.push('  or by hand:', ...s.byHand.map((h) => `    ${h}`));
  } else {
    lines.push(`Next: this run cannot be resumed: ${s.resumeBlocker.message}${s.resumeBlocker.hint ? ` (${s.resumeBlocker.hint})` : ''}`);
    if (s.byHand.length) lines.push('  by hand:', ...s.byHand.map((h) => `    ${h}`));
    else if (s.done.some((d) => d.changes)) lines.push(`  check the changes above by hand; runbook explain ${procedure} shows the equivalent commands`);
  }
  return lines;
}
