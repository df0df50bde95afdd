import { basename } from 'node:path';
import type { ResolvedEnvironment } from '../../core/config.js';
import { parseDuration } from '../../core/duration.js';
import { StepError } from '../../core/errors.js';
import { shellQuote } from '../../core/shell.js';
import type { Step } from '../../core/procedure.js';
import { looksSecret, REDACTED } from '../../core/redact.js';

/** One finished rotation command, as journaled: never its output. */
export interface RotationRecord {
  command: string;
  exitCode: number;
  durationMs: number;
}

/** What the rotate step journals: the commands that finished, in order. */
export interface RotationData {
  commands: RotationRecord[];
}

const KEY_VALUE = /\b([A-Za-z_][A-Za-z0-9_.-]*)(\s*[=:]\s*)("[^"]*"|'[^']*'|\S+)/g;
// Long runs of token characters holding both letters and digits: keys, passwords, JWT parts, hashes.
const TOKEN = /(?=[A-Za-z0-9+/_=-]*\d)(?=[A-Za-z0-9+/_=-]*[A-Za-z])[A-Za-z0-9+/_=-]{20,}/g;

/** Masks what a rotation script might print about the new credentials: secret-named values and token-like words. */
export function maskRotationOutput(line: string): string {
  return line.replace(KEY_VALUE, (m, key: string, sep: string) => (looksSecret(key) ? `${key}${sep}${REDACTED}` : m)).replace(TOKEN, REDACTED);
}

export function rotationCommands(env: ResolvedEnvironment): string[][] {
  return env.config.security?.rotate ?? [];
}

/**
 * Step: run the configured rotation commands one after another (argument arrays, no shell), their
 * output streamed to stderr with a prefix and masked. Rotation cannot be undone by the tool.
 */
// No postcondition: nothing live says a credential was rotated, and running the commands again would rotate twice;
// resume takes the journal's word (every command exited 0).
export function rotateStep<P>(): Step<P, RotationData> {
  return {
    id: 'rotate',
    title: 'Rotate the credentials (configured rotation commands)',
    why: 'Credentials an intruder may have read stop working; the commands come from the config as argument arrays, so nothing is interpreted by a shell and no value appears on a command line.',
    risk: 'destructive',
    // Running services lose their old credentials: always a typed confirmation.
    severe: true,
    when: (_p, env) => rotationCommands(env).length > 0,
    equivalent: (_p, env) =>
      rotationCommands(env)
        .map((c) => c.map(shellQuote).join(' '))
        .join(' && ') || '(no security.rotate commands configured)',
    plan: async (ctx) => rotationCommands(ctx.env).map((c, i) => ({ action: 'run', target: `rotation command ${i + 1}`, after: c.map(shellQuote).join(' ') })),
    async run(ctx): Promise<RotationData> {
      const commands = rotationCommands(ctx.env);
      const processes = await ctx.clients.processes();
      const timeoutMs = parseDuration(ctx.env.config.security?.rotateTimeout ?? '10m');
      const done: RotationRecord[] = [];
      for (const [i, argv] of commands.entries()) {
        const tag = `rotate[${i + 1}/${commands.length}] ${basename(argv[0])}`;
        ctx.log(`${tag}: started`);
        const t0 = performance.now();
        // No abort signal: a rotation stopped halfway is worse than one that finishes.
        const r = await processes.run(argv[0], argv.slice(1), {
          cwd: ctx.io.cwd,
          timeoutMs,
          onLine: (line) => ctx.log(`${tag}: ${maskRotationOutput(ctx.redactor.text(line))}`),
        });
        const rec = { command: basename(argv[0]), exitCode: r.exitCode, durationMs: Math.round(performance.now() - t0) };
        if (r.exitCode !== 0) {
          const finished = done.map((d) => d.command).join(', ');
          throw new StepError(
            `rotation command ${i + 1} (${rec.command}) ${r.timedOut ? 'timed out' : `exited with ${r.exitCode}`}${finished ? `; already rotated by: ${finished}` : ''}`,
            'rotation cannot be undone by this tool: check which credentials changed, then run the remaining commands by hand',
          );
        }
        done.push(rec);
      }
      return { commands: done };
    },
  };
}
