// `npm run sandbox` hands its settings over as one file to `source`, and a pid file that `stop` uses.
import { describe, expect, it } from 'vitest';
import { execFile, execFileSync, spawn, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { existsSync, readFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './support/cli.js';
import { envFileText, isAlive, runningSandbox, sandboxFiles, stopSandbox, writeSandboxFiles } from './support/sandbox-files.js';

const root = join(import.meta.dirname, '..');
const tricky = {
  RUNBOOK_CONFIG: '/tmp/with space/runbook.yaml',
  KUBECONFIG: "/tmp/it's/kubeconfig",
  SANDBOX_DB_URL: 'postgres://u:p$HOME`id`"x"@127.0.0.1:5432/db?a=1&b=2',
  MULTI: 'line one\nline two',
};

function sourced(file: string): Record<string, string> {
  const out = execFileSync(
    'bash',
    ['-c', 'set -eu; source "$1"; for k in RUNBOOK_CONFIG KUBECONFIG SANDBOX_DB_URL MULTI; do printf "%s=%s\\0" "$k" "${!k}"; done', 'bash', file],
    {
      env: { PATH: process.env.PATH ?? '', HOME: '/nonexistent-home' },
    },
  ).toString();
  return Object.fromEntries(
    out
      .split('\0')
      .filter(Boolean)
      .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
  );
}

function sleeper() {
  const child = spawn(process.execPath, ['-e', "process.on('SIGTERM', () => setTimeout(() => process.exit(0), 200)); setInterval(() => {}, 1e6)"], {
    stdio: 'ignore',
  });
  return child;
}

describe('the sandbox env file', () => {
  it('is one file that bash sources into exactly the values, with nothing expanded', () => {
    const files = sandboxFiles({ RUNBOOK_SANDBOX_DIR: tempDir('sbx-files-') });
    writeSandboxFiles(files, tricky, 4242);
    expect(sourced(files.env)).toEqual(tricky);
    const text = readFileSync(files.env, 'utf8');
    expect(text.split('\n').filter((l) => l.startsWith('export '))).toHaveLength(Object.keys(tricky).length);
    expect(readFileSync(files.pid, 'utf8').trim()).toBe('4242');
    expect(() => envFileText({ 'NOT-A-NAME': 'x' }, 1)).toThrow(/not a shell variable name/);
  });

  it('lives in $XDG_STATE_HOME/runbook/sandbox unless RUNBOOK_SANDBOX_DIR says otherwise', () => {
    expect(sandboxFiles({ XDG_STATE_HOME: '/s', HOME: '/h' }).env).toBe('/s/runbook/sandbox/sandbox.env');
    expect(sandboxFiles({ HOME: '/h' }).pid).toBe('/h/.local/state/runbook/sandbox/sandbox.pid');
  });

  it('stop ends the running sandbox by its pid file and removes its files; a stale pid file is cleared', async () => {
    const files = sandboxFiles({ RUNBOOK_SANDBOX_DIR: tempDir('sbx-files-') });
    const child = sleeper();
    writeSandboxFiles(files, tricky, child.pid!);
    expect(runningSandbox(files)).toBe(child.pid);
    expect(await stopSandbox(files)).toBe(`sandbox (pid ${child.pid}) stopped`);
    expect(isAlive(child.pid!)).toBe(false);
    expect(existsSync(files.env)).toBe(false);
    expect(existsSync(files.pid)).toBe(false);
    expect(await stopSandbox(files)).toBe('no sandbox is running');

    const gone = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString();
    writeSandboxFiles(files, tricky, Number(gone));
    expect(runningSandbox(files)).toBeUndefined();
    expect(existsSync(files.env)).toBe(false);
  });

  it('the entry script: status and stop verbs, and a second start is refused while one runs', async () => {
    const dir = tempDir('sbx-files-');
    // Asynchronously: this process must keep reaping its own children while the script runs.
    const run = async (...a: string[]) => {
      try {
        const r = await promisify(execFile)(process.execPath, ['--import', 'tsx', join(root, 'test/support/sandbox.ts'), ...a], {
          cwd: root,
          env: { ...process.env, RUNBOOK_SANDBOX_DIR: dir },
          encoding: 'utf8',
        });
        return { status: 0, stdout: r.stdout, stderr: r.stderr };
      } catch (err) {
        const e = err as { code: number; stdout: string; stderr: string };
        return { status: e.code, stdout: e.stdout, stderr: e.stderr };
      }
    };
    expect((await run('status')).stdout).toContain('no sandbox is running');
    expect((await run('frobnicate')).status).toBe(2);
    const child = sleeper();
    mkdirSync(dir, { recursive: true });
    writeSandboxFiles(sandboxFiles({ RUNBOOK_SANDBOX_DIR: dir }), tricky, child.pid!);
    const status = await run('status');
    expect(status.status).toBe(0);
    expect(status.stdout).toContain(`sandbox running (pid ${child.pid}): source ${join(dir, 'sandbox.env')}`);
    const again = await run();
    expect(again.status).toBe(2);
    expect(again.stderr).toContain('a sandbox is already running');
    const stop = await run('stop');
    expect(stop.stdout).toContain(`sandbox (pid ${child.pid}) stopped`);
    expect(isAlive(child.pid!)).toBe(false);
    expect(existsSync(join(dir, 'sandbox.env'))).toBe(false);
  }, 60_000);
});
