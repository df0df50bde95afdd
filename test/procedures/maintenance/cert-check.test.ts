import { describe, expect, it } from 'vitest';
import { daysLeft, parseHostPort } from '../../../src/clients/tls.js';
import { certProblems } from '../../../src/procedures/maintenance/certs.js';

describe('parseHostPort', () => {
  it.each([
    ['example.com', { host: 'example.com', port: 443 }],
    ['api.example.com:8443', { host: 'api.example.com', port: 8443 }],
    ['127.0.0.1:1', { host: '127.0.0.1', port: 1 }],
    ['[::1]:8443', { host: '::1', port: 8443 }],
    ['[2001:db8::1]', { host: '2001:db8::1', port: 443 }],
  ])('%s', (spec, want) => expect(parseHostPort(spec)).toEqual(want));
  it.each(['', 'a b', 'host:0', 'host:65536', 'host:x', '-bad.com', 'a..b', 'https://example.com'])('rejects %j', (spec) =>
    expect(() => parseHostPort(spec)).toThrow(),
  );
});

describe('days left and the exit-4 message', () => {
  const now = new Date('2025-01-01T00:00:00Z');
  it('counts whole days, negative once expired', () => {
    expect(daysLeft(new Date('2025-01-04T12:00:00Z'), now)).toBe(3);
    expect(daysLeft(new Date('2024-12-31T00:00:00Z'), now)).toBe(-1);
  });
  it('names expiring and unreachable hosts; trust alone is not a failure', () => {
    expect(certProblems({ minDays: 14, rows: [{ target: 'a:443', status: 'ok', trusted: false }] })).toBeNull();
    expect(
      certProblems({
        minDays: 14,
        rows: [
          { target: 'a:443', status: 'expiring', daysLeft: 3 },
          { target: 'b:443', status: 'expired', daysLeft: -2 },
          { target: 'c:443', status: 'error', error: 'ECONNREFUSED' },
        ],
      }),
    ).toBe('certificates below 14 days: a:443 (3 days), b:443 (-2 days); could not check: c:443 (ECONNREFUSED)');
  });
});
