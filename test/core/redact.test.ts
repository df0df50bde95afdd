import { describe, expect, it } from 'vitest';
import { Redactor, looksSecret } from '../../src/core/redact.js';

describe('redaction', () => {
  it('masks URL passwords even when never registered', () => {
    const r = new Redactor();
    expect(r.text('connect postgres://admin:s3cr3t@db:5432/app failed')).toBe('connect postgres://admin:****@db:5432/app failed');
  });

  it('masks registered secrets anywhere, including URL-encoded', () => {
    const r = new Redactor();
    r.add('p@ss/word!');
    expect(r.text('token p@ss/word! and p%40ss%2Fword!')).toBe('token **** and ****');
  });

  it('masks values under secret-looking keys and {name,value} env pairs in data', () => {
    const r = new Redactor();
    const out = r.value({
      password: 'hunter22',
      env: [
        { name: 'DB_PASSWORD', value: 'x1y2z3' },
        { name: 'MODE', value: 'fast' },
      ],
      nested: { apiKey: 'abcd1234' },
    });
    expect(out).toEqual({
      password: '****',
      env: [
        { name: 'DB_PASSWORD', value: '****' },
        { name: 'MODE', value: 'fast' },
      ],
      nested: { apiKey: '****' },
    });
  });

  it('recognises secret names', () => {
    for (const k of ['PASSWORD', 'db_password', 'API_KEY', 'STATUS_PAGE_TOKEN', 'CF_AUTH_KEY', 'clientSecret']) expect(looksSecret(k)).toBe(true);
    for (const k of ['RATE_LIMIT', 'replicas', 'MODE', 'LOG_LEVEL']) expect(looksSecret(k)).toBe(false);
  });
});
