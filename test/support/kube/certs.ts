/**
 * Test PKI for the fake Kubernetes API server: a throw-away CA and a server
 * certificate (SAN IP:127.0.0.1, DNS:localhost) generated with the `openssl`
 * binary. Generated once per process and cached (ECDSA P-256, so it is fast).
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface TestCerts {
  /** CA certificate (PEM); trust this to talk to the server. */
  caPem: string;
  /** Server certificate (PEM), signed by the CA. */
  certPem: string;
  /** Server private key (PEM). */
  keyPem: string;
}

let cached: Promise<TestCerts> | undefined;

/** Returns the process-wide test certificates, generating them on first use. */
export function getTestCerts(): Promise<TestCerts> {
  cached ??= generateTestCerts().catch((err: unknown) => {
    cached = undefined;
    throw err;
  });
  return cached;
}

/** Generates a fresh CA + server certificate in a temp dir (removed afterwards). */
export async function generateTestCerts(): Promise<TestCerts> {
  const dir = await mkdtemp(join(tmpdir(), 'kube-test-pki-'));
  const p = (f: string): string => join(dir, f);
  try {
    const ecKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
    await run('openssl', [
      'req', '-x509', ...ecKey, '-keyout', p('ca.key'), '-out', p('ca.crt'), '-days', '3',
      '-subj', '/CN=runbook-test-kube-ca',
      '-addext', 'basicConstraints=critical,CA:TRUE',
      '-addext', 'keyUsage=critical,keyCertSign,cRLSign,digitalSignature',
    ]);
    await run('openssl', ['req', '-new', ...ecKey, '-keyout', p('server.key'), '-out', p('server.csr'), '-subj', '/CN=kube-apiserver']);
    await writeFile(
      p('ext.cnf'),
      [
        'basicConstraints=critical,CA:FALSE',
        'keyUsage=critical,digitalSignature,keyEncipherment',
        'extendedKeyUsage=serverAuth',
        'subjectAltName=IP:127.0.0.1,DNS:localhost',
        '',
      ].join('\n'),
    );
    await run('openssl', [
      'x509', '-req', '-in', p('server.csr'), '-CA', p('ca.crt'), '-CAkey', p('ca.key'), '-CAcreateserial',
      '-out', p('server.crt'), '-days', '2', '-sha256', '-extfile', p('ext.cnf'),
    ]);
    const [caPem, certPem, keyPem] = await Promise.all([
      readFile(p('ca.crt'), 'utf8'),
      readFile(p('server.crt'), 'utf8'),
      readFile(p('server.key'), 'utf8'),
    ]);
    return { caPem, certPem, keyPem };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
