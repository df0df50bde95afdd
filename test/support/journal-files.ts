// Tests that read a journal's run files from disk: wherever they are under runs/ (the day layout
// runs/YYYY/MM/DD/<id>.ndjson, or an older build's flat runs/<id>.ndjson).
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export { runFile } from '../../src/core/journal.js';

const SUFFIX = '.ndjson';

export interface RunFilePath {
  id: string;
  path: string;
}

/** Every run file under `<journalDir>/runs`, by id (oldest first); none when runs/ was never made. */
export function runFilePaths(journalDir: string): RunFilePath[] {
  const out: RunFilePath[] = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(dir, e.name));
      else if (e.isFile() && e.name.endsWith(SUFFIX)) out.push({ id: e.name.slice(0, -SUFFIX.length), path: join(dir, e.name) });
    }
  };
  try {
    walk(join(journalDir, 'runs'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/** The ids of the journal's run files, sorted. */
export function runIds(journalDir: string): string[] {
  return runFilePaths(journalDir).map((f) => f.id);
}

/** The text of every run file, oldest id first. */
export function runTexts(journalDir: string): string[] {
  return runFilePaths(journalDir).map((f) => readFileSync(f.path, 'utf8'));
}

/** The text of the journal's only run file; throws unless there is exactly one. */
export function onlyRunText(journalDir: string): string {
  const files = runFilePaths(journalDir);
  if (files.length !== 1) throw new Error(`expected one run file in ${journalDir}, found ${files.length}: ${files.map((f) => f.id).join(', ')}`);
  return readFileSync(files[0].path, 'utf8');
}
