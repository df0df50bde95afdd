import type { Colors } from './io.js';
import type { Change, Risk } from './plan.js';
import type { Redactor } from './redact.js';
import { formatDuration } from './duration.js';
import { visible } from './terminal.js';

export type StepStatus = 'succeeded' | 'failed' | 'skipped' | 'planned' | 'declined' | 'not-run';

export interface StepRecord {
  id: string;
  title: string;
  risk: Risk;
  status: StepStatus;
  durationMs: number;
  changes?: Change[];
  data?: unknown;
  error?: string;
  /** Offline dry runs: why the step exists, its gate and the equivalent command. */
  why?: string;
  gate?: 'none' | 'confirm' | 'severe';
  equivalent?: string;
}

export interface CompensationRecord {
  step: string;
  status: 'succeeded' | 'failed' | 'skipped';
  error?: string;
  byHand?: string;
}

/** The one JSON document `--json` prints: the run result. */
export interface RunResult {
  procedure: string;
  environment: string;
  runId: string;
  dryRun: 'off' | 'plan' | 'offline';
  status: 'succeeded' | 'failed' | 'declined' | 'check-failed' | 'partial' | 'locked' | 'interrupted' | 'planned';
  exitCode: number;
  startedAt: string;
  durationMs: number;
  params: unknown;
  steps: StepRecord[];
  compensations: CompensationRecord[];
  error?: { message: string; hint?: string };
  byHand?: string[];
}

/**
 * The documented `--json` document of a run (docs/run-result.schema.json): the RunResult, plus `env`
 * (the environment's name; `environment` is kept for scripts written before) and `result`, each step's
 * data by step id: what the procedure found or did, without digging through `steps[]`.
 * Durations are whole milliseconds.
 */
export interface RunEnvelope extends RunResult {
  env: string;
  result: Record<string, unknown>;
}

/** The RunResult as `--json` prints it (see RunEnvelope). */
export function runEnvelope(r: RunResult): RunEnvelope {
  const result: Record<string, unknown> = {};
  for (const s of r.steps) if (s.data !== undefined) result[s.id] = s.data;
  const { procedure, environment, status, exitCode, runId, ...rest } = r;
  return {
    procedure,
    env: environment,
    environment,
    status,
    exitCode,
    runId,
    ...rest,
    durationMs: Math.round(r.durationMs),
    steps: r.steps.map((s) => ({ ...s, durationMs: Math.round(s.durationMs) })),
    result,
  };
}

export interface ReporterOptions {
  err: NodeJS.WritableStream | { write(s: string): unknown };
  colors: Colors;
  quiet: boolean;
  verbose: boolean;
  redactor: Redactor;
  /** stderr is a terminal: progress may rewrite one line in place. */
  liveProgress?: boolean;
  /** --json: stdout is one document; the read banner (for people) is left out. */
  json?: boolean;
}

/** Who a run's target banner is for, decided by the runner (see Reporter.target). */
export interface TargetKind {
  /** The run may change something (or is a dry run): the banner is always shown. */
  changes: boolean;
  /** It reads only local data (the config, the journal): no banner and no step progress. */
  localOnly: boolean;
}

const RISK_LABEL: Record<Risk, string> = { read: 'read', write: 'write', destructive: 'DESTRUCTIVE' };

/**
 * Renders progress for people on stderr. It never writes stdout: results are printed once, at the
 * end, by the caller (a table, or the JSON document).
 */
export class Reporter {
  constructor(private readonly opts: ReporterOptions) {}

  private write(line: string): void {
    this.opts.err.write(visible(this.opts.redactor.text(line), true) + '\n');
  }

  info(message: string): void {
    if (!this.opts.quiet) this.write(message);
  }

  verbose(message: string): void {
    if (this.opts.verbose) this.write(this.opts.colors.dim(message));
  }

  warn(message: string): void {
    this.write(this.opts.colors.yellow(`warning: ${visible(message)}`));
  }

  /** Always shown, even with --quiet: the target of a change is never in doubt. */
  banner(lines: string[]): void {
    const c = this.opts.colors;
    for (const l of lines) this.write(c.bold(l));
  }

  private localOnly = false;

  /**
   * The run's target: the full banner before a change or a dry run (always); one line before a read of
   * remote systems (not with --quiet or --json); nothing for a run that reads only local data, whose
   * step progress is left out too (it has nothing to wait for).
   */
  target(lines: string[], kind: TargetKind): void {
    if (kind.changes) return this.banner(lines);
    if (kind.localOnly) {
      this.localOnly = true;
      return;
    }
    if (this.opts.quiet || this.opts.json || lines.length === 0) return;
    const [head, ...parts] = lines;
    this.write(this.opts.colors.dim([head, ...parts.map((p) => p.trim())].join(' · ')));
  }

  dryRunNotice(mode: 'plan' | 'offline'): void {
    const c = this.opts.colors;
    const text =
      mode === 'offline'
        ? '*** DRY RUN (offline): nothing is contacted, nothing changes ***'
        : '*** DRY RUN: reads are real, every write is only previewed, nothing changes ***';
    this.write(c.inverse(c.yellow(text)));
  }

  stepStart(index: number, total: number, title: string, risk: Risk): void {
    if (this.localOnly) return;
    const c = this.opts.colors;
    const tag = risk === 'read' ? c.dim(`[${RISK_LABEL[risk]}]`) : risk === 'write' ? c.yellow(`[${RISK_LABEL[risk]}]`) : c.red(`[${RISK_LABEL[risk]}]`);
    this.info(`${c.cyan(`[${index}/${total}]`)} ${visible(title)} ${tag}`);
  }

  changes(changes: Change[], dryRun: boolean): void {
    const c = this.opts.colors;
    for (const ch of changes) {
      const arrow = ch.before !== undefined || ch.after !== undefined ? `: ${ch.before ?? '∅'} → ${ch.after ?? '∅'}` : '';
      const v = ch.validated ? c.dim(' (validated by the server)') : '';
      // Values from arguments and remote systems: shown, never obeyed (only the colour codes are ours).
      this.info(`      ${dryRun ? 'would ' : ''}${visible(`${ch.action} ${ch.target}${arrow}`)}${v}`);
    }
  }

  stepEnd(status: StepStatus, durationMs: number, note?: string): void {
    this.endLive();
    if (this.localOnly && status === 'succeeded') return;
    const c = this.opts.colors;
    const mark = status === 'succeeded' ? c.green('✓') : status === 'failed' ? c.red('✗') : status === 'planned' ? c.yellow('~') : c.dim('-');
    const extra = note ? ` ${visible(note)}` : '';
    this.info(`      ${mark} ${status} in ${formatDuration(durationMs)}${extra}`);
  }

  progress(message: string): void {
    this.endLive();
    this.info(`      ${this.opts.colors.dim(visible(message))}`);
  }

  private live = false;

  /** Whether a step may show in-place progress (a terminal, and not --quiet). */
  get canShowLive(): boolean {
    return Boolean(this.opts.liveProgress) && !this.opts.quiet;
  }

  /** Rewrites the current terminal line (no-op unless canShowLive). */
  liveLine(message: string): void {
    if (!this.canShowLive) return;
    this.opts.err.write(`\r\u001b[2K      ${visible(this.opts.redactor.text(message), true)}`);
    this.live = true;
  }

  /** Clears an in-place progress line so the next line starts clean. */
  endLive(): void {
    if (this.live) this.opts.err.write('\r\u001b[2K');
    this.live = false;
  }

  error(message: string, hint?: string): void {
    const c = this.opts.colors;
    this.write(`${c.red('error:')} ${visible(message)}`);
    if (hint) this.write(`${c.dim('hint:')} ${visible(hint)}`);
  }
}
