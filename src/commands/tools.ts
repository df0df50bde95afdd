import { findConfigPath, loadConfig, selectEnvironment } from '../core/config.js';
import { ExitCode, UsageError } from '../core/errors.js';
import { REDACTED } from '../core/redact.js';
import type { Session } from '../core/session.js';
import { table } from '../core/table.js';
import { jsonText, visible } from '../core/terminal.js';
import { completionScript } from './completion.js';
import { configSearch, environmentReason } from './config-info.js';

export async function runTool(session: Session, name: string, verb: string | undefined, args: string[], opts: Record<string, unknown>): Promise<number> {
  switch (name) {
    case 'config':
      return config(session, verb ?? '', args);
    case 'completion':
      out(session, completionScript(args[0] ?? ''));
      return ExitCode.ok;
    case 'doctor': {
      const { doctor } = await import('./doctor.js');
      return doctor(session, { online: opts.online === true });
    }
    default:
      throw new UsageError(`unknown command ${name}`);
  }
}

function out(session: Session, text: string): void {
  session.deps.io.stdout.write(visible(session.redactor.text(text), true));
}

function outJson(session: Session, value: unknown): void {
  session.deps.io.stdout.write(session.redactor.text(jsonText(value)) + '\n');
}

const BUILT_IN_NOTE =
  'no config file found: using the built-in "example" environment (offline dry runs, explain and list only); `runbook config path` shows where runbook looks';

async function config(session: Session, verb: string, args: string[]): Promise<number> {
  const { io } = session.deps;
  const { flags } = session;
  const path = findConfigPath(flags.config, io.env, io.cwd);
  if (verb === 'path') {
    const search = configSearch(flags.config, io.env, io.cwd);
    if (flags.json) {
      outJson(session, { path, builtIn: path === null, search });
      return ExitCode.ok;
    }
    const lines = [
      path ? `config: ${path}` : 'config: none found; the built-in "example" environment is in use (offline dry runs, explain and list only)',
      '',
      'Searched in this order (the first that is set or exists wins):',
    ];
    search.forEach((r, i) => lines.push(`  ${i + 1}. ${r.source.padEnd(38)} ${r.path}${r.path === path ? '  ← in use' : r.exists ? '' : '  (none)'}`));
    lines.push(`  ${search.length + 1}. the built-in example${path === null ? '  ← in use' : ''}`);
    out(session, lines.join('\n') + '\n');
    return ExitCode.ok;
  }
  const loaded = await loadConfig(path);
  if (loaded.path === null && !flags.json) session.reporter.warn(BUILT_IN_NOTE);
  const names = Object.keys(loaded.config.environments);
  switch (verb) {
    case 'current': {
      const env = selectEnvironment(loaded, flags.env, io.env);
      const why = environmentReason(loaded, flags.env, io.env);
      if (flags.json) outJson(session, { environment: env.name, reason: why, protected: env.config.protected, config: loaded.path, builtIn: env.builtIn });
      else out(session, `${env.name}${env.config.protected ? ' (protected)' : ''}  — from ${why}; config ${loaded.path ?? 'built-in example'}\n`);
      return ExitCode.ok;
    }
    case 'list': {
      let current: string | undefined;
      try {
        current = selectEnvironment(loaded, flags.env, io.env).name;
      } catch {
        current = undefined;
      }
      const rows = names.map((n) => {
        const e = loaded.config.environments[n];
        return { name: n, protected: e.protected, current: n === current, default: n === loaded.config.default, description: e.description ?? '' };
      });
      if (flags.json) outJson(session, rows);
      else
        out(
          session,
          table(
            ['', 'ENVIRONMENT', 'KIND', 'DESCRIPTION'],
            rows.map((r) => [r.current ? '*' : '', r.name, `${r.protected ? 'protected' : 'unprotected'}${r.default ? ', default' : ''}`, r.description]),
          ),
        );
      return ExitCode.ok;
    }
    case 'view': {
      const env = selectEnvironment(loaded, args[0] ?? flags.env, io.env);
      // The file's own section (references as written), not the resolved secrets: nothing secret is ever read here.
      const section = redactConfig(loaded.config.environments[env.name]);
      const doc = { environment: env.name, config: loaded.path ?? 'built-in example', ...(section as Record<string, unknown>) };
      if (flags.json) outJson(session, doc);
      else {
        const { stringify } = await import('yaml');
        out(session, stringify(doc));
      }
      return ExitCode.ok;
    }
    default:
      throw new UsageError(`unknown config command "${verb}"`, 'runbook config current|list|view|path');
  }
}

/**
 * Secret references stay references ({ env: NAME } / { file: path }: what to set, never its value);
 * a plain string under a secret-looking key or a webhook is masked, and URL passwords are masked by the redactor.
 */
export function redactConfig(value: unknown, key?: string): unknown {
  if (typeof value === 'string') return key && /(token|password|secret|webhook|api[-_]?key)/i.test(key) ? REDACTED : value;
  if (Array.isArray(value)) return value.map((v) => redactConfig(v));
  if (value && typeof value === 'object') {
    const o = value as Record<string, unknown>;
    const keys = Object.keys(o);
    if (keys.length === 1 && (keys[0] === 'env' || keys[0] === 'file')) return o;
    return Object.fromEntries(keys.map((k) => [k, redactConfig(o[k], k)]));
  }
  return value;
}
