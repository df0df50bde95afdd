/** Stable exit codes: the contract with scripts (DESIGN §1). */
export const ExitCode = {
  ok: 0,
  stepFailed: 1,
  usage: 2,
  gate: 3,
  check: 4,
  partial: 5,
  locked: 6,
  sigint: 130,
  sigterm: 143,
} as const;
export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

/** An error the user is meant to read: one line, an optional hint, and the exit code it maps to. */
export class RunbookError extends Error {
  readonly exitCode: number;
  readonly hint?: string;
  constructor(message: string, opts: { exitCode: number; hint?: string; cause?: unknown }) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.exitCode = opts.exitCode;
    this.hint = opts.hint;
  }
}

/** Bad flags, arguments or config: raised before anything is contacted. */
export class UsageError extends RunbookError {
  constructor(message: string, hint?: string) {
    super(message, { exitCode: ExitCode.usage, hint });
    this.name = 'UsageError';
  }
}

/** A gate was declined, or could not be approved without a prompt. */
export class GateError extends RunbookError {
  constructor(message: string, hint?: string) {
    super(message, { exitCode: ExitCode.gate, hint });
    this.name = 'GateError';
  }
}

/** A diagnostic threshold or precondition failed (exit 4, for scripting). */
export class CheckFailedError extends RunbookError {
  constructor(message: string, hint?: string) {
    super(message, { exitCode: ExitCode.check, hint });
    this.name = 'CheckFailedError';
  }
}

/** Another operator holds the lock for this procedure and target. */
export class LockHeldError extends RunbookError {
  constructor(message: string, hint?: string) {
    super(message, { exitCode: ExitCode.locked, hint });
    this.name = 'LockHeldError';
  }
}

/** A step failed for an operational reason (API error, timeout, unhealthy service). */
export class StepError extends RunbookError {
  constructor(message: string, hint?: string, cause?: unknown) {
    super(message, { exitCode: ExitCode.stepFailed, hint, cause });
    this.name = 'StepError';
  }
}

/** The run was interrupted by a signal. */
export class InterruptedError extends RunbookError {
  constructor(readonly signal: 'SIGINT' | 'SIGTERM') {
    super(`interrupted by ${signal}`, { exitCode: signal === 'SIGINT' ? ExitCode.sigint : ExitCode.sigterm });
    this.name = 'InterruptedError';
  }
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

/** The HTTP status an API error carries (the Kubernetes client's KubeApiError and others set `status`). */
export function httpStatusOf(err: unknown): number | undefined {
  return err !== null && typeof err === 'object' && 'status' in err && typeof err.status === 'number' ? err.status : undefined;
}
