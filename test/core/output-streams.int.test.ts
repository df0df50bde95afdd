// The built CLI (bin/runbook.js → bundle/) with its output going nowhere: pipes closed by the reader
// (`| head`), against the real Kubernetes control plane, and a journal directory that cannot be made.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startSandbox, type Sandbox } from '../support/sandbox/index.js';
import { BUILT_CLI as bin, REPO_ROOT as root, requireBuiltCli, tempDir } from '../support/cli.js';
import type { Deployment } from '../support/cluster/index.js';
import { runTexts } from '../support/journal-files.js';

let sb: Sandbox;
let baseEnv: Record<string, string>;

beforeAll(async () => {
  requireBuiltCli();
  sb = await startSandbox({ parts: ['kubernetes'] });
  baseEnv = { PATH: process.env.PATH ?? '', HOME: tempDir('streams-home-'), USER: 'streams', NO_COLOR: '1', ...sb.env };
});
afterAll(async () => {
  await sb?.stop();
});

interface Closed {
  /** Destroy our end of stdout at once (nobody reads the result). */
  stdout: 'now' | 'open';
  /** Destroy our end of stderr after its first chunk (`2> >(head -1)`), or at once. */
  stderr: 'first-chunk' | 'now' | 'open';
}

/** Spawns asynchronously (the fault proxy lives in this process); kills the child after `timeoutMs`. */
function run(
  args: string[],
  env: Record<string, string>,
  closed: Closed,
  timeoutMs = 60_000,
): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], { env: { ...baseEnv, ...env }, cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    if (closed.stdout === 'now') child.stdout.destroy();
    else child.stdout.on('data', (d) => (stdout += d));
    if (closed.stderr === 'now') child.stderr.destroy();
    else
      child.stderr.on('data', (d) => {
        stderr += d;
        if (closed.stderr === 'first-chunk') child.stderr.destroy();
      });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

const replicas = async () => (await sb.kube.get<Deployment>('deployments', sb.namespace, 'app'))!.spec.replicas;

function lastEvent(journal: string): Record<string, unknown> {
  const files = runTexts(journal);
  expect(files).toHaveLength(1);
  const lines = files[0].trim().split('\n');
  return JSON.parse(lines.at(-1)!);
}

function shell(command: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('sh', ['-c', command], { cwd: root, env: { ...baseEnv } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('closed output streams (built CLI)', () => {
  it('`runbook --help | head -1` prints one line and no EPIPE stack trace', async () => {
    // The race with head is won or lost per run: try it several times.
    for (let i = 0; i < 8; i++) {
      const r = await shell(`"${process.execPath}" bin/runbook.js --help | head -1`);
      expect(r.stdout).toBe('Usage: runbook <noun> <verb> [args] [flags]\n');
      expect(r.stderr).toBe('');
    }
  });

  it('app scale with stdout gone and stderr closed after its first line: scaled, journaled, Lease released, exit 0', async () => {
    const journal = tempDir('streams-journal-');
    const before = (await replicas()) ?? 0;
    const want = before + 1;
    const r = await run(['app', 'scale', '--replicas', String(want), '--yes'], { RUNBOOK_JOURNAL_DIR: journal }, { stdout: 'now', stderr: 'first-chunk' });
    expect(r.signal).toBeNull();
    expect(r.code).toBe(0);
    expect(await replicas()).toBe(want);
    expect(await sb.kube.list('leases', { namespace: sb.namespace })).toEqual([]);
    expect(lastEvent(journal)).toMatchObject({ type: 'run-end', status: 'succeeded', exitCode: 0 });
    await sb.kube.waitForRollout('app', { timeoutMs: 30_000 });
  });

  it('a failing wait with both streams closed: the scale is put back, the Lease released, exit 1', async () => {
    const journal = tempDir('streams-journal-');
    const before = (await replicas()) ?? 0;
    await sb.kube.failPods('never-ready');
    let r;
    try {
      r = await run(
        ['app', 'scale', '--replicas', String(before + 2), '--rollout-timeout', '1s', '--yes'],
        { RUNBOOK_JOURNAL_DIR: journal },
        { stdout: 'now', stderr: 'now' },
      );
    } finally {
      await sb.kube.failPods(undefined);
    }
    expect(r.signal).toBeNull();
    expect(r.code).toBe(1);
    expect(await replicas()).toBe(before);
    expect(await sb.kube.list('leases', { namespace: sb.namespace })).toEqual([]);
    expect(lastEvent(journal)).toMatchObject({ type: 'run-end', exitCode: 1 });
    for (const p of await sb.kube.list('pods', { namespace: sb.namespace, labelSelector: 'app=api' })) {
      const ready = (p as { status?: { conditions?: Array<{ type: string; status: string }> } }).status?.conditions?.some(
        (c) => c.type === 'Ready' && c.status === 'True',
      );
      if (!ready) await sb.kube.remove('pods', sb.namespace, p.metadata.name);
    }
    await sb.kube.waitForRollout('app', { timeoutMs: 30_000 });
  });
});

describe('a journal directory that cannot be used (built CLI)', () => {
  it('RUNBOOK_JOURNAL_DIR=/proc/nope runbook app scale --replicas 4 --yes: exit 2 at once, one error line, nothing contacted', async () => {
    const seen = sb.kube.requests.length;
    const t0 = Date.now();
    const r = await run(['app', 'scale', '--replicas', '4', '--yes'], { RUNBOOK_JOURNAL_DIR: '/proc/nope' }, { stdout: 'open', stderr: 'open' }, 15_000);
    expect(r.signal, 'it hung and was killed').toBeNull();
    expect(r.code).toBe(2);
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(r.stderr.split('\n').filter((l) => l.startsWith('error:'))).toEqual([
      'error: journal directory /proc/nope cannot be created (ENOENT on /proc/nope); nothing was contacted or changed',
    ]);
    expect(sb.kube.requests.slice(seen)).toEqual([]);
  });

  it('a journal directory that is a file: exit 2, nothing contacted', async () => {
    const file = join(tempDir(), 'journal');
    writeFileSync(file, '');
    const seen = sb.kube.requests.length;
    const r = await run(['app', 'scale', '--replicas', '4', '--yes'], { RUNBOOK_JOURNAL_DIR: file }, { stdout: 'open', stderr: 'open' });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`error: journal directory ${file} is not a directory`);
    expect(sb.kube.requests.slice(seen)).toEqual([]);
  });
});
