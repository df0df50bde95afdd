// `security ddos` and `security ddos-revert` against real services: moto (WAFv2), the real Kubernetes
// control plane, and a local Cloudflare API fake; the lock-token retry through a fault proxy in front of moto.
import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Deployment } from '../../support/cluster/index.js';
import { runCli } from '../../support/cli.js';
import { startSandbox, type Sandbox } from '../../support/sandbox/index.js';
import { aclRules, DDOS, type DdosPart } from '../../support/sandbox/ddos-part.js';
import { ecsError, startFaultProxy } from '../../support/sandbox/dr-part.js';

let sb: Sandbox;
let part: DdosPart;
let journal: string;

const deployment = async () => (await sb.kube.get<Deployment>('deployments', sb.namespace, 'app'))!;
const envVars = async () =>
  Object.fromEntries(((await deployment()).spec.template.spec.containers[0].env ?? []).map((e: { name: string; value?: string }) => [e.name, e.value]));
const rules = async () => (await aclRules(part.moto, part.aclId)).map((r) => r.Name);
const cli = (argv: string[], extra: Parameters<typeof runCli>[1] = {}) =>
  runCli(argv, { ...extra, env: { ...sb.env, RUNBOOK_JOURNAL_DIR: journal, ...(extra.env ?? {}) } });

beforeAll(async () => {
  sb = await startSandbox({ parts: ['kubernetes', 'ddos'] });
  part = sb.parts.find((p) => p.name === 'ddos') as DdosPart;
}, 120_000);
afterAll(async () => {
  await sb?.stop();
});
beforeEach(() => {
  journal = mkdtempSync(join(tmpdir(), 'runbook-ddos-journal-'));
  part.cloudflare.failPatch = false;
});

describe('security ddos', () => {
  it('dry run changes nothing and shows before → after', async () => {
    const before = await sb.fingerprint();
    const r = await cli(['security', 'ddos', '--dry-run', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.status).toBe('planned');
    const waf = doc.steps.find((s: { id: string }) => s.id === 'waf');
    expect(JSON.stringify(waf)).toContain('baseline-block-bad-ips, emergency-rate-limit');
    expect(await sb.fingerprint()).toEqual(before);
  });

  it('a declined gate exits 3 and changes nothing', async () => {
    const before = await sb.fingerprint();
    const r = await cli(['security', 'ddos', '--env', 'sandbox-protected'], { tty: true, answers: [false, 'no'] });
    expect(r.code, r.stderr).toBe(3);
    expect(await sb.fingerprint()).toEqual(before);
  });

  it('bad input exits 2 before contacting anything', async () => {
    const r = await cli(['security', 'ddos', '--replicas', '999']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/limit of 20/);
    const bad = parse(readFileSync(sb.configPath, 'utf8'));
    const file = join(sb.dir, 'bad-rules.json');
    writeFileSync(file, JSON.stringify([{ Name: 'x', Priority: 'high' }]));
    bad.environments.sandbox.ddos.waf.rules = file;
    const cfg = join(sb.dir, 'bad.yaml');
    writeFileSync(cfg, stringify(bad));
    const before = await sb.fingerprint();
    const r2 = await cli(['security', 'ddos', '--yes'], { env: { RUNBOOK_CONFIG: cfg } });
    expect(r2.code, r2.stderr).toBe(2);
    expect(r2.stderr).toMatch(/ddos\.waf\.rules/);
    expect(await sb.fingerprint()).toEqual(before);
  });

  it('a failure at the Cloudflare step puts back rules, variables and replicas', async () => {
    const before = await sb.fingerprint();
    part.cloudflare.failPatch = true;
    const r = await cli(['security', 'ddos', '--yes', '--json']);
    expect(r.code, r.stderr).toBe(1);
    const doc = JSON.parse(r.stdout);
    expect(doc.compensations.map((c: { step: string }) => c.step)).toEqual(['scale', 'apply', 'waf']);
    expect(await rules()).toEqual(['baseline-block-bad-ips']);
    expect((await envVars()).RATE_LIMIT_ENABLED).toBeUndefined();
    expect((await deployment()).spec.replicas).toBe(3);
    expect(await sb.fingerprint()).toEqual(before);
  });

  it('runs for real: merges rules, sets rate limits, scales up, under_attack; the revert puts everything back', async () => {
    const r = await cli(['security', 'ddos', '--yes', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(await rules()).toEqual(['baseline-block-bad-ips', 'emergency-rate-limit']);
    expect(await envVars()).toMatchObject({ MODE: 'normal', RATE_LIMIT_ENABLED: 'true', RATE_LIMIT_REQUESTS: '10', RATE_LIMIT_WINDOW: '60' });
    expect((await deployment()).spec.replicas).toBe(DDOS.replicas);
    expect(part.cloudflare.level).toBe('under_attack');
    const cfReq = part.cloudflare.service.requests.filter((q) => q.method === 'PATCH').at(-1)!;
    expect(cfReq.headers.authorization).toBe(`Bearer ${DDOS.token}`);
    expect(r.stderr + r.stdout).not.toContain(DDOS.token);

    // Running again changes nothing (every step is already done).
    const again = await cli(['security', 'ddos', '--yes', '--json']);
    expect(again.code, again.stderr).toBe(0);
    expect(await rules()).toEqual(['baseline-block-bad-ips', 'emergency-rate-limit']);

    const back = await cli(['security', 'ddos-revert', '--yes', '--json']);
    expect(back.code, back.stderr).toBe(0);
    expect(await rules()).toEqual(['baseline-block-bad-ips']);
    expect(await envVars()).toEqual({ MODE: 'normal' });
    expect((await deployment()).spec.replicas).toBe(3);
    expect(part.cloudflare.level).toBe('medium');
  }, 30_000);

  it('re-reads the lock token and retries once on WAFOptimisticLockException', async () => {
    const proxy = await startFaultProxy(part.moto);
    try {
      const cfg = parse(readFileSync(sb.configPath, 'utf8'));
      cfg.environments.sandbox.aws.endpoint = proxy.endpoint;
      const file = join(sb.dir, 'proxied.yaml');
      writeFileSync(file, stringify(cfg));
      let failed = 0;
      proxy.fault = (q) => (q.target.endsWith('.UpdateWebACL') && failed++ === 0 ? ecsError('WAFOptimisticLockException', 'stale lock token') : null);
      const r = await cli(['security', 'ddos', '--yes', '--json'], { env: { RUNBOOK_CONFIG: file } });
      expect(r.code, r.stderr).toBe(0);
      const gets = proxy.seen.filter((q) => q.target.endsWith('.GetWebACL')).length;
      const updates = proxy.seen.filter((q) => q.target.endsWith('.UpdateWebACL'));
      expect(updates.length).toBe(2);
      expect(gets).toBeGreaterThanOrEqual(3); // plan, then one read before each update
      for (const u of updates) expect(JSON.parse(u.body).LockToken).toMatch(/\S/);
      expect(await rules()).toEqual(['baseline-block-bad-ips', 'emergency-rate-limit']);
      const back = await cli(['security', 'ddos-revert', '--yes', '--json'], { env: { RUNBOOK_CONFIG: file } });
      expect(back.code, back.stderr).toBe(0);
      expect(await rules()).toEqual(['baseline-block-bad-ips']);
    } finally {
      await proxy.stop();
    }
  }, 30_000);
});
