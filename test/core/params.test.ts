import { describe, expect, it } from 'vitest';
import { parseInteger, quantityValue, validateK8sName, validateQuantity, parseKeyValue } from '../../src/core/params.js';
import { parseDuration } from '../../src/core/duration.js';
import { UsageError } from '../../src/core/errors.js';

describe('parameter parsing', () => {
  it.each([
    ['3', 3],
    ['0', 0],
    ['12', 12],
  ])('accepts the integer %j', (raw, n) => expect(parseInteger(raw, '--replicas', 0, 100)).toBe(n));

  // Issue 13: " 12 " used to be accepted as 12; a count is now written plainly or refused.
  it.each(['-1', '1.5', 'three', '', '1e3', '0x10', '101', ' 12 ', ' 3', '3 ', '00000000000000003', '03', '+3', '-0'])(
    'rejects the replica count %j',
    (raw) => {
      expect(() => parseInteger(raw, '--replicas', 0, 100)).toThrow(UsageError);
    },
  );

  it.each(['app', 'my-app', 'a.b-c', 'x1'])('accepts the RFC 1123 name %j', (n) => expect(validateK8sName(n, 'name')).toBe(n));
  it.each(['App', '-app', 'app-', 'a_b', '', 'a'.repeat(254), 'app;rm -rf /'])('rejects the name %j', (n) => {
    expect(() => validateK8sName(n, 'name')).toThrow(UsageError);
  });

  it.each(['500m', '1', '0.5', '512Mi', '1Gi', '2e3', '100k'])('accepts the quantity %j', (q) => expect(validateQuantity(q, 'q')).toBe(q));
  it.each(['1GB', '-1', 'lots', '5 Mi', 'Mi', ''])('rejects the quantity %j', (q) => expect(() => validateQuantity(q, 'q')).toThrow(UsageError));

  it('compares quantities in base units', () => {
    expect(quantityValue('500m')).toBe(0.5);
    expect(quantityValue('1Gi')).toBe(2 ** 30);
    expect(quantityValue('1G')).toBe(1e9);
    expect(quantityValue('512Mi') < quantityValue('1Gi')).toBe(true);
  });

  it.each([
    ['30s', 30_000],
    ['5m', 300_000],
    ['1h30m', 5_400_000],
    ['250ms', 250],
    ['7d', 604_800_000],
    ['365d', 31_536_000_000],
  ])('parses the duration %j', (raw, ms) => expect(parseDuration(raw)).toBe(ms));
  // Issue 13: a bare "10" used to mean ten seconds; a duration without a unit is now refused.
  it.each(['5 minutes', '-5m', 'm5', '', '5x', '10', '0', '2.5'])('rejects the duration %j', (raw) => expect(() => parseDuration(raw)).toThrow(UsageError));

  it('says which unit to add to a bare number', () => {
    expect(() => parseDuration('10', '--idle-for')).toThrow(/--idle-for "10" has no unit: say 10m or 10s/);
  });

  it.each([
    ['--idle-for', '366d', /at most 365d/],
    ['--idle-for', '99999999999d', /at most 365d/],
    ['--since', '8761h', /at most 365d/],
    // Timers cannot wait longer than 2^31-1 ms: a longer one would fire after 1 ms.
    ['--timeout', '25d', /at most 24d/],
    ['--rollout-timeout', '600h', /at most 24d/],
    ['--interval', '30d', /at most 24d/],
  ])('refuses the absurd %s %s', (what, raw, message) => expect(() => parseDuration(raw, what)).toThrow(message));

  it('accepts the longest sane values', () => {
    expect(parseDuration('365d', '--idle-for')).toBe(365 * 86_400_000);
    expect(parseDuration('24d', '--timeout')).toBe(24 * 86_400_000);
  });

  it('parses KEY=VALUE, keeping "=" in values', () => {
    expect(parseKeyValue('A=b=c')).toEqual({ key: 'A', value: 'b=c' });
    expect(parseKeyValue('EMPTY=')).toEqual({ key: 'EMPTY', value: '' });
    expect(() => parseKeyValue('=x')).toThrow(UsageError);
    expect(() => parseKeyValue('NOVALUE')).toThrow(UsageError);
    expect(() => parseKeyValue('BAD KEY=x')).toThrow(UsageError);
  });
});
