import { Writable } from 'node:stream';
import type { Readable } from 'node:stream';

/** The process's streams and terminal facts, injectable so tests and e2e runs control them. */
export interface IO {
  stdin: Readable;
  stdout: Writable;
  stderr: Writable;
  stdinIsTTY: boolean;
  stdoutIsTTY: boolean;
  stderrIsTTY: boolean;
  env: Record<string, string | undefined>;
  cwd: string;
}

export function processIO(): IO {
  return {
    // Read when first asked (a session, a prompt): making process.stdin loads tty and net and opens
    // a stream (~4 ms), and `--help` or a usage error never needs it.
    get stdin() {
      return process.stdin;
    },
    // The terminal fact without the stream: a command that never prompts never makes process.stdin;
    // and node:tty (with node:net) loads only when asked, as --help never does.
    get stdinIsTTY() {
      return process.getBuiltinModule('node:tty').isatty(0);
    },
    stdout: process.stdout,
    stderr: process.stderr,
    stdoutIsTTY: Boolean(process.stdout.isTTY),
    stderrIsTTY: Boolean(process.stderr.isTTY),
    env: process.env,
    cwd: process.cwd(),
  };
}

/**
 * An output stream that may close under the run (`| head`, a closed terminal, a full disk): the first
 * write error (EPIPE, EIO, ENOSPC…) is absorbed and every later write is dropped, so progress goes quiet
 * and the work goes on to its end or its compensation. Writes pass through synchronously, in order.
 */
export class GuardedOutput extends Writable {
  /** Set once the stream failed; the error that closed it. */
  failure: NodeJS.ErrnoException | undefined;
  private readonly closeListeners: Array<(err: NodeJS.ErrnoException) => void> = [];

  constructor(readonly target: Writable) {
    super({ decodeStrings: false });
    // Without a listener, an 'error' event on stdout/stderr kills the process mid-procedure.
    target.on?.('error', (err: NodeJS.ErrnoException) => this.fail(err));
  }

  get broken(): boolean {
    return this.failure !== undefined;
  }

  /** Called once, when the stream first fails. */
  onClose(listener: (err: NodeJS.ErrnoException) => void): () => void {
    this.closeListeners.push(listener);
    return () => {
      const i = this.closeListeners.indexOf(listener);
      if (i >= 0) this.closeListeners.splice(i, 1);
    };
  }

  private fail(err: NodeJS.ErrnoException): void {
    if (this.failure) return;
    this.failure = err;
    for (const l of [...this.closeListeners]) {
      try {
        l(err);
      } catch {
        // a listener's own failure must not undo the absorbing
      }
    }
  }

  // Terminal facts of the target, for prompts that draw on it.
  get isTTY(): boolean {
    return Boolean((this.target as { isTTY?: boolean }).isTTY);
  }
  get columns(): number | undefined {
    return (this.target as { columns?: number }).columns;
  }
  get rows(): number | undefined {
    return (this.target as { rows?: number }).rows;
  }

  override _write(chunk: unknown, encoding: BufferEncoding, cb: (error?: Error | null) => void): void {
    const t = this.target;
    if (!this.failure && !t.destroyed && !t.writableEnded && !t.errored) {
      try {
        t.write(chunk as string, encoding, (err?: Error | null) => {
          if (err) this.fail(err as NodeJS.ErrnoException);
        });
        // A stream that failed at once says so now; its 'error' event only comes on a later tick.
        if (t.errored) this.fail(t.errored as NodeJS.ErrnoException);
      } catch (err) {
        this.fail(err as NodeJS.ErrnoException);
      }
    }
    // Never report the failure upstream: the caller (progress, a summary) carries on.
    cb();
  }
}

/** IO whose stdout and stderr absorb write errors (see GuardedOutput); guarding twice is a no-op. */
export function guardIO(io: IO): IO {
  const guard = (s: Writable) => (s instanceof GuardedOutput ? s : new GuardedOutput(s));
  // Copies the properties as they are (not with a spread): a lazy stdin stays lazy.
  const guarded = Object.defineProperties({}, Object.getOwnPropertyDescriptors(io)) as IO;
  const own = { enumerable: true, writable: true, configurable: true };
  return Object.defineProperties(guarded, { stdout: { ...own, value: guard(io.stdout) }, stderr: { ...own, value: guard(io.stderr) } });
}

/** The stream under a guard (prompts draw on the terminal itself). */
export function unguarded(s: Writable): Writable {
  return s instanceof GuardedOutput ? s.target : s;
}

export interface Colors {
  enabled: boolean;
  bold(s: string): string;
  dim(s: string): string;
  red(s: string): string;
  green(s: string): string;
  yellow(s: string): string;
  cyan(s: string): string;
  inverse(s: string): string;
}

export function colors(enabled: boolean): Colors {
  const wrap = (open: number, close: number) => (s: string) => (enabled ? `\u001b[${open}m${s}\u001b[${close}m` : s);
  return {
    enabled,
    bold: wrap(1, 22),
    dim: wrap(2, 22),
    red: wrap(31, 39),
    green: wrap(32, 39),
    yellow: wrap(33, 39),
    cyan: wrap(36, 39),
    inverse: wrap(7, 27),
  };
}

/** Colour only on a terminal, and never when NO_COLOR is set or --no-color was given. */
export function colorEnabled(io: IO, noColorFlag: boolean): boolean {
  if (noColorFlag) return false;
  if (io.env.NO_COLOR !== undefined && io.env.NO_COLOR !== '') return false;
  if (io.env.FORCE_COLOR && io.env.FORCE_COLOR !== '0') return true;
  return io.stderrIsTTY;
}
