/**
 * AWS through moto_server (moto, an AWS emulator) on a random loopback port.
 * Point the AWS SDK at it with `env()` (AWS_ENDPOINT_URL etc.).
 */
import * as path from 'node:path';
import { LOOPBACK, StartError, freePort, processGroup, requireBinary, spawnService, startupError, waitFor, withPortRetry } from './util.js';

export const MOTO_INSTALL_HINT = "pip install 'moto[server]'";

export interface MotoService {
  /** http://127.0.0.1:PORT */
  endpoint: string;
  host: string;
  port: number;
  region: 'us-east-1';
  accessKeyId: 'testing';
  secretAccessKey: 'testing';
  logFile: string;
  startupMs: number;
  /** AWS_ENDPOINT_URL, AWS_REGION, AWS_DEFAULT_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_EC2_METADATA_DISABLED=true */
  env(): Record<string, string>;
  /** POST /moto-api/reset: forget every resource. */
  reset(): Promise<void>;
  /** Idempotent: kill moto_server and remove its temp dir. */
  stop(): Promise<void>;
}

export async function startMoto(): Promise<MotoService> {
  const t0 = performance.now();
  const motoServer = requireBinary('moto_server', MOTO_INSTALL_HINT);
  const { dir, procs, stop } = processGroup('moto');
  try {
    const port = await withPortRetry(async () => {
      const p = await freePort();
      const logFile = path.join(dir, `moto-${p}.log`);
      const proc = spawnService(motoServer, ['-H', LOOPBACK, '-p', String(p)], {
        logFile,
        cwd: dir,
        env: {
          ...process.env,
          PYTHONUNBUFFERED: '1',
          // moto must not pick up real credentials or config from the host
          AWS_ACCESS_KEY_ID: 'testing',
          AWS_SECRET_ACCESS_KEY: 'testing',
          AWS_DEFAULT_REGION: 'us-east-1',
        },
      });
      procs.push(proc);
      try {
        await waitFor(
          `moto_server on ${LOOPBACK}:${p}`,
          async () => {
            const res = await fetch(`http://${LOOPBACK}:${p}/moto-api/data.json`, {
              signal: AbortSignal.timeout(2000),
            });
            await res.arrayBuffer();
            return res.ok;
          },
          {
            timeoutMs: 30_000,
            abortIf: () => {
              if (proc.hasExited()) throw startupError('moto_server', 'moto_server exited', logFile);
            },
          },
        );
      } catch (err) {
        await proc.kill(1000);
        if (err instanceof StartError) throw err;
        throw startupError('moto_server', (err as Error).message, logFile);
      }
      return p;
    });
    const endpoint = `http://${LOOPBACK}:${port}`;
    return {
      endpoint,
      host: LOOPBACK,
      port,
      region: 'us-east-1',
      accessKeyId: 'testing',
      secretAccessKey: 'testing',
      logFile: path.join(dir, `moto-${port}.log`),
      startupMs: Math.round(performance.now() - t0),
      env: () => ({
        AWS_ENDPOINT_URL: endpoint,
        AWS_REGION: 'us-east-1',
        AWS_DEFAULT_REGION: 'us-east-1',
        AWS_ACCESS_KEY_ID: 'testing',
        AWS_SECRET_ACCESS_KEY: 'testing',
        AWS_EC2_METADATA_DISABLED: 'true',
      }),
      async reset() {
        const res = await fetch(`${endpoint}/moto-api/reset`, { method: 'POST' });
        await res.arrayBuffer();
        if (!res.ok) throw new Error(`moto reset failed: HTTP ${res.status}`);
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
