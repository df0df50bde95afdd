/**
 * Shared plumbing for the real-service test helpers: free loopback ports,
 * temp dirs, readiness polling, binary lookup with install hints, spawned
 * process bookkeeping and the process-exit cleanup registry.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

export const LOOPBACK = '127.0.0.1';

// ---------------------------------------------------------------------------
// Binaries
// ---------------------------------------------------------------------------

function isExecutable(file: string): boolean {
  try {
    const st = fs.statSync(file);
    if (!st.isFile()) return false;
    fs.accessSync(file, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Absolute path of `name` (a bare name searched on PATH, or a path), or undefined. */
export function findBinary(name: string): string | undefined {
  if (name.includes('/')) return isExecutable(name) ? path.resolve(name) : undefined;
  for (const dir of (process.env['PATH'] ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, name);
    if (isExecutable(candidate)) return candidate;
  }
  return undefined;
}

/**
 * Returns the absolute path of a binary the tests need, or throws an Error naming
 * the package to install, e.g. "redis-server not found: apt-get install -y redis-server".
 * Tests must fail (not skip) when a service binary is missing.
 */
export function requireBinary(name: string, installHint: string): string {
  const found = findBinary(name);
  if (!found) throw new Error(`${name} not found: ${installHint}`);
  return found;
}

// ---------------------------------------------------------------------------
// Ports, temp dirs, timing
// ---------------------------------------------------------------------------

const handedOut = new Set<number>();

/** Ask the OS for a free loopback port (listen on 0, read it, close). Never hands out the same port twice per process. */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await new Promise<number>((resolve, reject) => {
      const srv = net.createServer();
      srv.unref();
      srv.once('error', reject);
      srv.listen(0, LOOPBACK, () => {
        const addr = srv.address();
        const p = typeof addr === 'object' && addr ? addr.port : 0;
        srv.close(() => resolve(p));
      });
    });
    if (port > 0 && !handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error('could not obtain a free loopback port');
}

/** Error thrown by a start attempt; `addrInUse` asks the caller to retry on another port. */
export class StartError extends Error {
  constructor(
    message: string,
    readonly addrInUse = false,
  ) {
    super(message);
    this.name = 'StartError';
  }
}

export const ADDR_IN_USE_RE = /address already in use|EADDRINUSE|could not bind IPv4 address/i;

/** Run `attempt` with fresh ports until it succeeds or fails for a reason other than a port clash. */
export async function withPortRetry<T>(attempt: (n: number) => Promise<T>, tries = 5): Promise<T> {
  let last: unknown;
  for (let n = 0; n < tries; n++) {
    try {
      return await attempt(n);
    } catch (err) {
      last = err;
      if (!(err instanceof StartError && err.addrInUse)) throw err;
    }
  }
  throw last;
}

/** PEM contents given either inline ("-----BEGIN …") or as a file path. */
export function readPem(pemOrPath: string): string {
  return pemOrPath.includes('-----BEGIN') ? pemOrPath : fs.readFileSync(pemOrPath, 'utf8');
}

export function makeTempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `runbook-${prefix}-`));
}

export function removeDirSync(dir: string): void {
  try {
    fs.rmSync(dir, { recursive: true, force: true, maxRetries: 3, retryDelay: 20 });
  } catch {
    /* best effort */
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Last `max` characters of a log file (for error messages). */
export function tailFile(file: string, max = 4000): string {
  try {
    const text = fs.readFileSync(file, 'utf8');
    return text.length > max ? `…${text.slice(-max)}` : text;
  } catch {
    return '(no log)';
  }
}

export function startupError(what: string, reason: string, logFile: string, addrInUse?: boolean): StartError {
  const log = tailFile(logFile);
  return new StartError(`${what} failed to start: ${reason}\n--- ${logFile} ---\n${log}`, addrInUse ?? ADDR_IN_USE_RE.test(log));
}

export interface WaitOptions {
  timeoutMs?: number;
  intervalMs?: number;
  /** Checked on every failed probe; a thrown error aborts the wait. */
  abortIf?: () => void;
}

/**
 * Poll `probe` every ~50 ms until it returns a value other than undefined/false.
 * Probe exceptions are treated as "not ready yet" and remembered for the timeout message.
 */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined | false> | T | undefined | false, opts: WaitOptions = {}): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const intervalMs = opts.intervalMs ?? 50;
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v as T;
    } catch (err) {
      lastErr = err;
    }
    opts.abortIf?.();
    if (Date.now() > deadline) {
      const detail = lastErr instanceof Error ? `: ${lastErr.message}` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail}`);
    }
    await sleep(intervalMs);
  }
}

// ---------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------

/** True when `pid` exists and is not a zombie. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EPERM') return true;
    return false;
  }
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return true;
  }
}

function signal(pid: number, sig: NodeJS.Signals, group: boolean): void {
  try {
    process.kill(group ? -pid : pid, sig);
  } catch {
    if (group) {
      try {
        process.kill(pid, sig);
      } catch {
        /* already gone */
      }
    }
  }
}

/** Signal a process (or its group) and wait until it is gone; escalate to SIGKILL after `graceMs`. */
export async function killAndWait(pid: number, sig: NodeJS.Signals = 'SIGTERM', opts: { graceMs?: number; group?: boolean } = {}): Promise<void> {
  const group = opts.group ?? false;
  if (!isAlive(pid)) return;
  signal(pid, sig, group);
  const deadline = Date.now() + (opts.graceMs ?? 5000);
  while (isAlive(pid)) {
    if (Date.now() > deadline) {
      signal(pid, 'SIGKILL', group);
      const hard = Date.now() + 2000;
      while (isAlive(pid) && Date.now() < hard) await sleep(10);
      return;
    }
    await sleep(10);
  }
}

/** Synchronous variant for process-exit handlers. */
export function killAndWaitSync(pid: number, sig: NodeJS.Signals, opts: { graceMs?: number; group?: boolean } = {}): void {
  const group = opts.group ?? false;
  if (!isAlive(pid)) return;
  signal(pid, sig, group);
  const deadline = Date.now() + (opts.graceMs ?? 2000);
  while (isAlive(pid) && Date.now() < deadline) sleepSync(10);
  if (isAlive(pid)) signal(pid, 'SIGKILL', group);
}

export interface Spawned {
  child: ChildProcess;
  pid: number;
  logFile: string;
  /** Resolves when the process exits (never rejects). */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  hasExited(): boolean;
  /** SIGTERM the process group, escalate to SIGKILL; idempotent. */
  kill(graceMs?: number): Promise<void>;
  /** Synchronous SIGKILL of the process group (exit handlers). */
  killSync(): void;
}

/**
 * Spawn a long-running service process with an argument array (no shell), stdout and
 * stderr appended to `logFile`, in its own process group so that stop kills everything it forked.
 */
export function spawnService(file: string, args: readonly string[], opts: { logFile: string; cwd?: string; env?: NodeJS.ProcessEnv }): Spawned {
  const fd = fs.openSync(opts.logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn(file, [...args], {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: ['ignore', fd, fd],
      detached: true,
    });
  } finally {
    fs.closeSync(fd);
  }
  child.unref();
  let done = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, sig) => {
      done = true;
      resolve({ code, signal: sig });
    });
    child.once('error', (err) => {
      done = true;
      fs.appendFileSync(opts.logFile, `\nspawn error: ${err.message}\n`);
      resolve({ code: null, signal: null });
    });
  });
  const pid = child.pid ?? -1;
  return {
    child,
    pid,
    logFile: opts.logFile,
    exited,
    hasExited: () => done || pid < 0,
    async kill(graceMs = 5000) {
      if (done || pid < 0) return;
      signal(pid, 'SIGTERM', true);
      const timer = setTimeout(() => signal(pid, 'SIGKILL', true), graceMs);
      await exited;
      clearTimeout(timer);
      // Anything left in the group (grandchildren) goes too.
      signal(pid, 'SIGKILL', true);
    },
    killSync() {
      if (done || pid < 0) return;
      signal(pid, 'SIGKILL', true);
    },
  };
}

// ---------------------------------------------------------------------------
// Cleanup on process exit
// ---------------------------------------------------------------------------

type SyncCleanup = () => void;
const exitCleanups = new Set<SyncCleanup>();
let handlersInstalled = false;

function runExitCleanups(): void {
  for (const fn of [...exitCleanups].reverse()) {
    exitCleanups.delete(fn);
    try {
      fn();
    } catch {
      /* keep going */
    }
  }
}

function installExitHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', runExitCleanups);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = (): void => {
      runExitCleanups();
      process.removeListener(sig, onSignal);
      // Restore the default behaviour (terminate) unless someone else handles it.
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    };
    process.on(sig, onSignal);
  }
}

/**
 * Register a synchronous cleanup run on process exit / SIGINT / SIGTERM / SIGHUP.
 * Returns a function that unregisters it (call it from stop()).
 */
export function onProcessExit(fn: SyncCleanup): () => void {
  installExitHandlers();
  exitCleanups.add(fn);
  return () => {
    exitCleanups.delete(fn);
  };
}

/** Wrap an async stop so repeated / concurrent calls share one run. */
export function once(fn: () => Promise<void>): () => Promise<void> {
  let p: Promise<void> | undefined;
  return () => (p ??= fn());
}

/**
 * A temp directory and the processes started in it, torn down together: killed and removed on
 * `stop()` (idempotent), or synchronously if the test process exits first.
 */
export function processGroup(prefix: string): { dir: string; procs: Spawned[]; stop: () => Promise<void> } {
  const dir = makeTempDir(prefix);
  const procs: Spawned[] = [];
  const unregister = onProcessExit(() => {
    for (const p of procs) p.killSync();
    removeDirSync(dir);
  });
  const stop = once(async () => {
    unregister();
    await Promise.all(procs.map((p) => p.kill()));
    removeDirSync(dir);
  });
  return { dir, procs, stop };
}
