import { describe, expect, it } from 'vitest';
import { parseInteger, quantityValue, validateK8sName, validateQuantity, parseKeyValue } from '../../src/core/params.js';
import { parseDuration } from '../../src/core/duration.js';
import { UsageError } from '../../src/core/errors.js';

describe('parameter parsing', () => {
  it.each([
    ['3', 3],
    ['0', 0],
    [' 12 ', 12],
  ])('accepts the integer %j', (raw, n) => expect(parseInteger(raw, '--replicas', 0, 100)).toBe(n));

  it.each(['-1', '1.5', 'three', '', '1e3', '0x10', '101'])('rejects the replica count %j', (raw) => {
    expect(() => parseInteger(raw, '--replicas', 0, 100)).toThrow(UsageError);
  });

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
    ['10', 10_000],
  ])('parses the duration %j', (raw, ms) => expect(parseDuration(raw)).toBe(ms));
  it.each(['5 minutes', '-5m', 'm5', '', '5x'])('rejects the duration %j', (raw) => expect(() => parseDuration(raw)).toThrow(UsageError));

  it('parses KEY=VALUE, keeping "=" in values', () => {
    expect(parseKeyValue('A=b=c')).toEqual({ key: 'A', value: 'b=c' });
    expect(parseKeyValue('EMPTY=')).toEqual({ key: 'EMPTY', value: '' });
    expect(() => parseKeyValue('=x')).toThrow(UsageError);
    expect(() => parseKeyValue('NOVALUE')).toThrow(UsageError);
    expect(() => parseKeyValue('BAD KEY=x')).toThrow(UsageError);
  });
});
