import { unguarded, type IO } from './io.js';
import { InterruptedError } from './errors.js';

/** Ctrl-C at a prompt is an interrupt (compensation runs, exit 130), not a crash. */
async function asked<T>(ask: () => Promise<T>, signal?: AbortSignal): Promise<T> {
  try {
    return await ask();
  } catch (err) {
    const name = (err as Error)?.name;
    if (name === 'ExitPromptError') throw new InterruptedError('SIGINT');
    if (name === 'AbortPromptError' && signal?.aborted) throw signal.reason;
    throw err;
  }
}

/** Every question the tool asks goes through this, so tests script answers and e2e runs use a real terminal. */
export interface Prompter {
  confirm(message: string, signal?: AbortSignal): Promise<boolean>;
  /** `expect`: a typed confirmation; the answer is shown as matching (✔) or not (✖) once given. */
  text(message: string, signal?: AbortSignal, opts?: { expect?: string }): Promise<string>;
  select<T extends string>(message: string, choices: Array<{ name: string; value: T }>, signal?: AbortSignal): Promise<T>;
}

/** Prompts on the terminal with @inquirer's prompts (each loaded only when such a question is actually asked). */
export class TerminalPrompter implements Prompter {
  constructor(private readonly io: IO) {}

  private context(signal?: AbortSignal) {
    return { input: this.io.stdin, output: unguarded(this.io.stderr), signal, clearPromptOnDone: false };
  }

  async confirm(message: string, signal?: AbortSignal): Promise<boolean> {
    // One prompt package each (not @inquirer/prompts, which brings the editor prompt's encodings along).
    const { default: confirm } = await import('@inquirer/confirm');
    return asked(() => confirm({ message, default: false }, this.context(signal) as never), signal);
  }

  async text(message: string, signal?: AbortSignal, opts: { expect?: string } = {}): Promise<string> {
    const { default: input } = await import('@inquirer/input');
    const { expect } = opts;
    // inquirer marks every answered prompt ✔; a mistyped confirmation must not look accepted.
    const typed =
      expect === undefined
        ? {}
        : {
            theme: { prefix: { idle: '?', done: '›' } },
            transformer: (v: string, { isFinal }: { isFinal: boolean }) => (isFinal ? `${v} ${v.trim() === expect ? '✔' : `✖ not "${expect}"`}` : v),
          };
    return asked(() => input({ message, ...typed }, this.context(signal) as never), signal);
  }

  async select<T extends string>(message: string, choices: Array<{ name: string; value: T }>, signal?: AbortSignal): Promise<T> {
    const { default: select } = await import('@inquirer/select');
    return asked(() => select<T>({ message, choices }, this.context(signal) as never), signal);
  }
}
