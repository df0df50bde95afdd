// pod heap-dump and pod gc against the real control plane: kwok runs each pod's exec as a local
// process and forwards its ports to local ones, so "inside the container" is this machine. A real
// JVM (OpenJDK) is dumped with jcmd and copied out over exec; a real Node.js process gets its
// inspector opened with SIGUSR1 and is snapshotted through a port-forward. Faults come from the
// container's own tools: a `df`, `tar` or `sha256sum` first on the exec's PATH.
import { startControlPlane } from '../../support/cluster/control-plane.js';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect, createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { runCli, tempDir } from '../../support/cli.js';
import { writeConfig } from '../../support/config.js';
import { ScriptedPrompter } from '../../support/prompter.js';
import { startKube, type KubeHarness, type Pod } from '../../support/cluster/index.js';
import type { Procedure, Step } from '../../../src/core/procedure.js';
import { InterruptedError, StepError } from '../../../src/core/errors.js';

let kube: KubeHarness;
let NS: string;
let cwd: string;
let root: string;
/** What the containers see: a PATH with a folder of fake tools first, and their own temp folder. */
let bin: string;
let ctmp: string;
let jvmPod: string;
let nodePod: string;
let multiPod: string;
let jvm: ChildProcess;
let node: ChildProcess;
let inspectPort: number;
const children: ChildProcess[] = [];

const stepData = (doc: { steps: Array<{ id: string; data: unknown }> }) => Object.fromEntries(doc.steps.map((s) => [s.id, s.data])) as Record<string, any>;
const sha256 = (f: string) => createHash('sha256').update(readFileSync(f)).digest('hex');

function cli(argv: string[], opts: Parameters<typeof runCli>[1] = {}) {
  return runCli(argv, { cwd, ...opts });
}

async function podOf(app: string): Promise<string> {
  const pods = (await kube.list<Pod>('pods', { namespace: NS, labelSelector: `app=${app}` })).filter((p) => !p.metadata.deletionTimestamp);
  return pods[0]!.metadata.name;
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

/** Starts a process and waits for a line on its stdout. */
async function startProcess(cmd: string, args: string[], ready: string): Promise<ChildProcess> {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes(ready)) resolve();
    });
    child.on('exit', (code) => reject(new Error(`${cmd} exited (${code}) before "${ready}"`)));
  });
  return child;
}

/** A fake tool first on the containers' PATH (removed after each test). */
function fakeTool(name: string, script: string): void {
  writeFileSync(join(bin, name), `#!/bin/sh\n${script}\n`);
  chmodSync(join(bin, name), 0o755);
}

const listening = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = connect(port, '127.0.0.1', () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });

beforeAll(async () => {
  // A control plane of its own: kwok serves exec and port-forward for every node of a shared one, and
  // other files' node churn there made its exec answers fail under load.
  kube = await startKube({ namespace: 'heap-dump', nodes: 1, controlPlane: await startControlPlane() });
  NS = kube.namespace;
  root = tempDir('runbook-heap-');
  bin = join(root, 'bin');
  ctmp = join(root, 'container-tmp');
  mkdirSync(bin);
  mkdirSync(ctmp);
  const kubeconfig = join(root, 'kubeconfig');
  await kube.writeKubeconfig(kubeconfig, { context: 'test', namespace: NS });
  const container = (name: string) => ({
    name,
    image: `registry.example.com/${name}:1.0.0`,
    livenessProbe: { httpGet: { path: '/health', port: 8080 }, periodSeconds: 10, failureThreshold: 3 },
  });
  await kube.seedDeployment({ name: 'jvm', replicas: 1, labels: { app: 'jvm' }, containers: [container('app')] });
  await kube.seedDeployment({ name: 'node', replicas: 1, labels: { app: 'node' }, containers: [container('app')] });
  await kube.seedDeployment({ name: 'multi', replicas: 1, labels: { app: 'multi' }, containers: [container('app'), container('sidecar')] });
  [jvmPod, nodePod, multiPod] = [await podOf('jvm'), await podOf('node'), await podOf('multi')];
  const env = { TMPDIR: ctmp, PATH: `${bin}:${process.env.PATH}` };
  for (const p of [jvmPod, nodePod]) await kube.enableExec(p, { workDir: root, env });
  await kube.enableExec(multiPod, { workDir: root, env, containers: ['app', 'sidecar'] });

  // A real JVM holding ~24 MiB of live objects.
  const src = join(root, 'java');
  mkdirSync(src);
  writeFileSync(
    join(src, 'Hold.java'),
    'import java.util.*; public class Hold { public static void main(String[] a) throws Exception { List<byte[]> keep = new ArrayList<>(); for (int i = 0; i < 24; i++) keep.add(new byte[1 << 20]); System.out.println("ready"); Thread.sleep(3_600_000); System.out.println(keep.size()); } }',
  );
  const javac = spawnSync('javac', ['-d', src, join(src, 'Hold.java')], { encoding: 'utf8' });
  expect(javac.status, javac.stderr).toBe(0);
  jvm = await startProcess('java', ['-Xmx256m', '-cp', src, 'Hold'], 'ready');
  // A real Node.js process; SIGUSR1 opens its inspector on a port of its own (not 9229, which others
  // on this machine may use), forwarded by kwok from the same port of the pod.
  inspectPort = await freePort();
  node = await startProcess(
    process.execPath,
    [
      `--inspect-port=127.0.0.1:${inspectPort}`,
      '-e',
      'globalThis.keep = Array.from({ length: 50000 }, (_, i) => ({ i, s: "leak-" + i })); console.log("ready"); setInterval(() => {}, 1000)',
    ],
    'ready',
  );
  await kube.enablePortForward(nodePod, { port: inspectPort }, { ports: [inspectPort] });

  const kubernetes = { kubeconfig, context: 'test', namespace: NS, deployment: 'jvm', selector: 'app=jvm' };
  cwd = writeConfig({ default: 'staging', environments: { staging: { protected: false, kubernetes }, prod: { protected: true, kubernetes } } }).dir;
}, 180_000);

afterEach(() => {
  for (const f of readdirSync(bin)) rmSync(join(bin, f));
  kube.faults.clear();
});

afterAll(async () => {
  for (const c of children) c.kill('SIGKILL');
  await kube?.close();
});

describe('pod heap-dump of a JVM', () => {
  it('dumps it with jcmd, copies it out over exec, checks size and sha256 on both sides, deletes it in the container', async () => {
    const out = tempDir('dumps-');
    const r = await cli(['pod', 'heap-dump', jvmPod, '--pid', String(jvm.pid), '--out', out, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const d = stepData(JSON.parse(r.stdout));
    expect(d.target).toMatchObject({ pod: jvmPod, container: 'app', runtime: 'jvm', pid: jvm.pid, command: 'java Hold', tmpDir: ctmp });
    expect(d.size.heap.used).toBeGreaterThan(20 * 2 ** 20);
    expect(d.size.containerFile).toMatch(new RegExp(`^${ctmp}/runbook-heap-${jvm.pid}-.+\\.hprof$`));
    expect(d.dump).toMatchObject({ runtime: 'jvm', tool: 'jcmd', containerFile: d.size.containerFile });
    const file = d.copy.localFile as string;
    expect(file.startsWith(out)).toBe(true);
    expect(readdirSync(out)).toEqual([file.slice(out.length + 1)]);
    expect(readFileSync(file).subarray(0, 18).toString('latin1')).toBe('JAVA PROFILE 1.0.2');
    expect(statSync(file).size).toBe(d.dump.bytes);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(d.copy).toMatchObject({ via: 'tar', verified: 'sha256', bytes: d.dump.bytes, sha256: sha256(file), containerSha256: sha256(file) });
    expect(d.cleanup).toEqual({ deleted: d.size.containerFile });
    expect(readdirSync(ctmp)).toEqual([]);
    // The process was found and the copy made through the API server's exec, never on this machine.
    expect(kube.requests.some((q) => q.path === `/api/v1/namespaces/${NS}/pods/${jvmPod}/exec`)).toBe(true);
    expect(r.stderr).toMatch(/paused \(stop-the-world\) for about/);
    const text = await cli(['pod', 'heap-dump', jvmPod, '--pid', String(jvm.pid), '--out', out]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/heap dump of JVM pid \d+ \(java Hold\)/);
    expect(text.stdout).toMatch(/size and sha256 match the container's copy/);
    expect(text.stdout).toMatch(/deleted/);
  });

  it('without tar in the image: a plain byte stream, checked the same way', async () => {
    fakeTool('tar', 'exit 127');
    // `command -v tar` must not find one: a tool that is not there.
    rmSync(join(bin, 'tar'));
    const restricted = join(root, 'restricted');
    mkdirSync(restricted, { recursive: true });
    for (const t of ['sh', 'cat', 'sha256sum', 'df', 'wc', 'rm', 'readlink', 'grep', 'id', 'head', 'tr', 'jcmd', 'kill']) {
      const real = spawnSync('sh', ['-c', `command -v ${t}`], { encoding: 'utf8' }).stdout.trim();
      if (real && !existsSync(join(restricted, t))) writeFileSync(join(restricted, t), `#!/bin/sh\nexec ${real} "$@"\n`, { mode: 0o755 });
    }
    await kube.enableExec(jvmPod, { workDir: root, env: { TMPDIR: ctmp, PATH: restricted } });
    try {
      // kwok takes the new Exec from its watch: wait until the exec sees the new PATH.
      await kube.waitFor(
        async () =>
          (
            await kube.kubectl(['exec', jvmPod, '-c', 'app', '--', 'sh', '-c', 'echo $PATH'], { kubeconfig: kube.info.kubeconfig, namespace: NS })
          ).stdout.trim() === restricted,
        { timeoutMs: 15_000, what: 'the restricted PATH' },
      );
      const out = tempDir('dumps-');
      const r = await cli(['pod', 'heap-dump', jvmPod, '--pid', String(jvm.pid), '--out', out, '--json']);
      expect(r.code, r.stderr).toBe(0);
      const d = stepData(JSON.parse(r.stdout));
      expect(d.target.tools.tar).toBe(false);
      expect(d.copy).toMatchObject({ via: 'cat', verified: 'sha256', sha256: sha256(d.copy.localFile) });
      expect(readdirSync(ctmp)).toEqual([]);
    } finally {
      const env = { TMPDIR: ctmp, PATH: `${bin}:${process.env.PATH}` };
      await kube.enableExec(jvmPod, { workDir: root, env });
      await kube.waitFor(
        async () =>
          (
            await kube.kubectl(['exec', jvmPod, '-c', 'app', '--', 'sh', '-c', 'echo $PATH'], { kubeconfig: kube.info.kubeconfig, namespace: NS })
          ).stdout.trim() === env.PATH,
        { timeoutMs: 15_000, what: 'the PATH back' },
      );
    }
  });

  it('too little free space in the container: refused before anything is written (exit 4)', async () => {
    fakeTool('df', `echo 'Filesystem 1024-blocks Used Available Capacity Mounted on'; echo "tmpfs 65536 60000 5536 92% $1"`);
    const out = tempDir('dumps-');
    const r = await cli(['pod', 'heap-dump', jvmPod, '--pid', String(jvm.pid), '--out', out]);
    expect(r.code, r.stderr).toBe(4);
    expect(r.stderr).toMatch(
      new RegExp(`not enough room for a heap dump of ~[\\d.]+ MiB in ${ctmp} of container app .*: 5\\.4 MiB free, [\\d.]+ MiB needed; nothing was written`),
    );
    expect(readdirSync(ctmp)).toEqual([]);
    expect(readdirSync(out)).toEqual([]);
  });

  it('a copy that fails half-way: the container file is deleted (compensation), no partial file here (exit 1)', async () => {
    fakeTool('tar', '/usr/bin/tar "$@" | head -c 100000\nexit 2');
    const out = tempDir('dumps-');
    const r = await cli(['pod', 'heap-dump', jvmPod, '--pid', String(jvm.pid), '--out', out, '--json']);
    expect(r.code, r.stderr).toBe(1);
    const doc = JSON.parse(r.stdout);
    expect(doc.steps.find((s: { id: string }) => s.id === 'copy')).toMatchObject({
      status: 'failed',
      error: expect.stringMatching(/copying .*\.hprof out \(tar\) failed after 97\.7 KiB/),
    });
    expect(doc.compensations).toEqual([{ step: 'dump', status: 'succeeded' }]);
    expect(readdirSync(ctmp)).toEqual([]);
    expect(readdirSync(out)).toEqual([]);
  });

  it('a copy whose checksum does not match is refused and cleaned up the same way', async () => {
    fakeTool('sha256sum', 'echo "0000000000000000000000000000000000000000000000000000000000000000  $1"');
    const out = tempDir('dumps-');
    const r = await cli(['pod', 'heap-dump', jvmPod, '--pid', String(jvm.pid), '--out', out]);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/the copy's sha256 [0-9a-f]{12}… differs from the container's 000000000000…/);
    expect(readdirSync(ctmp)).toEqual([]);
    expect(readdirSync(out)).toEqual([]);
  });

  it('Ctrl-C during the copy: the container file is deleted, the partial copy too (exit 130); resume takes the dump again', async () => {
    fakeTool('tar', '/usr/bin/tar "$@" | head -c 65536\nsleep 20');
    const out = tempDir('dumps-');
    const env = { RUNBOOK_JOURNAL_DIR: tempDir('journal-') };
    const ctl = new AbortController();
    const watcher = setInterval(() => {
      const part = readdirSync(out).find((f) => f.endsWith('.part'));
      if (part && statSync(join(out, part)).size > 0) ctl.abort(new InterruptedError('SIGINT'));
    }, 50);
    const r = await cli(['pod', 'heap-dump', jvmPod, '--pid', String(jvm.pid), '--out', out, '--json'], {
      env,
      interrupts: { signal: ctl.signal, hard: new AbortController().signal },
    });
    clearInterval(watcher);
    expect(ctl.signal.aborted).toBe(true);
    expect(r.code, r.stderr).toBe(130);
    expect(r.stderr).toMatch(/undo: Take the heap dump/);
    expect(JSON.parse(r.stdout).compensations).toEqual([{ step: 'dump', status: 'succeeded' }]);
    await new Promise((res) => setTimeout(res, 300));
    expect(readdirSync(ctmp)).toEqual([]);
    expect(readdirSync(out)).toEqual([]);

    // The dump was compensated (deleted): resume takes it again, and finishes the copy.
    rmSync(join(bin, 'tar'));
    const resumed = await cli(['resume', JSON.parse(r.stdout).runId, '--json'], { env });
    expect(resumed.code, resumed.stderr).toBe(0);
    const byId = Object.fromEntries(JSON.parse(resumed.stdout).steps.map((s: { id: string; status: string }) => [s.id, s.status]));
    expect(byId).toMatchObject({ target: 'skipped', size: 'skipped', dump: 'succeeded', copy: 'succeeded', cleanup: 'succeeded' });
    expect(readdirSync(out).filter((f) => f.endsWith('.hprof'))).toHaveLength(1);
    expect(readdirSync(ctmp)).toEqual([]);
  });

  it('--dry-run reads the heap and the free space for real and writes nothing: the pause, the bytes and where the file lands', async () => {
    const out = tempDir('dumps-');
    const seen = kube.requests.length;
    const r = await cli(['pod', 'heap-dump', jvmPod, '--pid', String(jvm.pid), '--out', out, '--dry-run']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/DRY RUN/);
    expect(r.stderr).toMatch(/heap dump \(jcmd GC\.heap_dump; a full GC, then stop-the-world ~[\d.]+m?s\)/);
    expect(r.stderr).toMatch(new RegExp(`${ctmp}/runbook-heap-\\d+-.+\\.hprof in the container \\(~[\\d.]+ MiB`));
    expect(r.stderr).toContain(out);
    expect(r.stderr).toMatch(/liveness probe \(3 failures × 10s\) restarts the container after ~31s/);
    expect(readdirSync(ctmp)).toEqual([]);
    expect(readdirSync(out)).toEqual([]);
    // Only reads ran in the container (discovery, GC.heap_info, df): nothing that names the dump file
    // (jcmd GC.heap_dump, tar, sha256sum, rm); no write to the API but the permission checks.
    const since = kube.requests.slice(seen);
    expect(since.filter((q) => q.path.endsWith('/exec')).map((q) => q.query.command)).toEqual(expect.arrayContaining([String(jvm.pid), ctmp]));
    expect(since.filter((q) => q.path.endsWith('/exec') && /\.hprof$/.test(q.query.command ?? ''))).toEqual([]);
    expect(kube.mutations().filter((m) => kube.requests.indexOf(m) >= seen && !/\/selfsubjectaccessreviews$/.test(m.path))).toEqual([]);
    const offline = await cli(['pod', 'heap-dump', jvmPod, '--dry-run=offline']);
    expect(offline.code, offline.stderr).toBe(0);
    expect(offline.stdout).toMatch(/jcmd <pid> GC\.heap_dump/);
  });

  it('in a protected environment the approval says what it costs; without a terminal or --yes it fails closed (exit 3)', async () => {
    const out = tempDir('dumps-');
    const closed = await cli(['pod', 'heap-dump', jvmPod, '--pid', String(jvm.pid), '--out', out, '-e', 'prod']);
    expect(closed.code, closed.stderr).toBe(3);
    expect(readdirSync(ctmp)).toEqual([]);
    const prompter = new ScriptedPrompter([false]);
    const declined = await cli(['pod', 'heap-dump', jvmPod, '--pid', String(jvm.pid), '--out', out, '-e', 'prod'], { tty: true, prompter });
    expect(declined.code, declined.stderr).toBe(3);
    expect(prompter.asked).toEqual([expect.stringMatching(/Approve the whole plan above \(pod heap-dump in prod\)/)]);
    expect(declined.stderr).toMatch(/The whole plan of pod heap-dump in prod \(PROTECTED\):/);
    expect(declined.stderr).toMatch(/• the process is paused \(stop-the-world\) for about/);
    expect(declined.stderr).toMatch(/• copied out over exec \(tar\): ~[\d.]+ MiB to transfer, size and sha256 checked on both sides, to /);
    expect(declined.stderr).toMatch(/• the file in the container is deleted afterwards, and also on failure or Ctrl-C/);
    expect(declined.stderr).toMatch(/handle it as a secret/);
    expect(readdirSync(ctmp)).toEqual([]);
    expect(readdirSync(out)).toEqual([]);
  });
});

describe('pod heap-dump of a Node.js process', () => {
  it('opens its inspector with SIGUSR1, streams the snapshot through a port-forward, closes the inspector again', async () => {
    expect(await listening(inspectPort)).toBe(false);
    const out = tempDir('dumps-');
    const r = await cli(['pod', 'heap-dump', nodePod, '--pid', String(node.pid), '--out', out, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const d = stepData(JSON.parse(r.stdout));
    expect(d.target).toMatchObject({ runtime: 'node', pid: node.pid, command: 'node -e …', inspect: { host: '127.0.0.1', port: inspectPort, open: false } });
    expect(d.inspector).toEqual({ port: inspectPort, address: '127.0.0.1', opened: true });
    const file = d.copy.localFile as string;
    expect(file).toMatch(/\.heapsnapshot$/);
    const snap = JSON.parse(readFileSync(file, 'utf8'));
    expect(snap.snapshot.meta.node_fields.length).toBeGreaterThan(0);
    expect(snap.nodes.length).toBe(snap.snapshot.node_count * snap.snapshot.meta.node_fields.length);
    expect(snap.edges.length).toBe(snap.snapshot.edge_count * snap.snapshot.meta.edge_fields.length);
    expect(snap.strings).toContain('leak-49999');
    expect(d.dump).toMatchObject({
      runtime: 'node',
      nodes: snap.snapshot.node_count,
      edges: snap.snapshot.edge_count,
      bytes: statSync(file).size,
      sha256: sha256(file),
      parsed: 'full',
    });
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(d['close-inspector']).toEqual({ closed: `127.0.0.1:${inspectPort}` });
    expect(await listening(inspectPort)).toBe(false);
    // Nothing written in the container; the inspector was reached through the API server's port-forward.
    expect(readdirSync(ctmp)).toEqual([]);
    expect(kube.requests.some((q) => q.path === `/api/v1/namespaces/${NS}/pods/${nodePod}/portforward` && q.query.ports === String(inspectPort))).toBe(true);
    expect(readdirSync(out)).toEqual([file.slice(out.length + 1)]);
  });

  it('a failure after the inspector opened closes it again (compensation)', async () => {
    const failing: Step = {
      id: 'boom',
      title: 'Injected failure',
      why: 'test',
      risk: 'read',
      equivalent: () => 'false',
      run: async () => {
        throw new StepError('injected failure');
      },
    };
    const override = (proc: Procedure): Procedure => {
      const i = proc.steps.findIndex((s) => s.id === 'inspector');
      return { ...proc, steps: [...proc.steps.slice(0, i + 1), failing, ...proc.steps.slice(i + 1)] };
    };
    const r = await cli(['pod', 'heap-dump', nodePod, '--pid', String(node.pid), '--out', tempDir('dumps-'), '--json'], { procedureOverride: override });
    expect(r.code, r.stderr).toBe(1);
    expect(JSON.parse(r.stdout).compensations).toEqual([{ step: 'inspector', status: 'succeeded' }]);
    expect(await listening(inspectPort)).toBe(false);
  });

  it('several Java/Node.js processes in the container: refused, never guessed (say --pid)', async () => {
    // kwok's "container" is this machine: the JVM, this Node.js process and the test runner's are all there.
    const r = await cli(['pod', 'heap-dump', nodePod, '--out', tempDir('dumps-')]);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(
      new RegExp(`\\d+ Java/Node\\.js processes in container app of pod ${nodePod}: .*${node.pid} \\(node -e …\\).*; not guessing which`),
    );
    expect(r.stderr).toMatch(/say which with --pid <pid>/);
    expect(await listening(inspectPort)).toBe(false);
    const missing = await cli(['pod', 'heap-dump', nodePod, '--pid', '4000000']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/no Java or Node\.js process with pid 4000000 in container app/);
  });
});

describe('pod gc', () => {
  it('JVM: jcmd GC.run, with the heap before and after', async () => {
    const r = await cli(['pod', 'gc', jvmPod, '--pid', String(jvm.pid), '--json']);
    expect(r.code, r.stderr).toBe(0);
    const g = stepData(JSON.parse(r.stdout)).gc;
    expect(g).toMatchObject({ runtime: 'jvm', how: 'jcmd GC.run' });
    expect(g.before).toBeGreaterThan(20 * 2 ** 20);
    expect(g.after).toBeGreaterThan(20 * 2 ** 20);
    expect(g.freed).toBe(g.before - g.after);
    // Without a pod name: the environment's deployment (jvm) has one running pod.
    const text = await cli(['pod', 'gc', '--pid', String(jvm.pid)]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(new RegExp(`garbage collection of JVM pid ${jvm.pid} \\(java Hold\\) in pod ${jvmPod}, container app \\(jcmd GC\\.run`));
    expect(text.stdout).toMatch(/heap in use {2}[\d.]+ MiB → [\d.]+ MiB/);
    expect(text.stderr).toMatch(/the only running pod of deployment\/jvm/);
  });

  it('Node.js: HeapProfiler.collectGarbage through the inspector, closed again afterwards', async () => {
    const r = await cli(['pod', 'gc', nodePod, '--pid', String(node.pid), '--json']);
    expect(r.code, r.stderr).toBe(0);
    const d = stepData(JSON.parse(r.stdout));
    expect(d.gc).toMatchObject({ runtime: 'node', how: 'HeapProfiler.collectGarbage' });
    expect(d.gc.before).toBeGreaterThan(0);
    expect(d.gc.after).toBeGreaterThan(0);
    expect(d['close-inspector']).toEqual({ closed: `127.0.0.1:${inspectPort}` });
    expect(await listening(inspectPort)).toBe(false);
  });
});

describe('names and containers', () => {
  it('a pod with several containers needs --container', async () => {
    const r = await cli(['pod', 'heap-dump', multiPod, '--pid', String(jvm.pid)]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`pod ${multiPod} has 2 containers (app, sidecar); say which with --container`);
    const ok = await cli(['pod', 'gc', multiPod, '--container', 'sidecar', '--pid', String(jvm.pid), '--json']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(stepData(JSON.parse(ok.stdout)).target).toMatchObject({ container: 'sidecar', runtime: 'jvm' });
  });

  it.each([
    [['pod', 'heap-dump', 'App_Pod'], /invalid pod "App_Pod"/],
    [['pod', 'heap-dump', 'app-1', '--container', 'Bad Name'], /invalid --container "Bad Name"/],
    [['pod', 'heap-dump', 'app-1', '--pid', 'abc'], /--pid must be a whole number/],
    [['pod', 'heap-dump', 'app-1', '--pid', '0'], /--pid must be at least 1/],
    [['pod', 'gc', 'app-1', '--pid', '-3'], /--pid must be/],
    [['pod', 'gc', 'UPPER'], /invalid pod "UPPER"/],
  ])('%j exits 2 with nothing contacted', async (argv, message) => {
    const seen = kube.requests.length;
    const r = await cli(argv);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(kube.requests.length).toBe(seen);
  });

  it('an --out that is not a folder is a usage error before the pod is touched', async () => {
    const r = await cli(['pod', 'heap-dump', jvmPod, '--pid', String(jvm.pid), '--out', join(root, 'nope')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/cannot write heap dumps to .*nope: ENOENT/);
  });
});
