import { StepError } from '../../src/core/errors.js';
import type { Procedure, Step } from '../../src/core/procedure.js';

/**
 * A procedureOverride (runCli's seam) that puts a failing step right after a given step (by index or
 * id): the run must then put back what the steps before it changed, last first.
 */
export function failAfter(step: number | string): (proc: Procedure) => Procedure {
  const failing: Step = {
    id: 'injected-failure',
    title: 'Injected failure',
    why: 'a test makes the run fail here',
    risk: 'read',
    equivalent: () => 'false',
    run: async () => {
      throw new StepError('injected failure');
    },
  };
  return (proc) => {
    const i = typeof step === 'number' ? step : proc.steps.findIndex((s) => s.id === step);
    if (i < 0) throw new Error(`no step ${step} in ${proc.name}`);
    return { ...proc, steps: [...proc.steps.slice(0, i + 1), failing, ...proc.steps.slice(i + 1)] };
  };
}
