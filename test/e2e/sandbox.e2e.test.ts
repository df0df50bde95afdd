// `npm run sandbox` as a newcomer uses it: start it, `source` the env file it names in a shell, and both
// runbook and the real kubectl see the same cluster: a real control plane of the sandbox's own, namespace production.
import { describe, expect, it } from 'vitest';
import { spawn, execFile } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { tempDir } from '../support/cli.js';
import { sandboxFiles } from '../support/sandbox-files.js';

const root = join(import.meta.dirname, '..', '..');
const exec = promisify(execFile);

describe('npm run sandbox', () => {
  it('starts the services, writes an env file that runbook and kubectl both use once sourced, and stops on Ctrl-C (removing it)', async () => {
    const sandboxDir = tempDir('sbx-files-');
    const files = sandboxFiles({ RUNBOOK_SANDBOX_DIR: sandboxDir });
    const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'test/support/sandbox.ts')], {
      cwd: root,
      env: { ...process.env, RUNBOOK_SANDBOX_DIR: sandboxDir },
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    try {
      await new Promise<void>((resolve, reject) => {
        // A control plane of its own (~10 s; the first build of its binary takes minutes, the global setup did it).
        const t = setTimeout(() => reject(new Error(`sandbox did not start: ${err}`)), 150_000);
        const check = setInterval(() => {
          if (out.includes('Ctrl-C here stops everything')) {
            clearTimeout(t);
            clearInterval(check);
            resolve();
          }
        }, 50);
        child.on('exit', (code) => reject(new Error(`sandbox exited ${code}: ${err}`)));
      });
      expect(out).not.toMatch(/^export /m);
      const source = [...out.matchAll(/^source (.+)$/gm)].map((m) => m[1]);
      expect(source).toEqual([files.env]);
      expect(statSync(files.env).mode & 0o777).toBe(0o600);
      // What a shell that sources the file gets (its quoting is the shell's to read, not ours).
      const names = [...readFileSync(files.env, 'utf8').matchAll(/^export ([A-Za-z_][A-Za-z0-9_]*)=/gm)].map((m) => m[1]);
      expect(names).toEqual(expect.arrayContaining(['RUNBOOK_CONFIG', 'KUBECONFIG']));
      const sourced = (await exec('sh', ['-c', '. "$1" && env -0', 'sh', files.env], { env: { PATH: process.env.PATH ?? '' } })).stdout;
      const shellEnv = new Map(
        sourced
          .split('\0')
          .filter(Boolean)
          .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)] as const),
      );
      const env: Record<string, string> = { PATH: process.env.PATH ?? '', HOME: tempDir('sbx-home-'), RUNBOOK_JOURNAL_DIR: tempDir('sbx-journal-') };
      for (const k of names) {
        const v = shellEnv.get(k);
        if (v === undefined) throw new Error(`${k} is not set in a shell that sourced ${files.env}`);
        env[k] = v;
      }
      expect(existsSync(env.KUBECONFIG)).toBe(true);
      const kubectl = (...args: string[]) => exec('kubectl', [...args, '--cache-dir', tempDir('kcache-')], { env });
      // The real API server (backed by etcd, not a stand-in), and the namespace and nodes the README names.
      expect((await kubectl('get', '--raw', '/readyz?verbose')).stdout).toMatch(/\[\+\]etcd ok/);
      const nodes = (await kubectl('get', 'nodes', '-o', 'jsonpath={.items[*].metadata.name}')).stdout.split(' ');
      expect(nodes).toEqual(expect.arrayContaining(['node-1', 'node-2']));
      expect((await kubectl('get', 'deployment', 'app', '-n', 'production', '-o', 'jsonpath={.spec.replicas}')).stdout).toBe('3');
      const scale = await exec(process.execPath, [join(root, 'bin/runbook.js'), 'app', 'scale', '--replicas', '4'], { env });
      expect(scale.stderr).toContain('succeeded');
      expect((await kubectl('get', 'deployment', 'app', '-n', 'production', '-o', 'jsonpath={.spec.replicas}')).stdout).toBe('4');
      // The controllers, the scheduler and kwok really ran the fourth pod.
      await kubectl('rollout', 'status', 'deployment/app', '-n', 'production', '--timeout=30s');
      const phases = (
        await kubectl(
          'get',
          'pods',
          '-n',
          'production',
          '-l',
          'app=api',
          '--field-selector=status.phase=Running',
          '-o',
          'jsonpath={range .items[*]}{.metadata.deletionTimestamp}{"/"}{.spec.nodeName}{"\\n"}{end}',
        )
      ).stdout
        .trim()
        .split('\n');
      expect(phases.filter((l) => l.startsWith('/') && l.length > 1)).toHaveLength(4);
      // The bundle's PostgreSQL client (SCRAM-SHA-256 over TCP) and Redis client, as run from the
      // built CLI (scripts/bundle.mjs patches a few lines of each), against the sandbox's servers.
      const cli = async (...args: string[]) => JSON.parse((await exec(process.execPath, [join(root, 'bin/runbook.js'), ...args, '--json'], { env })).stdout);
      const conns = await cli('db', 'connections');
      expect(conns).toMatchObject({ status: 'succeeded', steps: [{ id: 'connections', status: 'succeeded' }] });
      expect(conns.steps[0].data.total).toBeGreaterThanOrEqual(1);
      const stats = await cli('cache', 'stats');
      expect(stats).toMatchObject({ status: 'succeeded', steps: [{ id: 'stats', status: 'succeeded' }] });
    } finally {
      child.kill('SIGINT');
      const code = await new Promise<number | null>((resolve) => (child.exitCode !== null ? resolve(child.exitCode) : child.on('exit', (c) => resolve(c))));
      expect(code, err).toBe(0);
      expect(existsSync(files.env)).toBe(false);
    }
  }, 240_000);
});
