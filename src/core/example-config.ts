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
      contacts: [
        { role: 'On-Call Primary', name: 'Rotation', phone: 'See PagerDuty', email: 'oncall@example.com', slack: '@oncall' },
        { role: 'On-Call Backup', name: 'Rotation', phone: 'See PagerDuty', email: 'backup@example.com', slack: '@backup' },
        { role: 'Team Lead', name: 'John Doe', phone: '+1-XXX-XXX-XXXX', email: 'john@example.com', slack: '@john' },
        { role: 'DevOps Lead', name: 'Jane Smith', phone: '+1-XXX-XXX-XXXX', email: 'jane@example.com', slack: '@jane' },
        { role: 'Security Team', name: 'Security', phone: '+1-XXX-XXX-XXXX', email: 'security@example.com', slack: '@security' },
      ],
      resources: [
        { name: 'Production Dashboard', url: 'https://grafana.example.com', credentials: 'SSO' },
        { name: 'AWS Console', url: 'https://console.aws.amazon.com', credentials: 'MFA Required' },
        { name: 'PagerDuty', url: 'https://example.pagerduty.com', credentials: 'SSO' },
        { name: 'Status Page', url: 'https://status.example.com', credentials: 'Admin panel' },
        { name: 'Runbook Wiki', url: 'https://wiki.example.com/runbook', credentials: 'SSO' },
      ],
      protected: true,
      kubernetes: { context: 'prod', namespace: 'production', deployment: 'app', selector: 'app=api' },
      health: { url: 'https://api.example.com/health', attempts: 10, interval: '3s', timeout: '5s', expectStatus: 200 },
      limits: { maxReplicas: 50 },
      rollout: { timeout: '5m' },
      aws: { region: 'us-east-1' },
      rds: {
        instance: 'prod-db',
        waitTimeout: '20m',
        pollInterval: '10s',
        connectTimeout: '5m',
        recovery: { verifyTable: 'users', hostVariable: 'DATABASE_HOST' },
      },
      postgres: { url: { env: 'DATABASE_URL' }, replicas: [{ name: 'replica', url: { env: 'REPLICA_URL' } }] },
      redis: { url: 'redis://redis.example.com:6379' },
      cache: { warmers: { product: [['./scripts/warm-cache.sh', '--type=product']] }, timeout: '10m' },
      security: { rotate: [['./scripts/rotate-all-secrets.sh', '--emergency']], rotateTimeout: '10m', notifyMention: '@security' },
      notify: { slack: { webhook: { env: 'SLACK_WEBHOOK_URL' } } },
      circuitBreaker: { url: 'https://api.example.com/admin/circuit-breaker', method: 'POST' },
      dr: {
        route53: {
          hostedZoneId: 'Z0EXAMPLE',
          failover: {
            Changes: [
              { Action: 'UPSERT', ResourceRecordSet: { Name: 'api.example.com', Type: 'CNAME', TTL: 60, ResourceRecords: [{ Value: 'dr.example.com' }] } },
            ],
          },
          failback: {
            Changes: [
              { Action: 'UPSERT', ResourceRecordSet: { Name: 'api.example.com', Type: 'CNAME', TTL: 60, ResourceRecords: [{ Value: 'prod.example.com' }] } },
            ],
          },
          syncTimeout: '5m',
          syncInterval: '5s',
        },
        primary: { region: 'us-east-1', cluster: 'prod-cluster', service: 'app', desiredCount: 4, standbyCount: 0 },
        dr: {
          region: 'us-west-2',
          cluster: 'dr-cluster',
          service: 'app',
          desiredCount: 10,
          standbyCount: 0,
          health: { url: 'https://dr.example.com/health', attempts: 10, interval: '30s', timeout: '5s', expectStatus: 200 },
        },
      },
      backups: {
        bucket: 'backup-bucket',
        prefix: 'database/',
        pgRestore: 'pg_restore',
        restoreTest: { url: { env: 'TEST_DATABASE_URL' }, table: 'users', minRows: 1 },
      },
      certs: { hosts: ['example.com'], minDays: 14, timeout: '10s', certbot: ['certbot', 'renew', '--nginx'], reload: ['nginx', '-s', 'reload'], files: [] },
      logs: {
        tail: 100,
        dir: '/var/log/app',
        compressAfter: '7d',
        deleteAfter: '30d',
        archive: 's3://logs-bucket/archive',
        logrotate: ['logrotate', '-f', '/etc/logrotate.d/application'],
      },
    },
  },
};
