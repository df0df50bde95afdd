import { accessSync, constants, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { findConfigPath, loadConfig, selectEnvironment, type LoadedConfig, type ResolvedEnvironment } from '../core/config.js';
import { CheckFailedError, ExitCode, errorMessage, RunbookError } from '../core/errors.js';
import { describePermission, permissionsOf, type KubePermission } from '../core/kube-permissions.js';
import { declaredKubeCalls } from '../core/runner.js';
import { journalDir } from '../core/journal.js';
import type { Session } from '../core/session.js';
import { jsonText, visible } from '../core/terminal.js';
import { environmentReason } from './config-info.js';

export interface Check {
  name: string;
  ok: boolean;
  detail: string;
  fix?: string;
}

const ONLINE_TIMEOUT_MS = 5000;

/** Read-only checks of what a run needs; --online also reaches each configured service. Exit 4 when one fails. */
export async function doctor(session: Session, opts: { online: boolean }): Promise<number> {
  const { io } = session.deps;
  const { flags } = session;
  const checks: Check[] = [];
  const add = (c: Check) => checks.push(c);
  // Kubeconfigs are YAML (yaml is no SDK; loading the config imports it anyway).
  yamlParse ??= (await import('yaml')).parse;

  const path = findConfigPath(flags.config, io.env, io.cwd);
  let loaded: LoadedConfig | undefined;
  try {
    loaded = await loadConfig(path);
    add(
      path
        ? { name: 'config', ok: true, detail: `${path} is valid` }
        : {
            name: 'config',
            ok: false,
            detail: 'no config file found (only the built-in example: offline dry runs, explain, list)',
            fix: 'create ./runbook.yaml (see the README), or pass --config FILE or set RUNBOOK_CONFIG; `runbook config path` shows where runbook looks',
          },
    );
  } catch (err) {
    add({ name: 'config', ok: false, detail: errorMessage(err), fix: (err as RunbookError).hint ?? 'fix the config file' });
  }

  let env: ResolvedEnvironment | undefined;
  if (loaded) {
    try {
      env = selectEnvironment(loaded, flags.env, io.env);
      add({
        name: 'environment',
        ok: true,
        detail: `${env.name}${env.config.protected ? ' (protected)' : ''}, from ${environmentReason(loaded, flags.env, io.env)}`,
      });
    } catch (err) {
      add({ name: 'environment', ok: false, detail: errorMessage(err), fix: (err as RunbookError).hint });
    }
  }

  // The built-in example's targets are the seed's, not anyone's: checking them would only add noise.
  if (env && !env.builtIn) {
    checks.push(...sectionChecks(env, io.env));
    if (env.config.kubernetes) checks.push(kubeconfigCheck(env, io.env));
    checks.push(journalCheck(journalDir(io.env, env.journalDir)));
    if (opts.online && !env.builtIn) checks.push(...(await onlineChecks(session, env)));
  }

  const failed = checks.filter((c) => !c.ok).length;
  if (flags.json) {
    io.stdout.write(session.redactor.text(jsonText({ ok: failed === 0, environment: env?.name ?? null, online: opts.online, checks })) + '\n');
  } else {
    const c = session.colors;
    const lines = checks.flatMap((k) => [
      `${k.ok ? c.green('✔') : c.red('✖')} ${k.name.padEnd(14)} ${k.detail}`,
      ...(k.ok || !k.fix ? [] : [`  ${' '.repeat(14)} fix: ${k.fix}`]),
    ]);
    lines.push(
      '',
      failed
        ? `${failed} of ${checks.length} checks failed`
        : `all ${checks.length} checks passed${opts.online ? '' : ' (add --online to reach each service)'}`,
    );
    io.stdout.write(visible(session.redactor.text(lines.join('\n') + '\n'), true));
  }
  return failed ? ExitCode.check : ExitCode.ok;
}

const SECTIONS = [
  'kubernetes',
  'health',
  'aws',
  'rds',
  'postgres',
  'redis',
  'notify',
  'statuspage',
  'metrics',
  'backups',
  'certs',
  'dr',
  'cloudflare',
] as const;

/** Which sections the environment configures, and whether each secret reference in it resolves (values never shown). */
function sectionChecks(env: ResolvedEnvironment, processEnv: Record<string, string | undefined>): Check[] {
  const config = env.config as unknown as Record<string, unknown>;
  const present = SECTIONS.filter((s) => config[s] !== undefined);
  const missing = SECTIONS.filter((s) => config[s] === undefined);
  const checks: Check[] = [
    {
      name: 'sections',
      ok: present.length > 0,
      detail: present.length ? `configured: ${present.join(', ')}${missing.length ? `; not configured: ${missing.join(', ')}` : ''}` : 'nothing configured',
      fix: present.length ? undefined : `add sections to environments.${env.name} (procedures name the one they need)`,
    },
  ];
  const refs: Array<{ where: string; ref: { env: string } | { file: string } }> = [];
  const walk = (v: unknown, where: string) => {
    if (Array.isArray(v)) v.forEach((x, i) => walk(x, `${where}.${i}`));
    else if (v && typeof v === 'object') {
      const o = v as Record<string, unknown>;
      const keys = Object.keys(o);
      if (keys.length === 1 && typeof o.env === 'string') refs.push({ where, ref: { env: o.env } });
      else if (keys.length === 1 && typeof o.file === 'string') refs.push({ where, ref: { file: o.file } });
      else for (const k of keys) walk(o[k], where ? `${where}.${k}` : k);
    }
  };
  walk(config, `environments.${env.name}`);
  for (const { where, ref } of refs) {
    if ('env' in ref) {
      const set = processEnv[ref.env] !== undefined && processEnv[ref.env] !== '';
      checks.push({
        name: 'secret',
        ok: set,
        detail: `${where}: $${ref.env} ${set ? 'is set' : 'is not set'}`,
        fix: set ? undefined : `export ${ref.env}=… (or change ${where})`,
      });
    } else {
      let ok = true;
      try {
        accessSync(ref.file, constants.R_OK);
      } catch {
        ok = false;
      }
      checks.push({
        name: 'secret',
        ok,
        detail: `${where}: file ${ref.file} ${ok ? 'is readable' : 'cannot be read'}`,
        fix: ok ? undefined : `create ${ref.file} or fix its permissions`,
      });
    }
  }
  return checks;
}

/** The kubeconfig and context kubectl would use, read as files (no SDK). */
function kubeconfigCheck(env: ResolvedEnvironment, processEnv: Record<string, string | undefined>): Check {
  const k = env.config.kubernetes!;
  const files = k.kubeconfig
    ? [k.kubeconfig]
    : processEnv.KUBECONFIG
      ? processEnv.KUBECONFIG.split(':').filter(Boolean)
      : [join(processEnv.HOME || homedir(), '.kube', 'config')];
  let wanted = k.context;
  const readable: string[] = [];
  for (const f of files) {
    let doc: { 'current-context'?: string; contexts?: Array<{ name?: string }> } | undefined;
    try {
      doc = parseKubeconfig(readFileSync(f, 'utf8'));
      readable.push(f);
    } catch {
      continue;
    }
    wanted ??= doc?.['current-context'] || undefined;
    if (wanted && doc?.contexts?.some((c) => c.name === wanted)) {
      return { name: 'kubeconfig', ok: true, detail: `context ${wanted} in ${f}, namespace ${k.namespace}` };
    }
  }
  if (!readable.length) {
    return {
      name: 'kubeconfig',
      ok: false,
      detail: `cannot read ${files.join(', ')}`,
      fix: 'set KUBECONFIG or kubernetes.kubeconfig, or sign in to the cluster (e.g. aws eks update-kubeconfig / gcloud container clusters get-credentials)',
    };
  }
  return {
    name: 'kubeconfig',
    ok: false,
    detail: wanted ? `context ${wanted} not found in ${readable.join(', ')}` : `no current context in ${readable.join(', ')}`,
    fix: `kubectl config get-contexts lists them; set environments.${env.name}.kubernetes.context`,
  };
}

let yamlParse: ((text: string) => unknown) | undefined;
function parseKubeconfig(text: string): { 'current-context'?: string; contexts?: Array<{ name?: string }> } {
  if (!yamlParse) throw new Error('yaml not loaded');
  return yamlParse(text) as { 'current-context'?: string; contexts?: Array<{ name?: string }> };
}

function journalCheck(dir: string): Check {
  try {
    mkdirSync(join(dir, 'runs'), { recursive: true, mode: 0o700 });
    const probe = join(dir, 'runs', `.doctor-${process.pid}`);
    writeFileSync(probe, '');
    rmSync(probe);
    return { name: 'journal', ok: true, detail: `${dir} is writable` };
  } catch (err) {
    return {
      name: 'journal',
      ok: false,
      detail: `${dir} is not writable: ${(err as NodeJS.ErrnoException).code ?? errorMessage(err)}`,
      fix: 'set journal.dir in the config or $RUNBOOK_JOURNAL_DIR to a writable folder',
    };
  }
}

async function withTimeout<T>(what: string, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ONLINE_TIMEOUT_MS / 1000}s`)), ONLINE_TIMEOUT_MS);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Each configured service, reached read-only through the run's client factories (SDKs load here, only with --online). */
async function onlineChecks(session: Session, env: ResolvedEnvironment): Promise<Check[]> {
  const { makeClients, defaultFactories } = await import('../clients/index.js');
  const clients = makeClients(env, session.deps.io.env, session.deps.clientFactories ?? defaultFactories, session.redactor);
  const checks: Check[] = [];
  const probe = async (name: string, run: () => Promise<string>, fix: string) => {
    try {
      checks.push({ name, ok: true, detail: await withTimeout(name, run()) });
    } catch (err) {
      checks.push({ name, ok: false, detail: errorMessage(err), fix: (err as RunbookError).hint ?? fix });
    }
  };
  const c = env.config;
  try {
    if (c.kubernetes) {
      const k = c.kubernetes;
      await probe(
        'kubernetes',
        async () => {
          const kube = await clients.kube();
          await kube.getDeployment(k.deployment);
          return `${kube.server}: deployment ${k.deployment} in ${kube.namespace} is readable`;
        },
        `kubectl --context ${k.context ?? '(current)'} -n ${k.namespace} get deployment ${k.deployment}`,
      );
      await probe(
        'kubernetes rbac',
        async () => {
          const kube = await clients.kube();
          const needed = await neededPermissions();
          const missing = await kube.cannotDo(needed);
          if (missing.length > 0) {
            throw new CheckFailedError(
              `not allowed to ${missing.map((p) => describePermission(p, kube.namespace)).join('; ')}`,
              `apply the Role that runbook rbac -e ${env.name} prints (it is derived from what the procedures call)`,
            );
          }
          return `every permission the procedures need (${needed.length}) is granted in ${kube.namespace}`;
        },
        `runbook rbac -e ${env.name}`,
      );
    }
    if (c.postgres) {
      await probe(
        'postgres',
        async () => {
          const pg = await clients.postgres();
          const [row] = await pg.query<{ role?: string }>('SELECT current_user AS role');
          return `${pg.target}: answered${row?.role ? ` as role ${row.role}` : ''}`;
        },
        'check postgres.url, the network path and the role (psql "$URL" -c "SELECT 1")',
      );
    }
    if (c.redis) {
      await probe(
        'redis',
        async () => {
          const r = await clients.redis();
          return `${r.target}: connected, server ready`;
        },
        'check redis.url or redis.nodes and the network path (redis-cli -u URL PING)',
      );
    }
    if (c.aws) {
      const aws = c.aws;
      await probe(
        'aws identity',
        async () => {
          const { callerIdentity } = await import('../clients/sts.js');
          const id = await callerIdentity({ region: aws.region, profile: aws.profile, endpoint: aws.endpoint }, session.deps.io.env);
          return `account ${id.account} as ${id.arn} (${aws.region}${aws.profile ? `, profile ${aws.profile}` : ''})`;
        },
        `aws sts get-caller-identity${aws.profile ? ` --profile ${aws.profile}` : ''}: sign in (aws sso login, or set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)`,
      );
    }
    if (c.aws && c.rds) {
      const rds = c.rds;
      await probe(
        'aws',
        async () => {
          const api = await clients.rds();
          const found = await api.describeInstance(rds.instance);
          return `RDS ${rds.instance} in ${c.aws!.region}: ${found ? found.status : 'not found'}`;
        },
        `aws sts get-caller-identity; aws rds describe-db-instances --db-instance-identifier ${rds.instance}`,
      );
    }
    if (c.health) {
      const url = c.health.url;
      await probe(
        'health',
        async () => {
          const res = await clients.http.request(url, { method: 'GET', timeoutMs: ONLINE_TIMEOUT_MS });
          if (res.status >= 400) throw new Error(`${url}: HTTP ${res.status}`);
          return `${url}: HTTP ${res.status}`;
        },
        `curl -i ${url}`,
      );
    }
  } finally {
    await clients.closeAll().catch(() => undefined);
  }
  return checks;
}

/** The RBAC every procedure's declared Kubernetes calls need (SelfSubjectAccessReview each, as a run's preflight does). */
async function neededPermissions(): Promise<KubePermission[]> {
  const { catalog } = await import('../procedures/catalog.js');
  const procs = await Promise.all(catalog.map((e) => e.load()));
  return permissionsOf(procs.flatMap((p) => declaredKubeCalls(p)));
}
