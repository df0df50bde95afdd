/**
 * Test PKI with the openssl CLI (a test CA and leaf certificates with chosen SANs and validity,
 * expired or self-signed ones included) and a bare node:tls server presenting a certificate.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { execa } from 'execa';
import { LOOPBACK, onProcessExit, once, readPem, requireBinary } from './util.js';

export const OPENSSL_INSTALL_HINT = 'apt-get install -y openssl';

export interface CertSpec {
  /** File base name and key in the result, e.g. "api" → api.crt / api.key. */
  name: string;
  /** DNS names and/or IP addresses for subjectAltName; the first one is also the CN. */
  hosts: string[];
  /**
   * notAfter = now + days (default 365). Zero or negative gives an already expired certificate.
   * notBefore = now - 1 h for valid certs, notAfter - 30 d for expired ones.
   */
  days?: number;
  /** Explicit validity, overriding `days`. */
  notBefore?: Date;
  notAfter?: Date;
  /** Self-signed instead of issued by the test CA. */
  selfSigned?: boolean;
}

export interface IssuedCert {
  name: string;
  hosts: string[];
  /** Paths of PEM files. */
  certPem: string;
  keyPem: string;
  /** Leaf followed by the CA certificate (just the leaf when self-signed). */
  chainPem: string;
  notBefore: Date;
  notAfter: Date;
  selfSigned: boolean;
}

export interface TestCertificates {
  dir: string;
  ca: { certPem: string; keyPem: string };
  certs: Record<string, IssuedCert>;
}

const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

async function openssl(args: string[], cwd: string): Promise<void> {
  const bin = requireBinary('openssl', OPENSSL_INSTALL_HINT);
  const res = await execa(bin, args, { cwd, reject: false, all: true, stdin: 'ignore', env: { OPENSSL_CONF: '/dev/null' } });
  if (res.exitCode !== 0) {
    throw new Error(`openssl ${args.join(' ')} failed (exit ${res.exitCode}):\n${res.all ?? ''}`);
  }
}

/** openssl ca -startdate/-enddate format (GeneralizedTime, seconds precision). */
function asn1Time(d: Date): string {
  return d
    .toISOString()
    .replace(/[-:T]/g, '')
    .replace(/\.\d+Z$/, 'Z');
}

const floorSeconds = (ms: number): Date => new Date(Math.floor(ms / 1000) * 1000);

/** Subject fields can't contain '/', '=' or ',' unescaped; hostnames and IPs never do. */
function cnOf(spec: CertSpec): string {
  const cn = spec.hosts[0] ?? spec.name;
  if (/[/=,+]/.test(cn)) throw new Error(`unsupported CN ${cn}`);
  return cn;
}

/**
 * Create a test CA plus one certificate per spec under `dir` (created if needed) using the
 * openssl CLI with EC P-256 keys. Returns the PEM paths and the exact validity of each cert.
 */
export async function makeTestCertificates(dir: string, specs: CertSpec[]): Promise<TestCertificates> {
  requireBinary('openssl', OPENSSL_INSTALL_HINT);
  fs.mkdirSync(dir, { recursive: true });
  const names = new Set<string>();
  for (const s of specs) {
    if (!/^[\w.-]+$/.test(s.name) || names.has(s.name)) throw new Error(`bad or duplicate cert name ${s.name}`);
    if (s.hosts.length === 0) throw new Error(`cert ${s.name}: hosts must not be empty`);
    names.add(s.name);
  }

  const caCert = path.join(dir, 'ca.crt');
  const caKey = path.join(dir, 'ca.key');
  const caCnf = path.join(dir, 'ca.cnf');
  fs.writeFileSync(
    caCnf,
    [
      '[ req ]',
      'distinguished_name = dn',
      'prompt = no',
      'x509_extensions = v3_ca',
      '[ dn ]',
      'CN = runbook test CA',
      'O = runbook tests',
      '[ v3_ca ]',
      'basicConstraints = critical, CA:TRUE',
      'keyUsage = critical, keyCertSign, cRLSign',
      'subjectKeyIdentifier = hash',
      '',
    ].join('\n'),
  );
  await openssl(['req', '-x509', '-config', caCnf, ...EC_KEY, '-keyout', caKey, '-out', caCert, '-days', '3650', '-sha256'], dir);

  const now = Date.now();
  const issued = await Promise.all(
    specs.map(async (spec): Promise<IssuedCert> => {
      const days = spec.days ?? 365;
      const notAfter = floorSeconds(spec.notAfter?.getTime() ?? now + days * 86_400_000);
      const notBefore = floorSeconds(spec.notBefore?.getTime() ?? (notAfter.getTime() > now ? now - 3_600_000 : notAfter.getTime() - 30 * 86_400_000));
      const base = path.join(dir, spec.name);
      const cnf = `${base}.cnf`;
      const csr = `${base}.csr`;
      const key = `${base}.key`;
      const crt = `${base}.crt`;
      const chain = `${base}.chain.pem`;
      const db = `${base}.index`;
      const newCerts = `${base}.newcerts`;
      fs.mkdirSync(newCerts, { recursive: true });
      fs.writeFileSync(db, '');
      fs.writeFileSync(`${base}.serial`, `${randomBytes(8).toString('hex').replace(/^./, '1')}\n`);
      const san = spec.hosts.map((h) => (net.isIP(h) ? `IP:${h}` : `DNS:${h}`)).join(', ');
      fs.writeFileSync(
        cnf,
        [
          '[ ca ]',
          'default_ca = test_ca',
          '[ test_ca ]',
          `database = ${db}`,
          `new_certs_dir = ${newCerts}`,
          `serial = ${base}.serial`,
          'default_md = sha256',
          'policy = policy_any',
          'unique_subject = no',
          'email_in_dn = no',
          'copy_extensions = none',
          '[ policy_any ]',
          'commonName = supplied',
          '[ req ]',
          'distinguished_name = dn',
          'prompt = no',
          '[ dn ]',
          `CN = ${cnOf(spec)}`,
          '[ leaf_ext ]',
          'basicConstraints = critical, CA:FALSE',
          'keyUsage = critical, digitalSignature, keyEncipherment',
          'extendedKeyUsage = serverAuth, clientAuth',
          `subjectAltName = ${san}`,
          'subjectKeyIdentifier = hash',
          ...(spec.selfSigned ? [] : ['authorityKeyIdentifier = keyid']),
          '',
        ].join('\n'),
      );
      await openssl(['req', '-new', '-config', cnf, ...EC_KEY, '-keyout', key, '-out', csr], dir);
      await openssl(
        [
          'ca',
          '-batch',
          '-config',
          cnf,
          '-extensions',
          'leaf_ext',
          '-notext',
          '-in',
          csr,
          '-out',
          crt,
          '-startdate',
          asn1Time(notBefore),
          '-enddate',
          asn1Time(notAfter),
          ...(spec.selfSigned ? ['-selfsign', '-keyfile', key] : ['-cert', caCert, '-keyfile', caKey]),
        ],
        dir,
      );
      const leafPem = fs.readFileSync(crt, 'utf8');
      fs.writeFileSync(chain, spec.selfSigned ? leafPem : leafPem + fs.readFileSync(caCert, 'utf8'));
      return {
        name: spec.name,
        hosts: spec.hosts,
        certPem: crt,
        keyPem: key,
        chainPem: chain,
        notBefore,
        notAfter,
        selfSigned: spec.selfSigned ?? false,
      };
    }),
  );
  return {
    dir,
    ca: { certPem: caCert, keyPem: caKey },
    certs: Object.fromEntries(issued.map((c) => [c.name, c])),
  };
}

export interface StartTlsServerOptions {
  /** Certificate (or chain) and key: PEM contents or file paths. */
  certPem: string;
  keyPem: string;
  /** CA for verifying client certs (with requestCert). */
  caPem?: string;
  requestCert?: boolean;
  /** Called for each handshaken connection; by default the socket is left open until the client closes it. */
  onConnection?: (socket: tls.TLSSocket) => void;
}

export interface TlsServerService {
  host: string;
  port: number;
  stop(): Promise<void>;
}

/** A node:tls server on a random loopback port presenting the given certificate. */
export async function startTlsServer(opts: StartTlsServerOptions): Promise<TlsServerService> {
  const sockets = new Set<net.Socket>();
  const server = tls.createServer(
    {
      cert: readPem(opts.certPem),
      key: readPem(opts.keyPem),
      ...(opts.caPem ? { ca: readPem(opts.caPem) } : {}),
      requestCert: opts.requestCert ?? false,
      rejectUnauthorized: false,
    },
    (socket) => {
      socket.on('error', () => undefined);
      opts.onConnection?.(socket);
    },
  );
  server.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
  });
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, LOOPBACK, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.unref();
  const port = (server.address() as net.AddressInfo).port;
  const unregister = onProcessExit(() => {
    server.close();
  });
  const stop = once(async () => {
    unregister();
    const closed = new Promise<void>((r) => server.close(() => r()));
    for (const s of sockets) s.destroy();
    await closed;
  });
  return { host: LOOPBACK, port, stop };
}
