import { describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { runCli, tempDir } from '../support/cli.js';
import { twoEnvironments, writeConfig } from '../support/config.js';
import { FakeKube, fakeFactories } from '../support/fakes/fake-kube.js';
import { recordContacts } from '../support/fakes/contacts.js';
import { onlyRunText, runIds } from '../support/journal-files.js';
import { FakeRds, fakePostgres, fakeDbEnvironment } from '../support/fakes/fake-rds.js';
import { visible, jsonText } from '../../src/core/terminal.js';

/**
 * A pipe whose reader goes away after `limit` bytes (`| head -c N`): later writes fail with EPIPE.
 * `unhandled` says the failure was emitted with nobody listening: in a real process, a crash.
 */
class ClosingPipe extends Writable {
  text = '';
  unhandled = false;
  constructor(private readonly limit: number) {
    super();
  }
  override _write(chunk: Buffer | string, _enc: BufferEncoding, cb: (err?: Error | null) => void) {
    if (this.text.length >= this.limit) {
      if (this.listenerCount('error') === 0) this.unhandled = true;
      return cb(Object.assign(new Error('write EPIPE'), { code: 'EPIPE', errno: -32, syscall: 'write' }));
    }
    this.text += chunk.toString();
    cb();
  }
}

/** A stream whose write() throws at once after `limit` calls (a file on a full disk: ENOSPC). */
class ThrowingStream extends Writable {
  calls = 0;
  constructor(private readonly limit: number) {
    super();
  }
  override write(chunk: unknown, ...rest: unknown[]): boolean {
    if (++this.calls > this.limit) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    return super.write(chunk as string, ...(rest as []));
  }
  override _write(_chunk: unknown, _enc: BufferEncoding, cb: () => void) {
    cb();
  }
}

function events(journal: string): Array<Record<string, any>> {
  return onlyRunText(journal)
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
}

function kubeSetup(replicas = 4) {
  const kube = new FakeKube(replicas);
  const { dir } = writeConfig(twoEnvironments());
  const journal = tempDir('journal-');
  return { kube, dir, journal, opts: { cwd: dir, clientFactories: fakeFactories(kube), env: { RUNBOOK_JOURNAL_DIR: journal } } };
}

describe('output streams that close never stop a run', () => {
  it('stderr closing mid-run (EPIPE): the run goes on to its end, the journal records it, the lock is released, exit 0', async () => {
    const { kube, journal, opts } = kubeSetup();
    const stderr = new ClosingPipe(60);
    const r = await runCli(['app', 'scale', '--replicas', '6'], { ...opts, stderr });
    expect(stderr.unhandled).toBe(false);
    expect(r.code).toBe(0);
    expect(stderr.text.length).toBeLessThanOrEqual(200);
    expect(kube.mutations).toEqual(['scale deployment/app 6']);
    expect(kube.leases.size).toBe(0);
    const ev = events(journal);
    expect(ev.at(-1)).toMatchObject({ type: 'run-end', status: 'succeeded', exitCode: 0 });
    expect(ev.some((e) => e.type === 'note' && /stderr closed \(EPIPE\)/.test(e.note))).toBe(true);
    expect(ev.filter((e) => e.type === 'step-end').map((e) => e.status)).toEqual(['succeeded', 'succeeded', 'succeeded']);
  });

  it('stderr closed from the start and a later step failing: compensation still runs, exit 1 is true', async () => {
    const { kube, journal, opts } = kubeSetup(4);
    kube.failNext('watchDeployment', 1, 500);
    const stderr = new ClosingPipe(0);
    const r = await runCli(['app', 'scale', '--replicas', '9'], { ...opts, stderr });
    expect(stderr.unhandled).toBe(false);
    expect(r.code).toBe(1);
    expect(kube.deployments.get('app')!.spec!.replicas).toBe(4);
    expect(kube.leases.size).toBe(0);
    const ev = events(journal);
    expect(ev.find((e) => e.type === 'compensation')).toMatchObject({ step: 'scale', status: 'succeeded' });
    expect(ev.at(-1)).toMatchObject({ type: 'run-end', exitCode: 1 });
  });

  it('`db restart --yes 2>&1 | head -11`: output gone after the scale-down, the failure is compensated and the Lease released', async () => {
    const kube = new FakeKube(3);
    const rds = new FakeRds();
    rds.failReboot = true;
    const { dir } = writeConfig({
      environments: {
        staging: fakeDbEnvironment(),
      },
    });
    const journal = tempDir('journal-');
    const both = new ClosingPipe(400);
    const r = await runCli(['db', 'restart', '--yes'], {
      cwd: dir,
      clientFactories: { ...fakeFactories(kube), aws: async () => rds.clients(), postgres: fakePostgres() },
      env: { RUNBOOK_JOURNAL_DIR: journal },
      stdout: both,
      stderr: both,
    });
    expect(both.unhandled).toBe(false);
    expect(r.code).toBe(1);
    expect(kube.mutations.filter((m) => m.startsWith('scale'))).toEqual(['scale deployment/app 0', 'scale deployment/app 3']);
    expect(kube.deployments.get('app')!.spec!.replicas).toBe(3);
    expect(kube.leases.size).toBe(0);
    expect(events(journal).at(-1)).toMatchObject({ type: 'run-end', exitCode: 1 });
  });

  it("stdout closed before the result is printed: the exit code is still the run's", async () => {
    const { kube, opts } = kubeSetup();
    const stdout = new ClosingPipe(0);
    const r = await runCli(['app', 'scale', '--replicas', '5', '--json'], { ...opts, stdout });
    expect(stdout.unhandled).toBe(false);
    expect(r.code).toBe(0);
    expect(kube.mutations).toEqual(['scale deployment/app 5']);
  });

  it('a write that throws at once (a full disk) is absorbed too', async () => {
    const { kube, opts } = kubeSetup();
    const r = await runCli(['app', 'scale', '--replicas', '7'], { ...opts, stderr: new ThrowingStream(2) });
    expect(r.code).toBe(0);
    expect(kube.mutations).toEqual(['scale deployment/app 7']);
  });

  it('--help into a closed pipe exits 0 without an error', async () => {
    const stdout = new ClosingPipe(10);
    const r = await runCli(['--help'], { stdout });
    expect(stdout.unhandled).toBe(false);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
  });
});

describe('a journal directory that cannot be used is exit 2 before anything is contacted', () => {
  it.each([
    [
      'a file',
      (root: string) => {
        writeFileSync(join(root, 'journal'), 'not a directory');
        return join(root, 'journal');
      },
      /journal directory .*\/journal is not a directory; nothing was contacted or changed/,
    ],
    [
      'a directory under a file',
      (root: string) => {
        writeFileSync(join(root, 'file'), '');
        return join(root, 'file', 'journal');
      },
      /journal directory .*\/file\/journal cannot be created: .*\/file is not a directory/,
    ],
  ])('%s', async (_name, make, message) => {
    const { factories, contacts } = recordContacts({ kube: async () => new FakeKube() });
    const { dir } = writeConfig(twoEnvironments());
    const r = await runCli(['app', 'scale', '--replicas', '4', '--yes'], {
      cwd: dir,
      clientFactories: factories,
      env: { RUNBOOK_JOURNAL_DIR: make(tempDir()) },
    });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stderr.split('\n').filter((l) => l.startsWith('error:'))).toHaveLength(1);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(contacts).toEqual([]);
  });

  it('a journal directory that does not exist yet is created (with its parents)', async () => {
    const { kube, opts } = kubeSetup();
    const journal = join(tempDir(), 'a', 'b', 'journal');
    const r = await runCli(['app', 'scale', '--replicas', '5'], { ...opts, env: { RUNBOOK_JOURNAL_DIR: journal } });
    expect(r.code, r.stderr).toBe(0);
    expect(runIds(journal)).toHaveLength(1);
    expect(kube.mutations).toEqual(['scale deployment/app 5']);
  });

  it('an offline dry run needs no journal at all', async () => {
    const r = await runCli(['app', 'restart', '--dry-run=offline'], { env: { RUNBOOK_JOURNAL_DIR: join(tempDir(), 'file') } });
    expect(r.code).toBe(0);
  });
});

describe('durations have a unit and a sane size, everywhere', () => {
  const pg = () => {
    const { factories, contacts } = recordContacts({ postgres: fakePostgres() });
    const { dir } = writeConfig({
      environments: { staging: { postgres: { url: 'postgres://app@db.internal:5432/app' }, kubernetes: { namespace: 'production', deployment: 'app' } } },
    });
    return { contacts, run: (argv: string[]) => runCli(argv, { cwd: dir, clientFactories: factories }) };
  };

  it.each([
    [['db', 'kill-idle', '--idle-for', '10', '--yes'], /--idle-for "10" has no unit: say 10m or 10s/],
    [['db', 'kill-long-running', '--older-than', '5', '--yes'], /--older-than "5" has no unit: say 5m or 5s/],
    [['db', 'connections', '--timeout', '10'], /--timeout "10" has no unit: say 10m or 10s/],
    [['db', 'kill-idle', '--idle-for', '99999999999d', '--yes'], /--idle-for "99999999999d" is too long: at most 365d/],
    [['db', 'connections', '--timeout', '30d'], /--timeout "30d" is too long: at most 24d/],
  ])('%j → exit 2 before contact', async (argv, message) => {
    const { contacts, run } = pg();
    const r = await run(argv);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(contacts).toEqual([]);
  });

  it.each([
    [{ rollout: { timeout: '10' } }, /environments\.staging\.rollout\.timeout: a duration with a unit/],
    [{ rollout: { timeout: '30d' } }, /environments\.staging\.rollout\.timeout: at most 24d/],
    [{ logs: { deleteAfter: '400d' } }, /environments\.staging\.logs\.deleteAfter: at most 365d/],
  ])('config %j → exit 2', async (extra, message) => {
    const { dir } = writeConfig({ environments: { staging: { kubernetes: { namespace: 'production', deployment: 'app' }, ...extra } } });
    const r = await runCli(['app', 'scaling'], { cwd: dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
  });
});

describe('arguments are taken literally and shown safely', () => {
  it.each([[' 3'], ['00000000000000003'], ['+3'], ['3 ']])('--replicas %j → exit 2, nothing contacted', async (raw) => {
    const { kube, opts } = kubeSetup();
    const r = await runCli(['app', 'scale', '--replicas', raw, '--yes'], opts);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--replicas must be a whole number/);
    expect(kube.mutations).toEqual([]);
  });

  it('an environment name with escape sequences is echoed visibly, never raw', async () => {
    const { opts } = kubeSetup();
    const r = await runCli(['app', 'scale', '--replicas', '3', '-e', '\u001b]0;pwned\u0007\u001b[2J'], opts);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('unknown environment "\\x1b]0;pwned\\x07\\x1b[2J"');
    expect(r.stderr).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/);
  });

  it('an escape sequence in --confirm (an error raised inside the run) is shown visibly, even one that looks like our colours', async () => {
    const { opts } = kubeSetup();
    const r = await runCli(['app', 'scale', '--replicas', '3', '--confirm', '\u001b[31mprod\u001b[8m'], opts);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--confirm "\\x1b[31mprod\\x1b[8m" does not match');
    expect(r.stderr).not.toContain('\u001b');
  });

  it('a report title with escape sequences is printed visibly; --json keeps the value', async () => {
    const title = 'evil\u001b[2J\u009b31m\u202eokay';
    const r = await runCli(['report', 'new', '--title', title, '--severity', 'P2']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('# Incident Report: evil\\x1b[2J\\x9b31m\\u202eokay');
    expect(r.stdout + r.stderr).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e]/);
    const j = await runCli(['report', 'new', '--title', title, '--severity', 'P2', '--json']);
    expect(j.stdout).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e]/);
    expect(JSON.parse(j.stdout).params.title).toBe(title);
  });

  it("an unknown option with an escape sequence (commander's own message) is shown visibly", async () => {
    const r = await runCli(['app', 'scale', '--\u001b[31mred']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('\\x1b[31mred');
    expect(r.stderr).not.toContain('\u001b');
  });

  it("the tool's own colours still reach a colour terminal", async () => {
    const { opts } = kubeSetup();
    const r = await runCli(['app', 'scale', '--replicas', '5'], { ...opts, env: { ...opts.env, NO_COLOR: undefined, FORCE_COLOR: '1' } });
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('\u001b[32m✓\u001b[39m');
  });

  it('visible() and jsonText() escape controls and keep text', () => {
    expect(visible('a\u001b[31mb\u0007c\r\nd\re\tf')).toBe('a\\x1b[31mb\\x07c\r\nd\\x0de\tf');
    expect(visible('\u001b[31mred\u001b[39m \u001b[8mhidden', true)).toBe('\u001b[31mred\u001b[39m \\x1b[8mhidden');
    const doc = jsonText({ t: 'x\u009by\u202ez' });
    expect(doc).not.toMatch(/[\u009b\u202e]/);
    expect(JSON.parse(doc).t).toBe('x\u009by\u202ez');
  });
});

describe('resume is suggested only where a resume can finish the run; config errors are exit 2', () => {
  const noResume = (stderr: string) => expect(stderr).not.toMatch(/resume/);

  it('a kubeconfig that does not exist → exit 2, no resume', async () => {
    const missing = join(tempDir(), 'kubeconfig');
    const { dir } = writeConfig(twoEnvironments({ kubeconfig: missing }));
    const r = await runCli(['app', 'scale', '--replicas', '3', '--yes'], { cwd: dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`cannot load kubeconfig ${missing}`);
    expect(r.stderr).toMatch(/app scale stopped: nothing was changed .*fix the above and run the command again/);
    noResume(r.stderr);
  });

  it('a kube context the kubeconfig does not have → exit 2 naming the contexts it has, no resume', async () => {
    const root = tempDir();
    const kubeconfig = join(root, 'kubeconfig');
    writeFileSync(
      kubeconfig,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'c1', cluster: { server: 'https://127.0.0.1:1' } }],
        users: [{ name: 'u1', user: { token: 'abcdefgh' } }],
        contexts: [{ name: 'staging-ctx', context: { cluster: 'c1', user: 'u1', namespace: 'production' } }],
        'current-context': 'staging-ctx',
      }),
    );
    const { dir } = writeConfig(twoEnvironments({ kubeconfig, context: 'prod-ctx' }));
    for (const argv of [
      ['app', 'scale', '--replicas', '3', '--yes'],
      ['app', 'scaling'],
    ]) {
      const r = await runCli(argv, { cwd: dir });
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.stderr).toContain('kube context "prod-ctx" is not in the kubeconfig');
      expect(r.stderr).toContain('known contexts: staging-ctx');
      noResume(r.stderr);
    }
  });

  it('a wrong --confirm → exit 2, no resume', async () => {
    const { opts } = kubeSetup();
    const r = await runCli(['app', 'scale', '--replicas', '3', '--confirm', 'production'], opts);
    expect(r.code).toBe(2);
    noResume(r.stderr);
  });

  it('--to-revision 99 → exit 2, no resume', async () => {
    const { kube, opts } = kubeSetup();
    const r = await runCli(['app', 'rollback', '--to-revision', '99', '--yes'], opts);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/revision 99 not found/);
    noResume(r.stderr);
    expect(kube.mutations).toEqual([]);
  });

  it('an operational failure (exit 1) still says how to resume', async () => {
    const { kube, opts } = kubeSetup();
    kube.failNext('watchDeployment', 1, 500);
    const r = await runCli(['app', 'scale', '--replicas', '9'], opts);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/resume with: runbook resume \d{8}T\d{6}-[0-9a-f]{4}/);
  });
});
