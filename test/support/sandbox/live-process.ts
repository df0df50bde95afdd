// The world `pod heap-dump` and `pod gc` assume: a running runtime in the app's pods. kwok runs a pod's
// exec on this machine, and this machine runs many Node.js processes (the tests' own), so the
// procedures are pointed at this one with --pid, as an operator does when a container runs several.
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type AddressInfo } from 'node:net';
import type { KubeObject } from '../cluster/index.js';
import type { Sandbox } from './index.js';

/** The procedures whose examples need a live process in the app's pods. */
export const NEEDS_LIVE_PROCESS = new Set(['pod heap-dump', 'pod gc']);

export interface LiveProcess {
  /** Extra arguments for the procedure's example: --pid of the process. */
  args: string[];
  stop(): void;
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

/** A real Node.js process (inspector on a port of its own, opened only by SIGUSR1), reachable by exec and port-forward in every pod of the sandbox's namespace. */
export async function startLiveProcess(sb: Sandbox): Promise<LiveProcess> {
  const port = await freePort();
  const child: ChildProcess = spawn(
    process.execPath,
    [
      `--inspect-port=127.0.0.1:${port}`,
      '-e',
      'globalThis.keep = Array.from({ length: 1000 }, (_, i) => ({ i })); console.log("ready"); setInterval(() => {}, 1000)',
    ],
    {
      stdio: ['ignore', 'pipe', 'ignore'],
    },
  );
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
    child.on('exit', (code) => reject(new Error(`the live process exited (${code}) before it was ready`)));
  });
  const pods = (await sb.kube.list<KubeObject>('pods', { namespace: sb.namespace })).filter((p) => !p.metadata.deletionTimestamp);
  for (const p of pods) {
    await sb.kube.enableExec(p.metadata.name!);
    await sb.kube.enablePortForward(p.metadata.name!, { port }, { ports: [port] });
  }
  return { args: ['--pid', String(child.pid)], stop: () => child.kill('SIGKILL') };
}
