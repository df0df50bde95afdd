import { UsageError } from '../../core/errors.js';
import { defineProcedure } from '../../core/procedure.js';
import { table } from '../../core/table.js';
import { rotateStep, rotationCommands } from './rotation.js';

export type SecurityRotateSecretsParams = Record<string, never>;

const rotate = rotateStep<SecurityRotateSecretsParams>();

export default defineProcedure<SecurityRotateSecretsParams>({
  name: 'security rotate-secrets',
  summary: 'Run the configured credential rotation commands (typed confirmation), output prefixed and masked',
  seedFixes: [
    'The seed runs a script path relative to wherever the operator stands: the commands come from the config (security.rotate) as argument arrays, run without a shell.',
    "Output lines are prefixed and masked (secret-named values, token-like words); the journal keeps only each command's name, exit code and duration.",
    'A failing command stops the run and says which commands already rotated, since rotation cannot be undone.',
  ],
  params: [],
  examples: [[]],
  requires: [],
  validate(_p, env) {
    if (rotationCommands(env).length === 0) {
      throw new UsageError(
        `environment "${env.name}" has no security.rotate commands`,
        `add environments.${env.name}.security.rotate: [[./scripts/rotate-all-secrets.sh, --emergency]]`,
      );
    }
  },
  steps: [rotate],
  render(run) {
    const d = run.find(rotate);
    return d
      ? table(
          ['COMMAND', 'EXIT', 'SECONDS'],
          d.commands.map((c) => [c.command, c.exitCode, (c.durationMs / 1000).toFixed(1)]),
        )
      : '';
  },
});
