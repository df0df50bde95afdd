// The files of a running `npm run sandbox`: the env file to `source`, the pid file `stop` reads, and the log of a detached one.
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

export interface SandboxFiles {
  dir: string;
  env: string;
  pid: string;
  log: string;
}

/** One sandbox per user: $RUNBOOK_SANDBOX_DIR, else $XDG_STATE_HOME/runbook/sandbox (~/.local/state/…). */
export function sandboxFiles(processEnv: Record<string, string | undefined> = process.env): SandboxFiles {
  const state = processEnv.XDG_STATE_HOME || join(processEnv.HOME || homedir(), '.local', 'state');
  const dir = processEnv.RUNBOOK_SANDBOX_DIR || join(state, 'runbook', 'sandbox');
  return { dir, env: join(dir, 'sandbox.env'), pid: join(dir, 'sandbox.pid'), log: join(dir, 'sandbox.log') };
}

/** A POSIX shell word: single quotes, with each ' written as '\'' (nothing inside is expanded). */
export function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

export function envFileText(env: Record<string, string>, pid: number): string {
  const names = Object.keys(env);
  for (const k of names) if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw new Error(`not a shell variable name: ${k}`);
  return [
    `# runbook sandbox (pid ${pid}): source this file in each shell that uses it; \`npm run sandbox -- stop\` ends it.`,
    ...names.map((k) => `export ${k}=${shellQuote(env[k])}`),
    '',
  ].join('\n');
}

/** Written whole and then renamed: a shell that sources it never reads half a file, and its presence means "ready". */
export function writeSandboxFiles(files: SandboxFiles, env: Record<string, string>, pid: number): void {
  mkdirSync(files.dir, { recursive: true, mode: 0o700 });
  writeFileSync(files.pid, `${pid}\n`, { mode: 0o600 });
  const tmp = `${files.env}.${pid}.tmp`;
  writeFileSync(tmp, envFileText(env, pid), { mode: 0o600 });
  renameSync(tmp, files.env);
}

/** Removes the files, unless another sandbox has written its pid since (a stale stop never removes a live one's). */
export function removeSandboxFiles(files: SandboxFiles, pid: number): void {
  if (readPid(files) !== pid) return;
  rmSync(files.env, { force: true });
  rmSync(files.pid, { force: true });
}

export function readPid(files: SandboxFiles): number | undefined {
  if (!existsSync(files.pid)) return undefined;
  const n = Number(readFileSync(files.pid, 'utf8').trim());
  return Number.isInteger(n) && n > 0 ? n : undefined;
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  // An exited process its parent has not reaped yet (a zombie) still answers signal 0.
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
}

/** The pid of the sandbox that is up, if one is; a pid file left by one that died is cleared. */
export function runningSandbox(files: SandboxFiles): number | undefined {
  const pid = readPid(files);
  if (pid === undefined) return undefined;
  if (isAlive(pid)) return pid;
  removeSandboxFiles(files, pid);
  return undefined;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Stops the running sandbox: SIGTERM (it stops its services and removes its files), then waits for it to
 * exit; after `timeoutMs`, SIGKILL. Returns what happened, for the operator.
 */
export async function stopSandbox(files: SandboxFiles, timeoutMs = 60_000): Promise<string> {
  const pid = runningSandbox(files);
  if (pid === undefined) return 'no sandbox is running';
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + timeoutMs;
  while (isAlive(pid) && Date.now() < deadline) await sleep(100);
  if (isAlive(pid)) {
    process.kill(pid, 'SIGKILL');
    for (let i = 0; i < 100 && isAlive(pid); i++) await sleep(50);
    removeSandboxFiles(files, pid);
    return `sandbox (pid ${pid}) did not stop within ${timeoutMs / 1000}s and was killed; its services may need cleaning up (see ${files.log})`;
  }
  removeSandboxFiles(files, pid);
  return `sandbox (pid ${pid}) stopped`;
}

/** Waits until the sandbox `pid` has written its env file, or has exited (then its log says why). */
export async function waitUntilReady(files: SandboxFiles, pid: number, timeoutMs: number): Promise<'ready' | 'exited' | 'timeout'> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (readPid(files) === pid && existsSync(files.env)) return 'ready';
    if (!isAlive(pid)) return 'exited';
    await sleep(200);
  }
  return 'timeout';
}
