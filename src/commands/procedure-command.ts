import type { Command } from 'commander';
import { parseParam } from '../core/params.js';
import type { Procedure } from '../core/procedure.js';

/** Adds a procedure's params to its command: positional arguments and flags, as the spec says. */
export function addProcedureParams(cmd: Command, proc: Procedure): void {
  for (const p of proc.params) {
    if (p.argument) cmd.argument(p.argument, p.description);
    else if (p.flag) {
      const desc = p.default !== undefined ? `${p.description} (default: ${p.default})` : p.required ? `${p.description} (required)` : p.description;
      cmd.option(p.flag, desc);
    }
  }
  if (proc.examples.length) {
    cmd.addHelpText('after', `\nExamples:\n${proc.examples.map((e) => `  runbook ${proc.name} ${e.join(' ')}`.trimEnd()).join('\n')}\n`);
  }
}

/** Commander's raw values → typed params (throws UsageError on bad input, before anything is contacted). */
export function collectParams(proc: Procedure, opts: Record<string, unknown>, args: unknown[]): Record<string, unknown> {
  const params: Record<string, unknown> = {};
  let argIndex = 0;
  for (const p of proc.params) {
    const raw = p.argument ? args[argIndex++] : opts[camel(p.flag ?? p.name)];
    const normalized = Array.isArray(raw) && raw.length === 0 ? undefined : raw;
    params[p.name] = parseParam(p, normalized);
  }
  return params;
}

function camel(flag: string): string {
  const long = flag.split(/[ ,]+/).find((s) => s.startsWith('--')) ?? flag;
  return long
    .replace(/^--(no-)?/, '')
    .replace(/[<[].*$/, '')
    .trim()
    .replace(/-([a-z])/g, (_m, ch: string) => ch.toUpperCase());
}
