// `npm run sandbox`: every local service in the foreground, and the export lines to use them.
import { startSandbox } from './sandbox/index.js';
import { startControlPlane } from './cluster/control-plane.js';

// A control plane of its own, and the namespace named as the README says: kubectl -n production.
const sandbox = await startSandbox({ controlPlane: await startControlPlane(), exactNamespace: true });
const lines = Object.entries(sandbox.env).map(([k, v]) => `export ${k}=${JSON.stringify(v)}`);
process.stdout.write(
  [
    '# runbook sandbox is up. Paste these lines into another shell:',
    ...lines,
    '',
    '# then try:  runbook app scaling   |   runbook app restart   |   kubectl get pods -n production',
    '# Ctrl-C here stops everything.',
    '',
  ].join('\n'),
);
// Keep the event loop alive until a signal arrives.
const keepAlive = setInterval(() => undefined, 1 << 30);
const stop = async () => {
  process.stderr.write('\nstopping the sandbox…\n');
  clearInterval(keepAlive);
  await sandbox.stop();
};
process.once('SIGINT', () => void stop());
process.once('SIGTERM', () => void stop());
