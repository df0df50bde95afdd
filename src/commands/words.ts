// The command words outside the procedure catalogue, shared by the commander tree and completion.

/** The commands about runs and the catalogue (src/commands/builtins.ts runs them). */
export const BUILTIN_COMMANDS = ['list', 'explain', 'history', 'show', 'resume', 'verify', 'release', 'approve', 'deny', 'rbac'] as const;
export type BuiltinName = (typeof BUILTIN_COMMANDS)[number];

/** Commands that are not procedures (and are never a procedure's noun). */
export const TOOL_COMMANDS = [...BUILTIN_COMMANDS, 'config', 'completion', 'doctor', 'version', 'help'] as const;
export const CONFIG_VERBS = ['current', 'list', 'view', 'path'] as const;
export const COMPLETION_SHELLS = ['bash', 'zsh', 'fish'] as const;

/** The global flags (for help, completion and commandPath): flag, whether it takes a value. */
export const GLOBAL_FLAGS: ReadonlyArray<{ flags: string[]; value: boolean }> = [
  { flags: ['-e', '--env'], value: true },
  { flags: ['-c', '--config'], value: true },
  { flags: ['-n', '--dry-run'], value: false },
  { flags: ['-y', '--yes'], value: false },
  { flags: ['--confirm'], value: true },
  { flags: ['--no-input'], value: false },
  { flags: ['--json'], value: false },
  { flags: ['-q', '--quiet'], value: false },
  { flags: ['-v', '--verbose'], value: false },
  { flags: ['--no-color'], value: false },
  { flags: ['--timeout'], value: true },
];
