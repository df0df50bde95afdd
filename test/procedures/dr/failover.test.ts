/** dr failover with an in-memory Route 53 + ECS fake (the AWS client factory seam) and a scripted health URL. */
import { describe, expect, it } from 'vitest';
import { runCli, tempDir } from '../../support/cli.js';
import { writeConfig } from '../../support/config.js';
import type { ClientFactories } from '../../../src/clients/index.js';
import type { AwsClients } from '../../../src/clients/aws.js';
import type { HttpClient } from '../../../src/clients/http.js';
import { loadChangeBatch } from '../../../src/procedures/dr/change-batch.js';
import { describeRecord, normalizeName, sameRecord, type RecordSet } from '../../../src/clients/route53.js';
import { writeFileSync } from 'node:fs';
import type { ScriptedPrompter } from '../../support/prompter.js';
import { runTexts } from '../../support/journal-files.js';
import { join } from 'node:path';

type Cmd = { constructor: { name: string }; input: Record<string, unknown> };

/** Route 53 and ECS, in memory: enough of ChangeResourceRecordSets/ListResourceRecordSets/GetChange/DescribeServices/UpdateService. */
class FakeAws {
  records = new Map<string, RecordSet>([['api.example.com. A', { Name: 'api.example.com.', Type: 'A', TTL: 60, ResourceRecords: [{ Value: '10.0.0.10' }] }]]);
  desired: Record<string, number> = { 'us-east-1/prod/app': 4, 'us-west-2/dr/app': 0 };
  writes: string[] = [];
  failUpdateIn?: string;
  clients(): AwsClients {
    const route53 = { send: async (c: Cmd) => this.r53(c), destroy() {} };
    const ecs = (region: string) => ({ send: async (c: Cmd) => this.ecs(region, c), destroy() {} });
    return {
      route53: async () => route53 as never,
      ecs: async (region?: string) => ecs(region ?? 'us-east-1') as never,
      rds: async () => ({}) as never,
      s3: async () => ({}) as never,
      wafv2: async () => ({}) as never,
      shield: async () => ({}) as never,
      close() {},
    };
  }
  private r53(c: Cmd): unknown {
    switch (c.constructor.name) {
      case 'GetHostedZoneCommand':
        if (c.input.Id !== 'Z1') throw Object.assign(new Error('No hosted zone found with ID'), { name: 'NoSuchHostedZone' });
        return { HostedZone: { Id: '/hostedzone/Z1', Name: 'example.com.' } };
      case 'ListResourceRecordSetsCommand':
        return { ResourceRecordSets: [...this.records.values()].filter((r) => r.Name >= String(c.input.StartRecordName)), IsTruncated: false };
      case 'ChangeResourceRecordSetsCommand': {
        const batch = c.input.ChangeBatch as { Changes: Array<{ Action: string; ResourceRecordSet: RecordSet }> };
        for (const ch of batch.Changes) {
          const key = `${normalizeName(ch.ResourceRecordSet.Name)} ${ch.ResourceRecordSet.Type}`;
          if (ch.Action === 'DELETE') this.records.delete(key);
          else this.records.set(key, { ...ch.ResourceRecordSet, Name: normalizeName(ch.ResourceRecordSet.Name) });
          this.writes.push(`route53 ${ch.Action} ${key} ${describeRecord(ch.ResourceRecordSet)}`);
        }
        return { ChangeInfo: { Id: `/change/C${this.writes.length}`, Status: 'PENDING' } };
      }
      case 'GetChangeCommand':
        return { ChangeInfo: { Id: c.input.Id, Status: 'INSYNC' } };
    }
    throw new Error(`fake route53: ${c.constructor.name}`);
  }
  private ecs(region: string, c: Cmd): unknown {
    const key = `${region}/${c.input.cluster}/${(c.input.service ?? (c.input.services as string[])[0]) as string}`;
    if (c.constructor.name === 'DescribeServicesCommand')
      return {
        services:
          key in this.desired
            ? [{ serviceName: (c.input.services as string[])[0], status: 'ACTIVE', desiredCount: this.desired[key], runningCount: this.desired[key] }]
            : [],
      };
    if (c.constructor.name === 'UpdateServiceCommand') {
      if (this.failUpdateIn === region)
        throw Object.assign(new Error('service update refused'), { name: 'ClientException', $metadata: { httpStatusCode: 400 } });
      this.desired[key] = c.input.desiredCount as number;
      this.writes.push(`ecs ${key} ${c.input.desiredCount}`);
      return { service: { desiredCount: c.input.desiredCount } };
    }
    throw new Error(`fake ecs: ${c.constructor.name}`);
  }
}

function healthAfter(n: number): HttpClient & { polls: number } {
  const h = {
    polls: 0,
    async request() {
      h.polls++;
      return { status: h.polls > n ? 200 : 503, headers: {}, text: '' };
    },
  };
  return h;
}

function setup(opts: { healthy?: number; zone?: string; protected?: boolean } = {}) {
  const aws = new FakeAws();
  const http = healthAfter(opts.healthy ?? 1);
  const health = { url: 'http://dr.test/health', attempts: 3, interval: '10ms', timeout: '1s' };
  const { dir } = writeConfig({
    environments: {
      staging: {
        ...(opts.protected ? { protected: true } : {}),
        aws: { region: 'us-east-1' },
        dr: {
          route53: {
            hostedZoneId: opts.zone ?? 'Z1',
            failover: {
              Changes: [{ Action: 'UPSERT', ResourceRecordSet: { Name: 'api.example.com', Type: 'A', TTL: 60, ResourceRecords: [{ Value: '10.1.0.10' }] } }],
            },
            syncInterval: '10ms',
          },
          primary: { region: 'us-east-1', cluster: 'prod', service: 'app', desiredCount: 4, health },
          dr: { region: 'us-west-2', cluster: 'dr', service: 'app', desiredCount: 10, health },
        },
      },
    },
  });
  const factories: ClientFactories = {
    kube: async () => {
      throw new Error('no kube');
    },
    http,
    aws: async () => aws.clients(),
  };
  let journal = '';
  const run = (argv: string[], extra: Parameters<typeof runCli>[1] = {}) =>
    runCli(argv, { cwd: dir, clientFactories: factories, ...extra, env: { RUNBOOK_JOURNAL_DIR: (journal = tempDir('j-')) } });
  /** The gate decisions the last run journaled: "step:decision:by". */
  const gates = () =>
    runTexts(journal).flatMap((text) =>
      text
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l))
        .filter((e) => e.type === 'gate')
        .map((e) => `${e.step}:${e.decision}${e.by ? `:${e.by}` : ''}`),
    );
  return { aws, http, run, dir, gates };
}

describe('dr failover (in-memory AWS)', () => {
  it('dry run: reads only, zero mutations', async () => {
    const { aws, run, http } = setup();
    const r = await run(['dr', 'failover', '--dry-run']);
    expect(r.code, r.stderr).toBe(0);
    expect(aws.writes).toEqual([]);
    expect(http.polls).toBe(0);
    expect(r.stderr).toMatch(/10\.0\.0\.10 \(TTL 60\) → 10\.1\.0\.10 \(TTL 60\)/);
  });

  it('declined severe gate: zero mutations (exit 3)', async () => {
    const { aws, run } = setup();
    const r = await run(['dr', 'failover'], { tty: true, answers: ['nope', 'nope', 'nope'] });
    expect(r.code).toBe(3);
    expect(aws.writes).toEqual([]);
  });

  it('the full order of writes: DNS, DR up, primary down', async () => {
    const { aws, run } = setup();
    const r = await run(['dr', 'failover', '--yes', '--confirm', 'staging']);
    expect(r.code, r.stderr).toBe(0);
    expect(aws.writes).toEqual(['route53 UPSERT api.example.com. A 10.1.0.10 (TTL 60)', 'ecs us-west-2/dr/app 10', 'ecs us-east-1/prod/app 0']);
  });

  it('ECS failure after the DNS change: DNS is put back to the recorded value (exit 1)', async () => {
    const { aws, run } = setup();
    aws.failUpdateIn = 'us-west-2';
    const r = await run(['dr', 'failover', '--yes', '--confirm', 'staging']);
    expect(r.code).toBe(1);
    expect(aws.writes).toEqual(['route53 UPSERT api.example.com. A 10.1.0.10 (TTL 60)', 'route53 UPSERT api.example.com. A 10.0.0.10 (TTL 60)']);
  });

  it('DR never healthy: exit 4, nothing put back automatically, primary untouched', async () => {
    const { aws, run } = setup({ healthy: 99 });
    const r = await run(['dr', 'failover', '--yes', '--confirm', 'staging']);
    expect(r.code).toBe(4);
    expect(aws.writes).toEqual(['route53 UPSERT api.example.com. A 10.1.0.10 (TTL 60)', 'ecs us-west-2/dr/app 10']);
    expect(r.stderr).toMatch(/stopped before touching the primary \(still desired 4\)/);
  });

  it('unknown hosted zone: exit 2, zero mutations', async () => {
    const { aws, run } = setup({ zone: 'ZNOPE' });
    const r = await run(['dr', 'failover', '--yes', '--confirm', 'staging']);
    expect(r.code).toBe(2);
    expect(aws.writes).toEqual([]);
  });
});

/** Issue 13 item 7, reviewed for dr: a "no" can no longer come between the DNS switch and scaling the side it sends users to. */
describe('dr failover gates: DNS + scale of DR are one approval, stopping the primary its own', () => {
  const asked = (r: { prompter: unknown }) => (r.prompter as ScriptedPrompter).asked;

  it('one typed approval covers the DNS change and the DR scale-up; stopping the primary is asked after the health check', async () => {
    const { aws, run, gates } = setup();
    const r = await run(['dr', 'failover'], { tty: true, answers: ['staging', true] });
    expect(r.code, r.stderr).toBe(0);
    expect(asked(r)).toHaveLength(2);
    expect(asked(r)[0]).toMatch(/Approve the plan above \(dr failover in staging\)\?[^]*Type the environment name \(staging\)/);
    expect(asked(r)[1]).toMatch(/^Stop the primary ECS service in staging\?/);
    expect(r.stderr).toMatch(/The plan of dr failover in staging:/);
    expect(r.stderr).toMatch(/point DNS at DR: api\.example\.com\.? A 10\.0\.0\.10 → 10\.1\.0\.10/);
    expect(r.stderr).toMatch(/scale DR dr\/app 0 → 10/);
    expect(r.stderr).toMatch(/asked separately after the health check: stop the primary service \(prod\/app, 4 → 0\)/);
    expect(gates()).toEqual(['plan:approved:prompt', 'dns:approved:plan', 'stop:approved:prompt']);
    expect(aws.writes).toEqual(['route53 UPSERT api.example.com. A 10.1.0.10 (TTL 60)', 'ecs us-west-2/dr/app 10', 'ecs us-east-1/prod/app 0']);
  });

  it('a "no" at the plan changes nothing at all (no DNS change, no scale)', async () => {
    const { aws, run, gates } = setup();
    const r = await run(['dr', 'failover'], { tty: true, answers: ['', '', ''] });
    expect(r.code).toBe(3);
    expect(asked(r)).toHaveLength(3);
    expect(aws.writes).toEqual([]);
    expect(gates()).toEqual(['plan:declined']);
    expect(r.stderr).toMatch(/nothing was changed/);
  });

  it('a "no" at stopping the primary keeps the finished failover (DNS → DR, DR up) and leaves the primary running', async () => {
    const { aws, run, gates } = setup();
    const r = await run(['dr', 'failover'], { tty: true, answers: ['staging', false] });
    expect(r.code).toBe(3);
    expect(aws.writes).toEqual(['route53 UPSERT api.example.com. A 10.1.0.10 (TTL 60)', 'ecs us-west-2/dr/app 10']);
    expect(aws.desired['us-east-1/prod/app']).toBe(4);
    expect(gates()).toEqual(['plan:approved:prompt', 'dns:approved:plan', 'stop:declined']);
    expect(r.stderr).not.toMatch(/putting back/);
  });

  it('protected: the scale-up (a write) is not asked on its own either; the stop is a typed gate of its own', async () => {
    const { aws, run, gates } = setup({ protected: true });
    const r = await run(['dr', 'failover'], { tty: true, answers: ['staging', 'staging'] });
    expect(r.code, r.stderr).toBe(0);
    expect(asked(r)).toHaveLength(2);
    expect(asked(r)[1]).toMatch(/^Stop the primary ECS service in staging \(PROTECTED\)\?[^]*Type the environment name/);
    expect(gates()).toEqual(['plan:approved:prompt', 'dns:approved:plan', 'scale:approved:plan', 'stop:approved:prompt']);
    expect(aws.writes).toHaveLength(3);
  });

  it('--keep-primary: one approval and nothing else asked', async () => {
    const { aws, run, gates } = setup();
    const r = await run(['dr', 'failover', '--keep-primary'], { tty: true, answers: ['staging'] });
    expect(r.code, r.stderr).toBe(0);
    expect(asked(r)).toHaveLength(1);
    expect(r.stderr).not.toMatch(/asked separately/);
    expect(gates()).toEqual(['plan:approved:prompt', 'dns:approved:plan']);
    expect(aws.writes).toEqual(['route53 UPSERT api.example.com. A 10.1.0.10 (TTL 60)', 'ecs us-west-2/dr/app 10']);
  });

  it('non-interactive: --yes alone (no --confirm for the severe plan) fails closed before anything', async () => {
    const { aws, run } = setup();
    const closed = await run(['dr', 'failover', '--yes']);
    expect(closed.code).toBe(3);
    expect(aws.writes).toEqual([]);
  });
});

describe('change batch validation', () => {
  const env = (failover: unknown, configPath: string | null = null) =>
    ({ name: 'e', builtIn: false, configPath, config: { dr: { route53: { hostedZoneId: 'Z', failover } } } }) as never;
  const rec = { Name: 'a.example.com', Type: 'A', TTL: 60, ResourceRecords: [{ Value: '1.2.3.4' }] };
  it.each([
    [{ Changes: [] }, /Changes: Too small|Changes/],
    [{ Changes: [{ Action: 'UPSERT', ResourceRecordSet: { ...rec, Type: 'BOGUS' } }] }, /Type/],
    [{ Changes: [{ Action: 'UPSERT', ResourceRecordSet: { Name: 'a', Type: 'A', TTL: 60 } }] }, /needs ResourceRecords/],
    [
      { Changes: [{ Action: 'UPSERT', ResourceRecordSet: { ...rec, AliasTarget: { HostedZoneId: 'Z', DNSName: 'x', EvaluateTargetHealth: false } } }] },
      /alias record/,
    ],
    [{ Changes: [{ Action: 'UPSERT', ResourceRecordSet: { ...rec, Weight: 10 } }] }, /SetIdentifier/],
    [
      {
        Changes: [
          { Action: 'UPSERT', ResourceRecordSet: rec },
          { Action: 'DELETE', ResourceRecordSet: rec },
        ],
      },
      /appears twice/,
    ],
    [{ Changes: [{ Action: 'UPSERT', ResourceRecordSet: rec, Extra: 1 }] }, /Extra|Unrecognized/],
  ])('rejects %j', (batch, message) => {
    expect(() => loadChangeBatch(env(batch), 'failover')).toThrow(message);
  });

  it('reads a file relative to the config, accepting the {"ChangeBatch": …} wrapper', () => {
    const dir = tempDir('batch-');
    writeFileSync(join(dir, 'dr.json'), JSON.stringify({ ChangeBatch: { Changes: [{ Action: 'UPSERT', ResourceRecordSet: rec }] } }));
    expect(loadChangeBatch(env('dr.json', join(dir, 'runbook.yaml')), 'failover').batch.Changes).toHaveLength(1);
    writeFileSync(join(dir, 'bad.json'), '{ nope');
    expect(() => loadChangeBatch(env('bad.json', join(dir, 'runbook.yaml')), 'failover')).toThrow(/not valid JSON/);
    expect(() => loadChangeBatch(env('missing.json', join(dir, 'runbook.yaml')), 'failover')).toThrow(/cannot read .*ENOENT/);
  });

  it('compares records as Route 53 does', () => {
    expect(sameRecord({ ...rec, Name: 'A.Example.com.' }, rec)).toBe(true);
    expect(sameRecord({ ...rec, TTL: 300 }, rec)).toBe(false);
    expect(sameRecord(null, null)).toBe(true);
    expect(describeRecord(null)).toBe('(absent)');
  });
});
