import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { SandboxContext, SandboxPart } from './types.js';

/**
 * `security rotate-secrets`: a rotation command (a real process) that bumps a generation counter in a
 * file and prints a line containing a fake new token, so tests can see it ran and that output is masked.
 */
export async function startSecurityPart(ctx: SandboxContext): Promise<SandboxPart> {
  const counter = join(ctx.dir, 'secret-generation');
  writeFileSync(counter, '1\n');
  const script = join(ctx.dir, 'rotate-secrets.mjs');
  writeFileSync(
    script,
    [
      "import { readFileSync, writeFileSync } from 'node:fs';",
      'const file = process.argv[2];',
      "const next = Number(readFileSync(file, 'utf8')) + 1;",
      'writeFileSync(file, `${next}\\n`);',
      'console.log(`rotated api credentials: generation ${next}`);',
      'console.log(`API_TOKEN=tok${next}x9f8e7d6c5b4a3f2e1d0c9b8a7`);',
      '',
    ].join('\n'),
  );
  return {
    name: 'security',
    environment: { security: { rotate: [[process.execPath, script, counter]], rotateTimeout: '30s' } },
    env: {},
    fingerprint: async () => readFileSync(counter, 'utf8'),
    stop: async () => undefined,
  };
}
