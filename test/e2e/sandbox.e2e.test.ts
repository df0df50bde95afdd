// `npm run sandbox` as a newcomer uses it: start it, paste the export lines, and both runbook and
// the real kubectl see the same cluster.
import { describe, expect, it } from 'vitest';
import { spawn, execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { tempDir } from '../support/cli.js';

const root = join(import.meta.dirname, '..', '..');
const exec = promisify(execFile);

describe('npm run sandbox', () => {
  it('starts the services, prints export lines that runbook and kubectl both use, and stops on Ctrl-C', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'test/support/sandbox.ts')], { cwd: root, env: { ...process.env } });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    try {
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`sandbox did not start: ${err}`)), 90_000);
        const check = setInterval(() => {
          if (out.includes('Ctrl-C here stops everything')) {
            clearTimeout(t);
            clearInterval(check);
            resolve();
          }
        }, 50);
        child.on('exit', (code) => reject(new Error(`sandbox exited ${code}: ${err}`)));
      });
      const env: Record<string, string> = { PATH: process.env.PATH ?? '', HOME: tempDir('sbx-home-'), RUNBOOK_JOURNAL_DIR: tempDir('sbx-journal-') };
      for (const m of out.matchAll(/^export ([A-Z_]+)=(".*")$/gm)) env[m[1]] = JSON.parse(m[2]);
      expect(Object.keys(env)).toEqual(expect.arrayContaining(['RUNBOOK_CONFIG', 'KUBECONFIG']));
      const kubectl = await exec('kubectl', ['get', 'deployment', 'app', '-n', 'production', '-o', 'jsonpath={.spec.replicas}', '--cache-dir', tempDir('kcache-')], { env });
      expect(kubectl.stdout).toBe('3');
      const scale = await exec(process.execPath, [join(root, 'bin/runbook.js'), 'app', 'scale', '--replicas', '4'], { env });
      expect(scale.stderr).toContain('succeeded');
      const after = await exec('kubectl', ['get', 'deployment', 'app', '-n', 'production', '-o', 'jsonpath={.spec.replicas}', '--cache-dir', tempDir('kcache-')], { env });
      expect(after.stdout).toBe('4');
    } finally {
      child.kill('SIGINT');
      const code = await new Promise<number | null>((resolve) => (child.exitCode !== null ? resolve(child.exitCode) : child.on('exit', (c) => resolve(c))));
      expect(code).toBe(0);
    }
  });
});
