import { defineProcedure } from '../../core/procedure.js';
import { switchProcedure, type DrParams } from './switch.js';

export default defineProcedure<DrParams>(
  switchProcedure(
    { name: 'failover', to: 'dr', from: 'primary', keepFlag: '--keep-primary', defaultCount: 10 },
    {
      name: 'dr failover',
      summary: 'Fail over to the DR region: Route 53 change → INSYNC → scale DR → DR health → (gate) stop the primary',
      seedFixes: [
        'The seed asks a yes/no question; this is a severe gate (type the environment name, or --yes --confirm <env>), and without a terminal it fails closed.',
        'The seed never waits for the DNS change: this waits for Route 53 to report INSYNC before scaling and checking health.',
        "The seed's health loop falls through after 10 failures and still offers to stop the primary; here an unhealthy DR stops the run before the primary is touched (exit 4) and says where DNS points and how to fail back.",
        'The change batch is validated before anything is contacted, and only records that differ are sent; the previous records are kept and put back if Route 53 or ECS fails before DR is healthy.',
        'Stopping the primary is its own gate after the health check (--keep-primary skips it); a failure there does not undo a finished failover.',
      ],
      examples: [['--keep-primary'], []],
    },
  ),
);
