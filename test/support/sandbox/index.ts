import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { startKube, type KubeHarness } from '../cluster/index.js';
import type { ControlPlane } from '../cluster/control-plane.js';
import { makeTempDir } from '../services/index.js';
import { startKubePart } from './kube-part.js';
import { startDrPart } from './dr-part.js';
import { startDatabasePart } from './database-part.js';
import { startCachePart } from './cache-part.js';
import { startSecurityPart } from './security-part.js';
import { startIncidentPart } from './incident-part.js';
import { startDdosPart } from './ddos-part.js';
import type { SandboxPart, SandboxPartFactory } from './types.js';

export type { SandboxPart, SandboxPartFactory, SandboxContext } from './types.js';

/** Every part the full sandbox starts. Areas (database, cache, AWS, …) add their factory here. */
export const allParts: Record<string, SandboxPartFactory> = {
  kubernetes: startKubePart,
  dr: startDrPart,
  database: startDatabasePart,
  cache: startCachePart,
  security: startSecurityPart,
  incident: startIncidentPart,
  ddos: startDdosPart,
};

export interface Sandbox {
  dir: string;
  configPath: string;
  kube: KubeHarness;
  /** The Kubernetes namespace the environments target (unique per sandbox on a shared control plane). */
  namespace: string;
  parts: SandboxPart[];
  /** Environment for runbook (RUNBOOK_CONFIG, KUBECONFIG, secrets, AWS_*). */
  env: Record<string, string>;
  fingerprint(): Promise<Record<string, string>>;
  /** Example arguments name nodes as the README's sandbox has them (node-1, …): map them to this sandbox's own. */
  localize(args: string[]): string[];
  stop(): Promise<void>;
}

/**
 * Starts the services and writes a config with two environments over them: `sandbox` (unprotected)
 * and `sandbox-protected` (the same targets, protected, for gate tests).
 */
export async function startSandbox(opts: { parts?: string[]; controlPlane?: ControlPlane; exactNamespace?: boolean } = {}): Promise<Sandbox> {
  const dir = makeTempDir('runbook-sandbox-');
  const kube = await startKube({ namespace: 'production', controlPlane: opts.controlPlane, exactNamespace: opts.exactNamespace });
  const ctx = { dir, kube, namespace: kube.namespace, deployment: 'app' };
  const names = opts.parts ?? Object.keys(allParts);
  const parts: SandboxPart[] = [];
  try {
    for (const name of names) {
      const factory = allParts[name];
      if (!factory) throw new Error(`unknown sandbox part ${name}`);
      parts.push(await factory(ctx));
    }
  } catch (err) {
    for (const p of parts) await p.stop().catch(() => undefined);
    await kube.close();
    throw err;
  }
  const environment = Object.assign({}, ...parts.map((p) => p.environment));
  const config = {
    default: 'sandbox',
    environments: {
      sandbox: { description: 'local sandbox services', protected: false, ...environment },
      'sandbox-protected': { description: 'the same services, as a protected environment', protected: true, ...environment },
    },
  };
  const configPath = join(dir, 'runbook.yaml');
  writeFileSync(configPath, stringify(config));
  const env: Record<string, string> = Object.assign({ RUNBOOK_CONFIG: configPath }, ...parts.map((p) => p.env));
  return {
    dir,
    configPath,
    kube,
    namespace: kube.namespace,
    parts,
    env,
    localize: (args) => args.map((a) => a.replace(/\bnode-(\d+)\b/g, (m, n: string) => kube.nodes[Number(n) - 1] ?? m)),
    async fingerprint() {
      const out: Record<string, string> = {};
      for (const p of parts) out[p.name] = await p.fingerprint();
      return out;
    },
    async stop() {
      for (const p of parts.reverse()) await p.stop().catch(() => undefined);
      await kube.close();
    },
  };
}
