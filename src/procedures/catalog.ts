import type { Procedure, Risk } from '../core/procedure.js';

/**
 * Every procedure, by command path. Loading a procedure imports only its own module (no SDK),
 * so `runbook --help` and `runbook list` stay as fast as bare node.
 */
export interface CatalogEntry {
  name: string;
  summary: string;
  /** The most a run can do, for `list` (a step may be riskier for some arguments). */
  risk: Risk;
  /** When `risk` is reached only for some arguments: what a plain run is, and when it is more. */
  riskFor?: { usually: Risk; when: string };
  seed: string;
  load(): Promise<Procedure>;
}

const def = (name: string, summary: string, risk: Risk, seed: string, load: () => Promise<{ default: Procedure }>): CatalogEntry => ({
  name,
  summary,
  risk,
  seed,
  load: async () => (await load()).default,
});

export const catalog: CatalogEntry[] = [
  def(
    'app restart',
    'Rolling restart of the deployment, then wait, health-check and show logs',
    'write',
    'Service Restart › Application Service',
    () => import('./app/restart.js'),
  ),
  {
    ...def('app scale', "Set the deployment's replica count and wait for it", 'destructive', 'Scaling › Horizontal', () => import('./app/scale.js')),
    riskFor: { usually: 'write', when: 'to 0 replicas' },
  },
  def('app autoscale', "Create or update the deployment's HorizontalPodAutoscaler", 'write', 'Scaling › Horizontal', () => import('./app/autoscale.js')),
  def('app scaling', 'Show the autoscaler and the pods', 'read', 'Scaling › Horizontal', () => import('./app/scaling.js')),
  def(
    'app resources',
    "Change a container's CPU/memory requests and limits and wait for the rollout",
    'write',
    'Scaling › Vertical',
    () => import('./app/resources.js'),
  ),
  def(
    'app rollback',
    'Roll the deployment back to the previous (or a given) revision',
    'write',
    'Incident › High Error Rate',
    () => import('./app/rollback.js'),
  ),
  def('app env set', 'Set environment variables on the deployment (KEY=VALUE …)', 'write', 'Incident › High Error Rate', () => import('./app/env-set.js')),
  def('app env unset', 'Remove environment variables from the deployment (KEY …)', 'write', 'Incident › High Error Rate', () => import('./app/env-unset.js')),
  def(
    'app circuit-breaker',
    "Enable or disable the application's circuit breaker",
    'write',
    'Incident › High Error Rate',
    () => import('./app/circuit-breaker.js'),
  ),
  def(
    'db restart',
    'Reboot the RDS instance with the app scaled to 0, then bring the app back to the count it had',
    'destructive',
    'Service Restart › Database',
    () => import('./db/restart.js'),
  ),
  def(
    'db connections',
    'Connections: total against max_connections, by state, by application and user, longest idle and active',
    'read',
    'Database Issues › Connection Pool Exhaustion',
    () => import('./db/connections.js'),
  ),
  def(
    'db kill-idle',
    'Terminate sessions idle longer than a threshold (lists them first)',
    'write',
    'Database Issues › Connection Pool Exhaustion',
    () => import('./db/kill-idle.js'),
  ),
  def(
    'db kill-long-running',
    'End queries running longer than a threshold (lists them first)',
    'destructive',
    'Incident › High Latency',
    () => import('./db/kill-long-running.js'),
  ),
  def(
    'db max-connections',
    'Set max_connections (ALTER SYSTEM) and say truthfully that it applies only after a restart',
    'write',
    'Database Issues › Connection Pool Exhaustion',
    () => import('./db/max-connections.js'),
  ),
  def(
    'db slow-queries',
    'The slowest statements by mean time, from pg_stat_statements',
    'read',
    'Incident › High Latency',
    () => import('./db/slow-queries.js'),
  ),
  def(
    'db locks',
    'Blocked sessions and the sessions blocking them (pg_blocking_pids), with their queries',
    'read',
    'Incident › High Latency',
    () => import('./db/locks.js'),
  ),
  def(
    'db replication-lag',
    'Replication lag on the primary (bytes) and on each replica (seconds); exit 4 over a threshold',
    'read',
    'Database Issues › Replication Lag',
    () => import('./db/replication-lag.js'),
  ),
  def(
    'db recover',
    'Restore a snapshot into a new instance, verify it, then point the app at it',
    'destructive',
    'Disaster Recovery › Data Recovery',
    () => import('./db/recover.js'),
  ),
  def(
    'cache flush',
    'Delete the keys matching a pattern (streamed SCAN + UNLINK), or the whole database with --all',
    'destructive',
    'Cache Operations › Clear Redis Cache',
    () => import('./cache/flush.js'),
  ),
  def(
    'cache stats',
    'Hit rate, keys per database, memory, evictions and ops/s of the cache',
    'read',
    'Cache Operations › Clear Redis Cache',
    () => import('./cache/stats.js'),
  ),
  def(
    'cache warm',
    'Run the configured cache warmers for a type, in parallel, and show the hit rate before and after',
    'write',
    'Cache Operations › Warm Cache',
    () => import('./cache/warm.js'),
  ),
  def(
    'dr failover',
    'Fail over to the DR region: DNS, scale DR, DR health, then (gated) stop the primary',
    'destructive',
    'Disaster Recovery › Regional Failover',
    () => import('./dr/failover.js'),
  ),
  def(
    'dr failback',
    'Fail back to the primary region: DNS, scale the primary, its health, then (gated) scale DR down',
    'destructive',
    'Disaster Recovery › Regional Failover',
    () => import('./dr/failback.js'),
  ),
  {
    ...def(
      'backup verify',
      'Verify the newest database backup in S3 (download, pg_restore --list, optional restore test); exit 4 and alert on failure',
      'write',
      'Maintenance › Backup Verification',
      () => import('./maintenance/backup-verify.js'),
    ),
    riskFor: { usually: 'read', when: 'with --restore-test' },
  },
  def(
    'cert check',
    'Expiry, names and trust of served TLS certificates; exit 4 below --min-days',
    'read',
    'Maintenance › Certificate Renewal',
    () => import('./maintenance/cert-check.js'),
  ),
  def(
    'cert renew',
    'certbot renew, check the renewed files, reload the web server (gated), check what is served',
    'destructive',
    'Maintenance › Certificate Renewal',
    () => import('./maintenance/cert-renew.js'),
  ),
  def(
    'incident errors',
    'Diagnose a high error rate: metrics, rollout history, error types from pod logs, 5xx by endpoint; suggests the next command',
    'read',
    'Incident › High Error Rate',
    () => import('./incident/errors.js'),
  ),
  def(
    'incident latency',
    'Diagnose high latency: slow queries, lock chains, replication lag, pod CPU, cache hit rate; suggests the command for each finding',
    'read',
    'Incident › High Latency',
    () => import('./incident/latency.js'),
  ),
  def(
    'outage start',
    'Open a status-page incident, list pods per service, check dependencies, then turn maintenance mode on',
    'write',
    'Incident › Service Outage',
    () => import('./outage/start.js'),
  ),
  def(
    'outage recover',
    'Scale back up in stages with health checks between, maintenance mode off, resolve the incident outage start opened',
    'write',
    'Incident › Service Outage',
    () => import('./outage/recover.js'),
  ),
  def(
    'logs rotate',
    'Compress old logs on all cores, archive to S3 (never deleting remote unless --prune), delete old local archives (gated)',
    'destructive',
    'Maintenance › Log Rotation',
    () => import('./maintenance/logs-rotate.js'),
  ),
  def(
    'pod diagnose',
    "Why a pod (or the deployment's pods, worst first) is unhealthy: status, last exit, events, previous logs, usage, missing secrets/config maps, probes; exit 4 when unhealthy",
    'read',
    'Troubleshooting › Pod CrashLoopBackOff',
    () => import('./pod/diagnose.js'),
  ),
  def(
    'pod heap-dump',
    'Heap dump of the Java or Node.js process in a pod (found inside the container), copied here and verified; nothing left in the pod',
    'write',
    'Troubleshooting › Memory Leaks',
    () => import('./pod/heap-dump.js'),
  ),
  def(
    'pod gc',
    'Force a full garbage collection of the Java or Node.js process in a pod, with the heap before and after',
    'write',
    'Troubleshooting › Memory Leaks',
    () => import('./pod/gc.js'),
  ),
  def(
    'pod memory',
    "Memory use of the deployment's pods against their limits, highest first; exit 4 above 90% of a limit; --watch: growth rate per container",
    'read',
    'Troubleshooting › Memory Leaks',
    () => import('./pod/memory.js'),
  ),
  def('report new', 'Draft the post-incident report, its timeline filled from the journal', 'read', 'Post-Incident', () => import('./report/new.js')),
  def(
    'security isolate',
    'Cordon nodes and label them quarantine=true (undo puts back exactly what was there)',
    'write',
    'Security Incidents › Suspected Breach',
    () => import('./security/isolate.js'),
  ),
  def(
    'security evidence',
    'Copy all container logs and the events of the namespace into a new folder with a sha256 manifest',
    'read',
    'Security Incidents › Suspected Breach',
    () => import('./security/evidence.js'),
  ),
  def(
    'security rotate-secrets',
    'Run the configured credential rotation commands (typed confirmation)',
    'destructive',
    'Security Incidents › Suspected Breach',
    () => import('./security/rotate-secrets.js'),
  ),
  def(
    'security audit-mode',
    'Turn debug and audit logging on, or off again (restoring what was there), and wait for the rollout',
    'write',
    'Security Incidents › Suspected Breach',
    () => import('./security/audit-mode.js'),
  ),
  def(
    'security breach',
    'Suspected breach: isolate nodes, preserve evidence, rotate credentials, audit logging on, notify security',
    'destructive',
    'Security Incidents › Suspected Breach',
    () => import('./security/breach.js'),
  ),
  def(
    'security ddos',
    'DDoS mitigation: Shield DRT role, emergency WAF rules merged in (lock token read), rate limiting, scale up, Cloudflare under_attack',
    'write',
    'Security Incidents › DDoS Attack',
    () => import('./security/ddos.js'),
  ),
  def(
    'security ddos-revert',
    'After a DDoS: emergency WAF rules out, rate limiting off, replicas and Cloudflare level back (from the journal)',
    'write',
    'Security Incidents › DDoS Attack',
    () => import('./security/ddos-revert.js'),
  ),
  def(
    'info',
    'Quick reference: emergency contacts and critical resources of the environment (no network)',
    'read',
    'Quick Reference',
    () => import('./reference/info.js'),
  ),
];

export function findEntry(path: string[]): CatalogEntry | undefined {
  const joined = path.join(' ');
  return catalog.find((e) => e.name === joined);
}
