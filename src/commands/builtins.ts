import { ExitCode, StepError, UsageError } from '../core/errors.js';
import { describeLeft, leftState, resumeBlocker, type LeftState } from '../core/run-state.js';
import type { Procedure } from '../core/procedure.js';
import { catalog, findEntry } from '../procedures/catalog.js';
import { table } from '../core/table.js';
import { didYouMean } from '../core/suggest.js';
import { journalDir, summarize, isRunId, type CompensationEvent, type JournalEvent, type RunStartEvent, type RunSummary } from '../core/journal.js';
import { openJournal, runSummary, type JournalRun } from '../core/journal-reader.js';
import { catchUp, type SharedJournal } from '../core/journal-share.js';
import { teamJournal, type RunSource } from '../core/journal-team.js';
import { exampleConfig } from '../core/example-config.js';
import { gateKind } from '../core/gates.js';
import { stepRisk } from '../core/procedure.js';
import { exampleParams } from '../core/params.js';
import { formatDuration, parseDuration } from '../core/duration.js';
import type { Session } from '../core/session.js';
import { jsonText, visible } from '../core/terminal.js';
import { executeProcedure, resolveTarget } from './run-procedure.js';
import { findConfigPath, loadConfig, selectEnvironment } from '../core/config.js';

export async function runBuiltin(session: Session, name: string, args: string[], opts: Record<string, unknown>): Promise<number> {
  switch (name) {
    case 'list':
      return list(session);
    case 'explain':
      return explain(session, args);
    case 'history':
      return history(session, opts);
    case 'show':
      return show(session, args[0]);
    case 'resume':
      return resume(session, args[0], opts);
    case 'verify':
    case 'release': {
      const handover = await import('./handover.js');
      if (name === 'release') return handover.release(session, args[0], await dir(session));
      // A run not kept here is checked in the team journal (its shared copy), when there is one.
      const { dir: local, shared } = await journals(session);
      try {
        return await handover.verify(session, args[0], local, shared ? (id) => sharedText(shared, id) : undefined);
      } finally {
        shared?.close();
      }
    }
    case 'approve':
    case 'deny': {
      const { decide } = await import('./approve.js');
      return decide(session, name === 'approve' ? 'approved' : 'denied', args[0], opts);
    }
    case 'rbac':
      return rbac(session, args, opts);
    default:
      throw new UsageError(`unknown command ${name}`);
  }
}

function out(session: Session, text: string): void {
  session.deps.io.stdout.write(visible(session.redactor.text(text), true));
}

function outJson(session: Session, value: unknown): void {
  session.deps.io.stdout.write(session.redactor.text(jsonText(value)) + '\n');
}

function list(session: Session): number {
  if (session.flags.json) {
    outJson(
      session,
      catalog.map(({ name, summary, risk, riskFor, seed }) => ({ name, summary, risk, ...(riskFor ? { riskFor } : {}), seed })),
    );
  } else {
    out(
      session,
      table(
        ['PROCEDURE', 'RISK', 'SUMMARY'],
        catalog.map((e) => [e.name, e.riskFor ? `${e.riskFor.usually} (${e.risk} ${e.riskFor.when})` : e.risk, e.summary]),
      ),
    );
  }
  return ExitCode.ok;
}

async function explain(session: Session, words: string[]): Promise<number> {
  // `explain db-restart` means `explain db restart` (the folder-and-file spelling).
  const entry = findEntry(words) ?? findEntry(words.join(' ').replace('-', ' ').split(' ')) ?? findEntry(words.flatMap((w) => w.split('-')));
  if (!entry) {
    const given = words.join(' ');
    throw new UsageError(
      `unknown procedure "${given}"`,
      didYouMean(
        given,
        catalog.map((e) => e.name),
      ) || 'runbook list shows them all',
    );
  }
  const proc = await entry.load();
  // Explain against the configured environment when there is one, else the built-in example.
  let env;
  try {
    env = await resolveTarget(session);
  } catch {
    env = selectEnvironment({ config: exampleConfig, path: null }, undefined, {});
  }
  const params = exampleParams(proc);
  const example = proc.examples[0] ?? [];
  const c = session.colors;
  const lines: string[] = [];
  lines.push(c.bold(`runbook ${proc.name}`) + ` — ${proc.summary}`);
  lines.push(`seed section: ${entry.seed}`);
  lines.push(`example: runbook ${proc.name} ${example.join(' ')}`.trimEnd());
  lines.push(`shown for environment "${env.name}"${env.config.protected ? ' (protected)' : ''}`);
  lines.push('');
  // The steps this example would run (a step's `when` may leave it out for these arguments).
  const steps = proc.steps.filter((s) => {
    try {
      return !s.when || s.when(params as never, env);
    } catch {
      return true;
    }
  });
  steps.forEach((s, i) => {
    const risk = stepRisk(s, params as never, env);
    const kind = gateKind(risk, env.config.protected, s.severe);
    const gate = kind === 'severe' ? `gate: type "${env.name}"` : kind === 'confirm' ? 'gate: yes/no' : 'no gate';
    lines.push(`${i + 1}. ${c.bold(s.title)}  [${risk}; ${gate}]${s.undo ? '  (undone on failure)' : ''}`);
    lines.push(`   why: ${s.why}`);
    lines.push(`   by hand: ${s.equivalent(params as never, env)}`);
  });
  if (proc.seedFixes?.length) {
    lines.push('');
    lines.push(c.bold('What the seed runbook got wrong, and what this does instead:'));
    for (const f of proc.seedFixes) lines.push(`  - ${f}`);
  }
  lines.push('');
  lines.push('Try it safely: add --dry-run (reads are real, writes previewed) or --dry-run=offline (nothing contacted).');
  if (session.flags.json) {
    outJson(session, {
      name: proc.name,
      summary: proc.summary,
      seed: entry.seed,
      seedFixes: proc.seedFixes ?? [],
      steps: steps.map((s) => ({
        id: s.id,
        title: s.title,
        why: s.why,
        risk: stepRisk(s, params as never, env),
        equivalent: s.equivalent(params as never, env),
        compensated: Boolean(s.undo),
      })),
    });
  } else out(session, lines.join('\n') + '\n');
  return ExitCode.ok;
}

/** $RUNBOOK_JOURNAL_DIR, else the config's journal.dir, else $XDG_STATE_HOME/runbook. */
async function dir(session: Session): Promise<string> {
  const { io } = session.deps;
  const path = findConfigPath(session.flags.config, io.env, io.cwd);
  const configured = path ? (await loadConfig(path)).config.journal?.dir : undefined;
  return journalDir(io.env, configured);
}

/**
 * The journal directory and, when the config has journal.shared, the team journal, after the runs
 * still owed to it are uploaded (bounded; a failure is one warning). The caller closes it.
 */
async function journals(session: Session): Promise<{ dir: string; shared?: SharedJournal }> {
  const { io } = session.deps;
  const path = findConfigPath(session.flags.config, io.env, io.cwd);
  const loaded = path ? await loadConfig(path) : undefined;
  const dir = journalDir(io.env, loaded?.config.journal?.dir);
  const config = loaded?.config.journal?.shared;
  if (!loaded || !config) return { dir };
  let region: string | undefined;
  try {
    region = selectEnvironment(loaded, session.flags.env, io.env).config.aws?.region;
  } catch {
    // No environment chosen: the region comes from journal.shared.s3.region, $AWS_REGION or the AWS profile.
  }
  const { openSharedJournal } = await import('../clients/journal-s3.js');
  const shared = openSharedJournal(config, io.env, region);
  await catchUp(shared, dir, { warn: (m) => session.reporter.warn(m) });
  return { dir, shared };
}

async function history(session: Session, opts: Record<string, unknown>): Promise<number> {
  const limit = Number(opts.limit ?? 20);
  if (!Number.isInteger(limit) || limit < 1) throw new UsageError(`--limit must be a positive whole number`);
  const procedure = typeof opts.procedure === 'string' ? opts.procedure.trim().replace(/-/, ' ') : undefined;
  if (procedure !== undefined && !findEntry(procedure.split(/\s+/))) {
    throw new UsageError(
      `unknown procedure "${procedure}"`,
      didYouMean(
        procedure,
        catalog.map((e) => e.name),
      ) || 'runbook list shows them all',
    );
  }
  const since = opts.since === undefined ? undefined : session.now().getTime() - parseDuration(String(opts.since));
  const status = typeof opts.status === 'string' ? opts.status : undefined;
  const statuses = ['succeeded', 'failed', 'declined', 'interrupted', 'partial', 'locked', 'check-failed', 'running'];
  if (status !== undefined && !statuses.includes(status))
    throw new UsageError(`--status must be one of ${statuses.join(', ')}`, didYouMean(status, statuses) || undefined);
  const operator = typeof opts.operator === 'string' ? opts.operator : undefined;
  const output = opts.output === undefined ? (session.flags.json ? 'json' : 'table') : String(opts.output);
  if (output !== 'json' && output !== 'yaml' && output !== 'table') throw new UsageError(`-o/--output must be json or yaml, got "${output}"`);
  const { dir, shared } = await journals(session);
  if (opts.team && !shared)
    throw new UsageError(
      'history --team needs a team journal: journal.shared in the config',
      'add journal: { shared: { s3: { bucket: <bucket>, prefix: <prefix> } } }',
    );
  try {
    const local = openJournal(dir, { warn: (m) => session.reporter.warn(m) });
    const team = opts.team && shared ? teamJournal(local, shared, { warn: (m) => session.reporter.warn(m), strict: true }) : undefined;
    const query = { procedure, env: session.flags.env, since, includeDryRuns: opts.dryRuns !== false };
    // Only the files of the runs shown are read; a filter the reader cannot apply up front reads on until `limit` match.
    const wanted = (r: RunSummary) =>
      (status === undefined || r.status === status) && (operator === undefined || r.operator === operator || r.operator.split('@')[0] === operator);
    const filtered = status !== undefined || operator !== undefined;
    const found: Array<JournalRun & { source?: RunSource }> = team
      ? await team.runs({ ...query, limit, where: filtered ? wanted : undefined })
      : filtered
        ? (await local.runs(query)).filter(wanted).slice(0, limit)
        : await local.runs({ ...query, limit });
    const runs = found.map((r) => ({ ...runSummary(r), ...(r.source ? { source: r.source } : {}) }));
    const where = team ? `${dir} or ${team.shared.url}${team.unreachable ? ' (the team journal could not be read)' : ''}` : dir;
    if (output === 'json') outJson(session, runs);
    else if (output === 'yaml') out(session, (await import('yaml')).stringify(runs));
    else if (runs.length === 0) session.reporter.info(`no runs in ${where}`);
    else
      out(
        session,
        table(
          ['RUN', 'PROCEDURE', 'ENV', 'STATUS', 'EXIT', 'DURATION', 'OPERATOR', 'STARTED'],
          runs.map((r) => [
            r.runId,
            r.procedure,
            r.environment,
            r.dryRun !== 'off' ? `${r.status} (dry run)` : r.status,
            r.exitCode ?? '',
            r.durationMs === null ? '' : formatDuration(r.durationMs),
            r.operator,
            r.startedAt,
          ]),
        ),
      );
    return ExitCode.ok;
  } finally {
    shared?.close();
  }
}

/** A run's events: from the local journal, else from the team journal when there is one (said on stderr). */
async function sharedText(shared: SharedJournal, runId: string): Promise<string | null> {
  const key = shared.key(runId);
  return key ? shared.store.get(key) : null;
}

async function findRun(session: Session, runId: string | undefined): Promise<JournalEvent[]> {
  if (!runId || !isRunId(runId)) throw new UsageError(`invalid run id "${runId ?? ''}"`, 'runbook history lists run ids');
  const { dir, shared } = await journals(session);
  try {
    const local = openJournal(dir, { warn: (m) => session.reporter.warn(m) });
    const mine = await local.events(runId).catch(() => null);
    if (mine) return mine;
    if (!shared) throw new UsageError(`no run ${runId} in ${dir}`, 'runbook history lists run ids');
    const team = teamJournal(local, shared, { warn: (m) => session.reporter.warn(m), strict: true });
    const theirs = await team.sharedRun(runId);
    if (theirs) {
      session.reporter.info(`(from the team journal ${shared.url})`);
      return [...theirs.events];
    }
    if (team.unreachable) throw new StepError(`no run ${runId} in ${dir}, and the team journal ${shared.url} could not be read`, 'try again once S3 answers');
    throw new UsageError(`no run ${runId} in ${dir} or ${shared.url}`, 'runbook history --team lists run ids');
  } finally {
    shared?.close();
  }
}

async function show(session: Session, runId: string | undefined): Promise<number> {
  const events = await findRun(session, runId);
  const s = summarize(runId!, events);
  // An incomplete run (killed, crashed): what state it left and what to do about it.
  let left: LeftState | undefined;
  if (s.status === 'incomplete') {
    const entry = findEntry(s.procedure.split(' '));
    const proc = entry && entry.name === s.procedure ? ((await entry.load()) as unknown as Procedure<never>) : undefined;
    left = leftState(runId!, events, proc);
  }
  if (session.flags.json) {
    outJson(session, { ...s, ...(left ? { left } : {}), events });
    return ExitCode.ok;
  }
  const lines = [
    `run ${s.runId}: ${s.procedure} on ${s.environment} by ${s.operator}${s.dryRun !== 'off' ? ` (dry run: ${s.dryRun})` : ''}`,
    `status ${s.status}${s.exitCode !== null ? `, exit ${s.exitCode}` : ''}${s.durationMs !== null ? `, ${formatDuration(s.durationMs)}` : ''}`,
    `params ${JSON.stringify(events.find((e): e is RunStartEvent => e.type === 'run-start')?.params ?? {})}`,
    '',
  ];
  for (const e of events) {
    const time = e.t.slice(11, 19);
    if (e.type === 'step-end')
      lines.push(`${time}  ${e.step}: ${e.status}${e.error ? ` — ${e.error}` : ''}${e.data !== undefined ? `  ${JSON.stringify(e.data)}` : ''}`);
    else if (e.type === 'gate') lines.push(`${time}  gate ${e.step}: ${e.decision}${e.by ? ` by ${e.by}` : ''}${e.reason ? ` (${e.reason})` : ''}`);
    else if (e.type === 'compensation')
      lines.push(`${time}  undo ${e.step}: ${e.status}${e.error ? ` — ${e.error}` : ''}${e.byHand ? ` — by hand: ${e.byHand}` : ''}`);
    else if (e.type === 'lock') lines.push(`${time}  lock ${e.lease}`);
    else if (e.type === 'run-end' && e.error) lines.push(`${time}  error: ${e.error.message}`);
  }
  if (left) lines.push(...describeLeft(runId!, s.procedure, left, s.dryRun !== 'off'));
  out(session, lines.join('\n') + '\n');
  return ExitCode.ok;
}

/** Continue a failed or interrupted run: completed steps are skipped, their recorded data restored. */
async function resume(session: Session, runId: string | undefined, opts: Record<string, unknown> = {}): Promise<number> {
  const events = await findRun(session, runId);
  const start = events.find((e): e is RunStartEvent => e.type === 'run-start');
  const entry = start ? findEntry(String(start.procedure).split(' ')) : undefined;
  // The same rules `runbook show` uses to say whether a resume can finish an incomplete run.
  const blocker = resumeBlocker(runId!, events, entry !== undefined);
  if (blocker || !start || !entry) throw new UsageError(blocker?.message ?? `run ${runId} cannot be resumed`, blocker?.hint);
  // Someone else's run is continued only as a takeover, said so out loud (and in the journal, the Lease and an Event).
  const owner = typeof start.operator === 'string' ? start.operator : undefined;
  const takeover = owner !== undefined && owner !== session.operator;
  if (takeover && opts.takeover !== true) {
    throw new UsageError(
      `run ${runId} is ${owner}'s, not yours (${session.operator})`,
      `to continue it for them: runbook resume ${runId} --takeover (once their lock expired, or they ran runbook release ${runId})`,
    );
  }
  if (!takeover && opts.takeover === true) session.reporter.info(`run ${runId} is your own: --takeover is not needed`);
  const proc = await entry.load();
  const undone = new Set(events.filter((e): e is CompensationEvent => e.type === 'compensation' && e.status === 'succeeded').map((e) => String(e.step)));
  const completed: Record<string, unknown> = {};
  const completedAt: Record<string, string> = {};
  for (const e of events) {
    if (e.type === 'step-end' && e.status === 'succeeded' && !undone.has(String(e.step))) {
      completed[String(e.step)] = e.data;
      // A step this run carried over from the one it resumed keeps the time it was really done.
      completedAt[String(e.step)] = e.doneAt ?? e.t;
    }
  }
  const { io } = session.deps;
  const environment = String(start.environment);
  if (session.flags.env !== undefined && session.flags.env !== environment) {
    throw new UsageError(
      `run ${runId} ran on environment "${environment}", not "${session.flags.env}"`,
      `drop -e, or: runbook resume ${runId} -e ${environment}`,
    );
  }
  // The config the run used, unless -c names another: resume from any directory finds the same targets.
  const recordedConfig = typeof start.config === 'string' ? start.config : undefined;
  const loaded = await loadConfig(findConfigPath(session.flags.config ?? recordedConfig, io.env, io.cwd));
  const env = selectEnvironment(loaded, environment, {});
  session.reporter.info(
    `resuming run ${runId} (${proc.name} on ${env.name}${env.configPath ? `, config ${env.configPath}` : ''}); ${Object.keys(completed).length} step(s) done then, re-checked before they are skipped`,
  );
  if (takeover) session.reporter.warn(`taking over ${owner}'s run ${runId}: from here on it is yours (${session.operator})`);
  return executeProcedure(session, proc, () => start.params, { fromRun: runId!, completed, completedAt, env, ...(takeover ? { takeoverFrom: owner } : {}) });
}

/** Prints the Role for the environment's namespace (the example's without a config). */
async function rbac(session: Session, args: string[], opts: Record<string, unknown>): Promise<number> {
  let env;
  try {
    env = await resolveTarget(session);
  } catch {
    env = selectEnvironment({ config: exampleConfig, path: null }, undefined, {});
  }
  const namespace = env.config.kubernetes?.namespace;
  if (!namespace)
    throw new UsageError(`environment ${env.name} has no kubernetes section`, 'the Role is for the namespace in environments.<env>.kubernetes.namespace');
  const { rbacManifests, approvalManifests } = await import('./rbac.js');
  // Two-person approval's Roles and guard: alone with --approval, and after the procedures' when the environment requires it.
  const approval = env.config.approval;
  if (opts.approval && !approval)
    throw new UsageError(`environment ${env.name} has no approval section`, `add environments.${env.name}.approval: { required: 2, namespace: <ns> }`);
  const approvalText = approval
    ? approvalManifests({ namespace: approval.namespace, requesterGroup: opts.group as string, approverGroup: opts.approverGroup as string })
    : '';
  if (opts.approval) {
    out(session, approvalText);
    return ExitCode.ok;
  }
  const words = args.length ? splitProcedures(args) : undefined;
  out(session, await rbacManifests({ namespace, procedures: words, name: opts.name as string, group: opts.group as string }));
  if (approval && approval.required > 1 && !words) out(session, approvalText);
  return ExitCode.ok;
}

/** "app scale db restart" → [["app","scale"],["db","restart"]] (longest procedure name first). */
function splitProcedures(args: string[]): string[][] {
  const words = args.flatMap((a) => a.split(/\s+/)).filter(Boolean);
  const out: string[][] = [];
  for (let i = 0; i < words.length;) {
    const n = [3, 2].find((k) => i + k <= words.length && findEntry(words.slice(i, i + k))?.name === words.slice(i, i + k).join(' ')) ?? 0;
    if (!n) throw new UsageError(`unknown procedure near "${words.slice(i).join(' ')}"`, 'runbook list shows them all');
    out.push(words.slice(i, i + n));
    i += n;
  }
  return out;
}
