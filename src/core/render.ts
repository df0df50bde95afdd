import type { Colors } from './io.js';
import type { Procedure } from './procedure.js';
import type { RunResult } from './reporter.js';
import { formatDuration } from './duration.js';
import { ExitCode } from './errors.js';

/** Offline dry run: the plan is the result, so it goes to stdout. */
export function renderOfflinePlan(result: RunResult, c: Colors): string {
  const out: string[] = [];
  const shown = result.steps.filter((s) => s.status !== 'skipped');
  const total = shown.length;
  shown.forEach((s, i) => {
    const gate = s.gate === 'severe' ? c.red(` — gate: type "${result.environment}"`) : s.gate === 'confirm' ? c.yellow(' — gate: yes/no') : '';
    out.push(`${c.cyan(`[${i + 1}/${total}]`)} ${c.bold(s.title)} ${c.dim(`[${s.risk}]`)}${gate}`);
    out.push(`      why: ${s.why}`);
    out.push(`      ${c.dim('$')} ${s.equivalent}`);
  });
  return out.join('\n') + '\n';
}

/** The closing line on stderr. */
export function summaryLine(result: RunResult, proc: Procedure, c: Colors): string {
  const took = formatDuration(result.durationMs);
  switch (result.status) {
    case 'succeeded':
      return c.green(`✓ ${proc.name} succeeded in ${took} (run ${result.runId})`);
    case 'planned':
      return c.yellow(`DRY RUN complete: nothing was changed (${took})`);
    case 'check-failed':
      return c.red(`✗ ${proc.name}: check failed (run ${result.runId})`);
    case 'declined': {
      // Say what actually happened: a gate late in a run comes after real changes (a reboot cannot be undone).
      const changed = result.steps.filter((s) => s.status === 'succeeded' && s.risk !== 'read');
      if (!changed.length) return c.yellow(`✗ ${proc.name} stopped at a gate; nothing was changed (run ${result.runId})`);
      const putBack = new Set(result.compensations.filter((x) => x.status === 'succeeded').map((x) => x.step));
      const kept = changed.filter((s) => !putBack.has(s.id));
      const parts = [
        putBack.size
          ? `put back: ${changed
              .filter((s) => putBack.has(s.id))
              .map((s) => s.title)
              .join('; ')}`
          : '',
        kept.length ? `done and not undone: ${kept.map((s) => s.title).join('; ')}` : '',
      ].filter(Boolean);
      return c.yellow(`✗ ${proc.name} stopped at a gate after changing things — ${parts.join(' — ')}; nothing past the gate changed (run ${result.runId})`);
    }
    case 'partial':
      return c.red(
        `✗ ${proc.name} FAILED AND COULD NOT PUT EVERYTHING BACK — act by hand (run ${result.runId}):\n${(result.byHand ?? []).map((h) => `    ${h}`).join('\n')}`,
      );
    case 'locked':
      return c.red(`✗ ${proc.name} did not start: locked`);
    case 'interrupted':
      return c.yellow(`✗ ${proc.name} interrupted (run ${result.runId})`);
    default: {
      const undone = result.compensations.length ? '; its changes were put back' : '';
      // A usage or config error (a missing secret or kube context, a wrong --confirm, an unknown
      // revision) fails the same way on resume: the fix is to correct it and run the command again.
      if (result.exitCode === ExitCode.usage) {
        return c.red(`✗ ${proc.name} stopped${undone || ': nothing was changed'} (run ${result.runId}); fix the above and run the command again`);
      }
      return c.red(`✗ ${proc.name} failed${undone} (run ${result.runId}); resume with: runbook resume ${result.runId}`);
    }
  }
}
