import type { KubeHarness } from '../cluster/index.js';

/**
 * One slice of the sandbox (Kubernetes, PostgreSQL, Redis, AWS, …): the services it started, the
 * environment config it contributes, the process variables runbook and the native CLIs need, and a
 * fingerprint of its state so tests can assert that a dry run or a declined gate changed nothing.
 */
export interface SandboxPart {
  name: string;
  /** Merged into every sandbox environment's config (keys: kubernetes, postgres, redis, aws, …). */
  environment: Record<string, unknown>;
  /** Process environment for runbook and for psql/aws/redis-cli (secrets, AWS_ENDPOINT_URL, …). */
  env: Record<string, string>;
  /** A stable description of the part's mutable state; equal before/after means nothing changed. */
  fingerprint(): Promise<string>;
  stop(): Promise<void>;
}

export interface SandboxContext {
  /** A private directory for this sandbox (configs, kubeconfig, data). */
  dir: string;
  kube: KubeHarness;
  /** The Kubernetes namespace and deployment the environments target. */
  namespace: string;
  deployment: string;
}

export type SandboxPartFactory = (ctx: SandboxContext) => Promise<SandboxPart>;
