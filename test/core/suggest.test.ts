import { describe, expect, it } from 'vitest';
import { didYouMean, distance, suggest } from '../../src/core/suggest.js';
import { runCli } from '../support/cli.js';

describe('did you mean', () => {
  it('counts a swap of neighbours as one edit', () => {
    expect(distance('restat', 'restart')).toBe(1);
    expect(distance('prodcution', 'production')).toBe(1);
    expect(distance('abc', 'xyz')).toBe(3);
  });

  it('suggests the closest names, not far ones', () => {
    expect(suggest('sandbox-protectd', ['sandbox', 'sandbox-protected', 'production'])).toEqual(['sandbox-protected']);
    expect(suggest('db restat', ['db restart', 'db recover', 'app restart'])).toEqual(['db restart']);
    expect(suggest('zzz', ['db restart'])).toEqual([]);
    expect(didYouMean('stagin', ['staging', 'production'])).toBe('did you mean "staging"?');
  });

  it('explain takes db-restart for db restart, and a typo gets a suggestion (exit 2)', async () => {
    const ok = await runCli(['explain', 'db-restart']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/runbook db restart/);
    const typo = await runCli(['explain', 'db', 'restat']);
    expect(typo.code).toBe(2);
    expect(typo.stderr).toMatch(/unknown procedure "db restat"/);
    expect(typo.stderr).toMatch(/did you mean "db restart"\?/);
  });
});
