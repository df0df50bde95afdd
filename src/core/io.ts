import { fstatSync, statSync, writeSync } from 'node:fs';
import type { Readable, Writable } from 'node:stream';

/** Where the CLI writes: a Writable (tests capture output with one), the process's own descriptors, or a guard around either. */
export type Output = Writable | FdOutput | GuardedOutput;

/** The process's streams and terminal facts, injectable so tests and e2e runs control them. */
export interface IO {
  stdin: Readable;
  stdout: Output;
  stderr: Output;
  stdinIsTTY: boolean;
  stdoutIsTTY: boolean;
  stderrIsTTY: boolean;
  env: Record<string, string | undefined>;
  cwd: string;
}

export function processIO(): IO {
  const stdout = new FdOutput(1, () => process.stdout);
  const stderr = new FdOutput(2, () => process.stderr);
  return {
    // Read when first asked (a session, a prompt): making process.stdin loads tty and net and opens
    // a stream (~4 ms), and `--help` or a usage error never needs it.
    get stdin() {
      return process.stdin;
    },
    get stdinIsTTY() {
      return isTerminal(0);
    },
    stdout,
    stderr,
    get stdoutIsTTY() {
      return stdout.isTTY;
    },
    get stderrIsTTY() {
      return stderr.isTTY;
    },
    env: process.env,
    cwd: process.cwd(),
  };
}

let nullDevice: number | undefined;

/**
 * isatty(fd), without loading node:tty (and node:net with it, ~2.7 ms) for a descriptor that cannot
 * be a terminal: only a character device can, and /dev/null, the usual one, is known by its number.
 */
export function isTerminal(fd: number): boolean {
  if (process.platform !== 'win32') {
    try {
      const st = fstatSync(fd);
      if (!st.isCharacterDevice()) return false;
      nullDevice ??= statSync('/dev/null').rdev;
      if (st.rdev === nullDevice) return false;
    } catch {
      // a closed descriptor, or no /dev/null: isatty() decides
    }
  }
  return process.getBuiltinModule('node:tty').isatty(fd);
}

type Write = (fd: number, data: Uint8Array, offset: number, length: number) => number;

/**
 * The process's stdout or stderr, written with write(2) on its descriptor. Making process.stdout
 * costs ~2 ms (node:stream) and, on a pipe or a terminal, ~3.5 ms (node:net too): more than all of
 * `--help` beyond Node's own start. Node's stream is made only when something needs it: a prompt
 * draws on it, the terminal's size is asked, or the descriptor would block (another process set
 * O_NONBLOCK on a shared pipe or terminal). From then on every write goes through it, in order.
 */
export class FdOutput {
  private node: Writable | undefined;
  private terminal: boolean | undefined;
  private readonly errorListeners: Array<(err: Error) => void> = [];

  constructor(
    readonly fd: number,
    private readonly nodeStream: () => Writable,
    private readonly writeFd: Write = writeSync,
  ) {}

  /** Node's stream for this descriptor, made on first use. */
  get stream(): Writable {
    if (!this.node) {
      this.node = this.nodeStream();
      for (const l of this.errorListeners) this.node.on('error', l);
    }
    return this.node;
  }

  get isTTY(): boolean {
    this.terminal ??= isTerminal(this.fd);
    return this.terminal;
  }
  get columns(): number | undefined {
    return this.isTTY ? (this.stream as { columns?: number }).columns : undefined;
  }
  get rows(): number | undefined {
    return this.isTTY ? (this.stream as { rows?: number }).rows : undefined;
  }

  /** Errors of Node's stream, once there is one; a write on the descriptor throws its own. */
  on(event: 'error', listener: (err: Error) => void): this {
    this.errorListeners.push(listener);
    this.node?.on(event, listener);
    return this;
  }

  /** Writes all of chunk before it returns, unless the descriptor would block: then Node's stream takes the rest. */
  write(chunk: string | Uint8Array): boolean {
    if (this.node) return this.node.write(chunk);
    const data = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
    let done = 0;
    while (done < data.length) {
      try {
        done += this.writeFd(this.fd, data, done, data.length - done);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
        return this.stream.write(data.subarray(done));
      }
    }
    return true;
  }
}

/**
 * An output stream that may close under the run (`| head`, a closed terminal, a full disk): the first
 * write error (EPIPE, EIO, ENOSPC…) is absorbed and every later write is dropped, so progress goes quiet
 * and the work goes on to its end or its compensation. Writes pass through synchronously, in order.
 */
export class GuardedOutput {
  /** Set once the stream failed; the error that closed it. */
  failure: NodeJS.ErrnoException | undefined;
  private readonly closeListeners: Array<(err: NodeJS.ErrnoException) => void> = [];

  constructor(readonly target: Writable | FdOutput) {
    // Without a listener, an 'error' event on stdout/stderr kills the process mid-procedure.
    target.on('error', (err: NodeJS.ErrnoException) => this.fail(err));
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

  /** Never reports a failure to the caller (progress, a summary): it carries on. */
  write(chunk: string): boolean {
    const t = this.target;
    if (this.failure) return true;
    try {
      if (t instanceof FdOutput) {
        t.write(chunk);
      } else if (!t.destroyed && !t.writableEnded && !t.errored) {
        t.write(chunk, (err?: Error | null) => {
          if (err) this.fail(err as NodeJS.ErrnoException);
        });
        // A stream that failed at once says so now; its 'error' event only comes on a later tick.
        if (t.errored) this.fail(t.errored as NodeJS.ErrnoException);
      }
    } catch (err) {
      this.fail(err as NodeJS.ErrnoException);
    }
    return true;
  }
}

/** IO whose stdout and stderr absorb write errors (see GuardedOutput); guarding twice is a no-op. */
export function guardIO(io: IO): IO {
  const guard = (s: Output) => (s instanceof GuardedOutput ? s : new GuardedOutput(s));
  const guarded = copyLazily(io); // a lazy stdin stays lazy
  const own = { enumerable: true, writable: true, configurable: true };
  return Object.defineProperties(guarded, { stdout: { ...own, value: guard(io.stdout) }, stderr: { ...own, value: guard(io.stderr) } });
}

/** A copy that keeps getters as getters, where a spread would call them: what is lazy stays lazy. */
export function copyLazily<T extends object>(o: T): T {
  return Object.create(Object.getPrototypeOf(o), Object.getOwnPropertyDescriptors(o));
}

/** A terminal's width in columns; undefined for anything else. */
export function columnsOf(s: Output): number | undefined {
  return (s as { columns?: number }).columns;
}

/** The stream under a guard (prompts draw on the terminal itself): Node's own for the process's descriptors. */
export function unguarded(s: Output): Writable {
  const t = s instanceof GuardedOutput ? s.target : s;
  return t instanceof FdOutput ? t.stream : t;
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
