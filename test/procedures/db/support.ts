import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { defaultFactories, type ClientFactories } from '../../../src/clients/index.js';
import { makeAwsClients, type AwsClients } from '../../../src/clients/aws.js';
import { connectPostgres } from '../../../src/clients/postgres.js';
import type { KubeClient } from '../../../src/clients/kube.js';
import { tempDir } from '../../support/cli.js';
import { runTexts } from '../../support/journal-files.js';
import type { Sandbox } from '../../support/sandbox/index.js';
import type { DatabasePart } from '../../support/sandbox/database-part.js';

/**
 * Client factories that report every client call as an event ("kube:scaleDeployment:0",
 * "rds:RebootDBInstanceCommand", "pg:connect") before it is made, so a test can interrupt, or inject
 * a fault, at an exact point of a real run. An async listener delays the call until it settles.
 */
export function tappedFactories(onEvent: (event: string) => void | Promise<void>): ClientFactories {
  return {
    http: defaultFactories.http,
    async kube(target, env) {
      const k = await defaultFactories.kube(target, env);
      return new Proxy(k, {
        get(t, prop, recv) {
          const v = Reflect.get(t, prop, recv) as unknown;
          if (typeof v !== 'function' || prop === 'close') return v;
          return async (...args: unknown[]) => {
            const dry = (args[2] as { dryRun?: boolean } | undefined)?.dryRun;
            const suffix = prop === 'scaleDeployment' && !dry ? `:${String(args[1])}` : dry ? ':dry' : '';
            await onEvent(`kube:${String(prop)}${suffix}`);
            return (v as (...a: unknown[]) => unknown).apply(t, args);
          };
        },
      }) as KubeClient;
    },
    async aws(target, env): Promise<AwsClients> {
      const a = makeAwsClients(target, env);
      const rds = a.rds.bind(a);
      const tapped = new WeakSet<object>();
      a.rds = async (region?: string) => {
        const c = await rds(region);
        if (!tapped.has(c)) {
          tapped.add(c);
          c.middlewareStack.add(
            (next, context) => async (args) => {
              await onEvent(`rds:${context.commandName}`);
              return next(args);
            },
            { step: 'initialize', name: 'testTap' },
          );
        }
        return c;
      };
      return a;
    },
    async postgres(url) {
      await onEvent('pg:connect');
      return connectPostgres(url);
    },
  };
}

export function databasePart(sb: Sandbox): DatabasePart {
  return sb.parts.find((p) => p.name === 'database') as DatabasePart;
}

/** A copy of the sandbox config with the `sandbox` environment changed by `patch`; returns the env to use it. */
export function derivedConfig(sb: Sandbox, patch: (env: Record<string, unknown>) => void): Record<string, string> {
  const config = parse(readFileSync(sb.configPath, 'utf8')) as { environments: Record<string, Record<string, unknown>> };
  patch(config.environments.sandbox);
  const path = join(tempDir('runbook-db-config-'), 'runbook.yaml');
  writeFileSync(path, stringify(config));
  return { ...sb.env, RUNBOOK_CONFIG: path };
}

/** Every journal line written under a journal directory; throws when it holds no run (a leak check over nothing proves nothing). */
export function journalText(dir: string): string {
  const texts = runTexts(dir);
  if (texts.length === 0) throw new Error(`no run files under ${dir}`);
  return texts.join('');
}

export async function until(what: string, predicate: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const t0 = Date.now();
  while (!(await predicate())) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
