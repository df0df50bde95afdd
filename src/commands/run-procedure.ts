import { makeClients, defaultFactories } from '../clients/index.js';
import { declaredOnly } from '../clients/kube.js';
import { findConfigPath, loadConfig, selectEnvironment, type ResolvedEnvironment } from '../core/config.js';
import { UsageError } from '../core/errors.js';
import { Journal, NullJournal, journalDir, newRunId } from '../core/journal.js';
import type { Procedure } from '../core/procedure.js';
import { procedureRisk, runData } from '../core/procedure.js';
import { pruneJournal } from '../core/journal-retention.js';
import { TerminalPrompter } from '../core/prompter.js';
import { renderOfflinePlan, summaryLine } from '../core/render.js';
import type { RunResult } from '../core/reporter.js';
import { declaredKubeCalls, runProcedure } from '../core/runner.js';
import { jsonText, visible } from '../core/terminal.js';
import type { Session } from '../core/session.js';

export async function resolveTarget(session: Session): Promise<ResolvedEnvironment> {
  const { io } = session.deps;
  const loaded = await loadConfig(findConfigPath(session.flags.config, io.env, io.cwd));
  const env = selectEnvironment(loaded, session.flags.env, io.env);
  return env;
}

/** Checks the config sections a procedure needs, before anything is contacted. */
export function checkRequirements(proc: Procedure, env: ResolvedEnvironment): void {
  for (const section of proc.requires) {
    if (!env.config[section]) {
      throw new UsageError(
        `${proc.name} needs a "${section}" section in environment "${env.name}"`,
        `add environments.${env.name}.${section} to ${env.configPath ?? 'your config'}`,
      );
    }
  }
}

/** Runs a procedure for a command, prints its result, and returns the exit code. */
export async function executeProcedure(
  session: Session,
  given: Procedure,
  parseParams: (env: ResolvedEnvironment) => unknown,
  resume?: { fromRun: string; completed: Record<string, unknown>; completedAt?: Record<string, string>; env?: ResolvedEnvironment; takeoverFrom?: string },
): Promise<number> {
  const { io } = session.deps;
  const { flags } = session;
  const proc = session.deps.procedureOverride ? session.deps.procedureOverride(given) : given;
  const env = resume?.env ?? (await resolveTarget(session));
  const params = parseParams(env);
  const standalone = typeof proc.worksWithoutConfig === 'function' ? proc.worksWithoutConfig(params) : Boolean(proc.worksWithoutConfig);
  if (env.builtIn && flags.dryRun !== 'offline' && !standalone) {
    throw new UsageError(
      'no config found: the built-in "example" environment only serves --dry-run=offline, explain and list',
      'create ./runbook.yaml (see the README), or pass --config FILE or set RUNBOOK_CONFIG',
    );
  }
  session.redactor.registerSecretsIn(params);
  proc.validate?.(params, env);
  checkRequirements(proc, env);

  const now = session.now;
  const runId = newRunId(now());
  const dir = journalDir(io.env, env.journalDir);
  const journal =
    flags.dryRun === 'offline'
      ? new NullJournal(dir, runId, session.redactor, now)
      : new Journal(dir, runId, session.redactor, now, session.deps.journalWrites);
  // A journal that cannot be written stops the run here, before anything is contacted (exit 2).
  journal.open();
  // Retention (journal.keep): looked at when a changing run starts, at most once a day; never this run.
  if (flags.dryRun === 'off' && procedureRisk(proc, params, env) !== 'read') {
    const keep = async () => (env.configPath ? (await loadConfig(env.configPath)).config.journal?.keep : undefined);
    await pruneJournal(dir, keep, { now: now(), current: runId, warn: (m) => session.reporter.warn(m) });
  }
  const made = makeClients(env, io.env, session.deps.clientFactories ?? defaultFactories, session.redactor);
  // Tests hold every procedure to its declaration, so the RBAC derived from it is complete.
  const clients =
    io.env.RUNBOOK_STRICT_KUBE === '1' ? { ...made, kube: async () => declaredOnly(await made.kube(), declaredKubeCalls(proc), proc.name) } : made;
  const interrupts = session.deps.interrupts ?? { signal: new AbortController().signal, hard: new AbortController().signal };
  let result: RunResult;
  try {
    result = await runProcedure({
      procedure: proc,
      params,
      env,
      runId,
      operator: session.operator,
      dryRun: flags.dryRun,
      gateFlags: flags.gate,
      interactive: session.interactive,
      io,
      colors: session.colors,
      reporter: session.reporter,
      redactor: session.redactor,
      prompter: session.deps.prompter ?? new TerminalPrompter(io),
      clients,
      journal,
      interrupts,
      timeoutMs: flags.timeoutMs,
      now,
      resume: resume ? { fromRun: resume.fromRun, completed: resume.completed, completedAt: resume.completedAt, takeoverFrom: resume.takeoverFrom } : undefined,
    });
  } finally {
    journal.close();
    await clients.closeAll();
  }
  printResult(session, proc, result);
  return result.exitCode;
}

function printResult(session: Session, proc: Procedure, result: RunResult): void {
  const { io } = session.deps;
  const { redactor, reporter, colors } = session;
  if (session.flags.json) {
    io.stdout.write(jsonText(redactor.value(result)) + '\n');
  } else if (result.dryRun === 'offline') {
    io.stdout.write(visible(redactor.text(renderOfflinePlan(result, colors)), true));
  } else if (proc.render && (result.status === 'succeeded' || result.status === 'check-failed')) {
    const results: Record<string, unknown> = {};
    for (const s of result.steps) if (s.data !== undefined) results[s.id] = s.data;
    io.stdout.write(visible(redactor.text(proc.render(runData(results), colors, result.params)), true));
  }
  if (result.error) reporter.error(result.error.message, result.error.hint);
  if (!session.flags.quiet || result.exitCode !== 0) io.stderr.write(visible(redactor.text(summaryLine(result, proc, colors)), true) + '\n');
}
