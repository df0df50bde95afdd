import { defineProcedure } from '../../core/procedure.js';
import { switchProcedure, type DrParams } from './switch.js';

export default defineProcedure<DrParams>(
  switchProcedure(
    { name: 'failback', to: 'primary', from: 'dr', keepFlag: '--keep-dr' },
    {
      name: 'dr failback',
      summary: 'Fail back to the primary region: Route 53 change → INSYNC → scale the primary → its health → (gate) scale DR down',
      seedFixes: [
        'The seed has no way back: this applies the configured failback change batch, scales the primary to its configured count, checks its health, and only then (behind its own gate) scales DR down.',
        'Same guarantees as dr failover: severe gate first, INSYNC wait, previous records put back on failure, exit 4 with the DNS state when the primary never turns healthy.',
      ],
      examples: [['--keep-dr'], []],
    },
  ),
);
