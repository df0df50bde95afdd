// doctor --online signs in to AWS as the procedures would and says who it is (STS GetCallerIdentity, against moto).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.js';
import { writeConfig } from '../support/config.js';
import { startMoto, type MotoService } from '../support/services/moto.js';

let moto: MotoService;
beforeAll(async () => {
  moto = await startMoto();
}, 60_000);
afterAll(async () => {
  await moto?.stop();
});

describe('doctor --online: AWS', () => {
  it('shows the caller identity of the environment’s credentials', async () => {
    const { dir } = writeConfig({ default: 'cloud', environments: { cloud: { aws: { region: 'eu-west-1', endpoint: moto.endpoint } } } });
    const r = await runCli(['doctor', '--online', '--json'], { cwd: dir, env: moto.env() });
    const checks = (JSON.parse(r.stdout) as { checks: Array<{ name: string; ok: boolean; detail: string }> }).checks;
    const id = checks.find((c) => c.name === 'aws identity');
    expect(id, r.stdout).toMatchObject({ ok: true });
    expect(id!.detail).toMatch(/^account \d{12} as arn:aws:(iam|sts)::\d{12}:\S+ \(eu-west-1\)$/);
    expect(r.code, r.stdout).toBe(0);
  });

  it('an endpoint that does not answer is a failed check with a fix (exit 4)', async () => {
    const { dir } = writeConfig({ default: 'cloud', environments: { cloud: { aws: { region: 'eu-west-1', endpoint: 'http://127.0.0.1:9' } } } });
    const r = await runCli(['doctor', '--online'], { cwd: dir, env: { AWS_ACCESS_KEY_ID: 'x', AWS_SECRET_ACCESS_KEY: 'y' } });
    expect(r.code).toBe(4);
    expect(r.stdout).toMatch(/✖ aws identity\s+AWS \S+/);
    expect(r.stdout).toMatch(/fix: aws sts get-caller-identity/);
  });
});
