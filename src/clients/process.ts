/** Result of running a program with an argument array (never a shell string). */
export interface ProcessResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

export interface RunProcessOptions {
  cwd?: string;
  env?: Record<string, string | undefined>;
  timeoutMs?: number;
  signal?: AbortSignal;
  input?: string;
  /** Called with each output line as it arrives (stdout and stderr). */
  onLine?(line: string, stream: 'stdout' | 'stderr'): void;
}

/** Runs `file` with `args` through execa (loaded lazily); a non-zero exit is returned, not thrown. */
export async function runProcess(file: string, args: string[], opts: RunProcessOptions = {}): Promise<ProcessResult> {
  const { execa } = await import('execa');
  const child = execa(file, args, {
    cwd: opts.cwd,
    env: opts.env,
    extendEnv: opts.env ? false : true,
    timeout: opts.timeoutMs,
    cancelSignal: opts.signal,
    input: opts.input,
    reject: false,
    stripFinalNewline: true,
    lines: false,
    buffer: true,
    forceKillAfterDelay: 2000,
  });
  if (opts.onLine) {
    const attach = (stream: NodeJS.ReadableStream | null, name: 'stdout' | 'stderr') => {
      if (!stream) return;
      let buf = '';
      stream.on('data', (chunk: Buffer) => {
        buf += chunk.toString();
        let i;
        while ((i = buf.indexOf('\n')) >= 0) {
          opts.onLine!(buf.slice(0, i), name);
          buf = buf.slice(i + 1);
        }
      });
      stream.on('end', () => {
        if (buf) opts.onLine!(buf, name);
      });
    };
    attach(child.stdout, 'stdout');
    attach(child.stderr, 'stderr');
  }
  const r = await child;
  if ((r as { code?: string }).code === 'ENOENT' || (r.failed && r.exitCode === undefined && !r.timedOut && !r.isCanceled)) {
    throw new Error(`cannot run ${file}: ${r.shortMessage ?? 'not found'}`);
  }
  return { exitCode: r.exitCode ?? (r.timedOut ? 124 : 1), stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? ''), timedOut: Boolean(r.timedOut) };
}

/** Local programs (certbot, pg_restore, the configured commands), run with argument arrays: `ctx.clients.processes()`. */
export const processApi = { run: runProcess };
export type ProcessApi = typeof processApi;
