import { describe, expect, it } from 'vitest';
import { mergeRules, unmergeRules } from '../../src/procedures/steps/security-ddos.js';
import { describeDrtRole, setDrtRole } from '../../src/clients/shield-drt.js';
import type { WafRule } from '../../src/clients/wafv2.js';
import type { ShieldClient } from '@aws-sdk/client-shield';

const rule = (Name: string, Priority: number, tag = ''): WafRule => ({ Name, Priority, Statement: { tag }, VisibilityConfig: { SampledRequestsEnabled: true, CloudWatchMetricsEnabled: true, MetricName: Name } });

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
