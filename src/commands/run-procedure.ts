import { makeClients, defaultFactories } from '../clients/index.js';
import { declaredOnly, type KubeClient } from '../clients/kube.js';
import { audited, type AuditTrail } from '../clients/kube-audit.js';
import { findConfigPath, loadConfig, selectEnvironment, type ResolvedEnvironment } from '../core/config.js';
import { UsageError } from '../core/errors.js';
import { Journal, NullJournal, journalDir, newRunId } from '../core/journal.js';
import type { Procedure } from '../core/procedure.js';
import { procedureRisk, runData } from '../core/procedure.js';
import { openJournal, type JournalReader } from '../core/journal-reader.js';
import { TerminalPrompter } from '../core/prompter.js';
import { renderOfflinePlan, summaryLine } from '../core/render.js';
import { runEnvelope, type RunResult } from '../core/reporter.js';
import { declaredKubeCalls, runProcedure, type ActingStep } from '../core/runner.js';
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

  // From here on an interrupt stops the run through the runner (bin/runbook.js installs the
  // handlers on this first use); before, nothing was done and it simply ends the process.
  const interrupts = session.deps.interrupts ?? { signal: new AbortController().signal, hard: new AbortController().signal };
  const now = session.now;
  const runId = newRunId(now());
  const dir = journalDir(io.env, env.journalDir);
  // A run that can change something fsyncs every line (a crash loses no completed step); one that cannot
  // (a read command, a dry run) once at the end: ~3 ms an fsync was most of a read command's journal cost.
  const changes = flags.dryRun === 'off' && procedureRisk(proc, params, env) !== 'read';
  const journal =
    flags.dryRun === 'offline'
      ? new NullJournal(dir, runId, session.redactor, now)
      : new Journal(dir, runId, session.redactor, now, session.deps.journalWrites, changes ? 'line' : 'end');
  // A journal that cannot be written stops the run here, before anything is contacted (exit 2).
  journal.open();
  // Retention (journal.keep): looked at when a changing run starts, at most once a day; never this run.
  // The config's journal section: loaded with the environment (a resumed run's environment has none: read again).
  const journalConfig = async () => (env.journal !== undefined ? env.journal : env.configPath ? (await loadConfig(env.configPath)).config.journal : undefined);
  if (changes) {
    const keep = async () => (await journalConfig())?.keep;
    const { pruneJournal } = await import('../core/journal-retention.js');
    await pruneJournal(dir, keep, { now: now(), current: runId, warn: (m) => session.reporter.warn(m) });
  }
  // journal.shared: the run goes to the team journal as it is written, and steps read the team's runs too (report new).
  const sharedConfig = flags.dryRun !== 'offline' ? (await journalConfig())?.shared : undefined;
  // What only some runs need is loaded only by them (a read command loads none of it).
  const warn = (m: string) => session.reporter.warn(m);
  let sharing: { finish(): Promise<void> } | undefined;
  let reader: JournalReader | undefined;
  if (sharedConfig) {
    const [{ openSharedJournal }, { shareRun }, { teamJournal }] = await Promise.all([
      import('../clients/journal-s3.js'),
      import('../core/journal-share.js'),
      import('../core/journal-team.js'),
    ]);
    const shared = openSharedJournal(sharedConfig, io.env, env.config.aws?.region);
    sharing = shareRun(shared, journal, { dir, runId, warn });
    reader = teamJournal(openJournal(dir, { current: runId, warn }), shared, { current: runId, warn });
  }
  const made = makeClients(env, io.env, session.deps.clientFactories ?? defaultFactories, session.redactor);
  const approvals =
    flags.dryRun === 'off' && env.config.approval ? (await import('./approve.js')).makeApprovalGate(session, env, proc, runId, made) : undefined;
  // Tests hold every procedure to its declaration, so the RBAC derived from it is complete.
  const kube = io.env.RUNBOOK_STRICT_KUBE === '1' ? async () => declaredOnly(await made.kube(), declaredKubeCalls(proc), proc.name) : made.kube;
  // Every change a real run makes to a Kubernetes object is recorded on it: an Event, and the change-cause of a new template.
  let acting: ActingStep | undefined;
  const trail: AuditTrail = {
    procedure: proc.name,
    runId,
    operator: session.operator,
    step: () => acting,
    warn: (m) => session.reporter.warn(m),
    redact: (t) => session.redactor.text(t),
  };
  let auditedKube: Promise<KubeClient> | undefined;
  const clients = { ...made, kube: flags.dryRun === 'off' ? () => (auditedKube ??= kube().then((k) => audited(k, trail))) : kube };
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
      reader,
      interrupts,
      timeoutMs: flags.timeoutMs,
      now,
      onStep: (s) => (acting = s),
      // Two-person approval: requests go through the kubeconfig's own client, not the procedure's declared (or audited) one.
      approvals,
      resume: resume ? { fromRun: resume.fromRun, completed: resume.completed, completedAt: resume.completedAt, takeoverFrom: resume.takeoverFrom } : undefined,
    });
  } finally {
    journal.close();
    await sharing?.finish();
    await clients.closeAll();
  }
  printResult(session, proc, result);
  return result.exitCode;
}

function printResult(session: Session, proc: Procedure, result: RunResult): void {
  const { io } = session.deps;
  const { redactor, reporter, colors } = session;
  if (session.flags.json) {
    io.stdout.write(jsonText(redactor.value(runEnvelope(result))) + '\n');
  } else if (result.dryRun === 'offline') {
    io.stdout.write(visible(redactor.text(renderOfflinePlan(result, colors)), true));
  } else if (proc.render && (result.status === 'succeeded' || result.status === 'check-failed')) {
    const results: Record<string, unknown> = {};
    for (const s of result.steps) if (s.data !== undefined) results[s.id] = s.data;
    io.stdout.write(visible(redactor.text(proc.render(runData(results), colors, result.params)), true));
  }
  if (result.error) reporter.error(result.error.message, result.error.hint);
  // A run that reads only local data (info, report new) says nothing more when it worked: its output is the answer.
  const localOnly = proc.worksWithoutConfig === true && result.exitCode === 0 && result.dryRun === 'off';
  if ((!session.flags.quiet || result.exitCode !== 0) && !localOnly) io.stderr.write(visible(redactor.text(summaryLine(result, proc, colors)), true) + '\n');
}
