import { describe, expect, it } from 'vitest';
import { runCli } from '../../support/cli.js';
import { writeConfig } from '../../support/config.js';
import { exampleConfig } from '../../../src/core/example-config.js';

describe('runbook info (quick reference)', () => {
  it("works with no config at all: the seed's contacts and resources from the built-in example, no network", async () => {
    // A kubeconfig and AWS endpoint that cannot work prove nothing is contacted.
    const r = await runCli(['info'], { env: { KUBECONFIG: '/nonexistent', AWS_ENDPOINT_URL: 'http://127.0.0.1:9' } });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/Emergency contacts \(example\)/);
    expect(r.stdout).toMatch(/On-Call Primary\s+Rotation\s+See PagerDuty\s+oncall@example\.com\s+@oncall/);
    expect(r.stdout).toMatch(/Security Team\s+Security/);
    expect(r.stdout).toMatch(/Production Dashboard\s+https:\/\/grafana\.example\.com\s+SSO/);
    expect(r.stdout).toMatch(/AWS Console\s+https:\/\/console\.aws\.amazon\.com\s+MFA Required/);
    expect(exampleConfig.environments.example.contacts).toHaveLength(5);
    expect(exampleConfig.environments.example.resources).toHaveLength(5);
  });

  it('--json carries the contacts and resources as data', async () => {
    const r = await runCli(['info', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.procedure).toBe('info');
    const data = doc.steps[0].data;
    expect(data.contacts[2]).toEqual({ role: 'Team Lead', name: 'John Doe', phone: '+1-XXX-XXX-XXXX', email: 'john@example.com', slack: '@john' });
    expect(data.resources.map((x: { name: string }) => x.name)).toEqual(['Production Dashboard', 'AWS Console', 'PagerDuty', 'Status Page', 'Runbook Wiki']);
    // How to sign in is what the table shows, not a mask (it is never a password).
    expect(data.resources[0]).toEqual({ name: 'Production Dashboard', url: 'https://grafana.example.com', signIn: 'SSO' });
    expect(data.resources[1].signIn).toBe('MFA Required');
    expect(doc.result.info).toEqual(data);
    expect(r.stdout).not.toContain('****');
  });

  it('prints the answer only: no step progress, no run id (errors still explained)', async () => {
    const r = await runCli(['info']);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout).not.toMatch(/\[1\/1\]|run \d{8}T/);
  });

  it('a sign-in value that is a known secret is still masked', async () => {
    const { dir } = writeConfig({
      environments: { prod: { resources: [{ name: 'Vault', url: 'https://vault.example.com', credentials: 'hunter2-token-value' }] } },
    });
    const r = await runCli(['info', '--json'], { cwd: dir, env: { VAULT_TOKEN: 'hunter2-token-value' } });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).not.toContain('hunter2-token-value');
    expect(JSON.parse(r.stdout).result.info.resources[0].signIn).toMatch(/\*{4}/);
  });

  it("reads the selected environment's sections from the config, per environment", async () => {
    const { dir } = writeConfig({
      default: 'staging',
      environments: {
        staging: { contacts: [{ role: 'On-Call', name: 'Staging rota', slack: '@staging' }] },
        production: {
          contacts: [{ role: 'On-Call Primary', name: 'Ada', phone: '+1-555-0100' }],
          resources: [{ name: 'Grafana', url: 'https://grafana.prod.example.com', credentials: 'SSO' }],
        },
      },
    });
    const staging = await runCli(['info'], { cwd: dir });
    expect(staging.code, staging.stderr).toBe(0);
    expect(staging.stdout).toMatch(/Staging rota/);
    expect(staging.stdout).toMatch(/No critical resources for environment "staging": add environments\.staging\.resources/);
    const prod = await runCli(['info', '--env', 'production'], { cwd: dir });
    expect(prod.code, prod.stderr).toBe(0);
    expect(prod.stdout).toMatch(/Ada\s+\+1-555-0100/);
    expect(prod.stdout).toMatch(/Grafana\s+https:\/\/grafana\.prod\.example\.com\s+SSO/);
    expect(prod.stdout).not.toMatch(/Staging rota/);
  });

  it('rejects malformed sections with exit 2 naming the field', async () => {
    const bad = writeConfig({ environments: { prod: { resources: [{ name: 'Grafana', url: 'not a url' }] } } });
    const r = await runCli(['info'], { cwd: bad.dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/environments\.prod\.resources\.0\.url/);
    const missing = writeConfig({ environments: { prod: { contacts: [{ name: 'no role' }] } } });
    const r2 = await runCli(['info'], { cwd: missing.dir });
    expect(r2.code).toBe(2);
    expect(r2.stderr).toMatch(/contacts\.0\.role/);
  });

  it('is a one-word command in the catalogue: listed, explained, and in --help', async () => {
    const list = await runCli(['list']);
    expect(list.stdout).toMatch(/^info\b/m);
    const explain = await runCli(['explain', 'info']);
    expect(explain.code, explain.stderr).toBe(0);
    expect(explain.stdout).toMatch(/yq/);
    const help = await runCli(['--help']);
    expect(help.stdout).toMatch(/\binfo\b.*Quick reference/);
  });
});
