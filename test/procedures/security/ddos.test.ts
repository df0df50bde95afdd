import { describe, expect, it } from 'vitest';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../../support/cli.js';
import { writeConfig } from '../../support/config.js';
import { FakeKube, fakeFactories } from '../../support/fakes/fake-kube.js';
import type { ScriptedPrompter } from '../../support/prompter.js';
import { runTexts } from '../../support/journal-files.js';
import type { HttpClient } from '../../../src/clients/http.js';
import { Journal } from '../../../src/core/journal.js';
import { Redactor } from '../../../src/core/redact.js';
import { mergeRules, unmergeRules } from '../../../src/procedures/security/ddos-mitigation.js';
import { describeDrtRole, setDrtRole } from '../../../src/clients/shield-drt.js';
import type { WafRule } from '../../../src/clients/wafv2.js';
import type { ShieldClient } from '@aws-sdk/client-shield';

const rule = (Name: string, Priority: number, tag = ''): WafRule => ({
  Name,
  Priority,
  Statement: { tag },
  VisibilityConfig: { SampledRequestsEnabled: true, CloudWatchMetricsEnabled: true, MetricName: Name },
});

describe('emergency rule merge', () => {
  it('keeps other rules, replaces same-named ones, orders by priority', () => {
    const cur = [rule('geo', 0), rule('rate', 5, 'old'), rule('bots', 9)];
    const merged = mergeRules(cur, [rule('rate', 5, 'new'), rule('block-ua', 2)]);
    expect(merged.map((r) => `${r.Name}:${r.Priority}:${(r.Statement as { tag: string }).tag}`)).toEqual(['geo:0:', 'block-ua:2:', 'rate:5:new', 'bots:9:']);
  });

  it('refuses a priority already used by a kept rule', () => {
    expect(() => mergeRules([rule('geo', 1)], [rule('rate', 1)])).toThrow(/priority 1, already used by rule geo/);
  });

  it('unmerge removes only the emergency names and puts back what they replaced', () => {
    const before = [rule('geo', 0), rule('rate', 5, 'old')];
    const merged = mergeRules(before, [rule('rate', 5, 'new'), rule('block-ua', 2)]);
    const later = [...merged, rule('added-since', 7)];
    expect(unmergeRules(later, ['rate', 'block-ua'], before)).toEqual([rule('geo', 0), rule('rate', 5, 'old'), rule('added-since', 7)]);
  });
});

describe('Shield DRT role (fake client: moto 5 does not emulate these calls)', () => {
  function fakeShield(initial: string | null) {
    const calls: string[] = [];
    let role = initial;
    const client = {
      async send(cmd: { constructor: { name: string }; input: { RoleArn?: string } }) {
        calls.push(cmd.constructor.name);
        if (cmd.constructor.name === 'DescribeDRTAccessCommand') return role ? { RoleArn: role } : {};
        if (cmd.constructor.name === 'AssociateDRTRoleCommand') role = cmd.input.RoleArn ?? null;
        if (cmd.constructor.name === 'DisassociateDRTRoleCommand') role = null;
        return {};
      },
    };
    return { client: client as unknown as ShieldClient, calls, role: () => role };
  }

  it('associates, and the undo disassociates when there was no role', async () => {
    const f = fakeShield(null);
    expect(await describeDrtRole(f.client)).toBeNull();
    await setDrtRole(f.client, 'arn:aws:iam::123456789012:role/DDoSResponse');
    expect(f.role()).toBe('arn:aws:iam::123456789012:role/DDoSResponse');
    await setDrtRole(f.client, null);
    expect(f.role()).toBeNull();
    expect(f.calls).toEqual(['DescribeDRTAccessCommand', 'AssociateDRTRoleCommand', 'DisassociateDRTRoleCommand']);
  });
});

/** Issue 13 item 7, reviewed for the revert: every step puts something back, so one confirmation covers them all. */
describe('security ddos-revert gates (in-memory Kubernetes and Cloudflare)', () => {
  function setup() {
    const kube = new FakeKube(6);
    const container = kube.deployments.get('app')!.spec!.template.spec!.containers[0];
    container.env!.push(
      { name: 'RATE_LIMIT_ENABLED', value: 'true' },
      { name: 'RATE_LIMIT_REQUESTS', value: '10' },
      { name: 'RATE_LIMIT_WINDOW', value: '60' },
    );
    const cf = { level: 'under_attack', patches: [] as string[] };
    const http: HttpClient = {
      async request(_url, init) {
        if (init?.method === 'PATCH') cf.patches.push((cf.level = JSON.parse(String(init.body)).value));
        return { status: 200, headers: {}, text: JSON.stringify({ success: true, result: { value: cf.level } }) };
      },
    };
    const { dir } = writeConfig({
      environments: {
        production: {
          protected: true,
          kubernetes: { namespace: 'production', deployment: 'app' },
          rollout: { timeout: '2s' },
          ddos: { replicas: 6 },
          cloudflare: { api: 'http://cf.test/client/v4', zoneId: 'zone1', token: { env: 'CF_TOKEN' } },
        },
      },
    });
    const journal = mkdtempSync(join(tmpdir(), 'journal-'));
    const j = new Journal(journal, '20260101T000000-aaaa', new Redactor(), () => new Date('2026-01-01T00:00:00Z'));
    j.append('run-start', { procedure: 'security ddos', environment: 'production', dryRun: 'off' });
    j.append('step-end', { step: 'apply', status: 'succeeded', data: { container: 'api', index: 0, previous: [{ name: 'MODE', value: 'normal' }] } });
    j.append('step-end', { step: 'scale', status: 'succeeded', data: { from: 3, to: 6 } });
    j.append('step-end', { step: 'cloudflare', status: 'succeeded', data: { from: 'high', to: 'under_attack' } });
    j.append('run-end', { status: 'succeeded', exitCode: 0 });
    j.close();
    const run = (answers: boolean[]) =>
      runCli(['security', 'ddos-revert'], {
        cwd: dir,
        tty: true,
        answers,
        clientFactories: { ...fakeFactories(kube), http },
        env: { RUNBOOK_JOURNAL_DIR: journal, CF_TOKEN: 'cf-secret' },
      });
    const gates = () =>
      runTexts(journal).flatMap((text) => {
        const events = text
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l));
        return events[0].procedure === 'security ddos-revert'
          ? events.filter((e) => e.type === 'gate').map((e) => `${e.step}:${e.decision}${e.by ? `:${e.by}` : ''}`)
          : [];
      });
    const rateLimited = () => kube.deployments.get('app')!.spec!.template.spec!.containers[0].env!.some((e) => e.name.startsWith('RATE_LIMIT'));
    return { kube, cf, run, gates, rateLimited };
  }

  it('protected: ONE confirmation for the whole revert (variables, replicas, Cloudflare), not one per step', async () => {
    const { kube, cf, run, gates, rateLimited } = setup();
    const r = await run([true]);
    expect(r.code, r.stderr).toBe(0);
    const asked = (r.prompter as ScriptedPrompter).asked;
    expect(asked).toHaveLength(1);
    expect(asked[0]).toMatch(/Approve the whole plan above \(security ddos-revert in production\)/);
    expect(r.stderr).toMatch(/put back what run 20260101T000000-aaaa changed/);
    expect(r.stderr).toMatch(/replicas 6 → 3 \(only if still at 6\)/);
    expect(r.stderr).toMatch(/Cloudflare security level back to high/);
    expect(gates()).toEqual(['plan:approved:prompt', 'apply:approved:plan', 'scale:approved:plan', 'cloudflare:approved:plan']);
    expect(kube.deployments.get('app')!.spec!.replicas).toBe(3);
    expect(rateLimited()).toBe(false);
    expect(cf.patches).toEqual(['high']);
  });

  it('protected: a "no" changes nothing (exit 3)', async () => {
    const { kube, cf, run, gates, rateLimited } = setup();
    const r = await run([false]);
    expect(r.code).toBe(3);
    expect(gates()).toEqual(['plan:declined']);
    expect(kube.mutations).toEqual([]);
    expect(kube.deployments.get('app')!.spec!.replicas).toBe(6);
    expect(rateLimited()).toBe(true);
    expect(cf.patches).toEqual([]);
  });
});
