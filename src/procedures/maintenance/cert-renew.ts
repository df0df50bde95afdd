import { readFile } from 'node:fs/promises';
import type { ResolvedEnvironment } from '../../core/config.js';
import { CheckFailedError, StepError, UsageError } from '../../core/errors.js';
import { defineProcedure, stepFor, type StepContext } from '../../core/procedure.js';
import { certProblems, checkHosts, extraCas, renderCerts, minDaysOf, type CertParams } from './certs.js';

type RenewParams = Omit<CertParams, 'hosts'>;

const certsOf = (env: ResolvedEnvironment) => {
  const c = env.config.certs;
  if (!c) throw new UsageError(`environment "${env.name}" has no certs section`, `add environments.${env.name}.certs: { hosts, certbot, reload, files }`);
  return c;
};

const tail = (text: string) => text.trim().split('\n').filter(Boolean).slice(-1)[0] ?? '';

const step = stepFor<RenewParams>();

const servedBefore = step({
  id: 'before',
  title: 'Read the served certificates before renewing',
  why: 'Records what is served now, so the report shows before → after.',
  risk: 'read',
  when: (_p, env) => (env.config.certs?.hosts.length ?? 0) > 0,
  equivalent: (_p, env) => `runbook cert check ${(env.config.certs?.hosts ?? []).join(' ')}`,
  run: (ctx) => checkHosts(ctx),
});

const renew = step({
  id: 'certbot',
  title: 'Renew certificates with certbot',
  why: 'certbot renews every certificate that is close to expiry and leaves the others alone.',
  risk: 'write',
  equivalent: (_p, env) => (env.config.certs?.certbot ?? ['certbot', 'renew']).join(' '),
  plan: async (ctx) => [{ action: 'run', target: certsOf(ctx.env).certbot.join(' '), after: 'certificates near expiry renewed' }],
  async run(ctx) {
    const [file, ...args] = certsOf(ctx.env).certbot;
    const processes = await ctx.clients.processes();
    let r;
    try {
      r = await processes.run(file, args, { signal: ctx.signal, timeoutMs: 10 * 60_000, onLine: (l) => ctx.log(`certbot: ${l}`) });
    } catch (err) {
      throw new StepError((err as Error).message, 'install certbot, or set certs.certbot to its path and arguments');
    }
    if (r.exitCode !== 0)
      throw new StepError(`${file} exited ${r.exitCode}: ${tail(r.stderr) || tail(r.stdout)}`, "see certbot's log (/var/log/letsencrypt/letsencrypt.log)");
    return { exitCode: 0, summary: tail(r.stdout) };
  },
  postcondition: {
    describe: 'the certificate files (with none configured: the served certificates) have the days left asked for',
    // certbot renew renews only what is near expiry and leaves the rest alone: running it again is safe.
    async check(ctx) {
      if (certsOf(ctx.env).files.length === 0) {
        if (certsOf(ctx.env).hosts.length === 0) return { holds: false, found: 'neither certificate files nor hosts are configured to re-check' };
        const problem = certProblems(await checkHosts(ctx));
        return problem ? { holds: false, found: problem } : { holds: true };
      }
      const min = minDaysOf(ctx.params, ctx.env);
      const low = (await readCertFiles(ctx)).filter((f) => f.daysLeft < min);
      return low.length === 0 ? { holds: true } : { holds: false, found: low.map((f) => `${f.file} has ${f.daysLeft} days left`).join(', ') };
    },
  },
});

async function readCertFiles(ctx: Pick<StepContext<RenewParams>, 'env' | 'clients' | 'now'>) {
  const { certificateFileInfo } = await ctx.clients.tls();
  const files = [];
  for (const f of certsOf(ctx.env).files) {
    let info;
    try {
      info = certificateFileInfo(await readFile(f, 'utf8'), ctx.now());
    } catch (err) {
      throw new StepError(`cannot read certificate ${f}: ${(err as Error).message}`);
    }
    files.push({ file: f, ...info });
  }
  return files;
}

const renewedFiles = step({
  id: 'files',
  title: 'Check the renewed certificate files',
  why: 'The web server only serves what is on disk: reloading is pointless if certbot did not renew.',
  risk: 'read',
  followsWrite: true,
  when: (_p, env) => (env.config.certs?.files.length ?? 0) > 0,
  equivalent: (_p, env) => (env.config.certs?.files ?? []).map((f) => `openssl x509 -noout -enddate -in ${f}`).join('; '),
  plan: async (ctx) => certsOf(ctx.env).files.map((f) => ({ action: 'check expiry of', target: f, after: `≥ ${minDaysOf(ctx.params, ctx.env)} days left` })),
  async run(ctx) {
    const min = minDaysOf(ctx.params, ctx.env);
    const files = await readCertFiles(ctx);
    const low = files.filter((f) => f.daysLeft < min);
    if (low.length)
      throw new CheckFailedError(
        `certbot did not renew: ${low.map((f) => `${f.file} (${f.daysLeft} days left)`).join(', ')}; the web server was not reloaded`,
        'run certbot renew --dry-run -v to see why',
      );
    return { files };
  },
});

const reloadServer = step({
  id: 'reload',
  title: 'Reload the web server',
  why: 'A reload makes the web server pick up the renewed files without dropping connections; it is gated because a broken configuration would take the site down.',
  risk: 'destructive',
  equivalent: (_p, env) => (env.config.certs?.reload ?? ['nginx', '-s', 'reload']).join(' '),
  plan: async (ctx) => [{ action: 'run', target: certsOf(ctx.env).reload.join(' ') }],
  async run(ctx) {
    const [file, ...args] = certsOf(ctx.env).reload;
    const processes = await ctx.clients.processes();
    let r;
    try {
      r = await processes.run(file, args, { signal: ctx.signal, timeoutMs: 60_000 });
    } catch (err) {
      throw new StepError((err as Error).message, 'set certs.reload to the reload command of your web server');
    }
    if (r.exitCode !== 0)
      throw new StepError(`${file} exited ${r.exitCode}: ${tail(r.stderr) || tail(r.stdout)}`, 'check the configuration (nginx -t) and reload by hand');
    return { exitCode: 0 };
  },
  postcondition: {
    describe: 'the hosts serve certificates with the days left asked for',
    // A reload keeps connections and serves what is on disk, behind its gate again: safe to repeat.
    async check(ctx) {
      if (certsOf(ctx.env).hosts.length === 0) return { holds: false, found: 'no hosts are configured to re-check' };
      const problem = certProblems(await checkHosts(ctx));
      return problem ? { holds: false, found: problem } : { holds: true };
    },
  },
});

const servedAfter = step({
  id: 'after',
  title: 'Check the served certificates again',
  why: 'The proof is what users are served after the reload.',
  risk: 'read',
  followsWrite: true,
  when: (_p, env) => (env.config.certs?.hosts.length ?? 0) > 0,
  equivalent: (_p, env) => `runbook cert check ${(env.config.certs?.hosts ?? []).join(' ')}`,
  plan: async (ctx) => [{ action: 'check', target: certsOf(ctx.env).hosts.join(', '), after: `≥ ${minDaysOf(ctx.params, ctx.env)} days left` }],
  run: (ctx) => checkHosts(ctx),
});

export default defineProcedure<RenewParams>({
  name: 'cert renew',
  summary: 'certbot renew → check the renewed files → (gate) reload the web server → check the served certificates',
  seedFixes: [
    '`certbot renew --nginx` then `certbot certificates` leaves a human to read the dates; this checks the renewed files and refuses to reload when certbot did not actually renew.',
    'The seed reloads nginx without approval and never checks what is served afterwards; the reload is gated, and the served certificates are checked again (exit 4 if still expiring).',
  ],
  params: [
    {
      name: 'minDays',
      flag: '--min-days <n>',
      description: 'the renewed certificate must have at least this many days left (default: certs.minDays or 14)',
      type: 'int',
      min: 0,
      max: 3650,
    },
    { name: 'ca', flag: '--ca <file>', description: 'an extra CA bundle (PEM) to trust besides the system roots', type: 'string' },
  ],
  examples: [[]],
  requires: [],
  validate(p, env) {
    certsOf(env);
    extraCas(p, env);
  },
  steps: [servedBefore, renew, renewedFiles, reloadServer, servedAfter],
  check: (run) => {
    const p = certProblems(run.find(servedAfter));
    return p ? `after renewal and reload: ${p}` : null;
  },
  render(run) {
    const was = run.find(servedBefore);
    const now = run.find(servedAfter);
    const parts: string[] = [];
    if (was) parts.push(`before:\n${renderCerts(was)}`);
    if (now) parts.push(`after:\n${renderCerts(now)}`);
    return parts.join('\n');
  },
});
