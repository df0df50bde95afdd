// The built CLI (bin/runbook.js → bundle/), spawned as a user would: real streams, real signals, and a
// pseudo-terminal for prompts.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import * as pty from 'node-pty';
import { startSandbox, type Sandbox } from '../support/sandbox/index.js';
import { BUILT_CLI as bin, REPO_ROOT as root, requireBuiltCli, tempDir } from '../support/cli.js';
import { writeConfig } from '../support/config.js';
import type { Deployment } from '../support/cluster/index.js';

let sb: Sandbox;
let baseEnv: Record<string, string>;

beforeAll(async () => {
  requireBuiltCli();
  sb = await startSandbox({ parts: ['kubernetes'] });
  baseEnv = { PATH: process.env.PATH ?? '', HOME: tempDir('e2e-home-'), RUNBOOK_JOURNAL_DIR: tempDir('e2e-journal-'), USER: 'e2e', ...sb.env };
});
afterAll(async () => {
  await sb?.stop();
});

/** Spawns asynchronously: the fault proxy in front of the Kubernetes API server lives in this process and must keep answering. */
function run(
  args: string[],
  env: Record<string, string> = {},
  opts: { nodeArgs?: string[]; cwd?: string; replaceEnv?: boolean } = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...(opts.nodeArgs ?? []), bin, ...args], {
      env: opts.replaceEnv ? env : { ...baseEnv, ...env },
      cwd: opts.cwd ?? root,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

type ChunkIndex = Record<string, { bytes: number; packages: Record<string, number>; modules: string[]; imports: string[] }>;

/** bundle/chunks.json (scripts/bundle.mjs): what each chunk of the bundle holds. */
function chunkIndex(): ChunkIndex {
  return JSON.parse(readFileSync(join(root, 'bundle', 'chunks.json'), 'utf8')) as ChunkIndex;
}

/** The SDKs: none may load for --help or an offline dry run, and a command loads only those it calls. */
const SDK = /^(@kubernetes\/|@aws-sdk\/|@smithy\/|pg$|pg-|ioredis$|@ioredis\/|@inquirer\/|execa$)/;

/** What a run traced by test/support/trace-imports.mjs loaded: chunks, and the packages and src modules in them. */
function loadedBy(trace: string): { chunks: string[]; packages: Set<string>; modules: Set<string>; fromNodeModules: string[] } {
  const index = chunkIndex();
  const urls = readFileSync(trace, 'utf8').split('\n').filter(Boolean);
  const chunks: string[] = [];
  const packages = new Set<string>();
  const modules = new Set<string>();
  const fromNodeModules: string[] = [];
  for (const url of urls) {
    const chunk = /\/bundle\/([^/]+\.c?js)$/.exec(url)?.[1];
    if (chunk === 'loader.cjs') continue; // what runs the chunks
    if (chunk) {
      const c = index[chunk];
      if (!c) throw new Error(`${chunk} was loaded but is not in bundle/chunks.json`);
      chunks.push(chunk);
      for (const p of Object.keys(c.packages)) packages.add(p);
      for (const m of c.modules) modules.add(m);
      continue;
    }
    const pkg = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url)?.[1];
    if (pkg) {
      packages.add(pkg);
      fromNodeModules.push(url);
    }
  }
  return { chunks, packages, modules, fromNodeModules };
}

/** Where bundle/loader.cjs keeps its code caches for this $HOME: a folder per build and Node. */
const codeDir = (home: string) => join(home, '.cache', 'runbook', 'code');

/** The code caches of the one build under $HOME. */
function codeCaches(home: string): Array<{ name: string; mtimeMs: number }> {
  const base = codeDir(home);
  const builds = existsSync(base) ? readdirSync(base) : [];
  expect(builds).toEqual([expect.stringMatching(/^[0-9a-f]{16}-v[\d.]+-\w+$/)]);
  return readdirSync(join(base, builds[0]))
    .sort()
    .map((name) => ({ name, mtimeMs: statSync(join(base, builds[0], name)).mtimeMs }));
}

const replicas = async () => (await sb.kube.get<Deployment>('deployments', sb.namespace, 'app'))!.spec.replicas;

/** Runs the CLI under a pseudo-terminal and answers prompts as they appear. */
function runInTerminal(
  args: string[],
  answers: Array<{ when: RegExp; send: string }>,
  env: Record<string, string> = {},
  cols = 120,
): Promise<{ code: number; screen: string }> {
  return new Promise((resolve) => {
    const term = pty.spawn(process.execPath, [bin, ...args], { cols, rows: 40, cwd: root, env: { ...baseEnv, ...env } });
    let screen = '';
    const pending = [...answers];
    term.onData((d) => {
      screen += d;
      const next = pending[0];
      if (next && next.when.test(screen)) {
        pending.shift();
        setTimeout(() => term.write(next.send), 50);
      }
    });
    term.onExit(({ exitCode }) => resolve({ code: exitCode, screen }));
  });
}

describe('the built CLI', () => {
  it('--help lists commands and exit codes, and loads no SDK, no schema library and no procedure', async () => {
    const trace = join(tempDir('trace-'), 'imports.txt');
    const r = await run(['--help'], { TRACE_IMPORTS_FILE: trace }, { nodeArgs: ['--import', join(root, 'test/support/trace-imports.mjs')] });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Exit codes:');
    const loaded = loadedBy(trace);
    expect(loaded.chunks).toEqual(['main.js']); // the startup path is one file
    // Everything is bundled: nothing comes from node_modules, and no chunk with an SDK, zod or yaml.
    expect(loaded.fromNodeModules).toEqual([]);
    expect([...loaded.packages].filter((p) => SDK.test(p) || p === 'zod' || p === 'yaml')).toEqual([]);
    expect([...loaded.modules].filter((m) => m.startsWith('src/procedures/') && m !== 'src/procedures/catalog.ts')).toEqual([]);
    expect([...loaded.modules].filter((m) => m.startsWith('src/clients/'))).toEqual([]);
  });

  it('--help on a pipe is written to the descriptor itself: no node:tty, node:net or node:stream (process.stdout) is made', async () => {
    const file = join(tempDir('builtins-'), 'loaded.txt');
    const r = await run(['--help'], { BUILTINS_LOADED_FILE: file }, { nodeArgs: ['--require', join(root, 'test/support/builtins-loaded.cjs')] });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Usage: runbook /);
    const loaded = readFileSync(file, 'utf8').split('\n');
    expect(loaded).toContain('fs'); // the list is real
    expect(loaded.filter((m) => ['tty', 'net', 'stream', 'internal/streams/writable'].includes(m))).toEqual([]);
  });

  it('--help in a terminal wraps to its width; on a pipe, to 80 columns', async () => {
    // commander's part: the exit codes after it are our own text, as written.
    const lines = (text: string) => text.replace(/\r/g, '').split('Exit codes:')[0].split('\n');
    const wide = await runInTerminal(['--help'], [], {}, 100);
    expect(wide.code).toBe(0);
    expect(lines(wide.screen).filter((l) => l.length > 100)).toEqual([]);
    expect(lines(wide.screen).some((l) => l.length > 80)).toBe(true);
    const piped = lines((await run(['--help'])).stdout);
    expect(piped.filter((l) => l.length > 80)).toEqual([]);
  });

  it('output to a pipe that would block (O_NONBLOCK) arrives whole and in order', async () => {
    // Making process.stdout sets O_NONBLOCK on a pipe (libuv); nobody reads for a while, so write(2)
    // fails with EAGAIN once the pipe is full, and the rest must go through Node's stream.
    const script = [
      `const { processIO } = require(${JSON.stringify(join(root, 'bundle', 'loader.cjs'))}).load('main.js', { codeCache: false });`,
      'process.stdout;',
      'const out = processIO().stdout;',
      "for (let i = 0; i < 64; i++) out.write(String(i).padStart(4, '0') + 'x'.repeat(16 * 1024 - 5) + '\\n');",
    ].join('\n');
    const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.pause();
    await new Promise((resolve) => setTimeout(resolve, 500));
    const chunks: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => chunks.push(d));
    child.stdout.resume();
    child.stderr.on('data', (d) => (stderr += d));
    const code = await new Promise((resolve) => child.on('close', resolve));
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const lines = Buffer.concat(chunks).toString().split('\n');
    expect(lines.pop()).toBe('');
    expect(lines.map((l) => [l.slice(0, 4), l.length])).toEqual(Array.from({ length: 64 }, (_, i) => [String(i).padStart(4, '0'), 16 * 1024 - 1]));
  });

  it('an offline dry run loads no SDK either, and prints the plan on stdout', async () => {
    const trace = join(tempDir('trace-'), 'imports.txt');
    const cwd = tempDir('e2e-empty-');
    const env = { PATH: baseEnv.PATH, HOME: baseEnv.HOME, RUNBOOK_JOURNAL_DIR: baseEnv.RUNBOOK_JOURNAL_DIR, TRACE_IMPORTS_FILE: trace };
    const r = await run(['app', 'restart', '--dry-run=offline'], env, {
      nodeArgs: ['--import', join(root, 'test/support/trace-imports.mjs')],
      cwd,
      replaceEnv: true,
    });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('$ kubectl rollout restart deployment/app -n production');
    expect(r.stderr).toContain('DRY RUN');
    const loaded = loadedBy(trace);
    expect(loaded.fromNodeModules).toEqual([]);
    expect([...loaded.packages].filter((p) => SDK.test(p) || p === 'zod' || p === 'yaml')).toEqual([]);
    expect(loaded.modules).not.toContain('src/clients/kube-adapter.ts'); // the Kubernetes SDK's loader
  });

  it('a Kubernetes read command loads no SDK (its reads go straight to the API server); run again, it skips the schema', async () => {
    const home = tempDir('e2e-read-home-');
    const traced = async () => {
      const trace = join(tempDir('trace-'), 'imports.txt');
      const r = await run(
        ['app', 'scaling'],
        { TRACE_IMPORTS_FILE: trace, HOME: home },
        { nodeArgs: ['--import', join(root, 'test/support/trace-imports.mjs')] },
      );
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/^POD +STATUS/m);
      return loadedBy(trace);
    };
    const first = await traced();
    expect(first.modules).toContain('src/clients/kube-rest.ts');
    expect(first.modules).not.toContain('src/clients/kube-adapter.ts');
    expect([...first.packages].filter((p) => SDK.test(p))).toEqual([]);
    expect(first.packages).toContain('zod'); // the config was validated …
    const second = await traced();
    expect(second.packages).not.toContain('zod'); // … once: the second run read the validation back
    // The chunks' code caches are written by the run that first loaded them; the SDK's is not among them.
    const cached = codeCaches(home).map((f) => f.name);
    expect(cached).toContain('main.js.v8');
    expect(cached).not.toContain('sdk-kubernetes.cjs.v8');
  });

  it('with the Kubernetes SDK, a command loads it and no other SDK; run again, it reuses the compiled SDK', async () => {
    const home = tempDir('e2e-cache-home-');
    const traced = async () => {
      const trace = join(tempDir('trace-'), 'imports.txt');
      const r = await run(
        ['app', 'scaling'],
        // What a kubeconfig beyond the direct path (exec plugins, …) and every write take.
        { TRACE_IMPORTS_FILE: trace, HOME: home, RUNBOOK_KUBE_SDK_ONLY: '1' },
        { nodeArgs: ['--import', join(root, 'test/support/trace-imports.mjs')] },
      );
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/^POD +STATUS/m);
      return loadedBy(trace);
    };
    const first = await traced();
    // The Kubernetes SDK runs from bundle/sdk-kubernetes.cjs (one script, everything in it bundled),
    // compiled once: its V8 code cache is written at exit with those of the other chunks it ran.
    expect(first.modules).toContain('src/clients/kube-adapter.ts');
    expect(first.chunks).toContain('sdk-kubernetes.cjs');
    const caches = codeCaches(home);
    expect(caches.map((f) => f.name).sort()).toEqual(first.chunks.map((c) => `${c}.v8`).sort());
    const otherSdks = (l: { packages: Set<string> }) => [...l.packages].filter((p) => SDK.test(p) && !p.startsWith('@kubernetes/'));
    expect(first.packages).toContain('@kubernetes/client-node');
    expect(otherSdks(first)).toEqual([]);
    const second = await traced();
    expect(otherSdks(second)).toEqual([]);
    // (fewer chunks: the config's validation is read back, not run again)
    expect(second.chunks.filter((c) => !first.chunks.includes(c))).toEqual([]);
    // V8 took every cache (a rejected one is written again at exit).
    expect(codeCaches(home)).toEqual(caches);
  });

  it('a damaged or foreign code cache only costs a compile: V8 rejects it and the run writes it again', async () => {
    const home = tempDir('e2e-bad-cache-home-');
    expect((await run(['--help'], { HOME: home })).code).toBe(0);
    const [build] = readdirSync(codeDir(home));
    const cache = join(codeDir(home), build, 'main.js.v8');
    const good = readFileSync(cache);
    writeFileSync(cache, Buffer.alloc(good.length, 7));
    const r = await run(['--help'], { HOME: home });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('Exit codes:');
    expect(readFileSync(cache).equals(Buffer.alloc(good.length, 7))).toBe(false);
    // …and one it cannot write is no error either (a file where its folder would be: even root cannot).
    const blocked = tempDir('e2e-blocked-cache-home-');
    mkdirSync(join(codeDir(blocked), '..'), { recursive: true });
    writeFileSync(codeDir(blocked), '');
    const ro = await run(['list'], { HOME: blocked });
    expect(ro.code, ro.stderr).toBe(0);
    expect(ro.stderr).toBe('');
  });

  it("writing its code caches, a build removes other builds' that are a week old or beyond the three written to last", async () => {
    const home = tempDir('e2e-prune-home-');
    const code = codeDir(home);
    const old = Date.now() / 1000 - 8 * 24 * 3600;
    const others = ['a', 'b', 'c', 'd', 'e'].map((x, i) => ({ name: `${x.repeat(16)}-v20.0.0-x64`, mtime: i === 4 ? old : Date.now() / 1000 - 60 * (i + 1) }));
    for (const o of others) {
      mkdirSync(join(code, o.name), { recursive: true });
      writeFileSync(join(code, o.name, 'main.js.v8'), 'x');
      utimesSync(join(code, o.name), o.mtime, o.mtime);
    }
    expect((await run(['--help'], { HOME: home })).code).toBe(0);
    const left = readdirSync(code).sort();
    expect(left).toHaveLength(4); // this build's, and the three others written to last
    expect(left).toEqual(expect.arrayContaining(others.slice(0, 3).map((o) => o.name)));
  });

  it('the bundled Redis client loads node:tls on its first rediss:// connection, and it is a real TLS client', async () => {
    // A plain TCP server: the client's TLS handshake meets a Redis error line instead.
    const server = createServer((socket) => socket.end('-ERR this is not TLS\r\n'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const { path } = writeConfig({ default: 'tls', environments: { tls: { redis: { url: `rediss://127.0.0.1:${port}`, connectTimeout: '2s' } } } });
      const r = await run(['cache', 'stats'], { RUNBOOK_CONFIG: path });
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toMatch(/TLS (handshake )?with Redis at 127\.0\.0\.1:\d+/);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    } finally {
      server.close();
    }
  });

  it('the bundle keeps each SDK in chunks of its own, out of main.js', () => {
    const family = (p: string) =>
      /^@kubernetes\//.test(p)
        ? 'kubernetes'
        : /^@(aws-sdk|smithy|aws-crypto)\//.test(p)
          ? 'aws'
          : /^pg(-|$)/.test(p)
            ? 'pg'
            : /^(@ioredis\/|ioredis$)/.test(p)
              ? 'ioredis'
              : /^@inquirer\//.test(p)
                ? 'inquirer'
                : p === 'execa'
                  ? 'execa'
                  : undefined;
    const chunks = chunkIndex();
    for (const [name, c] of Object.entries(chunks)) {
      const families = new Set(Object.keys(c.packages).map(family).filter(Boolean));
      expect(families.size, `${name}: ${[...families].join(', ')}`).toBeLessThanOrEqual(1);
    }
    expect(Object.keys(chunks['main.js'].packages).filter((p) => family(p) || p === 'zod' || p === 'yaml')).toEqual([]);
  });

  it('--json: stdout is exactly one JSON document, progress goes to stderr', async () => {
    const r = await run(['app', 'scaling', '--json']);
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc).toMatchObject({ procedure: 'app scaling', environment: 'sandbox', status: 'succeeded' });
    expect(r.stderr).toContain('succeeded');
  });

  it('without a terminal a gated change fails closed with exit 3 and names the flag', async () => {
    const r = await run(['app', 'scale', '--replicas', '0', '--env', 'sandbox-protected']);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/--yes --confirm sandbox-protected/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(await replicas()).toBe(3);
  });

  it('usage errors exit 2 with one line and a hint; --verbose adds the stack', async () => {
    const r = await run(['app', 'scale', '--replicas', '-3']);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')[0]).toBe('error: --replicas must be at least 0, got -3');
    const v = await run(['app', 'scale', '--replicas', '-3', '--verbose']);
    expect(v.stderr).toMatch(/\n\s+at /);
    // Through the bundle's source maps: frames name src/*.ts, not bundle/*.js.
    expect(v.stderr).toMatch(/\n\s+at .*src\/[\w/.-]+\.ts:\d+:\d+/);
  });

  it('on a terminal, a mistyped environment name is marked ✖ (not ✔) and asked again', async () => {
    const r = await runInTerminal(
      ['app', 'scale', '--replicas', '0', '--env', 'sandbox-protected'],
      [
        { when: /Type the environment name/, send: 'sandbox-protectd\r' },
        { when: /tries left\)\. Type the environment name/, send: 'sandbox-protected\r' },
      ],
    );
    expect(r.screen).toContain('sandbox-protectd ✖ not "sandbox-protected"');
    expect(r.screen).toContain('sandbox-protected ✔');
    expect(r.code, r.screen).toBe(0);
    expect(await replicas()).toBe(0);
    expect((await run(['app', 'scale', '--replicas', '3'])).code).toBe(0);
  });

  it('on a terminal, a severe gate asks for the environment name; typing it approves', async () => {
    const r = await runInTerminal(
      ['app', 'scale', '--replicas', '0', '--env', 'sandbox-protected'],
      [{ when: /Type the environment name/, send: 'sandbox-protected\r' }],
    );
    expect(r.screen).toContain('sandbox-protected');
    expect(r.code, r.screen).toBe(0);
    expect(await replicas()).toBe(0);
    const back = await run(['app', 'scale', '--replicas', '3']);
    expect(back.code, back.stderr).toBe(0);
  });

  it('on a terminal, answering no at a yes/no gate exits 3 and changes nothing', async () => {
    const r = await runInTerminal(['app', 'scale', '--replicas', '5', '--env', 'sandbox-protected'], [{ when: /\(y\/N\)/, send: 'n\r' }]);
    expect(r.code, r.screen).toBe(3);
    expect(await replicas()).toBe(3);
  });

  it('Ctrl-C at a prompt interrupts (exit 130) and changes nothing', async () => {
    const r = await runInTerminal(['app', 'scale', '--replicas', '5', '--env', 'sandbox-protected'], [{ when: /\(y\/N\)/, send: '\u0003' }]);
    expect(r.code, r.screen).toBe(130);
    expect(r.screen).not.toMatch(/\n\s+at /);
    expect(await replicas()).toBe(3);
  });

  it('colour on a terminal, none with NO_COLOR', async () => {
    const coloured = await runInTerminal(['app', 'scaling'], []);
    expect(coloured.code).toBe(0);
    expect(coloured.screen).toMatch(/\u001b\[\d+m/);
    const plain = await runInTerminal(['app', 'scaling'], [], { NO_COLOR: '1' });
    expect(plain.screen).not.toMatch(/\u001b\[\d+m/);
  });

  it('SIGINT mid-run puts back what the run changed and exits 130', async () => {
    await sb.kube.failPods('never-ready');
    try {
      const child = spawn(process.execPath, [bin, 'app', 'scale', '--replicas', '7', '--rollout-timeout', '60s'], { env: { ...baseEnv }, cwd: root });
      let stderr = '';
      child.stderr.on('data', (d) => (stderr += d));
      await sb.kube.waitFor(async () => (await replicas()) === 7, { timeoutMs: 20_000, what: 'the scale to 7' });
      child.kill('SIGINT');
      const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
      expect(code, stderr).toBe(130);
      expect(stderr).toMatch(/interrupted/);
      expect(await replicas()).toBe(3);
    } finally {
      await sb.kube.failPods(undefined);
    }
  });
});
