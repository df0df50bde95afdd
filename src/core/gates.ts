import { GateError, UsageError } from './errors.js';
import type { Prompter } from './prompter.js';
import type { Risk } from './procedure.js';
import { visible } from './terminal.js';

export type GateKind = 'none' | 'confirm' | 'severe';

export interface GateFlags {
  yes: boolean;
  confirm?: string;
  noInput: boolean;
}

/**
 * A destructive step always needs approval; a write needs it in a protected environment; a
 * destructive step in a protected environment (or one marked severe) needs the environment's name typed.
 */
export function gateKind(risk: Risk, protectedEnv: boolean, severe = false): GateKind {
  if (risk === 'read') return 'none';
  if (risk === 'destructive') return protectedEnv || severe ? 'severe' : 'confirm';
  return protectedEnv ? (severe ? 'severe' : 'confirm') : 'none';
}

/** --confirm must name the environment being targeted; anything else is a usage error. */
export function checkConfirmFlag(flags: GateFlags, envName: string): void {
  if (flags.confirm !== undefined && flags.confirm !== envName) {
    throw new UsageError(
      `--confirm "${flags.confirm}" does not match the target environment "${envName}"`,
      `to approve changes to ${envName}, pass --confirm ${envName}`,
    );
  }
}

export function approvedByFlags(kind: GateKind, flags: GateFlags, envName: string): boolean {
  if (kind === 'none') return true;
  // Typing the environment's name (--confirm) is the stronger approval; it covers plain gates too.
  if (flags.confirm === envName) return true;
  return flags.yes && kind === 'confirm';
}

export function missingApprovalHint(kind: GateKind, envName: string): string {
  return kind === 'severe' ? `pass --yes --confirm ${envName} to approve non-interactively` : 'pass --yes to approve non-interactively';
}

export type GateDecision = 'not-needed' | 'flags' | 'prompt';

/** How many times a severe gate asks for the environment name before it counts as declined. */
export const TYPED_TRIES = 3;

/**
 * Asks for approval. Without a terminal (or with --no-input) and without the flags it fails closed:
 * it never waits for input and never approves on its own.
 */
export async function approve(opts: {
  kind: GateKind;
  flags: GateFlags;
  envName: string;
  interactive: boolean;
  prompter: Prompter;
  question: string;
  signal?: AbortSignal;
}): Promise<GateDecision> {
  const { kind, flags, envName } = opts;
  if (kind === 'none') return 'not-needed';
  if (approvedByFlags(kind, flags, envName)) return 'flags';
  if (!opts.interactive) {
    const why = flags.noInput ? '--no-input was given' : 'no terminal to ask on';
    throw new GateError(`approval needed for "${opts.question}" and ${why}`, missingApprovalHint(kind, envName));
  }
  if (kind === 'severe') {
    // A slip of the finger at 3 a.m. is asked again (up to TYPED_TRIES times), not taken as a "no".
    let note = '';
    for (let left = TYPED_TRIES; left > 0; left--) {
      const typed = (
        await opts.prompter.text(`${opts.question}\n  ${note}Type the environment name (${envName}) to approve:`, opts.signal, { expect: envName })
      ).trim();
      if (typed === envName) return 'prompt';
      if (left > 1) note = `"${visible(typed)}" is not "${envName}" (${left - 1} ${left - 1 === 1 ? 'try' : 'tries'} left). `;
      else throw new GateError(`declined: the environment name was typed wrong ${TYPED_TRIES} times (last "${visible(typed)}", expected "${envName}")`);
    }
  }
  const ok = await opts.prompter.confirm(opts.question, opts.signal);
  if (!ok) throw new GateError(`declined: ${opts.question}`);
  return 'prompt';
}
