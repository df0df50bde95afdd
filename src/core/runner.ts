import { AUDITED_METHODS, describePermission, LOCK_METHODS, permissionsOf, type KubeMethod } from './kube-permissions.js';
import type { ResolvedEnvironment } from './config.js';
import { CheckFailedError, ExitCode, GateError, InterruptedError, LockHeldError, RunbookError, StepError, UsageError, errorMessage } from './errors.js';
import { ApprovalDeclinedError, approvalCovers, stepItem, type ApprovalGate, type ApprovalGranted, type ApprovalItem } from './approval.js';
import { approve, checkConfirmFlag, gateKind, approvedByFlags, missingApprovalHint, type GateFlags, type GateKind } from './gates.js';
import { GuardedOutput, type Colors, type IO } from './io.js';
import { RunRecord, type Journal } from './journal.js';
import { openJournal, type JournalReader } from './journal-reader.js';
import { acquireLocks, type HeldLock } from './lock.js';
import type { Change, DryRunMode, Procedure, Recheck, Risk, RunClients, Step, StepContext } from './procedure.js';
import { stepRisk, procedureRisk, runData } from './procedure.js';
import type { Prompter } from './prompter.js';
import type { Redactor } from './redact.js';
import type { CompensationRecord, Reporter, RunResult, StepRecord } from './reporter.js';
import { targetBanner } from './banner.js';
import { procedureSecrets, resolveSecrets } from './secrets.js';
import { formatDuration } from './duration.js';
import { monotonicMs } from './clock.js';

/** The step acting on the world now (running, or being undone), so clients can say which run changed what. */
export interface ActingStep {
  id: string;
  title: string;
  phase: 'run' | 'undo';
  /** What the step previewed it would change (its plan), when running. */
  changes?: Change[];
}

/** Signals from the operator: the first interrupt stops the run, the second also skips compensation. */
export interface Interrupts {
  signal: AbortSignal;
  hard: AbortSignal;
}

export interface RunOptions<P> {
  procedure: Procedure<P>;
  params: P;
  env: ResolvedEnvironment;
  runId: string;
  operator: string;
  dryRun: DryRunMode;
  gateFlags: GateFlags;
  interactive: boolean;
  io: IO;
  colors: Colors;
  reporter: Reporter;
  redactor: Redactor;
  prompter: Prompter;
  clients: RunClients;
  journal: Journal;
  /** What steps read of earlier runs (ctx.journal); default: the journal directory's own runs. */
  reader?: JournalReader;
  interrupts: Interrupts;
  timeoutMs?: number;
  now(): Date;
  /** Two-person approval (the environment's `approval`), asked after the operator's own approval of a gate it covers. */
  approvals?: ApprovalGate;
  /** Told which step is acting right before it runs or is undone, and undefined after. */
  onStep?(step: ActingStep | undefined): void;
  /** Resume: data of steps already completed by an earlier run, keyed by step id. */
  resume?: {
    fromRun: string;
    completed: Record<string, unknown>;
    /** When each completed step ended (journal time), to show the age of what resume keeps. */
    completedAt?: Record<string, string>;
    /** A takeover: the operator of the run resumed, when it is someone else (its lock must have expired or been released). */
    takeoverFrom?: string;
  };
}

interface Completed<P> {
  step: Step<P>;
  data: unknown;
}

function raceAbort<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    // The work has already started; its own rejection (usually the same interrupt) is expected.
    work.catch(() => undefined);
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

function asRunbookError(err: unknown): RunbookError {
  if (err instanceof RunbookError) return err;
  const e = err as Error;
  if (e?.name === 'TimeoutError') return new StepError('the run exceeded --timeout', 'raise --timeout, or check why the step is slow');
  return new StepError(errorMessage(err), undefined, err);
}

const STATUS_BY_CODE: Record<number, RunResult['status']> = {
  [ExitCode.ok]: 'succeeded',
  [ExitCode.stepFailed]: 'failed',
  [ExitCode.usage]: 'failed',
  [ExitCode.gate]: 'declined',
  [ExitCode.check]: 'check-failed',
  [ExitCode.partial]: 'partial',
  [ExitCode.locked]: 'locked',
  [ExitCode.sigint]: 'interrupted',
  [ExitCode.sigterm]: 'interrupted',
};

/**
 * Runs a procedure: banner → lock → for each step plan → gate → run → journal; on failure,
 * decline or interrupt, the compensations of completed steps run last-in first-out.
 */
/** Every Kubernetes call a run of the procedure may make: its own declaration, plus the lock's when it locks. */
export function declaredKubeCalls(proc: Pick<Procedure<never>, 'kube' | 'locks'>): KubeMethod[] {
  const own = proc.kube ?? [];
  // A change to an object is recorded as an Event on it: every procedure that changes one may write Events.
  const audits: KubeMethod[] = own.some((m) => AUDITED_METHODS.includes(m)) && !own.includes('recordEvent') ? ['recordEvent'] : [];
  return [...new Set([...own, ...audits, ...(proc.locks ? LOCK_METHODS : [])])];
}

export async function runProcedure<P>(o: RunOptions<P>): Promise<RunResult> {
  const started = o.now();
  const t0 = monotonicMs();
  const { procedure: proc, env, reporter } = o;
  // A failed journal write stops the run at the next step boundary; it never throws out of compensation.
  const journal = new RunRecord(o.journal);
  const steps: StepRecord[] = proc.steps.map((s) => ({ id: s.id, title: s.title, risk: stepRisk(s, o.params, env), status: 'not-run', durationMs: 0 }));
  const compensations: CompensationRecord[] = [];
  const result: RunResult = {
    procedure: proc.name,
    environment: env.name,
    runId: o.runId,
    dryRun: o.dryRun,
    status: 'succeeded',
    exitCode: 0,
    startedAt: started.toISOString(),
    durationMs: 0,
    params: o.params,
    steps,
    compensations,
  };

  const timeout = o.timeoutMs ? AbortSignal.timeout(o.timeoutMs) : undefined;
  const signal = timeout ? AbortSignal.any([o.interrupts.signal, timeout]) : o.interrupts.signal;
  // Each finished step's data by step id, read through RunData (ctx.get / ctx.find), typed by the step.
  const results: Record<string, unknown> = { ...(o.resume?.completed ?? {}) };
  const readers = runData(results);
  const declared = declaredKubeCalls(proc);
  const clients = o.clients;
  const ctx: StepContext<P> = {
    params: o.params,
    env,
    clients,
    io: o.io,
    colors: o.colors,
    reporter,
    redactor: o.redactor,
    signal,
    dryRun: o.dryRun,
    runId: o.runId,
    now: o.now,
    // Earlier runs in the same journal directory; a run file it cannot use is one warning.
    journal: o.reader ?? openJournal(o.journal.dir, { current: o.runId, warn: (m) => reporter.warn(m) }),
    get: readers.get,
    find: readers.find,
    log: (m) => reporter.progress(m),
    prompter: o.prompter,
    interactive: o.interactive,
  };

  // A closed stdout/stderr silences progress but never the journal: it records when that happened.
  const unwatch = [o.io.stdout, o.io.stderr].map((s, i) =>
    s instanceof GuardedOutput
      ? s.onClose((err) =>
          journal.append('note', { note: `${i === 0 ? 'stdout' : 'stderr'} closed (${err.code ?? err.message}): output went quiet, the run carried on` }),
        )
      : () => undefined,
  );

  journal.append('run-start', {
    runId: o.runId,
    procedure: proc.name,
    environment: env.name,
    params: o.params,
    operator: o.operator,
    dryRun: o.dryRun,
    config: env.configPath,
    resumedFrom: o.resume?.fromRun,
    ...(o.resume?.takeoverFrom ? { takeoverFrom: o.resume.takeoverFrom } : {}),
  });

  const changesAnything = procedureRisk(proc, o.params, env) !== 'read';
  if (o.dryRun !== 'off') reporter.dryRunNotice(o.dryRun);
  reporter.target(targetBanner(proc, env, o.redactor), { changes: changesAnything || o.dryRun !== 'off', localOnly: proc.worksWithoutConfig === true });

  const done: Completed<P>[] = [];
  // Progress counts only the steps these arguments run ("[2/3]", not "[2/6]").
  const runsStep = (s: Step<P>) => !s.when || s.when(o.params, env);
  const totalShown = proc.steps.filter(runsStep).length;
  let shown = 0;
  let lock: HeldLock | undefined;
  let planApproved = false;
  // A second person's approval of the plan, re-checked right before the step it was asked before runs.
  const second: SecondApprovals = {};
  let failure: RunbookError | undefined;

  try {
    if (journal.failure)
      throw new UsageError(
        `the journal could not be written (${journal.failure.code} on ${journal.failure.path}); nothing was contacted or changed`,
        journal.failure.hint,
      );
    checkConfirmFlag(o.gateFlags, env.name);
    if (o.dryRun === 'offline') {
      renderOffline(o, steps);
      result.status = 'planned';
      return result;
    }
    // Every secret the run will read, before the lock and before any contact (dry runs too): a missing
    // one found half-way would leave things half-done.
    const secrets = procedureSecrets(proc, o.params, env);
    resolveSecrets(secrets, o.clients.secret, env.configPath);
    if (o.io.env.RUNBOOK_STRICT_SECRETS === '1') o.clients.restrictSecrets?.(secrets.map((s) => s.ref));
    if (o.dryRun === 'off') preflightGates(o);
    if (o.dryRun === 'off') await preflightApprovals(o);
    // A missing permission found half-way leaves things half-done: ask the API server first.
    if (changesAnything && env.config.kubernetes && declared.length > 0) {
      const kube = await o.clients.kube();
      const missing = await kube.cannotDo(permissionsOf(o.dryRun === 'off' ? declared : declared.filter((m) => !LOCK_METHODS.includes(m))));
      if (missing.length > 0) {
        throw new UsageError(
          `not allowed to ${missing.map((p) => describePermission(p, kube.namespace)).join('; ')} (as the kubeconfig's user on ${kube.server}); nothing was changed`,
          `ask for the Role that \`runbook rbac -e ${env.name}\` prints`,
        );
      }
    }
    // Kubernetes is the coordination engine: where the environment has a cluster, the lease guards
    // every changing run of a locking procedure, whatever systems it changes.
    // One lease per thing the run changes (not per procedure): any two runs changing the same thing
    // exclude each other. A run that only reads takes none.
    const targets = proc.locks && o.dryRun === 'off' && changesAnything ? proc.locks(o.params, env) : [];
    if (targets.length > 0 && !env.config.kubernetes) reporter.verbose('no kubernetes section: running without the cross-operator lock');
    if (targets.length > 0 && env.config.kubernetes) {
      const kube = await o.clients.kube();
      // Resuming this operator's own run: its leases are taken over at once. Someone else's (a takeover): only
      // once they expired or were released; the new holder names the run it takes over.
      const resumed = o.resume ? { operator: o.resume.takeoverFrom ?? o.operator, runId: o.resume.fromRun } : undefined;
      const takeOver = o.resume && !o.resume.takeoverFrom ? resumed : undefined;
      const holder = { operator: o.operator, runId: o.runId, ...(o.resume?.takeoverFrom ? { takingOver: resumed } : {}) };
      lock = await acquireLocks(kube, targets, holder, o.now, { takeOver });
      journal.append('lock', { lease: lock.name, namespace: kube.namespace });
      if (o.resume?.takeoverFrom) {
        // Who continued whose run, where `kubectl describe lease` and `kubectl get events` show it.
        const message = `runbook ${proc.name}: ${o.operator} took over run ${o.resume.fromRun} of ${o.resume.takeoverFrom} (as run ${o.runId})`;
        journal.append('note', { note: `takeover: ${message}` });
        for (const lease of lock.leases) {
          await kube
            .recordEvent({
              object: { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', name: lease, namespace: kube.namespace },
              type: 'Normal',
              reason: 'RunbookTakeover',
              message,
            })
            .catch((err: unknown) => reporter.warn(`the takeover could not be recorded as an Event on lease ${lease}: ${errorMessage(err)}`));
        }
      }
      reporter.verbose(`lock ${lock.name} taken`);
    }

    for (let i = 0; i < proc.steps.length; i++) {
      const step = proc.steps[i];
      const rec = steps[i];
      if (o.resume && step.id in o.resume.completed) {
        if (signal.aborted) throw signal.reason;
        const earlier = o.resume.completed[step.id];
        const at = o.resume.completedAt?.[step.id];
        const when = `run ${o.resume.fromRun}${at ? `, ${formatDuration(Math.max(0, o.now().getTime() - Date.parse(at)))} ago` : ''}`;
        // The journal says what was true then; the world decides what is true now.
        const recheck: Recheck = step.postcondition ? await raceAbort(step.postcondition.check(ctx, earlier), signal) : { holds: true };
        if (recheck.holds) {
          if (recheck.confirm && o.dryRun === 'off') {
            const question = `${recheck.confirm} (recorded in ${when}): still right?`;
            const decision = await approve({
              kind: 'confirm',
              flags: o.gateFlags,
              envName: env.name,
              interactive: o.interactive,
              prompter: o.prompter,
              question,
              signal,
            });
            journal.append('gate', { step: step.id, kind: 'confirm', decision: 'approved', by: decision, recorded: recheck.confirm });
            reporter.info(`  using ${recheck.confirm}, recorded in ${when}`);
          }
          rec.status = 'skipped';
          rec.data = earlier;
          // Carried into this run's journal, so resuming THIS run (if it stops too) still knows the step is done.
          journal.append('step-end', { step: step.id, status: 'succeeded', durationMs: 0, data: earlier, carriedFrom: o.resume.fromRun, doneAt: at });
          if (step.settles) for (let j = done.length - 1; j >= 0; j--) if (step.settles.includes(done[j].step.id)) done.splice(j, 1);
          if (step.undo) done.push({ step, data: rec.data });
          reporter.info(`${o.colors.dim(`[${++shown}/${totalShown}] ${step.title} — done in ${when}${step.postcondition ? ' (re-checked)' : ''}`)}`);
          continue;
        }
        journal.append('note', {
          note: `resume: ${step.id} was done in run ${o.resume.fromRun}, but ${step.postcondition!.describe} no longer holds: ${recheck.found}`,
        });
        if (step.postcondition!.unsafeToRerun) {
          throw new StepError(
            `resume stopped before "${step.title}": it was done in ${when}, but ${step.postcondition!.describe} no longer holds (${recheck.found}), and running it again is not safe`,
            typeof step.postcondition!.unsafeToRerun === 'function' ? step.postcondition!.unsafeToRerun(ctx) : step.postcondition!.unsafeToRerun,
          );
        }
        reporter.warn(`${step.title}: done in ${when}, but ${recheck.found} (expected: ${step.postcondition!.describe}); running it again`);
      }
      if (journal.failure) throw journal.failure;
      if (signal.aborted) throw signal.reason;
      if (lock?.lost.aborted) throw lock.lost.reason;
      if (step.when && !step.when(o.params, o.env)) {
        rec.status = 'skipped';
        continue;
      }
      if (proc.approval && !planApproved && o.dryRun === 'off' && i <= planEnd(proc) && (step.id === proc.approval.before || rec.risk !== 'read')) {
        planApproved = await approvePlan(o, ctx, i, rec, second, () => liveContext(o, ctx, results, steps, i, signal));
      }
      reporter.stepStart(++shown, totalShown, step.title, rec.risk);
      journal.append('step-start', { step: step.id, title: step.title, risk: rec.risk });
      if (journal.failure) throw journal.failure;
      const s0 = monotonicMs();
      try {
        const isRead = rec.risk === 'read';
        if (!isRead || (o.dryRun === 'plan' && step.followsWrite)) {
          const changes: Change[] = step.plan ? await raceAbort(step.plan(ctx), signal) : [{ action: step.title.toLowerCase(), target: env.name }];
          rec.changes = changes;
          reporter.changes(changes, o.dryRun === 'plan');
          if (o.dryRun === 'plan') {
            rec.status = 'planned';
            rec.durationMs = Math.round(monotonicMs() - s0);
            reporter.stepEnd('planned', rec.durationMs);
            journal.append('step-end', { step: step.id, status: 'planned', changes });
            continue;
          }
          if (changes.length === 0) {
            rec.status = 'skipped';
            rec.durationMs = Math.round(monotonicMs() - s0);
            reporter.stepEnd('skipped', rec.durationMs, '(nothing to change)');
            journal.append('step-end', { step: step.id, status: 'skipped', reason: 'nothing to change' });
            continue;
          }
          const kind = stepGate(step, rec.risk, env);
          const question = `${step.title} in ${env.name}${env.config.protected ? ' (PROTECTED)' : ''}?`;
          try {
            // Approved with the whole plan up front: not asked again step by step.
            const decision =
              kind !== 'none' && planApproved && i <= planEnd(proc)
                ? 'plan'
                : await approve({ kind, flags: o.gateFlags, envName: env.name, interactive: o.interactive, prompter: o.prompter, question, signal });
            if (decision !== 'not-needed') journal.append('gate', { step: step.id, kind, decision: 'approved', by: decision });
            // Two-person approval: a second, different user approves exactly this plan, and it must still be the plan now.
            const planGrant = second.plan?.at === i ? second.plan.granted : undefined;
            if (planGrant) {
              const live = await liveContext(o, ctx, results, steps, i, signal);
              const now = step.plan ? await raceAbort(step.plan(live), signal) : changes;
              await o.approvals!.recheck(planGrant, [planItem(proc, proc.approval!.summary(live)), stepItem(step, now)]);
            } else if (decision !== 'plan' && approvalCovers(env.config.approval, kind, rec.risk)) {
              const gate = approvalGateOf(o);
              const granted = await gate.request({ step: step.id, items: [stepItem(step, changes)] }, signal);
              journal.append('gate', approvalEvent(step.id, granted));
              const live = await liveContext(o, ctx, results, steps, i, signal);
              const now = step.plan ? await raceAbort(step.plan(live), signal) : changes;
              await gate.recheck(granted, [stepItem(step, now)]);
            }
          } catch (err) {
            if (err instanceof GateError) {
              rec.status = 'declined';
              journal.append('gate', declinedEvent(step.id, kind, err));
            }
            throw err;
          }
        }
        // A write already sent is not abandoned on the first interrupt: it finishes (steps may stop early on
        // ctx.signal), its compensation is registered, and the interrupt is honoured before the next step.
        o.onStep?.({ id: step.id, title: step.title, phase: 'run', ...(rec.changes ? { changes: rec.changes } : {}) });
        const data = await raceAbort(step.run(ctx), rec.risk === 'read' ? signal : o.interrupts.hard).finally(() => o.onStep?.(undefined));
        results[step.id] = data;
        rec.data = data;
        rec.status = 'succeeded';
        rec.durationMs = Math.round(monotonicMs() - s0);
        reporter.stepEnd('succeeded', rec.durationMs);
        journal.append('step-end', {
          step: step.id,
          status: 'succeeded',
          durationMs: Math.round(rec.durationMs),
          data,
          ...(rec.changes ? { changes: rec.changes } : {}),
        });
        if (step.settles) for (let j = done.length - 1; j >= 0; j--) if (step.settles.includes(done[j].step.id)) done.splice(j, 1);
        if (step.undo) done.push({ step, data });
        // The step's compensation is registered first: a write that could not be journaled is still put back.
        if (journal.failure) throw journal.failure;
      } catch (err) {
        if (rec.status !== 'declined' && rec.status !== 'succeeded') {
          rec.status = 'failed';
          rec.error = errorMessage(err);
          rec.durationMs = Math.round(monotonicMs() - s0);
          // The message itself is printed once, as the run's `error:` line with its hint.
          reporter.stepEnd('failed', rec.durationMs);
          journal.append('step-end', { step: step.id, status: 'failed', durationMs: Math.round(rec.durationMs), error: errorMessage(err) });
        }
        throw err;
      }
    }
    if (o.dryRun === 'plan') result.status = 'planned';
    const checkMessage = o.dryRun === 'off' && proc.check ? proc.check(readers, o.params) : null;
    if (checkMessage) throw new CheckFailedError(checkMessage);
  } catch (err) {
    failure = err instanceof InterruptedError ? err : asRunbookError(err);
    if (signal.aborted && o.interrupts.signal.aborted && !(failure instanceof InterruptedError)) {
      failure = o.interrupts.signal.reason instanceof InterruptedError ? o.interrupts.signal.reason : failure;
    }
  } finally {
    if (failure && !(failure instanceof CheckFailedError) && done.length > 0) await compensate(o, ctx, done, compensations, failure, journal);
    if (lock) await lock.release();
  }

  let exitCode: number = failure ? failure.exitCode : ExitCode.ok;
  if (compensations.some((c) => c.status !== 'succeeded') && failure) exitCode = ExitCode.partial;
  result.exitCode = exitCode;
  if (result.status !== 'planned' || failure) result.status = STATUS_BY_CODE[exitCode] ?? 'failed';
  if (failure) result.error = { message: o.redactor.text(failure.message), hint: failure.hint };
  const byHand = compensations.filter((c) => c.status !== 'succeeded' && c.byHand).map((c) => c.byHand as string);
  if (byHand.length) result.byHand = byHand;
  result.durationMs = Math.round(monotonicMs() - t0);
  for (const u of unwatch) u();
  journal.append('run-end', { status: result.status, exitCode, durationMs: result.durationMs, error: result.error, byHand: result.byHand });
  return result;
}

/** A step that puts back what the run took away is never gated: declining it would only leave things down. */
function stepGate<P>(step: Step<P>, risk: Risk, env: ResolvedEnvironment): GateKind {
  return step.restores ? 'none' : gateKind(risk, env.config.protected, step.severe);
}

/** Index of the last step the plan approval covers (`approval.until`, else the last step). */
function planEnd<P>(proc: RunOptions<P>['procedure']): number {
  const until = proc.approval?.until;
  if (until === undefined) return proc.steps.length - 1;
  const i = proc.steps.findIndex((s) => s.id === until);
  if (i < 0) throw new Error(`${proc.name}: approval.until names no step ("${until}")`);
  return i;
}

/**
 * The procedure's one approval for the whole plan (or the part up to `approval.until`), asked before step `at` as the strictest gate any
 * step from there on needs. Returns false when nothing from there on needs approval (nothing asked).
 */
async function approvePlan<P>(
  o: RunOptions<P>,
  ctx: StepContext<P>,
  at: number,
  rec: StepRecord,
  second: SecondApprovals,
  live: () => Promise<StepContext<P>>,
): Promise<boolean> {
  const { env, procedure: proc } = o;
  const order: GateKind[] = ['none', 'confirm', 'severe'];
  let kind: GateKind = 'none';
  let needsSecond = false;
  for (const s of proc.steps.slice(at, planEnd(proc) + 1)) {
    if (s.when && !s.when(o.params, env)) continue;
    const risk = stepRisk(s, o.params, env);
    const k = stepGate(s, risk, env);
    if (order.indexOf(k) > order.indexOf(kind)) kind = k;
    if (approvalCovers(env.config.approval, k, risk)) needsSecond = true;
  }
  if (kind === 'none') return false;
  const lines = proc.approval!.summary(ctx);
  const part = proc.approval!.until === undefined ? 'whole plan' : 'plan';
  o.reporter.info(
    `${o.colors.bold(`The ${part} of ${proc.name} in ${env.name}${env.config.protected ? ' (PROTECTED)' : ''}:`)}\n${lines.map((l) => `  • ${l}`).join('\n')}`,
  );
  const question =
    proc.approval!.until === undefined
      ? `Approve the whole plan above (${proc.name} in ${env.name})? No step of it is asked again`
      : `Approve the plan above (${proc.name} in ${env.name})? None of it is asked again; what comes after it is asked separately`;
  try {
    const by = await approve({ kind, flags: o.gateFlags, envName: env.name, interactive: o.interactive, prompter: o.prompter, question, signal: ctx.signal });
    o.journal.append('gate', { step: 'plan', kind, decision: 'approved', by, plan: lines });
    if (needsSecond) {
      // The second person approves the plan's lines and what the step it is asked before will change.
      const gate = approvalGateOf(o);
      const step = proc.steps[at];
      const risk = stepRisk(step, o.params, env);
      const items: ApprovalItem[] = [planItem(proc, lines)];
      if (risk !== 'read') items.push(stepItem(step, step.plan ? await raceAbort(step.plan(ctx), ctx.signal) : defaultChanges(step, env)));
      const granted = await gate.request({ step: 'plan', items }, ctx.signal);
      o.journal.append('gate', approvalEvent('plan', granted));
      // A read step runs next: the plan is re-checked now. A changing one: right before it runs, with its fresh preview.
      if (risk === 'read') await gate.recheck(granted, [planItem(proc, proc.approval!.summary(await live()))]);
      else second.plan = { at, granted };
    }
    return true;
  } catch (err) {
    if (err instanceof GateError) {
      rec.status = 'declined';
      o.journal.append('gate', declinedEvent('plan', kind, err));
    }
    throw err;
  }
}

/**
 * The run's context with the reads that planned step `upTo` done again (the read steps before the run's
 * first change), so a re-check sees the world as it is now, not as it was before a long wait. Nothing
 * is journaled or kept: a read step is read-only by contract.
 */
async function liveContext<P>(
  o: RunOptions<P>,
  ctx: StepContext<P>,
  results: Record<string, unknown>,
  recs: StepRecord[],
  upTo: number,
  signal: AbortSignal,
): Promise<StepContext<P>> {
  const fresh: Record<string, unknown> = { ...results };
  const readers = runData(fresh);
  const live: StepContext<P> = { ...ctx, get: readers.get, find: readers.find, log: () => undefined };
  for (let j = 0; j < upTo; j++) {
    const s = o.procedure.steps[j];
    if (recs[j].risk !== 'read') {
      if (recs[j].status === 'succeeded') break;
      continue;
    }
    if (s.followsWrite || recs[j].status !== 'succeeded' || !(s.id in results)) continue;
    fresh[s.id] = await raceAbort(s.run(live), signal);
  }
  return live;
}

interface SecondApprovals {
  plan?: { at: number; granted: ApprovalGranted };
}

function approvalGateOf<P>(o: RunOptions<P>): ApprovalGate {
  if (!o.approvals) throw new UsageError(`environment ${o.env.name} requires two-person approval, and this run cannot ask for it; nothing was changed`);
  return o.approvals;
}

function planItem<P>(proc: Procedure<P>, lines: string[]): ApprovalItem {
  return { step: 'plan', title: `The plan of ${proc.name}`, lines };
}

/** What a changing step without a preview is shown as (the same as the step loop's). */
function defaultChanges<P>(step: Step<P>, env: ResolvedEnvironment): Change[] {
  return [{ action: step.title.toLowerCase(), target: env.name }];
}

function approvalEvent(step: string, g: ApprovalGranted) {
  return {
    step,
    kind: 'approval' as const,
    decision: 'approved' as const,
    by: 'approver' as const,
    requester: g.requester,
    approver: g.approver,
    digest: g.digest,
    request: g.request,
    reason: `approved by ${g.approver} (requested by ${g.requester}) after ${formatDuration(g.waitedMs)}`,
  };
}

function declinedEvent(step: string, kind: GateKind, err: GateError) {
  if (!(err instanceof ApprovalDeclinedError)) return { step, kind, decision: 'declined' as const, reason: err.message };
  return {
    step,
    kind: 'approval' as const,
    decision: 'declined' as const,
    reason: err.message,
    requester: err.requester,
    request: err.request,
    ...(err.approver ? { approver: err.approver } : {}),
  };
}

/**
 * With two-person approval required and a gate it covers ahead, this identity must be able to make
 * requests, before the lock and before anything changes.
 */
async function preflightApprovals<P>(o: RunOptions<P>): Promise<void> {
  const cfg = o.env.config.approval;
  if (!cfg || cfg.required < 2) return;
  const needed = o.procedure.steps.some((step) => {
    if (o.resume && step.id in o.resume.completed) return false;
    if (step.when && !step.when(o.params, o.env)) return false;
    const risk = stepRisk(step, o.params, o.env);
    return approvalCovers(cfg, stepGate(step, risk, o.env), risk);
  });
  if (needed) await approvalGateOf(o).preflight();
}

/** Fail closed before touching anything: without a terminal, every gate must already be approved by flags. */
function preflightGates<P>(o: RunOptions<P>): void {
  if (o.interactive) return;
  for (const step of o.procedure.steps) {
    if (o.resume && step.id in o.resume.completed) continue;
    if (step.when && !step.when(o.params, o.env)) continue;
    const kind = stepGate(step, stepRisk(step, o.params, o.env), o.env);
    if (!approvedByFlags(kind, o.gateFlags, o.env.name)) {
      const why = o.gateFlags.noInput ? '--no-input was given' : 'there is no terminal to ask on';
      throw new GateError(`step "${step.title}" needs approval and ${why}; nothing was changed`, missingApprovalHint(kind, o.env.name));
    }
  }
}

async function compensate<P>(
  o: RunOptions<P>,
  ctx: StepContext<P>,
  done: Completed<P>[],
  records: CompensationRecord[],
  failure: RunbookError,
  journal: RunRecord,
): Promise<void> {
  const { reporter } = o;
  const compCtx: StepContext<P> = { ...ctx, signal: o.interrupts.hard };
  reporter.warn(
    `${failure instanceof GateError ? 'declined' : failure instanceof InterruptedError ? 'interrupted' : 'failed'}: putting back what this run changed (${done.length} step${done.length > 1 ? 's' : ''})${failure instanceof InterruptedError ? '; press Ctrl-C again to skip this' : ''}`,
  );
  for (const c of [...done].reverse()) {
    const byHand = c.step.undoByHand?.(ctx, c.data);
    if (o.interrupts.hard.aborted) {
      records.push({ step: c.step.id, status: 'skipped', byHand, error: 'skipped by a second interrupt' });
      journal.append('compensation', { step: c.step.id, status: 'skipped', byHand });
      reporter.error(`compensation for "${c.step.title}" skipped by a second interrupt`, byHand ? `run by hand: ${byHand}` : undefined);
      continue;
    }
    try {
      reporter.info(`  ↺ undo: ${c.step.title}`);
      o.onStep?.({ id: c.step.id, title: c.step.title, phase: 'undo' });
      await c.step.undo!(compCtx, c.data).finally(() => o.onStep?.(undefined));
      records.push({ step: c.step.id, status: 'succeeded' });
      journal.append('compensation', { step: c.step.id, status: 'succeeded' });
      reporter.info(`    ${o.colors.green('✓')} undone`);
    } catch (err) {
      const msg = errorMessage(err);
      records.push({ step: c.step.id, status: 'failed', error: msg, byHand });
      journal.append('compensation', { step: c.step.id, status: 'failed', error: msg, byHand });
      reporter.error(`could not undo "${c.step.title}": ${msg}`, byHand ? `run by hand: ${byHand}` : undefined);
    }
  }
}

/** Offline: nothing is contacted; each step carries its reason, its gate and the equivalent command. */
function renderOffline<P>(o: RunOptions<P>, steps: StepRecord[]): void {
  o.procedure.steps.forEach((step, i) => {
    const rec = steps[i];
    if (step.when && !step.when(o.params, o.env)) {
      rec.status = 'skipped';
      return;
    }
    rec.status = 'planned';
    rec.why = step.why;
    rec.gate = gateKind(rec.risk, o.env.config.protected, step.severe);
    rec.equivalent = o.redactor.text(step.equivalent(o.params, o.env));
  });
}

export { LockHeldError };
