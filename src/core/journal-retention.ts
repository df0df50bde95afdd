import { readFile, rmdir, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { durationMs } from './duration.js';
import { errorMessage } from './errors.js';
import { DAY_DIRS, flatRunFile, namesIn, runIdsIn } from './journal-reader.js';
import { runIdTime } from './journal.js';

/** Pruning is looked at once a day at most: a changing run's start costs one small read otherwise. */
export const PRUNE_EVERY_MS = 24 * 3_600_000;
/** The file (in the journal directory) saying when the journal was last pruned. */
export const PRUNE_MARKER = '.last-prune';

export interface PruneOptions {
  now: Date;
  /** The run in progress: never pruned, whatever its id says. */
  current?: string;
  warn?(message: string): void;
  /** Prune now, whenever the last time was. */
  force?: boolean;
}

/**
 * Deletes the runs that started longer than `keep` ago (journal.keep, e.g. "90d"), judged by their
 * ids (time-ordered: no run file is read; of the day layout only the days that began before the
 * cutoff are listed, and the ones left empty removed; older builds' flat files too), at most once a day. `keep` is asked for only when it is
 * time (it may read the config); undefined keeps everything. Never fails a run: a problem is a
 * warning. Returns the ids deleted, or null when it was not time yet.
 */
export async function pruneJournal(dir: string, keep: () => Promise<string | undefined> | string | undefined, opts: PruneOptions): Promise<string[] | null> {
  const now = opts.now.getTime();
  const marker = join(dir, PRUNE_MARKER);
  try {
    if (!opts.force) {
      const last = Date.parse((await readFile(marker, 'utf8').catch(() => '')).trim());
      // A marker from the future (the clock went back) does not hold pruning off.
      if (!Number.isNaN(last) && last <= now && now - last < PRUNE_EVERY_MS) return null;
    }
    const kept = await keep();
    const deleted: string[] = [];
    if (kept !== undefined) {
      const keepMs = durationMs(kept);
      if (keepMs === null) throw new Error(`journal.keep "${kept}" is not a duration`);
      const cutoff = now - keepMs;
      const runs = join(dir, 'runs');
      const prune = async (id: string, path: string) => {
        const started = runIdTime(id);
        if (started === null || id === opts.current || started >= cutoff) return;
        try {
          await unlink(path);
          deleted.push(id);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        }
      };
      const top = await namesIn(runs);
      // Older builds' flat files, then the day layout: only the days that began before the cutoff are listed.
      for (const id of runIdsIn(top)) await prune(id, flatRunFile(dir, id));
      await pruneDays(runs, top, '', { cutoff, now, prune });
    }
    await writeFile(marker, `${opts.now.toISOString()}\n`, { mode: 0o600 });
    return deleted.sort();
  } catch (err) {
    opts.warn?.(`the journal in ${dir} could not be pruned (journal.keep): ${errorMessage(err)}; nothing of this run is affected`);
    return [];
  }
}

/** The time span of a year ("2026"), month ("202603") or day ("20260304") of the day layout. */
function span(key: string): { from: number; to: number } {
  const y = +key.slice(0, 4);
  const m = key.length > 4 ? +key.slice(4, 6) - 1 : 0;
  const d = key.length > 6 ? +key.slice(6, 8) : 1;
  const from = Date.UTC(y, m, d);
  const to = key.length === 4 ? Date.UTC(y + 1, 0, 1) : key.length === 6 ? Date.UTC(y, m + 1, 1) : Date.UTC(y, m, d + 1);
  return { from, to };
}

interface DayPrune {
  cutoff: number;
  now: number;
  prune(id: string, path: string): Promise<void>;
}

/**
 * Prunes the runs/YYYY/MM/DD/ directories under `path` (at the level `prefix` says) that began
 * before the cutoff, and removes the ones left empty. A directory is removed only when it ended
 * more than a day ago: a run starting now never finds the directory it is writing into gone.
 */
async function pruneDays(path: string, names: readonly string[], prefix: string, p: DayPrune): Promise<void> {
  const level = prefix.length === 0 ? 0 : prefix.length === 4 ? 1 : 2;
  for (const sub of names.filter((n) => DAY_DIRS[level].test(n))) {
    const key = prefix + sub;
    const { from, to } = span(key);
    if (Number.isNaN(from) || from >= p.cutoff) continue;
    const at = join(path, sub);
    const inside = await namesIn(at);
    if (level < 2) await pruneDays(at, inside, key, p);
    else for (const id of runIdsIn(inside)) await p.prune(id, join(at, `${id}.ndjson`));
    if (to <= p.cutoff && to <= p.now - 86_400_000) await rmdir(at).catch(() => undefined);
  }
}
