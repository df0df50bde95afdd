/**
 * dr failover / dr failback against moto (Route 53 + ECS in two regions) and a local health server
 * that turns healthy after K polls.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { runCli, tempDir } from '../../support/cli.js';
import { writeConfig } from '../../support/config.js';
import { startHttpService, startMoto, type HttpService, type MotoService } from '../../support/services/index.js';
import { DR, batchTo, drState, ecsError, route53Error, seedDrAws, startFaultProxy, type FaultProxy } from '../../support/sandbox/dr-part.js';

let moto: MotoService;
let proxy: FaultProxy;
let health: HttpService;
let zoneId: string;
/** Health answers 503 until this many polls have been seen, then 200. */
let healthyAfter = 3;
let polls = 0;

beforeAll(async () => {
  [moto, health] = await Promise.all([
    startMoto(),
    startHttpService(() => {
      polls++;
      return polls > healthyAfter ? { status: 200, body: { ok: true } } : { status: 503, body: { ok: false } };
    }),
  ]);
  proxy = await startFaultProxy(moto);
});
afterAll(async () => {
  await Promise.all([proxy?.stop(), moto?.stop(), health?.stop()]);
});
beforeEach(async () => {
  await moto.reset();
  ({ zoneId } = await seedDrAws(moto));
  polls = 0;
  healthyAfter = 2;
  proxy.fault = null;
});

function config(over: { failover?: unknown; zone?: string; attempts?: number; protectedEnv?: boolean; endpoint?: string } = {}) {
  const drSide = { ...DR.dr, health: { url: `${health.url}/health`, attempts: over.attempts ?? 6, interval: '50ms', timeout: '2s' } };
  const primary = { ...DR.primary, health: { url: `${health.url}/health`, attempts: over.attempts ?? 6, interval: '50ms', timeout: '2s' } };
  const env = {
    protected: over.protectedEnv ?? false,
    aws: { region: 'us-east-1', endpoint: over.endpoint ?? moto.endpoint },
    dr: {
      route53: {
        hostedZoneId: over.zone ?? zoneId,
        failover: over.failover ?? batchTo(DR.drIp),
        failback: 'failback.json',
        syncTimeout: '10s',
        syncInterval: '100ms',
      },
      primary,
      dr: drSide,
    },
  };
  const c = writeConfig({ default: 'staging', environments: { staging: env } });
  writeFileSync(join(c.dir, 'failback.json'), JSON.stringify(batchTo(DR.primaryIp)));
  return c;
}

const run = (argv: string[], cwd: string, extra: Parameters<typeof runCli>[1] = {}) =>
  runCli(argv, { cwd, ...extra, env: { ...moto.env(), RUNBOOK_JOURNAL_DIR: tempDir('journal-'), ...(extra.env ?? {}) } });

const start = { records: [`${DR.record} A 60 ${DR.primaryIp}`], primary: 4, dr: 0 };

describe('dr failover', () => {
  it('previews every record and desired count before → after in a dry run, and changes nothing', async () => {
    const { dir } = config();
    const r = await run(['dr', 'failover', '--dry-run'], dir);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('DRY RUN');
    expect(r.stderr).toMatch(/api\.example\.com\..*10\.0\.0\.10 \(TTL 60\).*10\.1\.0\.10 \(TTL 60\)/s);
    expect(r.stderr).toMatch(/us-west-2 dr-cluster\/app[\s\S]*0[\s\S]*10/);
    expect(r.stderr).toMatch(/us-east-1 prod-cluster\/app[\s\S]*4[\s\S]*0/);
    expect(await drState(moto, zoneId)).toEqual(start);
    expect(polls).toBe(0);
  });

  it('fails closed at the severe gate without --confirm (exit 3) and on a wrong typed name', async () => {
    const { dir } = config();
    const r = await run(['dr', 'failover', '--yes'], dir);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/--confirm staging/);
    const typed = await run(['dr', 'failover'], dir, { tty: true, answers: ['production', 'production', 'production'] });
    expect(typed.code).toBe(3);
    expect(await drState(moto, zoneId)).toEqual(start);
  });

  it('fails over: DNS → INSYNC → DR scaled → DR healthy after K polls → primary stopped', async () => {
    const { dir } = config();
    const r = await run(['dr', 'failover', '--yes', '--confirm', 'staging', '--json'], dir);
    expect(r.code, r.stderr).toBe(0);
    expect(await drState(moto, zoneId)).toEqual({ records: [`${DR.record} A 60 ${DR.drIp}`], primary: 0, dr: 10 });
    const result = JSON.parse(r.stdout);
    const step = (id: string) => result.steps.find((s: { id: string }) => s.id === id);
    expect(step('sync').data.status).toBe('INSYNC');
    expect(step('health').data.attempts).toBe(3);
    expect(step('stop').data).toMatchObject({ from: 4, to: 0 });
  });

  it('asks twice interactively (typed name, then a separate yes/no to stop the primary); declining the second keeps the failover', async () => {
    const { dir } = config();
    const r = await run(['dr', 'failover'], dir, { tty: true, answers: ['staging', false] });
    expect(r.code).toBe(3);
    expect(r.prompter.constructor.name).toBe('ScriptedPrompter');
    expect(await drState(moto, zoneId)).toEqual({ records: [`${DR.record} A 60 ${DR.drIp}`], primary: 4, dr: 10 });
  });

  it('--keep-primary leaves the primary running', async () => {
    const { dir } = config();
    const r = await run(['dr', 'failover', '--keep-primary', '--yes', '--confirm', 'staging'], dir);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/dns\s+api\.example\.com\. A\s+10\.0\.0\.10 \(TTL 60\)\s+10\.1\.0\.10 \(TTL 60\)/);
    expect(await drState(moto, zoneId)).toEqual({ records: [`${DR.record} A 60 ${DR.drIp}`], primary: 4, dr: 10 });
  });

  it('stops before the primary when DR never turns healthy (exit 4), saying where DNS points and how to fail back', async () => {
    healthyAfter = 1000;
    const { dir } = config({ attempts: 3 });
    const r = await run(['dr', 'failover', '--yes', '--confirm', 'staging'], dir);
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/DR not healthy .* after 3 attempts \(HTTP 503\)/);
    expect(r.stderr).toMatch(/DNS now points at DR \(api\.example\.com\. A: 10\.0\.0\.10 \(TTL 60\) → 10\.1\.0\.10 \(TTL 60\)/);
    expect(r.stderr).toMatch(/runbook dr failback -e staging/);
    expect(await drState(moto, zoneId)).toEqual({ records: [`${DR.record} A 60 ${DR.drIp}`], primary: 4, dr: 10 });
  });

  it('puts DNS back when ECS fails mid-way (UpdateService error in the DR region), exit 1', async () => {
    proxy.fault = (req) =>
      req.target.endsWith('.UpdateService') && req.region === 'us-west-2' ? ecsError('ClientException', 'injected: service update refused') : null;
    const { dir } = config({ endpoint: proxy.endpoint });
    const r = await run(['dr', 'failover', '--yes', '--confirm', 'staging'], dir);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/ECS could not scale dr-cluster\/app in us-west-2: AWS ClientException.*injected/);
    expect(r.stderr).toMatch(/undo: Point DNS at the DR region/);
    expect(await drState(moto, zoneId)).toEqual(start);
  });

  it('puts DNS back when Route 53 fails after the change was submitted (GetChange error), exit 1', async () => {
    proxy.fault = (req) => (req.method === 'GET' && req.path.includes('/change/') ? route53Error('Throttling', 'injected: rate exceeded') : null);
    const { dir } = config({ endpoint: proxy.endpoint });
    const r = await run(['dr', 'failover', '--yes', '--confirm', 'staging', '--json'], dir);
    const result = JSON.parse(r.stdout);
    expect(result.steps.find((s: { id: string }) => s.id === 'sync').status).toBe('failed');
    expect((await drState(moto, zoneId)).records).toEqual(start.records);
    expect((await drState(moto, zoneId)).dr).toBe(0);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/cannot read Route 53 change .*Throttling/);
    expect(r.stderr).toMatch(/could not confirm INSYNC/);
  });

  it('reports the exact by-hand command when the put-back itself fails (exit 5)', async () => {
    // Every Route 53 write after the first fails: the change lands, the put-back cannot.
    let writes = 0;
    proxy.fault = (req) => {
      if (req.target.endsWith('.UpdateService') && req.region === 'us-west-2') return ecsError('ClientException', 'injected');
      if (req.method === 'POST' && req.path.includes('/rrset')) return ++writes > 1 ? route53Error('PriorRequestNotComplete', 'injected') : null;
      return null;
    };
    const { dir } = config({ endpoint: proxy.endpoint });
    const r = await run(['dr', 'failover', '--yes', '--confirm', 'staging'], dir);
    expect(r.code).toBe(5);
    expect(r.stderr).toMatch(/aws route53 change-resource-record-sets --hosted-zone-id \S+ --change-batch '.*"Action":"UPSERT".*10\.0\.0\.10/);
    expect((await drState(moto, zoneId)).records).toEqual([`${DR.record} A 60 ${DR.drIp}`]);
  });

  it.each([
    [
      'a malformed change batch',
      { failover: { Changes: [{ Action: 'MOVE', ResourceRecordSet: { Name: 'x', Type: 'A' } }] } },
      /malformed change batch.*Changes\.0\.Action/,
    ],
    [
      'a record without TTL',
      { failover: { Changes: [{ Action: 'UPSERT', ResourceRecordSet: { Name: 'x.example.com', Type: 'A', ResourceRecords: [{ Value: '1.2.3.4' }] } }] } },
      /ResourceRecords need a TTL/,
    ],
    ['an unknown hosted zone', { zone: 'ZNOSUCHZONE123' }, /unknown hosted zone ZNOSUCHZONE123/],
  ])('rejects %s with exit 2 before any change', async (_what, over, message) => {
    const { dir } = config(over);
    const r = await run(['dr', 'failover', '--yes', '--confirm', 'staging'], dir);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(await drState(moto, zoneId)).toEqual(start);
  });

  it('fails back after a failover, and a second failover run only changes what still differs', async () => {
    const { dir } = config();
    expect((await run(['dr', 'failover', '--yes', '--confirm', 'staging'], dir)).code).toBe(0);
    const again = await run(['dr', 'failover', '--yes', '--confirm', 'staging', '--json'], dir);
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout).steps.find((s: { id: string }) => s.id === 'dns').status).toBe('skipped');
    polls = 0;
    const back = await run(['dr', 'failback', '--yes', '--confirm', 'staging'], dir);
    expect(back.code, back.stderr).toBe(0);
    expect(await drState(moto, zoneId)).toEqual(start);
  });

  it('needs the failback batch and the primary count, checked before anything is contacted', async () => {
    const c = writeConfig({
      environments: {
        staging: {
          aws: { region: 'us-east-1', endpoint: 'http://127.0.0.1:9' },
          dr: {
            route53: { hostedZoneId: 'Z1', failover: batchTo(DR.drIp) },
            primary: { region: 'us-east-1', cluster: 'c', service: 's' },
            dr: { ...DR.dr, health: { url: 'http://127.0.0.1:9/health' } },
          },
        },
      },
    });
    const r = await run(['dr', 'failback', '--dry-run'], c.dir);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/dr\.route53\.failback is not configured/);
  });
});
