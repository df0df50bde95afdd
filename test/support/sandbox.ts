// `npm run sandbox`: every local service, and an env file to `source` in the shells that use them.
//   npm run sandbox               in the foreground; Ctrl-C stops everything
//   npm run sandbox -- --detach   in the background (log in the sandbox folder); returns once it is up
//   npm run sandbox -- stop       stops the one running (its services, then its files)
//   npm run sandbox -- status     whether one is running, and its env file
import { spawn } from 'node:child_process';
import { mkdirSync, openSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { removeSandboxFiles, runningSandbox, sandboxFiles, stopSandbox, waitUntilReady, writeSandboxFiles } from './sandbox-files.js';

const files = sandboxFiles();
const args = process.argv.slice(2);
const say = (lines: string[]) => process.stdout.write(lines.join('\n') + '\n');
const TRY = '# then try:  runbook app scaling   |   runbook app restart   |   kubectl get pods -n production';

async function start(detached: boolean): Promise<void> {
  // A control plane of its own, and the namespace named as the README says: kubectl -n production.
  const { startSandbox } = await import('./sandbox/index.js');
  const { startControlPlane } = await import('./cluster/control-plane.js');
  const sandbox = await startSandbox({ controlPlane: await startControlPlane(), exactNamespace: true });
  writeSandboxFiles(files, sandbox.env, process.pid);
  if (!detached) say(['# runbook sandbox is up. In each shell that uses it:', `source ${files.env}`, '', TRY, '# Ctrl-C here stops everything.', '']);
  // Keep the event loop alive until a signal arrives.
  const keepAlive = setInterval(() => undefined, 1 << 30);
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    process.stderr.write('\nstopping the sandbox…\n');
    // The env file goes first: once the services are stopping, a shell that sources it would get dead
    // addresses, and the process may end as soon as nothing holds the event loop (the control plane's
    // children die with it).
    removeSandboxFiles(files, process.pid);
    clearInterval(keepAlive);
    await sandbox.stop();
  };
  process.once('SIGINT', () => void stop());
  process.once('SIGTERM', () => void stop());
}

async function detach(): Promise<number> {
  mkdirSync(files.dir, { recursive: true, mode: 0o700 });
  const log = openSync(files.log, 'w', 0o600);
  const child = spawn(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), '--detached-child'], {
    detached: true,
    stdio: ['ignore', log, log],
    env: process.env,
  });
  child.unref();
  const state = await waitUntilReady(files, child.pid!, 300_000);
  if (state !== 'ready') {
    if (state === 'timeout') child.kill('SIGTERM');
    process.stderr.write(`the sandbox did not start (${state === 'timeout' ? 'not up within 5 minutes' : 'it exited'}): see ${files.log}\n`);
    return 1;
  }
  say([
    `# runbook sandbox is up in the background (pid ${child.pid}, log ${files.log}). In each shell that uses it:`,
    `source ${files.env}`,
    '',
    TRY,
    '# npm run sandbox -- stop   ends it.',
    '',
  ]);
  return 0;
}

async function main(): Promise<number> {
  const [verb] = args;
  if (verb === 'stop') {
    say([await stopSandbox(files)]);
    return 0;
  }
  if (verb === 'status') {
    const pid = runningSandbox(files);
    say([pid === undefined ? 'no sandbox is running' : `sandbox running (pid ${pid}): source ${files.env}`]);
    return pid === undefined ? 3 : 0;
  }
  if (verb !== undefined && verb !== '--detach' && verb !== '--detached-child') {
    process.stderr.write(`unknown argument "${verb}": npm run sandbox [-- --detach | stop | status]\n`);
    return 2;
  }
  const running = runningSandbox(files);
  if (running !== undefined && verb !== '--detached-child') {
    process.stderr.write(`a sandbox is already running (pid ${running}): source ${files.env}, or stop it with npm run sandbox -- stop\n`);
    return 2;
  }
  if (verb === '--detach') return detach();
  await start(verb === '--detached-child');
  return 0;
}

process.exitCode = await main();
