import { isIP } from 'node:net';
import * as tls from 'node:tls';
import { X509Certificate } from 'node:crypto';

/** What a TLS endpoint presented, and whether we would trust it. */
export interface ServedCertificate {
  subject: string;
  issuer: string;
  sans: string[];
  notBefore: string;
  notAfter: string;
  /** Whole days until notAfter (negative once expired). */
  daysLeft: number;
  /** The chain verifies against the system roots (plus any extra CA) AND the name matches. */
  trusted: boolean;
  /** Why it is not trusted (chain or hostname), when it is not. */
  trustError?: string;
  selfSigned: boolean;
  fingerprint256: string;
}

const DAY_MS = 86_400_000;

export function daysLeft(notAfter: Date, now: Date): number {
  return Math.floor((notAfter.getTime() - now.getTime()) / DAY_MS);
}

/** "host", "host:port", "[::1]:8443" → host and port (default 443). */
export function parseHostPort(spec: string): { host: string; port: number } {
  const v6 = /^\[([0-9a-fA-F:.]+)\](?::(\d+))?$/.exec(spec);
  const plain = /^([A-Za-z0-9.-]+)(?::(\d+))?$/.exec(spec);
  const m = v6 ?? plain;
  if (!m) throw new Error(`invalid host "${spec}"`);
  const host = m[1];
  const port = m[2] === undefined ? 443 : Number(m[2]);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`invalid port in "${spec}"`);
  if (!v6 && (host.startsWith('-') || host.endsWith('-') || host.includes('..') || host.length > 253)) throw new Error(`invalid host "${spec}"`);
  return { host, port };
}

const TRUST_REASONS: Record<string, string> = {
  ERR_TLS_CERT_ALTNAME_INVALID: 'name mismatch',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'self-signed',
  SELF_SIGNED_CERT_IN_CHAIN: 'unknown root CA',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'unknown issuer',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'incomplete chain',
  CERT_HAS_EXPIRED: 'expired',
  CERT_NOT_YET_VALID: 'not yet valid',
};

const cn = (x: unknown): string => {
  const o = x as Record<string, string | string[]> | undefined;
  if (!o) return '';
  const v = o.CN ?? o.O ?? '';
  return Array.isArray(v) ? v.join(', ') : v;
};

/**
 * Connects with SNI (for names, not IP addresses), reads the leaf certificate and closes. The chain
 * is verified separately from the handshake (rejectUnauthorized: false) so an untrusted certificate
 * still has its dates reported.
 */
export function inspectCertificate(
  host: string,
  port: number,
  opts: { ca?: string[]; timeoutMs?: number; now?: Date; signal?: AbortSignal } = {},
): Promise<ServedCertificate> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host,
      port,
      servername: isIP(host) ? undefined : host,
      rejectUnauthorized: false,
      ca: opts.ca?.length ? [...tls.rootCertificates, ...opts.ca] : undefined,
    });
    const done = (err: Error | null, value?: ServedCertificate) => {
      opts.signal?.removeEventListener('abort', onAbort);
      socket.destroy();
      if (err) reject(err);
      else resolve(value!);
    };
    const onAbort = () => done(opts.signal!.reason as Error);
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    socket.setTimeout(opts.timeoutMs ?? 10_000, () => done(new Error(`no TLS handshake within ${opts.timeoutMs ?? 10_000} ms`)));
    socket.once('error', (err: NodeJS.ErrnoException) => done(new Error(err.code ?? err.message)));
    socket.once('secureConnect', () => {
      const peer = socket.getPeerCertificate(false);
      if (!peer || !peer.raw) return done(new Error('the server presented no certificate'));
      const x = new X509Certificate(peer.raw);
      const notAfter = new Date(x.validTo);
      const identity = tls.checkServerIdentity(host, peer);
      const code = socket.authorized ? undefined : String(socket.authorizationError ?? 'not trusted');
      const chainError = code === undefined || code === 'ERR_TLS_CERT_ALTNAME_INVALID' ? undefined : `${TRUST_REASONS[code] ?? code}`;
      done(null, {
        subject: cn(peer.subject),
        issuer: cn(peer.issuer),
        sans: (peer.subjectaltname ?? '')
          .split(',')
          .map((s) => s.trim().replace(/^(DNS|IP Address):/, ''))
          .filter(Boolean),
        notBefore: new Date(x.validFrom).toISOString(),
        notAfter: notAfter.toISOString(),
        daysLeft: daysLeft(notAfter, opts.now ?? new Date()),
        trusted: !chainError && !identity,
        trustError: chainError ?? (identity ? `name mismatch (${(peer.subjectaltname ?? cn(peer.subject)).replace(/DNS:/g, '')})` : undefined),
        selfSigned: x.issuer === x.subject,
        fingerprint256: x.fingerprint256,
      });
    });
  });
}

/** Reads a PEM certificate file (the first certificate) for its expiry. */
export function certificateFileInfo(pem: string, now: Date): { subject: string; notAfter: string; daysLeft: number } {
  const x = new X509Certificate(pem);
  const notAfter = new Date(x.validTo);
  return { subject: x.subject.replace(/\n/g, ', '), notAfter: notAfter.toISOString(), daysLeft: daysLeft(notAfter, now) };
}

/** TLS endpoints and certificate files: `ctx.clients.tls()`. */
export const tlsApi = { inspectCertificate, certificateFileInfo };
export type TlsApi = typeof tlsApi;
