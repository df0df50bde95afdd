import type { JournalWrites } from '../../src/core/journal.js';
import { PassThrough, Writable } from 'node:stream';
import { existsSync } from 'node:fs';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../src/main.js';
import type { ClientFactories } from '../../src/clients/index.js';
import type { Prompter } from '../../src/core/prompter.js';
import type { Procedure } from '../../src/core/procedure.js';
import { ScriptedPrompter } from './prompter.js';

class Capture extends Writable {
  text = '';
  override _write(chunk: Buffer | string, _enc: BufferEncoding, cb: () => void) {
    this.text += chunk.toString();
    cb();
  }
}

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
  prompter: Prompter;
}

export interface CliOptions {
  env?: Record<string, string | undefined>;
  tty?: boolean;
  prompter?: Prompter;
  answers?: Array<boolean | string>;
  clientFactories?: ClientFactories;
  cwd?: string;
  interrupts?: { signal: AbortSignal; hard: AbortSignal };
  now?: () => Date;
  procedureOverride?: (proc: Procedure) => Procedure;
  /** The journal's low-level writes (e.g. a disk that fills up). */
  journalWrites?: JournalWrites;
  /** Streams to write to instead of the captured ones (e.g. one that fails like a closed pipe). */
  stdout?: Writable;
  stderr?: Writable;
  /** Who runs it (user@host as the journal and the Lease name them); default tester@test. */
  operator?: string;
}

/** A fresh, empty journal directory per call unless the test passes RUNBOOK_JOURNAL_DIR. */
export function tempDir(prefix = 'runbook-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** Runs the CLI in-process through main(), with captured streams and scripted prompts. */
export async function runCli(argv: string[], opts: CliOptions = {}): Promise<CliRun> {
  const stdout = new Capture();
  const stderr = new Capture();
  const prompter = opts.prompter ?? new ScriptedPrompter(opts.answers ?? []);
  const env: Record<string, string | undefined> = {
    HOME: tempDir('runbook-home-'),
    RUNBOOK_JOURNAL_DIR: tempDir('runbook-journal-'),
    NO_COLOR: '1',
    USER: 'tester',
    // Every procedure is held to its declared Kubernetes calls (the source of `runbook rbac`).
    RUNBOOK_STRICT_KUBE: '1',
    // …and to its declared secrets: every one it reads must have been resolved before the run.
    RUNBOOK_STRICT_SECRETS: '1',
    ...opts.env,
  };
  const code = await main(argv, {
    io: {
      stdin: new PassThrough(),
      stdout: opts.stdout ?? stdout,
      stderr: opts.stderr ?? stderr,
      stdinIsTTY: Boolean(opts.tty),
      stdoutIsTTY: Boolean(opts.tty),
      stderrIsTTY: Boolean(opts.tty),
      env,
      cwd: opts.cwd ?? tempDir('runbook-cwd-'),
    },
    prompter,
    clientFactories: opts.clientFactories,
    interrupts: opts.interrupts,
    now: opts.now,
    procedureOverride: opts.procedureOverride,
    journalWrites: opts.journalWrites,
    operator: opts.operator ?? 'tester@test',
  });
  return { code, stdout: stdout.text, stderr: stderr.text, prompter };
}

/** The repository root and the built CLI that e2e tests spawn (`npm run build` makes bundle/). */
export const REPO_ROOT = join(import.meta.dirname, '..', '..');
export const BUILT_CLI = join(REPO_ROOT, 'bin', 'runbook.js');

export function requireBuiltCli(): void {
  if (!existsSync(join(REPO_ROOT, 'bundle', 'main.js'))) throw new Error('bundle/ is missing: run `npm run build` (npm test does it first)');
}
