import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  compileErrorPattern,
  endpointPath,
  errorTypeOf,
  groupErrors,
  parseNginxTime,
  parseRate,
  pickErrorRate,
  splitTimestamp,
  summarizeAccessLogs,
} from '../../../src/procedures/incident/error-analysis.js';
import { suggestions } from '../../../src/procedures/incident/errors.js';
import { runData } from '../../../src/core/procedure.js';

describe('error lines', () => {
  it.each([
    ['2026-01-01 ERROR DatabaseTimeout: query took 5s', 'DatabaseTimeout'],
    ['[ERROR] RedisConnectionError connection refused', 'RedisConnectionError'],
    ['FATAL OutOfMemory', 'OutOfMemory'],
    ['ERROR: ', 'unknown'],
    ['INFO all good', null],
    ['errors=0 fine', null],
    ['{"level":"error","error":{"type":"PaymentError"}}', 'PaymentError'],
    ['{"severity":"ERROR","error":"TimeoutError: upstream"}', 'TimeoutError'],
    ['{"level":"error","error_type":"Boom"}', 'Boom'],
    ['{"level":"info","error":{"type":"Ignored"}}', null],
    ['{"level":"warn","msg":"ERROR in text is not the level"}', null],
  ])('%s → %s', (line, type) => {
    expect(errorTypeOf(line, null)).toBe(type);
  });

  it('a custom pattern must compile and have a "type" group; it alone decides', () => {
    expect(() => compileErrorPattern('ERROR (\\w+)')).toThrow(/named group "type"/);
    expect(() => compileErrorPattern('(?<type>[')).toThrow(/not a valid regular expression/);
    const re = compileErrorPattern('code=(?<type>E\\d+)');
    expect(errorTypeOf('x code=E42 y', re)).toBe('E42');
    expect(errorTypeOf('ERROR Something', re)).toBeNull();
  });

  it('groups by type with pods, first and last seen from the timestamps kubectl --timestamps adds', () => {
    const r = groupErrors(
      [
        { pod: 'a', text: '2026-01-01T10:00:00.123456789Z ERROR X one\n2026-01-01T10:05:00Z ERROR Y\n' },
        { pod: 'b', text: '2026-01-01T09:59:00Z ERROR X two\nplain\n' },
      ],
      null,
    );
    expect(r.lines).toBe(4);
    expect(r.errorLines).toBe(3);
    expect(r.groups[0]).toMatchObject({ type: 'X', count: 2, pods: ['a', 'b'], firstSeen: '2026-01-01T09:59:00.000Z', lastSeen: '2026-01-01T10:00:00.123Z' });
    expect(splitTimestamp('no stamp').time).toBeUndefined();
  });
});

describe('access logs', () => {
  it('parses nginx time with its offset, and collapses ids', () => {
    expect(parseNginxTime('10/Oct/2000:13:55:36 -0700')).toBe(Date.UTC(2000, 9, 10, 20, 55, 36));
    expect(Number.isNaN(parseNginxTime('yesterday'))).toBe(true);
    expect(endpointPath('/api/orders/123/items/9f1c2e3d-1111-2222-3333-444455556666?x=1')).toBe('/api/orders/:id/items/:id');
    expect(endpointPath('/v1/users')).toBe('/v1/users');
  });

  it('streams files, skips lines before --since and unparsed lines, orders by 5xx', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'acc-'));
    const f = join(dir, 'a.log');
    writeFileSync(
      f,
      [
        '1.1.1.1 - - [01/Jan/2026:10:00:00 +0000] "GET /a HTTP/1.1" 200 1 "-" "ua"',
        '1.1.1.1 - - [01/Jan/2026:10:00:01 +0000] "POST /b/7 HTTP/1.1" 503 1 "-" "ua"',
        '1.1.1.1 - - [01/Jan/2026:10:00:02 +0000] "POST /b/8 HTTP/2.0" 500 1 "-" "ua"',
        '1.1.1.1 - - [01/Jan/2026:08:00:00 +0000] "GET /old HTTP/1.1" 500 1 "-" "ua"',
        'garbage',
      ].join('\n'),
    );
    const s = await summarizeAccessLogs([f, join(dir, 'nope.log')], Date.UTC(2026, 0, 1, 9), undefined);
    expect(s.requests).toBe(3);
    expect(s.errors5xx).toBe(2);
    expect(s.unparsed).toBe(1);
    expect(s.endpoints.map((e) => [e.endpoint, e['5xx']])).toEqual([
      ['POST /b/:id', 2],
      ['GET /a', 0],
    ]);
    expect(s.files[1]).toEqual({ path: join(dir, 'nope.log'), lines: 0, error: 'no such file' });
  });
});

describe('metrics and thresholds', () => {
  it('finds the error rate by name or by the configured path', () => {
    expect(pickErrorRate({ a: { errorRate: 0.2 } })).toEqual({ field: 'a.errorRate', value: 0.2 });
    expect(pickErrorRate({ stats: { e: 3 } }, 'stats.e')).toEqual({ field: 'stats.e', value: 3 });
    expect(pickErrorRate({ requests: 3 })).toBeNull();
  });
  it('--max-error-rate takes fractions and percentages', () => {
    expect(parseRate('0.05')).toBe(0.05);
    expect(parseRate('5%')).toBe(0.05);
    expect(() => parseRate('5 percent')).toThrow(/fraction/);
    expect(() => parseRate('2')).toThrow(/above 100%/);
  });
});

describe('suggestions', () => {
  const now = new Date('2026-01-01T12:00:00Z');
  const history = {
    deployment: 'app',
    current: 3,
    revisions: [
      { revision: 2, replicaSet: 'a', image: 'x:1', createdAt: '2026-01-01T09:00:00Z' },
      { revision: 3, replicaSet: 'b', image: 'x:2', createdAt: '2026-01-01T11:50:00Z' },
    ],
  };
  const logs = (firstSeen: string) => ({ pods: [], lines: 10, errorLines: 4, groups: [{ type: 'NilCart', count: 4, pods: ['p'], firstSeen, sample: '' }] });
  it('errors after a recent rollout → rollback to the previous revision', () => {
    expect(suggestions(runData({ history, logs: logs('2026-01-01T11:52:00Z') }), now, 3_600_000)[0]).toBe(
      'revision 3 rolled out 10m ago and errors started after it: runbook app rollback (back to revision 2)',
    );
  });
  it('errors before the rollout → a rollback may not help', () => {
    expect(suggestions(runData({ history, logs: logs('2026-01-01T11:40:00Z') }), now, 3_600_000)[0]).toMatch(/errors started before it/);
  });
  it('no rollout in the window → not the code', () => {
    expect(suggestions(runData({ history, logs: logs('2026-01-01T11:52:00Z') }), now, 5 * 60_000)[0]).toMatch(/no rollout in the window/);
  });
});
