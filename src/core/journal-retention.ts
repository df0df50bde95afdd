import { readdir, readFile, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { durationMs } from './duration.js';
import { errorMessage } from './errors.js';
import { runFile, runIdTime } from './journal.js';

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
 * ids (time-ordered: no run file is read), at most once a day. `keep` is asked for only when it is
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
      let names: string[] = [];
      try {
        names = await readdir(join(dir, 'runs'));
      } catch {
        // No runs yet.
      }
      for (const name of names) {
        if (!name.endsWith('.ndjson')) continue;
        const id = name.slice(0, -'.ndjson'.length);
        const started = runIdTime(id);
        if (started === null || id === opts.current || started >= cutoff) continue;
        try {
          await unlink(runFile(dir, id));
          deleted.push(id);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        }
      }
    }
    await writeFile(marker, `${opts.now.toISOString()}\n`, { mode: 0o600 });
    return deleted.sort();
  } catch (err) {
    opts.warn?.(`the journal in ${dir} could not be pruned (journal.keep): ${errorMessage(err)}; nothing of this run is affected`);
    return [];
  }
}
