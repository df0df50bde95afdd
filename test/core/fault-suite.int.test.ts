// The fault suite of issue 13: every procedure in the catalogue, with its first example, against the
// full sandbox (a real Kubernetes control plane behind a recording proxy, PostgreSQL, Redis, moto).
//   (a) each secret it references unset (env var unset, or the config pointing at a missing file)
//       → exit 2, nothing changed, and not one request reached the Kubernetes API;
//   (b) stderr closed (EPIPE) once its k-th step has started, for every k → the run completes or
//       compensates, its exit code is the one the journal records, and no Lease is left behind;
//   (d) the journal dir unwritable (a path under a regular file) → exit 2 before any contact.
// (c), stopped dead after a step and resumed after the world changed, is in test/core/fault-suite-resume.int.test.ts (every
// changing procedure, after its first and its last changing step), with deeper cases in test/core/resume-recheck.int.test.ts
// (app scale, app env set, app rollback, outage recover, security isolate, dr failover, a run resumed twice) and
// test/procedures/db/restart.int.test.ts (db restart, the Lease a killed run keeps).
// New procedures are covered automatically.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NEEDS_LIVE_PROCESS } from '../support/sandbox/live-process.js';
import { Writable } from 'node:stream';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { catalog } from '../../src/procedures/catalog.js';
import type { Procedure } from '../../src/core/procedure.js';
import { runTexts } from '../support/journal-files.js';
import { procedureRisk } from '../../src/core/procedure.js';
import { procedureSecrets } from '../../src/core/secrets.js';
import { exampleConfig } from '../../src/core/example-config.js';
import { loadConfig, selectEnvironment, type ResolvedEnvironment } from '../../src/core/config.js';
import { runCli, tempDir } from '../support/cli.js';
import { startSandbox, type Sandbox } from '../support/sandbox/index.js';

let sb: Sandbox;

beforeAll(async () => {
  sb = await startSandbox();
}, 180_000);
afterAll(async () => {
  await sb?.stop();
});

function cli(argv: string[], extra: Parameters<typeof runCli>[1] = {}) {
  return runCli(argv, { ...extra, env: { ...sb.env, ...(extra.env ?? {}) } });
}

async function leases(): Promise<string[]> {
  return (await sb.kube.list('leases', { namespace: sb.namespace })).map((l) => l.metadata.name).filter((n) => n.startsWith('runbook-'));
}

/** A copy of the sandbox config with `path` (environments.<env>.a.b.0.c) set to `value` in every environment. */
function configWith(path: string, value: unknown): string {
  const doc = parse(readFileSync(sb.configPath, 'utf8'));
  const [, , ...rest] = path.split('.');
  for (const env of Object.values(doc.environments) as Array<Record<string, unknown>>) {
    let o: Record<string, unknown> = env;
    for (const k of rest.slice(0, -1)) o = o[k] as Record<string, unknown>;
    o[rest.at(-1)!] = value;
  }
  const file = join(tempDir('runbook-fault-config-'), 'runbook.yaml');
  writeFileSync(file, stringify(doc));
  return file;
}

/** A stderr whose reader goes away (EPIPE) at the first write that contains `marker`, and for every write after. */
class ClosingAt extends Writable {
  text = '';
  gone = false;
  unhandled = false;
  constructor(private readonly marker: string) {
    super();
  }
  override _write(chunk: Buffer | string, _enc: BufferEncoding, cb: (err?: Error | null) => void) {
    const s = chunk.toString();
    if (!this.gone && s.includes(this.marker)) this.gone = true;
    if (this.gone) {
      if (this.listenerCount('error') === 0) this.unhandled = true;
      return cb(Object.assign(new Error('write EPIPE'), { code: 'EPIPE', errno: -32, syscall: 'write' }));
    }
    this.text += s;
    cb();
  }
}

/** The events of the one run of `procedure` in the journal dir. */
function journalEvents(dir: string, procedure: string): Array<Record<string, any>> {
  const runs = runTexts(dir)
    .map((text) =>
      text
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Record<string, any>),
    )
    .filter((ev) => ev[0]?.type === 'run-start' && ev[0].procedure === procedure);
  expect(runs).toHaveLength(1);
  return runs[0];
}

/** What must have run first for a procedure to have work to do (recovering needs an open outage). */
const BEFORE: Record<string, string[]> = { 'outage recover': ['outage', 'start'] };

let secretCases = 0;

// Which procedures change something is known before the sandbox starts (risk does not depend on the targets).
const exampleEnv = selectEnvironment({ config: exampleConfig, path: null }, undefined, {});
const entries = await Promise.all(catalog.filter((e) => !NEEDS_LIVE_PROCESS.has(e.name)).map(async (e) => ({ entry: e, proc: (await e.load()) as Procedure })));

describe.each(entries.map((x) => [x.entry.name, x] as const))('%s', (name, { proc }) => {
  const words = name.split(' ');
  let args: string[];
  let params: unknown;
  let env: ResolvedEnvironment;
  const real = () => [...words, ...args, '--yes', '--confirm', 'sandbox', '--json'];

  beforeAll(async () => {
    args = sb.localize(proc.examples[0] ?? []);
    // A live autoscaler left by an earlier procedure would change the deployment under the fingerprints.
    for (const h of await sb.kube.list('horizontalpodautoscalers', { namespace: sb.namespace }))
      await sb.kube.remove('horizontalpodautoscalers', sb.namespace, h.metadata.name);
    const offline = await cli([...words, ...args, '--dry-run=offline', '--json']);
    expect(offline.code, offline.stderr).toBe(0);
    params = JSON.parse(offline.stdout).params;
    env = selectEnvironment(await loadConfig(sb.configPath), 'sandbox', {});
  });

  it('(a) each secret it references unset → exit 2, nothing changed, no request to the Kubernetes API', async () => {
    const uses = procedureSecrets(proc, params as never, env);
    const before = await sb.fingerprint();
    const seen = sb.kube.requests.length;
    const missing = join(sb.dir, 'no-such-secret-file');
    const cases: Array<{ what: string; extra: Parameters<typeof runCli>[1] }> = [];
    for (const u of uses) {
      cases.push({ what: `${u.what} as a missing file`, extra: { env: { RUNBOOK_CONFIG: configWith(u.what, { file: missing }) } } });
      if (typeof u.ref === 'object' && 'env' in u.ref) cases.push({ what: `$${u.ref.env} unset`, extra: { env: { [u.ref.env]: undefined } } });
    }
    secretCases += cases.length;
    for (const c of cases) {
      for (const mode of [[], ['--dry-run']]) {
        const r = await cli([...real(), ...mode], c.extra);
        expect(r.code, `${c.what} ${mode.join(' ')}: ${r.stderr}`).toBe(2);
        expect(r.stderr, c.what).toMatch(/is not set|cannot read secret file/);
        expect(sb.kube.requests.slice(seen), `${c.what} ${mode.join(' ')}: requests to the API server`).toEqual([]);
      }
    }
    // A procedure that declares no secret really reads none: with every secret of the sandbox unset,
    // a dry run does not fail on one (runCli holds runs to their declared secrets).
    if (uses.length === 0) {
      const blank = Object.fromEntries(
        Object.keys(sb.env)
          .filter((k) => /URL|TOKEN|PASSWORD|WEBHOOK|SECRET/.test(k) && !k.startsWith('AWS_'))
          .map((k) => [k, undefined]),
      );
      const r = await cli([...words, ...args, '--dry-run', '--json'], { env: blank });
      expect(r.stderr).not.toMatch(/is not set|cannot read secret file/);
    }
    expect(await sb.fingerprint()).toEqual(before);
  });

  it('(d) the journal dir under a regular file → exit 2 before any contact', async () => {
    const file = join(tempDir('runbook-fault-'), 'a-file');
    writeFileSync(file, 'not a directory\n');
    const before = await sb.fingerprint();
    const seen = sb.kube.requests.length;
    const r = await cli(real(), { env: { RUNBOOK_JOURNAL_DIR: join(file, 'journal') } });
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/journal directory .* not a directory/);
    expect(sb.kube.requests.slice(seen)).toEqual([]);
    expect(await sb.fingerprint()).toEqual(before);
  });

  if (procedureRisk(proc, {} as never, exampleEnv) !== 'read') {
    it('(b) stderr closed once each step has started → the run completes or compensates, its exit code is true, no Lease left', async () => {
      const offline = await cli([...words, ...args, '--dry-run=offline', '--json']);
      const total = JSON.parse(offline.stdout).steps.filter((s: { status: string }) => s.status === 'planned').length;
      expect(total).toBeGreaterThan(0);
      for (let k = 1; k <= total; k++) {
        const journal = tempDir('runbook-fault-journal-');
        if (BEFORE[name]) {
          const first = await cli([...BEFORE[name], '--yes', '--confirm', 'sandbox', '--json'], { env: { RUNBOOK_JOURNAL_DIR: journal } });
          expect(first.code, first.stderr).toBe(0);
        }
        const stderr = new ClosingAt(`[${k}/${total}]`);
        const r = await cli(real(), { stderr, env: { RUNBOOK_JOURNAL_DIR: journal } });
        const at = `stderr closed at step ${k}/${total}`;
        expect(stderr.unhandled, at).toBe(false);
        expect(stderr.gone, `${at}: step ${k} never started; output before: ${stderr.text}`).toBe(true);
        expect([0, 4], `${at}: exit ${r.code}; ${stderr.text}`).toContain(r.code);
        const doc = JSON.parse(r.stdout);
        expect(doc.exitCode, at).toBe(r.code);
        const ev = journalEvents(journal, name);
        expect(ev.at(-1), at).toMatchObject({ type: 'run-end', exitCode: r.code });
        expect(
          ev.some((e) => e.type === 'note' && /stderr closed \(EPIPE\)/.test(e.note)),
          at,
        ).toBe(true);
        expect(await leases(), at).toEqual([]);
      }
    }, 300_000);
  }
});

it('(a) covered real secrets: the sandbox config gives the procedures secrets to take away', () => {
  expect(secretCases).toBeGreaterThan(10);
});
