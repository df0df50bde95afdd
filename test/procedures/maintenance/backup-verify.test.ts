import { describe, expect, it } from 'vitest';
import { libpqEnv, scratchDatabaseName } from '../../../src/procedures/maintenance/backup-verify.js';

describe('backup verify helpers', () => {
  it('generates scratch database names that are safe identifiers and unique', () => {
    const now = new Date('2025-03-04T05:06:07Z');
    const a = scratchDatabaseName(now);
    expect(a).toMatch(/^runbook_restore_20250304050607_[0-9a-f]{6}$/);
    expect(a.length).toBeLessThanOrEqual(63);
    expect(scratchDatabaseName(now)).not.toBe(a);
  });

  it('passes the password to pg_restore through the environment, not argv', () => {
    expect(libpqEnv('postgres://ops:p%40ss@db.test:6543/postgres?sslmode=require', 'scratch')).toEqual({
      PGHOST: 'db.test',
      PGPORT: '6543',
      PGUSER: 'ops',
      PGPASSWORD: 'p@ss',
      PGDATABASE: 'scratch',
      PGSSLMODE: 'require',
    });
  });
});
