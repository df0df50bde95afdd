import { readFileSync } from 'node:fs';
import { parseHostPort, type ServedCertificate } from '../../clients/tls.js';
import type { ResolvedEnvironment } from '../../core/config.js';
import { parseDuration } from '../../core/duration.js';
import { UsageError } from '../../core/errors.js';
import type { StepContext } from '../../core/procedure.js';
import { table } from '../../core/table.js';

/** One line of `cert check`: a certificate, or the error that kept us from reading it. */
export interface CertRow extends Partial<ServedCertificate> {
  target: string;
  status: 'ok' | 'expiring' | 'expired' | 'error';
  error?: string;
}

export interface CertReport {
  minDays: number;
  rows: CertRow[];
}

export interface CertParams {
  hosts?: string[];
  minDays?: number;
  ca?: string;
}

export function certHosts(p: CertParams, env: ResolvedEnvironment): Array<{ target: string; host: string; port: number }> {
  const list = p.hosts?.length ? p.hosts : (env.config.certs?.hosts ?? []);
  if (list.length === 0)
    throw new UsageError('no hosts to check', `name them (runbook cert check example.com api.example.com:8443) or set environments.${env.name}.certs.hosts`);
  return list.map((target) => {
    try {
      return { target, ...parseHostPort(target) };
    } catch (err) {
      throw new UsageError((err as Error).message, 'use host, host:port or [ipv6]:port');
    }
  });
}

export function minDaysOf(p: CertParams, env: ResolvedEnvironment): number {
  return p.minDays ?? env.config.certs?.minDays ?? 14;
}

/** Extra CA bundles (--ca, then certs.ca), read before anything is contacted. */
export function extraCas(p: CertParams, env: ResolvedEnvironment): string[] {
  const files = [p.ca, env.config.certs?.ca].filter((f): f is string => Boolean(f));
  return files.map((f) => {
    let pem: string;
    try {
      pem = readFileSync(f, 'utf8');
    } catch (err) {
      throw new UsageError(`cannot read CA file ${f}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new UsageError(`CA file ${f} holds no PEM certificate`);
    return pem;
  });
}

/** Checks every host in parallel; an unreachable host becomes an error row, never a crash. */
export async function checkHosts<P extends CertParams>(
  ctx: Pick<StepContext<P>, 'params' | 'env' | 'clients' | 'now' | 'signal' | 'log'>,
): Promise<CertReport> {
  const { inspectCertificate } = await ctx.clients.tls();
  const minDays = minDaysOf(ctx.params, ctx.env);
  const ca = extraCas(ctx.params, ctx.env);
  const timeoutMs = parseDuration(ctx.env.config.certs?.timeout ?? '10s');
  const rows = await Promise.all(
    certHosts(ctx.params, ctx.env).map(async ({ target, host, port }): Promise<CertRow> => {
      try {
        const c = await inspectCertificate(host, port, { ca, timeoutMs, now: ctx.now(), signal: ctx.signal });
        const status = c.daysLeft < 0 ? 'expired' : c.daysLeft < minDays ? 'expiring' : 'ok';
        if (!c.trusted) ctx.log(`${target}: certificate not trusted (${c.trustError})`);
        return { target, ...c, status };
      } catch (err) {
        if (ctx.signal.aborted) throw err;
        return { target, status: 'error', error: (err as Error).message };
      }
    }),
  );
  return { minDays, rows };
}

/** The exit-4 message: hosts under the threshold, and hosts that could not be checked. */
export function certProblems(r: CertReport | undefined): string | null {
  if (!r) return null;
  const low = r.rows.filter((x) => x.status === 'expiring' || x.status === 'expired');
  const errs = r.rows.filter((x) => x.status === 'error');
  const parts: string[] = [];
  if (low.length) parts.push(`certificates below ${r.minDays} days: ${low.map((x) => `${x.target} (${x.daysLeft} days)`).join(', ')}`);
  if (errs.length) parts.push(`could not check: ${errs.map((x) => `${x.target} (${x.error})`).join(', ')}`);
  return parts.length ? parts.join('; ') : null;
}

export function renderCerts(r: CertReport | undefined): string {
  if (!r) return '';
  return table(
    ['HOST', 'SUBJECT', 'ISSUER', 'SANS', 'NOT AFTER', 'DAYS', 'TRUSTED', 'STATUS'],
    r.rows.map((x) =>
      x.status === 'error'
        ? [x.target, '', '', '', '', '', '', `error: ${x.error}`]
        : [
            x.target,
            x.subject,
            x.issuer,
            (x.sans ?? []).join(','),
            x.notAfter?.slice(0, 10),
            x.daysLeft,
            x.trusted ? 'yes' : `no (${x.selfSigned ? 'self-signed' : x.trustError})`,
            x.status,
          ],
    ),
  );
}
