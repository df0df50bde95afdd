import { sha256Hex } from './hash.js';
import { CHAIN_TAIL, chainSeed } from './journal.js';

/** What `runbook verify` found in one run file. */
export interface ChainReport {
  runId: string;
  /** Lines checked and found intact, from the first. */
  intact: number;
  /** Lines in the file (a cut-off last line counts). */
  lines: number;
  /** The hash of the last intact line: what a copy elsewhere (the shared journal) can be compared with. */
  head: string;
  /** The first line that does not match (1-based), and why; absent when the whole file verifies. */
  broken?: { line: number; problem: string };
}

/**
 * Checks a run file's hash chain line by line: each line's `h` is the hash of its own text (up to
 * `prev`), and its `prev` is the `h` of the line before (the run id's seed for the first). The first
 * line that fails is named; nothing after it can be trusted.
 */
export function verifyChain(runId: string, text: string): ChainReport {
  const endsClean = text.length === 0 || text.endsWith('\n');
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  let prev = chainSeed(runId);
  const report: ChainReport = { runId, intact: 0, lines: lines.length, head: prev };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const n = i + 1;
    const fail = (problem: string): ChainReport => ({ ...report, broken: { line: n, problem } });
    if (i === lines.length - 1 && !endsClean) return fail('the line is cut off (the writer was killed mid-line)');
    const m = CHAIN_TAIL.exec(line);
    if (!m) {
      let json = true;
      try {
        JSON.parse(line);
      } catch {
        json = false;
      }
      return fail(json ? 'the line carries no chain hashes (written by a runbook before the journal was chained, or by hand)' : 'the line is not JSON');
    }
    const [, linePrev, h] = m;
    const body = `${line.slice(0, line.length - m[0].length)},"prev":"${linePrev}"}`;
    if (sha256Hex(body) !== h) return fail('its content does not match its hash (the line was edited)');
    if (linePrev !== prev)
      return fail(
        i === 0
          ? 'it does not start the chain of this run id (renamed, or lines removed before it)'
          : 'it does not follow the line before it (a line was removed, inserted or reordered)',
      );
    try {
      JSON.parse(line);
    } catch {
      return fail('the line is not JSON');
    }
    prev = h;
    report.intact = n;
    report.head = h;
  }
  if (lines.length === 0) return { ...report, broken: { line: 1, problem: 'the run file is empty' } };
  return report;
}
