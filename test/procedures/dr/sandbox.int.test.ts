/**
 * The sandbox's dr part (moto Route 53 + ECS in two regions + S3 with a real dump, a DR health URL, a
 * TLS server, a log directory): every issue-5 procedure's examples[0] runs against it; a dry run and a
 * declined gate change nothing (fingerprint), and the real runs succeed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, tempDir } from '../../support/cli.js';
import { startSandbox, type Sandbox } from '../../support/sandbox/index.js';
import { catalog } from '../../../src/procedures/catalog.js';

let sandbox: Sandbox;
const mine = ['dr failover', 'dr failback', 'backup verify', 'cert check', 'cert renew', 'logs rotate'];

beforeAll(async () => {
  sandbox = await startSandbox({ parts: ['dr'] });
});
afterAll(async () => {
  await sandbox?.stop();
});

const run = (argv: string[], extra: Parameters<typeof runCli>[1] = {}) =>
  runCli(argv, { ...extra, env: { ...sandbox.env, RUNBOOK_JOURNAL_DIR: tempDir('journal-'), ...(extra.env ?? {}) } });

describe('sandbox dr part', () => {
  it.each(mine)('%s: examples[0] as a dry run changes nothing', async (name) => {
    const proc = await catalog.find((e) => e.name === name)!.load();
    const before = await sandbox.fingerprint();
    const r = await run([...name.split(' '), ...proc.examples[0], '--dry-run']);
    expect(r.code, r.stderr).toBe(0);
    expect(await sandbox.fingerprint()).toEqual(before);
  });

  it.each(mine.filter((n) => n !== 'cert check' && n !== 'backup verify'))(
    '%s: examples[0] without approval in the protected environment fails closed (exit 3), nothing changed',
    async (name) => {
      const proc = await catalog.find((e) => e.name === name)!.load();
      const before = await sandbox.fingerprint();
      const r = await run([...name.split(' '), ...proc.examples[0], '-e', 'sandbox-protected', '--yes']);
      expect(r.code, r.stderr).toBe(3);
      expect(await sandbox.fingerprint()).toEqual(before);
    },
  );

  it('examples[0] really run: cert check, backup verify --restore-test, logs rotate, dr failover then failback', async () => {
    expect((await run(['cert', 'check'])).code).toBe(0);
    const b = await run(['backup', 'verify', '--restore-test']);
    expect(b.code, b.stderr).toBe(0);
    expect(b.stdout).toMatch(/users 25 rows \(dropped\)/);
    const l = await run(['logs', 'rotate', '--yes']);
    expect(l.code, l.stderr).toBe(0);
    expect(JSON.parse((await sandbox.fingerprint()).dr).logs.some((k: string) => k.startsWith('archive/app-1.log.gz'))).toBe(true);
    const f = await run(['dr', 'failover', '--keep-primary', '--yes', '--confirm', 'sandbox']);
    expect(f.code, f.stderr).toBe(0);
    expect(JSON.parse((await sandbox.fingerprint()).dr)).toMatchObject({ records: ['api.example.com. A 60 10.1.0.10'], primary: 4, dr: 10 });
    const back = await run(['dr', 'failback', '--yes', '--confirm', 'sandbox']);
    expect(back.code, back.stderr).toBe(0);
    expect(JSON.parse((await sandbox.fingerprint()).dr)).toMatchObject({ records: ['api.example.com. A 60 10.0.0.10'], primary: 4, dr: 0 });
    const renew = await run(['cert', 'renew', '--yes']);
    expect(renew.code, renew.stderr).toBe(0);
  });
});
