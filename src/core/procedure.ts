import type { ResolvedEnvironment } from './config.js';
import type { KubeMethod } from './kube-permissions.js';
import type { Reporter } from './reporter.js';
import type { Journal } from './journal.js';
import type { JournalReader } from './journal-reader.js';
import type { Colors, IO } from './io.js';
import type { Redactor } from './redact.js';
import type { Prompter } from './prompter.js';

import type { Change, Risk } from './plan.js';

export type { Change, Risk } from './plan.js';

/**
 * A group of secret references in the environment's config ({ env } / { file } values), named so a
 * procedure or step can say which it reads: the runner resolves them all before the lock and before
 * anything is contacted. A group whose section is not configured holds nothing.
 */
export type SecretSection =
  | 'postgres'
  | 'postgresReplicas'
  /** rds.url, else postgres.url: the database served by the RDS instance. */
  | 'rdsDatabase'
  /** rds.recovery.url, else rds.url, else postgres.url: the restored database. */
  | 'rdsRecovery'
  | 'redis'
  | 'notify'
  | 'statuspage'
  | 'metrics'
  | 'circuitBreaker'
  | 'cloudflare'
  | 'backupsRestoreTest';
export type DryRunMode = 'off' | 'plan' | 'offline';

/**
 * The clients of one run (Kubernetes, AWS, PostgreSQL, Redis, HTTP …). Empty here: src/clients
 * fills it in by declaration merging, so `ctx.clients` is fully typed while core names no client
 * module (the engine is given the clients; it never makes them).
 */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface RunClients {}

/**
 * How a session makes a run's clients (swapped for fakes in tests). Filled in by src/clients too.
 */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface RunClientFactories {}

import type { StepRef } from './step-ref.js';

export type { StepRef } from './step-ref.js';

/**
 * The data of the steps that have run in this run (and, on resume, in the run it resumes, reloaded
 * from the journal). `get` is for a step that always runs before the reader; `find` for one that may
 * have been skipped (`when`, nothing to do) or comes later.
 */
export interface RunData {
  get<D>(step: StepRef<D>): D;
  find<D>(step: StepRef<D>): D | undefined;
}

/** Builds the RunData view over the step results of a run, keyed by step id. */
export function runData(results: Readonly<Record<string, unknown>>): RunData {
  return {
    get(step) {
      if (!(step.id in results)) throw new Error(`internal: step "${step.id}" was read before it ran (use find() for a step that may be skipped)`);
      return results[step.id] as never;
    },
    find: (step) => results[step.id] as never,
  };
}

/** What every step sees: the run's inputs and clients, and (through RunData) what earlier steps returned. */
export interface StepContext<P = unknown> extends RunData {
  params: P;
  env: ResolvedEnvironment;
  clients: RunClients;
  io: IO;
  colors: Colors;
  reporter: Reporter;
  redactor: Redactor;
  signal: AbortSignal;
  dryRun: DryRunMode;
  runId: string;
  now(): Date;
  /**
   * Earlier runs, read back from the journal (`lastEffective`, `runs`, `events`): this run is never
   * among them. The only way a step reads the journal.
   */
  journal: JournalReader;
  /** Progress lines (stderr, dropped with --quiet). */
  log(message: string): void;
  /** For steps that must ask a question (a choice from a list); only when `interactive`. */
  prompter: Prompter;
  /** True when there is a terminal to ask on and --no-input was not given. */
  interactive: boolean;
}

/**
 * One named step of a procedure. `D` is what `run` returns: journaled, handed to `undo`, re-checked by
 * `postcondition`, and read by later steps through `ctx.get(thisStep)`.
 */
export interface Step<P = unknown, D = unknown> {
  id: string;
  title: string;
  /** Why the step exists: shown by `explain` and by offline dry runs. */
  why: string;
  risk: Risk | ((params: P, env: ResolvedEnvironment) => Risk);
  /** The equivalent kubectl/aws/psql/redis-cli command, for training and for doing it by hand. */
  equivalent(params: P, env: ResolvedEnvironment): string;
  /** A read step that only makes sense after an earlier write (a wait): previewed, not run, in a dry run. */
  followsWrite?: boolean;
  /** Skip the step entirely for these params or this environment. */
  when?(params: P, env: ResolvedEnvironment): boolean;
  /** Read-only preview of a write; an empty list means "nothing to do" and the step is skipped. */
  plan?(ctx: StepContext<P>): Promise<Change[]>;
  run(ctx: StepContext<P>): Promise<D>;
  /** Compensation, registered once run() succeeded; receives the data run() returned. */
  undo?(ctx: StepContext<P>, data: D): Promise<void>;
  /** What an operator types to undo by hand if undo() itself fails. */
  undoByHand?(ctx: StepContext<P>, data: D): string;
  /** Step ids whose compensation is no longer needed once this step succeeded. */
  settles?: string[];
  /** Force a severe (typed) gate even outside a protected environment. */
  severe?: boolean;
  /**
   * The step puts back what an earlier step of the run took away (scale back to the recorded count):
   * it is never gated, since declining it would only leave things down.
   */
  restores?: boolean;
  /** Secret references the step (or its undo) reads; resolved before contact whenever the step runs. */
  secrets?: readonly SecretSection[];
  /**
   * What makes the step "done", re-checked live by `runbook resume` before it skips a step an earlier
   * run completed: a journal line says what was true then, not what is true now.
   */
  postcondition?: Postcondition<P, D>;
}

/** The outcome of re-checking a step's postcondition on resume. */
export type Recheck =
  /** Still true. `confirm` (a value only the journal knows, e.g. the count to restore) is shown with its age and confirmed. */
  | { holds: true; confirm?: string }
  /** No longer true: `found` says what is there instead; the step runs again (or resume stops, if unsafe). */
  | { holds: false; found: string };

export interface Postcondition<P = unknown, D = unknown> {
  /** What "done" means, in words ("deployment/app is at 0 replicas and its pods are gone"). */
  describe: string;
  /** Reads the world (never changes it); `data` is what the step returned in the earlier run. */
  check(ctx: StepContext<P>, data: D): Promise<Recheck>;
  /** Set when running the step again is not safe: resume stops with this advice instead of re-running. */
  unsafeToRerun?: string | ((ctx: StepContext<P>) => string);
}

export type ParamType = 'string' | 'int' | 'duration' | 'boolean' | 'k8sName' | 'quantity' | 'list' | 'keyValue';

export interface ParamSpec {
  /** Property name in params. */
  name: string;
  /** Commander flag, e.g. "--replicas <n>"; omitted for positional arguments. */
  flag?: string;
  /** Positional argument, e.g. "<pod>" or "[hosts...]". */
  argument?: string;
  description: string;
  type: ParamType;
  required?: boolean;
  default?: string | number | boolean;
  min?: number;
  max?: number;
  choices?: readonly string[];
}

export interface ProcedureResult {
  /** Human rendering of the run's data for stdout (tables); JSON mode prints the data instead. */
  render?(run: RunData, colors: Colors, params: unknown): string;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the catalogue holds procedures of every params type
export interface Procedure<P = any> extends ProcedureResult {
  /** "app restart" — noun and verb. */
  name: string;
  summary: string;
  /** What the seed's snippet got wrong, and what this procedure does instead (shown by `explain`). */
  seedFixes?: string[];
  params: ParamSpec[];
  /** Example argument lists: shown by `explain`, and exercised by the registry-driven tests. */
  examples: string[][];
  /** Cross-field validation after parsing (min ≤ max, limits from config); throws UsageError. */
  validate?(params: P, env: ResolvedEnvironment): void;
  /**
   * Which config sections the procedure needs; checked before anything is contacted. The secrets of
   * postgres, redis, notify and circuitBreaker are resolved up front too.
   */
  requires: Array<'kubernetes' | 'health' | 'aws' | 'rds' | 'postgres' | 'redis' | 'notify' | 'circuitBreaker'>;
  /** Secret references read by the run beyond its required sections' (e.g. an optional notify channel), when configured. */
  secrets?: readonly SecretSection[];
  /**
   * Runs with the built-in example environment too: it reads only local data (config, journal), or,
   * as a function, only for these params (cert check with hosts named contacts only those hosts).
   */
  worksWithoutConfig?: boolean | ((params: P) => boolean);
  /**
   * The Kubernetes calls the procedure makes (its steps and their undo). `runbook rbac` derives the
   * least-privilege Role from these, and changing runs check them with the API server first.
   */
  kube?: readonly KubeMethod[];
  /**
   * What a changing run changes, as lock targets (`lockTargets.deployment(env)`, `lockTargets.rds(env)` …):
   * the runner takes one Kubernetes Lease per target (where the environment has a cluster), named by the
   * target and not by the procedure, so any two procedures that change the same thing exclude each other.
   * Omitted, or a run that only reads (or a dry run): no lock.
   */
  locks?(params: P, env: ResolvedEnvironment): string[];
  steps: Step<P>[];
  /** Exit code 4 when the data says a check failed (diagnostics). */
  check?(run: RunData, params: P): string | null;
  /**
   * One approval for the whole plan instead of one per step: asked once, before the step `before` (or
   * the first step that changes anything, if that comes first), as the strictest gate any later step needs, with
   * these lines (what will go down, for how long, what comes back). Once given, later steps are not
   * asked again. Read steps before it have run, so the lines can use their data.
   */
  approval?: {
    before?: string;
    /**
     * The last step the approval covers (inclusive); steps after it are gated one by one as usual (a
     * later, separate decision such as stopping the old side after a failover). Omitted: to the end.
     */
    until?: string;
    summary(ctx: StepContext<P>): string[];
  };
}

export function stepRisk<P>(step: Step<P>, params: P, env: ResolvedEnvironment): Risk {
  return typeof step.risk === 'function' ? step.risk(params, env) : step.risk;
}

export function procedureRisk<P>(proc: Procedure<P>, params: P, env: ResolvedEnvironment): Risk {
  const order: Risk[] = ['read', 'write', 'destructive'];
  let max = 0;
  for (const s of proc.steps) max = Math.max(max, order.indexOf(stepRisk(s, params, env)));
  return order[max];
}

/**
 * Step definitions for one procedure's params: `const step = stepFor<Params>()`, then
 * `const record = step({ id: 'record', …, run })` infers what the step returns from `run`.
 */
export function stepFor<P>() {
  return <D>(s: Step<P, D>): Step<P, D> => s;
}

/** Typed identity helper so procedure files get inference on their params. */
export function defineProcedure<P>(proc: Procedure<P>): Procedure<P> {
  return proc;
}

export type { IO, Colors, Redactor, Journal, Reporter };
