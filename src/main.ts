import { readFileSync } from 'node:fs';
import { buildProgram, CommanderError, normalizeArgv } from './program.js';
import { ExitCode, InterruptedError, RunbookError, UsageError } from './core/errors.js';
import { columnsOf, copyLazily, guardIO, processIO } from './core/io.js';
import { makeSession, parseGlobalFlags, type Deps, type Session } from './core/session.js';
import type { Interrupts } from './core/runner.js';
import { Redactor } from './core/redact.js';
import { jsonText, visible } from './core/terminal.js';

export type { Deps } from './core/session.js';

/** Set by scripts/bundle.mjs from package.json; unset when running from src. */
declare const __RUNBOOK_VERSION__: string | undefined;

function version(): string {
  if (typeof __RUNBOOK_VERSION__ === 'string') return __RUNBOOK_VERSION__;
  try {
    return JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version as string;
  } catch {
    return '0.0.0';
  }
}

/**
 * The CLI as a function: argv in, exit code out. The ONLY place where errors become exit codes.
 * It never calls process.exit, so journals flush and compensations finish.
 */
export async function main(givenArgv: string[], given: Deps): Promise<number> {
  const argv = normalizeArgv(givenArgv);
  // Output that closes (`| head`, a closed terminal) never stops a run: write errors are absorbed.
  // Copied lazily: bin's `interrupts` installs the signal handlers only when a run first reads it.
  const deps: Deps = copyLazily(given);
  deps.io = guardIO(given.io);
  const { io } = deps;
  const verbose = argv.includes('-v') || argv.includes('--verbose');
  let session: Session | undefined;
  try {
    // Shell completion asks on every <Tab>: answered before commander, and without loading any procedure's SDK.
    if (argv[0] === '__complete') {
      const { complete } = await import('./commands/completion.js');
      return await complete(argv.slice(1), io);
    }
    const out = {
      stdout: (s: string) => io.stdout.write(visible(s)),
      stderr: (s: string) => io.stderr.write(visible(s)),
      stdoutWidth: () => (io.stdoutIsTTY ? columnsOf(io.stdout) : undefined) ?? 80,
      stderrWidth: () => (io.stderrIsTTY ? columnsOf(io.stderr) : undefined) ?? 80,
    };
    const { program, action } = await buildProgram(argv, out, version());
    try {
      await program.parseAsync(argv, { from: 'user' });
    } catch (err) {
      if (err instanceof CommanderError) {
        if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return ExitCode.ok;
        if (err.code === 'commander.executeSubCommandAsync') return ExitCode.ok;
        if (argv.includes('--json')) {
          io.stdout.write(jsonText({ status: 'error', exitCode: ExitCode.usage, error: { message: err.message.replace(/^error: /, '') } }) + '\n');
        }
        return ExitCode.usage;
      }
      throw err;
    }
    const chosen = action();
    if (!chosen) {
      // A noun without a verb: show what it offers.
      program.outputHelp();
      return argv.length === 0 ? ExitCode.ok : ExitCode.usage;
    }
    const dryRun = chosen.opts.dryRun;
    if (typeof dryRun === 'string' && dryRun !== 'plan' && dryRun !== 'offline') {
      // kubectl users type `-n production` for a namespace; here -n is --dry-run.
      throw new UsageError(
        `--dry-run takes "plan" or "offline", got "${dryRun}" (-n is --dry-run, not a namespace)`,
        'the namespace comes from the environment: choose it with -e <env> (runbook config list shows them); or write --dry-run=offline',
      );
    }
    const flags = parseGlobalFlags(chosen.opts);
    session = makeSession(deps, flags);
    if (chosen.kind === 'procedure') {
      // The engine loads only when a procedure runs: --help and usage errors never pay for it.
      const { executeProcedure } = await import('./commands/run-procedure.js');
      return await executeProcedure(session, chosen.proc, () => chosen.params());
    }
    if (chosen.kind === 'tool') {
      if (chosen.name === 'version') {
        io.stdout.write(flags.json ? jsonText({ version: version() }) + '\n' : `runbook ${version()}\n`);
        return ExitCode.ok;
      }
      const { runTool } = await import('./commands/tools.js');
      return await runTool(session, chosen.name, chosen.verb, chosen.args, chosen.opts);
    }
    const { runBuiltin } = await import('./commands/builtins.js');
    return await runBuiltin(session, chosen.name, chosen.args, chosen.opts);
  } catch (err) {
    return reportError(err, deps, session, verbose, argv.includes('--json'));
  }
}

function reportError(err: unknown, deps: Deps, session: Session | undefined, verbose: boolean, json: boolean): number {
  const redactor = session?.redactor ?? new Redactor();
  const write = (s: string) => deps.io.stderr.write(visible(redactor.text(s)) + '\n');
  const known = err instanceof RunbookError;
  const e = err as Error;
  const message = e?.message ?? String(err);
  const hint = known ? (err as RunbookError).hint : verbose ? undefined : 'run again with --verbose for details';
  const exitCode = known ? (err as RunbookError).exitCode : ExitCode.stepFailed;
  write(`error: ${message}`);
  if (hint) write(`hint: ${hint}`);
  if (verbose && e?.stack) write(e.stack);
  // Scripts reading --json always get one document, even when nothing ran.
  if (json) deps.io.stdout.write(jsonText({ status: 'error', exitCode, error: { message: redactor.text(message), hint } }) + '\n');
  return exitCode;
}

/**
 * Entry for bin/runbook.js: real streams and signal handling (first Ctrl-C stops, second skips
 * compensation). The handlers are installed when a procedure first asks for its interrupts: until
 * then nothing has been done, and an interrupt ends the process as it would any other (--help,
 * a config error and `history` never pay for the signal watchers and AbortControllers).
 */
export async function run(argv: string[]): Promise<number> {
  const io = guardIO(processIO());
  let interrupts: Interrupts | undefined;
  const install = (): Interrupts => {
    const first = new AbortController();
    const hard = new AbortController();
    const onSignal = (sig: 'SIGINT' | 'SIGTERM') => {
      if (!first.signal.aborted) {
        first.abort(new InterruptedError(sig));
      } else if (!hard.signal.aborted) {
        io.stderr.write('\nsecond interrupt: skipping compensation — check the summary for what to do by hand\n');
        hard.abort(new InterruptedError(sig));
      }
    };
    process.on('SIGINT', () => onSignal('SIGINT'));
    process.on('SIGTERM', () => onSignal('SIGTERM'));
    return { signal: first.signal, hard: hard.signal };
  };
  return main(argv, {
    io,
    get interrupts() {
      return (interrupts ??= install());
    },
  });
}

export { UsageError };
