import { UsageError } from '../../core/errors.js';
import { isRunId, type JournalEvent, type RunSummary } from '../../core/journal.js';
import { runSummary, type JournalRun } from '../../core/journal-reader.js';
import { defineProcedure, stepFor } from '../../core/procedure.js';
import { byText } from '../../core/format.js';

export interface ReportParams {
  title: string;
  severity: string;
  since: number;
  run?: string[];
  impact?: string;
  allRuns?: boolean;
}

interface TimelineEntry {
  t: string;
  text: string;
}

interface Collected {
  runs: Array<RunSummary & { changes: string[] }>;
  timeline: TimelineEntry[];
  start: string | null;
  end: string | null;
  /** Runs in the window left out because they only read (shown with --all-runs). */
  readOnlyLeftOut: number;
}

/**
 * A run that reached a step able to change something (whether it then succeeded or failed), or stopped at a gate
 * (only a change is gated: a run that failed closed for want of --yes never reached its first step).
 */
export function triedToChange(events: readonly JournalEvent[]): boolean {
  return events.some((e) => (e.type === 'step-start' && e.risk !== undefined && e.risk !== 'read') || (e.type === 'run-end' && e.status === 'declined'));
}

const hhmm = (iso: string) => iso.slice(11, 16);
const SEVERITY = /^p[123]$/i;

/** Turns one run's journal into timeline lines: start, gates, the changes made, failures, put-backs, end. */
export function timelineOf(s: RunSummary, events: readonly JournalEvent[]): { entries: TimelineEntry[]; changes: string[] } {
  const entries: TimelineEntry[] = [];
  const changes: string[] = [];
  const titles = new Map<string, string>();
  const who = `${s.operator} ran \`runbook ${s.procedure}\` on ${s.environment}`;
  const risks = new Map<string, string>();
  const title = (step: unknown) => titles.get(String(step)) ?? String(step);
  for (const e of events) {
    if (e.type === 'run-start') entries.push({ t: e.t, text: `${who} (run ${s.runId})` });
    else if (e.type === 'step-start') {
      titles.set(String(e.step), String(e.title ?? e.step));
      risks.set(String(e.step), String(e.risk ?? 'read'));
    } else if (e.type === 'step-end' && e.carriedFrom !== undefined) {
      // Done in the run this one resumed (and shown with it), carried over, not done again.
    } else if (e.type === 'gate' && e.decision === 'declined') entries.push({ t: e.t, text: `declined: ${title(e.step)}` });
    else if (e.type === 'step-end' && e.status === 'succeeded' && risks.get(String(e.step)) !== 'read') {
      const detail = Array.isArray(e.changes)
        ? e.changes
            .map((c) => `${c.action} ${c.target}${c.before !== undefined || c.after !== undefined ? ` ${c.before ?? '∅'} → ${c.after ?? '∅'}` : ''}`)
            .join('; ')
        : '';
      entries.push({ t: e.t, text: `${title(e.step)}${detail ? `: ${detail}` : ''}` });
      changes.push(title(e.step));
    } else if (e.type === 'step-end' && e.status === 'failed') entries.push({ t: e.t, text: `failed: ${title(e.step)}: ${String(e.error ?? '')}` });
    else if (e.type === 'compensation') entries.push({ t: e.t, text: `put back (${title(e.step)}): ${e.status}${e.byHand ? `; by hand: ${e.byHand}` : ''}` });
    else if (e.type === 'run-end') entries.push({ t: e.t, text: `\`runbook ${s.procedure}\` ${e.status} (exit ${e.exitCode})` });
  }
  return { entries, changes };
}

const step = stepFor<ReportParams>();

const collect = step({
  id: 'collect',
  title: 'Read the journal',
  why: 'Every run of runbook is journaled with its operator, gates, steps and put-backs: the timeline writes itself.',
  risk: 'read',
  equivalent: (p) => `runbook history --json  # then runbook show <run-id> for each run since ${p.since / 3_600_000}h`,
  async run(ctx): Promise<Collected> {
    // Real runs other than this one (the reader never returns the run in progress), oldest first.
    let chosen: JournalRun[];
    if (ctx.params.run?.length) {
      const ids = [...new Set(ctx.params.run)].sort();
      const found = await Promise.all(ids.map((id) => ctx.journal.run(id)));
      const missing = ids.filter((id, i) => !found[i] || found[i].dryRun !== 'off' || id === ctx.runId);
      if (missing.length) throw new UsageError(`no run ${missing.join(', ')} in ${ctx.journal.dir}`, 'runbook history lists run ids');
      chosen = found.filter((r): r is JournalRun => r !== null);
    } else {
      // Only the runs that started in the window are read (run files are named by their start).
      chosen = (await ctx.journal.runs({ since: ctx.now().getTime() - ctx.params.since })).reverse();
    }
    const runs: Collected['runs'] = [];
    const timeline: TimelineEntry[] = [];
    // Named runs are reported as asked; a window keeps to the runs that changed something, or tried to.
    const all = Boolean(ctx.params.run?.length) || Boolean(ctx.params.allRuns);
    const kept = all ? chosen : chosen.filter((r) => triedToChange(r.events));
    for (const r of kept) {
      const { entries, changes } = timelineOf(r, r.events);
      timeline.push(...entries);
      runs.push({ ...runSummary(r), changes });
    }
    timeline.sort((a, b) => byText(a.t, b.t));
    return { runs, timeline, start: timeline[0]?.t ?? null, end: timeline.at(-1)?.t ?? null, readOnlyLeftOut: chosen.length - kept.length };
  },
});

export default defineProcedure<ReportParams>({
  name: 'report new',
  summary: "Draft the post-incident report from the seed's template, the timeline filled from the journal",
  seedFixes: [
    "The seed's template starts empty at the end of a long night; this fills the date, duration and timeline from what runbook journaled (who ran what, gates, failures, what was put back), leaving the human parts (root cause, lessons) to write.",
  ],
  params: [
    { name: 'title', flag: '--title <text>', description: 'incident title', type: 'string', required: true },
    { name: 'severity', flag: '--severity <P1|P2|P3>', description: 'severity: P1, P2 or P3 (any case)', type: 'string', required: true },
    { name: 'since', flag: '--since <duration>', description: 'include runs that started within this window', type: 'duration', default: '24h' },
    { name: 'run', flag: '--run <run-ids>', description: 'only these runs (comma-separated), instead of --since', type: 'list' },
    { name: 'impact', flag: '--impact <text>', description: 'users or services affected', type: 'string' },
    {
      name: 'allRuns',
      flag: '--all-runs',
      description: 'also the runs that only read (by default only runs that changed something, or tried to)',
      type: 'boolean',
      default: false,
    },
  ],
  examples: [
    ['--title', 'API errors after deploy', '--severity', 'P2', '--since', '6h'],
    ['--title', 'Checkout down', '--severity', 'p1', '--since', '2h', '--all-runs'],
  ],
  requires: [],
  worksWithoutConfig: true,
  validate(p) {
    if (!SEVERITY.test(p.severity)) throw new UsageError(`--severity must be one of P1, P2, P3 (any case), got "${p.severity}"`);
    for (const id of p.run ?? []) if (!isRunId(id)) throw new UsageError(`invalid run id "${id}"`, 'runbook history lists run ids');
  },
  steps: [collect],
  render(run, _colors, params) {
    return renderReport(run.get(collect), params as ReportParams);
  },
});

/** The seed's template, filled. */
export function renderReport(c: Collected, p?: ReportParams): string {
  const date = c.start ? c.start.slice(0, 10) : new Date().toISOString().slice(0, 10);
  const duration = c.start && c.end ? `${hhmm(c.start)} - ${hhmm(c.end)} UTC` : '[Start time - End time]';
  const lines = [
    `# Incident Report: ${p?.title ?? '[Title]'}`,
    '',
    `**Date**: ${date}  `,
    `**Duration**: ${duration}  `,
    `**Severity**: ${p?.severity.toUpperCase() ?? '[P1/P2/P3]'}  `,
    `**Impact**: ${p?.impact ?? '[Number of users/services affected]'}`,
    '',
    '## Timeline',
    '- HH:MM - Alert triggered',
    '- HH:MM - Engineer acknowledged',
    ...c.timeline.map((e) => `- ${hhmm(e.t)} - ${e.text}`),
    '- HH:MM - Root cause identified',
    '- HH:MM - Service restored',
    '',
    '## Root Cause',
    '[Detailed explanation of what caused the incident]',
    '',
    '## Resolution',
    ...(c.runs.length
      ? c.runs.map(
          (r) =>
            `- \`runbook ${r.procedure}\` on ${r.environment} by ${r.operator}: ${r.status}${r.changes.length ? ` (changed: ${r.changes.join(', ')})` : ''} — \`runbook show ${r.runId}\``,
        )
      : ['[Steps taken to resolve the incident]']),
    '',
    '## Lessons Learned',
    '- What went well',
    '- What could be improved',
    '- Action items',
    '',
    '## Follow-up Actions',
    '- [ ] Update runbook',
    '- [ ] Add monitoring',
    '- [ ] Fix root cause',
    '- [ ] Post-mortem meeting',
    '',
  ];
  return lines.join('\n');
}
