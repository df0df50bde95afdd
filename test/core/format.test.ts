import { describe, expect, it } from 'vitest';
import { byText, formatBytes, formatInt } from '../../src/core/format.js';

describe('formatInt', () => {
  it('writes what toLocaleString("en-US") writes for integers, without loading ICU', () => {
    const samples = [0, 7, 42, 999, 1000, 1234, 99_999, 100_000, 1_234_567, 1_000_000_000, Number.MAX_SAFE_INTEGER];
    for (const n of [...samples, ...samples.map((x) => -x).filter((x) => x !== 0)]) expect(formatInt(n)).toBe(n.toLocaleString('en-US'));
  });
  it('falls back to toLocaleString for what is not a safe integer', () => {
    expect(formatInt(1234.5678)).toBe('1,234.568');
    expect(formatInt(Number.NaN)).toBe('NaN');
  });
});

describe('byText', () => {
  it('orders by code unit, the same whatever the locale', () => {
    expect(['web-2', 'api', 'web-10', 'Web', 'web.1', 'web-1'].sort(byText)).toEqual(['Web', 'api', 'web-1', 'web-10', 'web-2', 'web.1']);
    expect(['2026-12-07T10:00:00Z', '2026-01-02T00:00:00Z', '2026-12-07T09:59:59Z'].sort(byText)).toEqual([
      '2026-01-02T00:00:00Z',
      '2026-12-07T09:59:59Z',
      '2026-12-07T10:00:00Z',
    ]);
    expect(byText('a', 'a')).toBe(0);
  });
});

describe('formatBytes', () => {
  it('uses IEC units with one decimal', () => {
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(3 * 1024 ** 3)).toBe('3.0 GiB');
  });
});
