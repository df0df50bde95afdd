import { defineProcedure, stepFor } from '../../core/procedure.js';
import { table } from '../../core/table.js';
import type { EnvironmentConfig } from '../../core/config.js';

type Contact = NonNullable<EnvironmentConfig['contacts']>[number];

/**
 * A critical resource as `info` shows it. The config's `credentials` says how to sign in (SSO, MFA, a
 * vault path; the schema says never a password): carried as `signIn`, so --json shows what the table
 * shows instead of the mask every key named like a secret gets. A value that is a known secret is still masked.
 */
export interface QuickResource {
  name: string;
  url: string;
  signIn?: string;
}

/** What `runbook info` returns: the environment's quick reference, straight from the config. */
export interface QuickReference {
  environment: string;
  config: string | null;
  contacts: Contact[];
  resources: QuickResource[];
}

export function renderQuickReference(q: QuickReference): string {
  const parts: string[] = [];
  const where = q.config ?? 'the built-in example config';
  if (q.contacts.length) {
    parts.push(
      `Emergency contacts (${q.environment})\n${table(
        ['ROLE', 'NAME', 'PHONE', 'EMAIL', 'SLACK'],
        q.contacts.map((c) => [c.role, c.name, c.phone, c.email, c.slack]),
      ).trimEnd()}`,
    );
  } else parts.push(`No emergency contacts for environment "${q.environment}": add environments.${q.environment}.contacts to ${where}.`);
  if (q.resources.length) {
    parts.push(
      `Critical resources\n${table(
        ['RESOURCE', 'URL', 'CREDENTIALS'],
        q.resources.map((r) => [r.name, r.url, r.signIn]),
      ).trimEnd()}`,
    );
  } else parts.push(`No critical resources for environment "${q.environment}": add environments.${q.environment}.resources to ${where}.`);
  return parts.join('\n\n') + '\n';
}

const step = stepFor<Record<string, never>>();

const info = step({
  id: 'info',
  title: 'Read the contacts and critical resources from the config',
  why: 'At 3 a.m. the first question is who to call and where the dashboards are; this answers it without any network call.',
  risk: 'read',
  equivalent: (_p, env) => `yq '.environments.${env.name} | {"contacts": .contacts, "resources": .resources}' ${env.configPath ?? 'runbook.yaml'}`,
  async run(ctx): Promise<QuickReference> {
    return {
      environment: ctx.env.name,
      config: ctx.env.configPath,
      contacts: ctx.env.config.contacts ?? [],
      resources: (ctx.env.config.resources ?? []).map((r) => ({ name: r.name, url: r.url, ...(r.credentials !== undefined ? { signIn: r.credentials } : {}) })),
    };
  },
});

export default defineProcedure<Record<string, never>>({
  name: 'info',
  summary: 'Quick reference: emergency contacts and critical resources of the environment',
  seedFixes: [
    'The seed keeps contacts and consoles in a wiki table that drifts from reality and is out of reach when the wiki is down; here they live in the config next to the targets, per environment, and print offline.',
  ],
  params: [],
  examples: [[], ['--json']],
  requires: [],
  worksWithoutConfig: true,
  steps: [info],
  render: (run) => renderQuickReference(run.get(info)),
});
