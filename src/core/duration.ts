import { UsageError } from './errors.js';

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const PART = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/g;
const WELL_FORMED = /^(\d+(\.\d+)?(ms|s|m|h|d))+$/;

/** The longest lookback or age a duration may say (`--since`, `--idle-for`, `logs.deleteAfter`). */
export const MAX_DURATION_MS = 365 * UNIT_MS.d;
/**
 * The longest wait (timeouts, poll intervals): Node's timers hold at most 2^31-1 ms (24.8 days), and a
 * longer one silently fires after 1 ms.
 */
export const MAX_WAIT_MS = 24 * UNIT_MS.d;

/** What a flag or config field measures, from its name: a wait (timer) or a lookback/age. */
export function durationLimit(what: string): number {
  return /timeout|interval|wait/i.test(what) ? MAX_WAIT_MS : MAX_DURATION_MS;
}

/** Milliseconds of a well-formed duration ("90s", "1h30m"), else null. A bare number has no unit: null. */
export function durationMs(input: string): number | null {
  const s = String(input).trim();
  if (!WELL_FORMED.test(s)) return null;
  let total = 0;
  for (const m of s.matchAll(PART)) total += Number(m[1]) * UNIT_MS[m[2]];
  return Math.round(total);
}

/**
 * Parses "90s", "5m", "1h30m", "7d" into milliseconds. A bare number is refused (is `10` ten seconds or
 * ten minutes?), and so is anything longer than `maxMs` (by default, what `what` names allows).
 */
export function parseDuration(input: string, what = 'duration', maxMs = durationLimit(what)): number {
  const s = String(input).trim();
  if (/^\d+(\.\d+)?$/.test(s))
    throw new UsageError(`${what} "${input}" has no unit: say ${s}m or ${s}s`, 'a duration is a number with a unit: 30s, 5m, 1h30m, 7d');
  const ms = durationMs(s);
  if (ms === null) throw new UsageError(`invalid ${what} "${input}"`, 'use a number with a unit, e.g. 30s, 5m, 1h30m, 7d');
  if (ms > maxMs) throw new UsageError(`${what} "${input}" is too long: at most ${formatLimit(maxMs)}`);
  return ms;
}

function formatLimit(ms: number): string {
  return `${Math.floor(ms / UNIT_MS.d)}d`;
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const s = ms / 1000;
  if (s < 60) return `${s < 10 ? s.toFixed(1) : Math.round(s)}s`;
  const m = Math.floor(s / 60);
  const rest = Math.round(s - m * 60);
  if (m < 60) return rest ? `${m}m${rest}s` : `${m}m`;
  const h = Math.floor(m / 60);
  return `${h}h${m % 60 ? `${m % 60}m` : ''}`;
}
