/**
 * A real Kubernetes control plane for tests: etcd, kube-apiserver, kube-controller-manager and
 * kube-scheduler from Kubernetes' own modules, kwok for nodes and pods, and metrics.k8s.io behind
 * a real APIService (see test/support/controlplane). One is started per test run by the vitest
 * global setup; a test that needs faults affecting the whole cluster starts its own.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { makeTempDir, onProcessExit, removeDirSync, tailFile } from '../services/util.js';
import { ensureControlPlaneBinary } from './build.js';

/** What `controlplane up` writes to cluster.json. */
export interface ControlPlaneInfo {
  server: string;
  dir: string;
  /** Admin (system:masters) kubeconfig: for the harness, never for the tool under test. */
  kubeconfig: string;
  caFile: string;
  etcd: string;
  auditLog: string;
  kwokPort: number;
  metricsPort: number;
  nodes: string[];
  pids: Record<'etcd' | 'apiserver' | 'controller-manager' | 'scheduler' | 'kwok' | 'metrics', number>;
  startupMs: number;
  /** The binary that runs it (also mints user certificates). */
  binary: string;
}

export interface ControlPlane {
  info: ControlPlaneInfo;
  stop(): Promise<void>;
}

export interface StartControlPlaneOptions {
  /** false: watches are served from etcd, so a compacted revision answers 410 Gone at once. */
  watchCache?: boolean;
  nodes?: string[];
}

export async function startControlPlane(opts: StartControlPlaneOptions = {}): Promise<ControlPlane> {
  const binary = ensureControlPlaneBinary((l) => process.stderr.write(`${l}\n`));
  const dir = makeTempDir('runbook-controlplane-');
  const args = ['up', '--dir', dir, `--watch-cache=${opts.watchCache ?? true}`];
  if (opts.nodes) args.push('--nodes', opts.nodes.join(','));
  // stdin stays a pipe we hold: if this process dies, the control plane tears itself down.
  const child: ChildProcess = spawn(binary, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr = (stderr + c).slice(-8000)));
  const unregister = onProcessExit(() => {
    try {
      child.kill('SIGKILL');
    } catch {
      /* gone */
    }
    removeDirSync(dir);
  });
  const ready = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`control plane not ready after 180 s\n${stderr}`)), 180_000);
    const rl = createInterface({ input: child.stdout! });
    rl.on('line', (line) => {
      if (line.startsWith('READY ')) {
        clearTimeout(timer);
        resolve(line.slice(6).trim());
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      const logs = ['apiserver', 'controller-manager', 'kwok'].map((n) => `--- ${n}\n${tailFile(join(dir, 'logs', `${n}.log`), 1500)}`).join('\n');
      reject(new Error(`control plane exited (${code}) before it was ready:\n${stderr}\n${logs}`));
    });
  });
  const info = { ...(JSON.parse(readFileSync(ready, 'utf8')) as Omit<ControlPlaneInfo, 'binary'>), binary };
  let stopped: Promise<void> | undefined;
  return {
    info,
    stop: () =>
      (stopped ??= (async () => {
        unregister();
        if (child.exitCode === null) {
          const exited = new Promise((r) => child.once('exit', r));
          child.kill('SIGTERM');
          const t = setTimeout(() => child.kill('SIGKILL'), 15_000);
          await exited;
          clearTimeout(t);
        }
        removeDirSync(dir);
      })()),
  };
}

/** A client-certificate kubeconfig for another identity, signed by the cluster's CA. */
export function mintUserKubeconfig(
  info: ControlPlaneInfo,
  out: string,
  user: { name: string; groups?: string[]; context?: string; namespace?: string },
): string {
  const args = ['user', '--dir', info.dir, '--name', user.name, '--out', out];
  for (const g of user.groups ?? []) args.push('--group', g);
  if (user.context) args.push('--context', user.context);
  if (user.namespace) args.push('--namespace', user.namespace);
  execFileSync(info.binary, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  return out;
}

const SHARED_ENV = 'RUNBOOK_TEST_CONTROL_PLANE';

/** Publishes a started control plane to the test workers (set by the vitest global setup). */
export function shareControlPlane(info: ControlPlaneInfo): void {
  process.env[SHARED_ENV] = JSON.stringify(info);
}

/**
 * The control plane of this test run: the one the global setup started, or (outside vitest, e.g.
 * `npm run sandbox`) a new one owned by the caller.
 */
export async function sharedControlPlane(): Promise<ControlPlane> {
  const shared = process.env[SHARED_ENV];
  if (shared) return { info: JSON.parse(shared) as ControlPlaneInfo, stop: async () => undefined };
  return startControlPlane();
}

/** Compacts etcd to its current revision: every older resourceVersion is gone (watches from one answer 410). */
export async function compactEtcd(info: ControlPlaneInfo): Promise<number> {
  const post = async (path: string, body: unknown) => {
    const res = await fetch(`${info.etcd}${path}`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
    if (!res.ok) throw new Error(`etcd ${path}: ${res.status} ${await res.text()}`);
    return (await res.json()) as { header?: { revision?: string } };
  };
  const range = await post('/v3/kv/range', { key: Buffer.from('\0').toString('base64') });
  const revision = Number(range.header?.revision ?? 0);
  await post('/v3/kv/compaction', { revision, physical: true });
  return revision;
}
