import { colors as makeColors, colorEnabled, type Colors, type IO } from './io.js';
import type { GateFlags } from './gates.js';
import type { DryRunMode, Procedure, RunClientFactories } from './procedure.js';
import type { Prompter } from './prompter.js';
import { Redactor, looksSecret } from './redact.js';
import { Reporter } from './reporter.js';
import type { Interrupts } from './runner.js';
import type { JournalWrites } from './journal.js';
import { UsageError } from './errors.js';
import { parseDuration } from './duration.js';

/** What main() receives from the outside world; tests replace any of it. */
export interface Deps {
  io: IO;
  prompter?: Prompter;
  clientFactories?: RunClientFactories;
  now?: () => Date;
  interrupts?: Interrupts;
  operator?: string;
  /** Test seam: the journal's low-level writes (a disk that fills up mid-run). */
  journalWrites?: JournalWrites;
  /** Test seam: lets the registry-driven tests inject a failing step into any procedure. */
  procedureOverride?: (proc: Procedure) => Procedure;
}

/** The global flags, parsed once (DESIGN §1). */
export interface GlobalFlags {
  env?: string;
  config?: string;
  dryRun: DryRunMode;
  gate: GateFlags;
  json: boolean;
  quiet: boolean;
  verbose: boolean;
  color: boolean;
  timeoutMs?: number;
}

export function parseGlobalFlags(o: Record<string, unknown>): GlobalFlags {
  let dryRun: DryRunMode = 'off';
  if (o.dryRun === true || o.dryRun === 'plan') dryRun = 'plan';
  else if (o.dryRun === 'offline') dryRun = 'offline';
  else if (o.dryRun !== undefined && o.dryRun !== false) {
    throw new UsageError(`--dry-run takes "plan" or "offline", got "${String(o.dryRun)}"`, 'write --dry-run=offline, or put arguments before --dry-run');
  }
  if (o.confirm !== undefined && String(o.confirm).trim() === '') throw new UsageError('--confirm needs the environment name');
  return {
    env: o.env as string | undefined,
    config: o.config as string | undefined,
    dryRun,
    gate: { yes: Boolean(o.yes), confirm: o.confirm as string | undefined, noInput: o.input === false },
    json: Boolean(o.json),
    quiet: Boolean(o.quiet),
    verbose: Boolean(o.verbose),
    color: o.color !== false,
    timeoutMs: o.timeout === undefined ? undefined : parseDuration(String(o.timeout), '--timeout'),
  };
}

/** Per-invocation services derived from deps and flags. */
export interface Session {
  deps: Deps;
  flags: GlobalFlags;
  colors: Colors;
  redactor: Redactor;
  reporter: Reporter;
  interactive: boolean;
  operator: string;
  now(): Date;
}

export function makeSession(deps: Deps, flags: GlobalFlags): Session {
  const redactor = new Redactor();
  // Values of environment variables named like secrets never appear in output.
  for (const [k, v] of Object.entries(deps.io.env)) if (looksSecret(k)) redactor.add(v);
  const colors = makeColors(colorEnabled(deps.io, !flags.color));
  const reporter = new Reporter({
    err: deps.io.stderr,
    colors,
    quiet: flags.quiet,
    verbose: flags.verbose,
    redactor,
    liveProgress: deps.io.stderrIsTTY && !flags.json,
    json: flags.json,
  });
  const interactive = !flags.gate.noInput && deps.io.stdinIsTTY && deps.io.stderrIsTTY;
  return { deps, flags, colors, redactor, reporter, interactive, operator: deps.operator ?? operatorName(deps.io.env), now: deps.now ?? (() => new Date()) };
}

function operatorName(env: Record<string, string | undefined>): string {
  // node:os only here, so that loading the CLI (and --help) does not load it.
  const os = process.getBuiltinModule('node:os');
  let user = env.USER || env.LOGNAME;
  if (!user) {
    try {
      user = os.userInfo().username;
    } catch {
      user = 'unknown';
    }
  }
  return `${user}@${os.hostname()}`;
}
