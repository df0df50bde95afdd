import { readFile } from 'node:fs/promises';
import { makeClients, defaultFactories } from '../clients/index.js';
import { findConfigPath, loadConfig, selectEnvironment } from '../core/config.js';
import { ExitCode, UsageError } from '../core/errors.js';
import { isRunId, parseEvents, runFile, type RunStartEvent } from '../core/journal.js';
import { verifyChain } from '../core/journal-verify.js';
import { findRunFile } from '../core/journal-reader.js';
import { heldBy, leaseName } from '../core/lock.js';
import type { Session } from '../core/session.js';
import { jsonText } from '../core/terminal.js';
import { findEntry } from '../procedures/catalog.js';

function checkRunId(runId: string | undefined): string {
  if (!runId || !isRunId(runId)) throw new UsageError(`invalid run id "${runId ?? ''}"`, 'runbook history lists run ids');
  return runId;
}

/** `runbook verify <run-id>`: the run file's hash chain, line by line; exit 4 at the first line that does not match. */
export async function verify(session: Session, given: string | undefined, dir: string, shared?: (runId: string) => Promise<string | null>): Promise<number> {
  const runId = checkRunId(given);
  const local = await findRunFile(dir, runId);
  let text: string | null = local ? await readFile(local, 'utf8').catch(() => null) : null;
  let where = local ?? runFile(dir, runId);
  if (text === null && shared) {
    text = await shared(runId);
    where = 'the team journal';
  }
  if (text === null) throw new UsageError(`no run ${runId} in ${dir}`, 'runbook history lists run ids');
  const report = verifyChain(runId, text);
  const { io } = session.deps;
  if (session.flags.json) {
    io.stdout.write(jsonText({ ...report, source: where, ok: !report.broken }) + '\n');
  } else if (report.broken) {
    io.stdout.write(`run ${runId}: line ${report.broken.line} of ${report.lines} does not match: ${report.broken.problem}\n`);
    io.stdout.write(
      report.intact > 0
        ? `  lines 1–${report.intact} are intact (chain head ${report.head.slice(0, 16)}…); nothing from line ${report.broken.line} on can be trusted\n`
        : `  no line of it can be trusted\n`,
    );
  } else {
    io.stdout.write(`run ${runId}: all ${report.lines} lines intact, hash chain unbroken (head ${report.head.slice(0, 16)}…) in ${where}\n`);
  }
  return report.broken ? ExitCode.check : ExitCode.ok;
}

/** A lease renewed this recently belongs to a run that is still going (renewals come every 20 s). */
const LIVE_MS = 25_000;

/**
 * `runbook release <run-id>`: the run's operator gives up the Leases it still holds (after a crash, or
 * to hand it over), so another operator can `resume --takeover` at once instead of waiting for expiry.
 */
export async function release(session: Session, given: string | undefined, dir: string): Promise<number> {
  const runId = checkRunId(given);
  const file = await findRunFile(dir, runId);
  const text = file ? await readFile(file, 'utf8').catch(() => null) : null;
  if (text === null) throw new UsageError(`no run ${runId} in ${dir}`, 'runbook history lists run ids');
  const events = parseEvents(text);
  const start = events.find((e): e is RunStartEvent => e.type === 'run-start');
  if (!start) throw new UsageError(`run ${runId} has no start record`);
  const owner = start.operator ?? '?';
  if (owner !== session.operator) {
    throw new UsageError(
      `run ${runId} is ${owner}'s: only its operator releases its locks`,
      `they run: runbook release ${runId}; or, once the lock has expired (a minute after the run stopped), runbook resume ${runId} --takeover`,
    );
  }
  const entry = findEntry(start.procedure.split(' '));
  if (!entry || entry.name !== start.procedure) throw new UsageError(`run ${runId} is of an unknown procedure "${start.procedure}"`);
  const proc = await entry.load();
  const { io } = session.deps;
  const recordedConfig = typeof start.config === 'string' ? start.config : undefined;
  const env = selectEnvironment(await loadConfig(findConfigPath(session.flags.config ?? recordedConfig, io.env, io.cwd)), start.environment, {});
  if (!env.config.kubernetes || !proc.locks) {
    session.reporter.info(`run ${runId} holds no lock (${env.config.kubernetes ? `${proc.name} takes none` : `no kubernetes in ${env.name}`})`);
    return ExitCode.ok;
  }
  const names = [...new Set(proc.locks(start.params ?? {}, env).map(leaseName))].sort();
  const clients = makeClients(env, io.env, session.deps.clientFactories ?? defaultFactories, session.redactor);
  const released: string[] = [];
  try {
    const kube = await clients.kube();
    for (const name of names) {
      const lease = await kube.getLease(name);
      if (!lease || !heldBy(lease.holder, { operator: owner, runId })) continue;
      const renewed = lease.renewTime ?? lease.acquireTime;
      const age = renewed ? session.now().getTime() - renewed.getTime() : Infinity;
      if (age < LIVE_MS && !events.some((e) => e.type === 'run-end')) {
        throw new UsageError(
          `run ${runId} looks alive: its lock ${name} was renewed ${Math.round(age / 1000)}s ago`,
          'stop it first (Ctrl-C in its terminal), or wait half a minute if it was killed',
        );
      }
      await kube.deleteLease(name, lease.resourceVersion ?? '');
      released.push(name);
    }
  } finally {
    await clients.closeAll();
  }
  if (released.length === 0) session.reporter.info(`run ${runId} holds no lock now`);
  else session.reporter.info(`released ${released.join(', ')} (run ${runId}); another operator can now continue it: runbook resume ${runId} --takeover`);
  return ExitCode.ok;
}
