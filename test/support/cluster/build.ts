/**
 * Builds the Go control plane (test/support/controlplane) once and caches the binary outside the
 * checkout, keyed by a hash of its go.mod, go.sum and sources: a fresh clone reuses a binary
 * another clone built, and any change to the module rebuilds it.
 */
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findBinary } from '../services/util.js';

export const CONTROL_PLANE_SOURCE = join(dirname(fileURLToPath(import.meta.url)), '..', 'controlplane');

export const GO_INSTALL_HINT =
  "the Kubernetes tests build a real control plane from Kubernetes' Go modules: install Go ≥ 1.26 (Debian: apt-get install golang-go, or the go.dev toolchain) and make sure the Go module proxy is reachable";

export function controlPlaneKey(): string {
  const h = createHash('sha256');
  const files = readdirSync(CONTROL_PLANE_SOURCE)
    .filter((f) => f === 'go.mod' || f === 'go.sum' || f.endsWith('.go'))
    .sort();
  for (const f of files)
    h.update(f)
      .update('\0')
      .update(readFileSync(join(CONTROL_PLANE_SOURCE, f)))
      .update('\0');
  return h.digest('hex').slice(0, 16);
}

export function controlPlaneCacheDir(): string {
  const base = process.env.RUNBOOK_CONTROLPLANE_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'runbook', 'controlplane');
  return join(base, controlPlaneKey());
}

/** The cached binary's path, building it first when this version of the sources has none. */
export function ensureControlPlaneBinary(log: (line: string) => void = () => undefined): string {
  const dir = controlPlaneCacheDir();
  const bin = join(dir, 'controlplane');
  if (existsSync(bin)) return bin;
  const go = findBinary('go') ?? ['/usr/local/go/bin/go', '/usr/lib/go/bin/go'].find((p) => existsSync(p));
  if (!go) throw new Error(`go is missing: ${GO_INSTALL_HINT}`);
  mkdirSync(dir, { recursive: true });
  const tmp = `${bin}.${process.pid}.tmp`;
  const started = Date.now();
  log(`building the test control plane (kube-apiserver, controller-manager, scheduler, etcd, kwok) into ${dir} …`);
  try {
    execFileSync(go, ['build', '-trimpath', '-o', tmp, '.'], {
      cwd: CONTROL_PLANE_SOURCE,
      stdio: ['ignore', 'inherit', 'inherit'],
      env: { ...process.env, CGO_ENABLED: '0', GOFLAGS: '-mod=readonly' },
    });
    renameSync(tmp, bin);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw new Error(`building the control plane failed (${(err as Error).message}); ${GO_INSTALL_HINT}`, { cause: err });
  }
  log(`built the test control plane in ${Math.round((Date.now() - started) / 1000)} s`);
  return bin;
}
