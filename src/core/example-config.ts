import type { ConfigFile } from './config-schema.js';

/**
 * The seed runbook's own values, built in so that a new user can run `--dry-run=offline`,
 * `explain` and `list` before writing any config. Nothing is ever contacted with it.
 */
export const exampleConfig: ConfigFile = {
  default: 'example',
  environments: {
    example: {
      description: 'built-in example from the seed runbook (offline dry runs only)',
      protected: true,
      kubernetes: { context: 'prod', namespace: 'production', deployment: 'app', selector: 'app=api' },
      health: { url: 'https://api.example.com/health', attempts: 10, interval: '3s', timeout: '5s', expectStatus: 200 },
      limits: { maxReplicas: 50 },
      rollout: { timeout: '5m' },
      aws: { region: 'us-east-1' },
      rds: { instance: 'prod-db' },
      postgres: { url: { env: 'DATABASE_URL' }, replicas: [{ name: 'replica', url: { env: 'REPLICA_URL' } }] },
      redis: { url: 'redis://redis.example.com:6379' },
      notify: { slack: { webhook: { env: 'SLACK_WEBHOOK_URL' } } },
      circuitBreaker: { url: 'https://api.example.com/admin/circuit-breaker', method: 'POST' },
    },
  },
};
