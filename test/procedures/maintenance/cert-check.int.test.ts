/** cert check / cert renew against local TLS servers with test certificates, and fake certbot/nginx executables. */
import { copyFileSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, tempDir } from '../../support/cli.js';
import { writeConfig } from '../../support/config.js';
import { freePort, makeTestCertificates, startTlsServer, type TestCertificates, type TlsServerService } from '../../support/services/index.js';
import { writeScript } from '../../support/sandbox/dr-part.js';

let certs: TestCertificates;
const servers: Record<string, TlsServerService> = {};
let deadPort: number;
/** A server that reads its certificate from `live/` again after each "reload" (a stamp file the fake nginx touches). */
let web: { port: number; close(): Promise<void> };
let liveDir: string;
let binDir: string;

beforeAll(async () => {
  const dir = tempDir('certs-');
  certs = await makeTestCertificates(dir, [
    { name: 'soon', hosts: ['localhost', '127.0.0.1'], days: 3 },
    { name: 'fine', hosts: ['localhost', '127.0.0.1'], days: 90 },
    { name: 'self', hosts: ['localhost', '127.0.0.1'], days: 90, selfSigned: true },
    { name: 'othername', hosts: ['other.example.com'], days: 90 },
  ]);
  for (const name of ['soon', 'fine', 'self', 'othername'])
    servers[name] = await startTlsServer({ certPem: certs.certs[name].chainPem, keyPem: certs.certs[name].keyPem });
  deadPort = await freePort();

  liveDir = tempDir('live-');
  binDir = tempDir('bin-');
  copyFileSync(certs.certs.soon.chainPem, join(liveDir, 'fullchain.pem'));
  copyFileSync(certs.certs.soon.keyPem, join(liveDir, 'privkey.pem'));
  writeFileSync(join(liveDir, 'reload.stamp'), '0');
  let stamp = '';
  let ctx: tls.SecureContext | undefined;
  const server = tls.createServer({
    SNICallback: (_name, cb) => {
      const now = readFileSync(join(liveDir, 'reload.stamp'), 'utf8');
      if (now !== stamp || !ctx) {
        stamp = now;
        ctx = tls.createSecureContext({ cert: readFileSync(join(liveDir, 'fullchain.pem')), key: readFileSync(join(liveDir, 'privkey.pem')) });
      }
      cb(null, ctx);
    },
  });
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  web = { port: (server.address() as AddressInfo).port, close: () => new Promise((r) => server.close(() => r())) };
});
afterAll(async () => {
  await Promise.all(Object.values(servers).map((s) => s.stop()));
  await web?.close();
});

const hostOf = (name: string) => `localhost:${servers[name].port}`;
const run = (argv: string[], cwd: string, extra: Parameters<typeof runCli>[1] = {}) =>
  runCli(argv, { cwd, ...extra, env: { RUNBOOK_JOURNAL_DIR: tempDir('journal-'), ...(extra.env ?? {}) } });

describe('cert check', () => {
  it('reports subject, issuer, SANs, expiry and trust; exit 4 naming only the expiring host', async () => {
    const { dir } = writeConfig({ environments: { prod: {} } });
    const r = await run(['cert', 'check', hostOf('soon'), hostOf('fine'), '--ca', certs.ca.certPem, '--json'], dir);
    expect(r.code).toBe(4);
    const rows = JSON.parse(r.stdout).steps[0].data.rows;
    expect(rows[0]).toMatchObject({
      target: hostOf('soon'),
      subject: 'localhost',
      issuer: 'runbook test CA',
      sans: ['localhost', '127.0.0.1'],
      trusted: true,
      status: 'expiring',
    });
    expect(rows[0].daysLeft).toBeGreaterThanOrEqual(2);
    expect(rows[0].daysLeft).toBeLessThanOrEqual(3);
    expect(rows[1]).toMatchObject({ status: 'ok', trusted: true });
    expect(JSON.parse(r.stdout).error.message).toMatch(new RegExp(`below 14 days: ${hostOf('soon')} \\(\\d days\\)$`));
  });

  it('checks expiry of an untrusted (self-signed) certificate and reports trust separately; exit 0 when all are far from expiry', async () => {
    const { dir } = writeConfig({ environments: { prod: { certs: { hosts: [hostOf('self'), hostOf('fine'), hostOf('othername')], ca: certs.ca.certPem } } } });
    const r = await run(['cert', 'check'], dir);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(
      new RegExp(`${hostOf('self')}\\s+localhost\\s+localhost\\s+localhost,127\\.0\\.0\\.1\\s+\\S+\\s+(89|90)\\s+no \\(self-signed\\)\\s+ok`),
    );
    expect(r.stdout).toMatch(new RegExp(`${hostOf('othername')}.*no \\(name mismatch \\(other\\.example\\.com\\)\\)\\s+ok`));
    expect(r.stdout).toMatch(new RegExp(`${hostOf('fine')}.*yes\\s+ok`));
  });

  it('works without a config when the hosts are named (like openssl s_client); the configured list needs one', async () => {
    const empty = tempDir('no-config-');
    const r = await run(['cert', 'check', hostOf('fine'), '--ca', certs.ca.certPem], empty);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`${hostOf('fine')}.*yes\\s+ok`));
    const none = await run(['cert', 'check'], empty);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/no config found/);
  });

  it('without --ca the test CA is not trusted, but the expiry is still checked', async () => {
    const { dir } = writeConfig({ environments: { prod: {} } });
    const r = await run(['cert', 'check', hostOf('fine'), '--min-days', '100'], dir);
    expect(r.code).toBe(4);
    expect(r.stdout).toMatch(/no \(unknown root CA\)\s+expiring/);
  });

  it('an unreachable host is an error on its line; the others are still checked', async () => {
    const { dir } = writeConfig({ environments: { prod: {} } });
    const r = await run(['cert', 'check', `127.0.0.1:${deadPort}`, hostOf('fine'), '--ca', certs.ca.certPem], dir);
    expect(r.code).toBe(4);
    expect(r.stdout).toMatch(new RegExp(`127\\.0\\.0\\.1:${deadPort}\\s+error: ECONNREFUSED`));
    expect(r.stdout).toMatch(new RegExp(`${hostOf('fine')}.*ok`));
    expect(r.stderr).toMatch(/could not check: 127\.0\.0\.1:\d+ \(ECONNREFUSED\)/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it.each([
    [['cert', 'check'], /no hosts to check/],
    [['cert', 'check', 'bad host!'], /invalid host "bad host!"/],
    [['cert', 'check', 'example.com:99999'], /invalid port/],
    [['cert', 'check', 'example.com', '--min-days', '-1'], /at least 0/],
    [['cert', 'check', 'example.com', '--ca', '/nonexistent.pem'], /cannot read CA file/],
  ])('rejects %j with exit 2', async (argv, message) => {
    const { dir } = writeConfig({ environments: { prod: {} } });
    const r = await run(argv, dir);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
  });
});

describe('cert renew', () => {
  function setup(opts: { certbotRenews: boolean; certbotFails?: boolean; protectedEnv?: boolean }) {
    copyFileSync(certs.certs.soon.chainPem, join(liveDir, 'fullchain.pem'));
    copyFileSync(certs.certs.soon.keyPem, join(liveDir, 'privkey.pem'));
    writeFileSync(join(liveDir, 'reload.stamp'), String(Date.now()));
    const calls = join(binDir, `calls-${Date.now()}-${Math.random()}.log`);
    const certbot = writeScript(
      join(binDir, `certbot-${opts.certbotRenews}-${opts.certbotFails ?? false}`),
      [
        `echo "certbot $*" >> "${calls}"`,
        opts.certbotFails ? 'echo "Failed to renew certificate localhost" >&2; exit 1' : '',
        opts.certbotRenews
          ? `cp "${certs.certs.fine.chainPem}" "${join(liveDir, 'fullchain.pem')}"; cp "${certs.certs.fine.keyPem}" "${join(liveDir, 'privkey.pem')}"; echo "Congratulations, all renewals succeeded"`
          : 'echo "No renewals were attempted."',
      ].join('\n'),
    );
    const nginx = writeScript(join(binDir, `nginx-${Date.now()}`), `echo "nginx $*" >> "${calls}"\ndate +%s%N > "${join(liveDir, 'reload.stamp')}"`);
    mkdirSync(liveDir, { recursive: true });
    const { dir } = writeConfig({
      environments: {
        prod: {
          protected: opts.protectedEnv ?? false,
          certs: {
            hosts: [`localhost:${web.port}`],
            ca: certs.ca.certPem,
            certbot: [certbot, 'renew', '--quiet'],
            reload: [nginx, '-s', 'reload'],
            files: [join(liveDir, 'fullchain.pem')],
          },
        },
      },
    });
    return { dir, calls, env: {} };
  }
  const callsOf = (f: string) => {
    try {
      return readFileSync(f, 'utf8').trim().split('\n');
    } catch {
      return [];
    }
  };

  it('renews, checks the files, reloads behind a gate, and checks what is served (3 → 90 days)', async () => {
    const { dir, calls, env } = setup({ certbotRenews: true });
    const r = await run(['cert', 'renew', '--yes', '--json'], dir, { env });
    expect(r.code, r.stderr).toBe(0);
    const steps = JSON.parse(r.stdout).steps;
    expect(steps.find((s: { id: string }) => s.id === 'before').data.rows[0].daysLeft).toBeLessThanOrEqual(3);
    expect(steps.find((s: { id: string }) => s.id === 'after').data.rows[0].daysLeft).toBeGreaterThanOrEqual(89);
    expect(callsOf(calls)).toEqual(['certbot renew --quiet', 'nginx -s reload']);
  });

  it('does not reload when certbot renewed nothing (exit 4)', async () => {
    const { dir, calls, env } = setup({ certbotRenews: false });
    const r = await run(['cert', 'renew', '--yes'], dir, { env });
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/certbot did not renew: .*fullchain\.pem \(\d days left\); the web server was not reloaded/);
    expect(callsOf(calls)).toEqual(['certbot renew --quiet']);
  });

  it('stops when certbot fails (exit 1), without reloading', async () => {
    const { dir, calls, env } = setup({ certbotRenews: false, certbotFails: true });
    const r = await run(['cert', 'renew', '--yes'], dir, { env });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/exited 1: Failed to renew certificate localhost/);
    expect(callsOf(calls)).toEqual(['certbot renew --quiet']);
  });

  it('declining the reload gate leaves the old certificate served (exit 3)', async () => {
    const { dir, calls, env } = setup({ certbotRenews: true });
    const stamp = statSync(join(liveDir, 'reload.stamp')).mtimeMs;
    const r = await run(['cert', 'renew'], dir, { env, tty: true, answers: [false] });
    expect(r.code).toBe(3);
    expect(callsOf(calls)).toEqual(['certbot renew --quiet']);
    expect(statSync(join(liveDir, 'reload.stamp')).mtimeMs).toBe(stamp);
  });

  it('a dry run runs neither certbot nor the reload', async () => {
    const { dir, calls, env } = setup({ certbotRenews: true });
    const r = await run(['cert', 'renew', '--dry-run'], dir, { env });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('DRY RUN');
    expect(callsOf(calls)).toEqual([]);
  });
});
