import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { link, open, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { KubeClient } from '../../clients/kube.js';
import { StepError, errorMessage } from '../../core/errors.js';
import { formatBytes } from '../../core/format.js';
import { formatDuration } from '../../core/duration.js';
import { defineProcedure, stepFor, type StepContext } from '../../core/procedure.js';
import { ns } from '../shared/pods.js';
import { checkHeapSnapshot, connectInspector, heapUsage, streamHeapSnapshot } from './inspector.js';
import {
  PROCESS_TARGET_PARAMS,
  closeInspectorStep,
  containerFree,
  inspectorPort,
  inspectorStep,
  jvmHeap,
  localFree,
  localName,
  outDir,
  pauseEstimate,
  pauseLines,
  refuseIfNoRoom,
  roomFor,
  runtimeName,
  targetStep,
  where,
  type ProcessParams,
  type ProcessTarget,
  type SizeData,
  inspectorLine,
} from './process-steps.js';
import { execOf, kubectlExec, parseHeapDumpDone, shellIn, shellOk } from './runtime.js';
import { TarFileExtractor } from './tar.js';

interface Params extends ProcessParams {
  out?: string;
}

const step = stepFor<Params>();

const target = targetStep<Params>({
  why: "The PID is looked up inside the container, through exec (the seed's `$(pgrep java)` runs on the laptop and names a laptop process); several Java/Node.js processes there are refused, never guessed: say --pid.",
  prepare: (ctx) => outDir(ctx),
});

/** The file in the container (JVM) is only ever one this tool named: nothing else is deleted. */
const OUR_FILE = /\/runbook-heap-\d+-[\w.-]+\.hprof$/;

const size = step({
  id: 'size',
  title: 'Size the dump and check there is room for it',
  why: "A heap dump is about as big as the live heap: the container's temp folder (JVM) and the folder here must hold it, checked before anything is written (the seed writes into the container's /tmp unchecked and leaves it there).",
  risk: 'read',
  equivalent: (p, env) => {
    const c = { pod: p.pod ?? '<pod>', container: p.container ?? '<container>' };
    return `JVM: ${kubectlExec(c, ns(env), `jcmd ${p.pid ?? '<pid>'} GC.heap_info`)} && ${kubectlExec(c, ns(env), 'df -P -k /tmp')} && df -k ${p.out ?? '.'}; Node.js: ${kubectlExec(c, ns(env), `grep VmRSS /proc/${p.pid ?? '<pid>'}/status`)}`;
  },
  async run(ctx): Promise<SizeData> {
    const t = ctx.get(target);
    const dir = await outDir(ctx);
    const kube = await ctx.clients.kube();
    const here = await localFree(dir);
    const file = join(dir, localName(t, ctx.runId, t.runtime === 'jvm' ? 'hprof' : 'heapsnapshot'));
    let data: SizeData;
    if (t.runtime === 'jvm') {
      const heap = await jvmHeap(kube, t, ctx.signal);
      const estimate = heap?.used ?? t.rssBytes ?? 0;
      const containerFile = `${t.tmpDir.replace(/\/+$/, '') || ''}/runbook-heap-${t.pid}-${ctx.runId}.hprof`;
      const free = await containerFree(kube, t, t.tmpDir, ctx.signal);
      if (free === null) {
        throw new StepError(
          `container ${t.container} of pod ${t.pod} has no df: the free space of ${t.tmpDir} cannot be checked, and a full disk there is the node's`,
          'take the dump from a debug container: kubectl debug -it <pod> --image=eclipse-temurin:17-jdk --target=<container>',
        );
      }
      refuseIfNoRoom(
        free,
        roomFor(estimate),
        `not enough room for a heap dump of ~${formatBytes(estimate)} in ${t.tmpDir} of container ${t.container} (pod ${t.pod})`,
        'free space there, or give the container an emptyDir for its temp folder (TMPDIR)',
      );
      refuseIfNoRoom(
        here,
        roomFor(estimate),
        `not enough room here for a heap dump of ~${formatBytes(estimate)} in ${dir}`,
        'pass --out <folder> on a disk with room',
      );
      data = {
        runtime: 'jvm',
        heap,
        rssBytes: t.rssBytes,
        estimateBytes: estimate,
        pauseSeconds: pauseEstimate('jvm', 'dump', estimate),
        localFile: file,
        localFree: here,
        containerFile,
        containerFree: free,
        via: t.tools.tar ? 'tar' : 'cat',
      };
    } else {
      // The JS heap is known once the inspector is open; the RSS bounds it. Snapshots run 1–2× the heap.
      const estimate = t.rssBytes ?? 0;
      refuseIfNoRoom(
        here,
        roomFor(estimate * 2),
        `not enough room here for a heap snapshot of up to ~${formatBytes(estimate * 2)} in ${dir}`,
        'pass --out <folder> on a disk with room',
      );
      data = {
        runtime: 'node',
        heap: null,
        rssBytes: t.rssBytes,
        estimateBytes: estimate,
        pauseSeconds: pauseEstimate('node', 'dump', estimate),
        localFile: file,
        localFree: here,
        via: 'inspector',
      };
    }
    for (const line of costLines(t, data)) ctx.log(line);
    return data;
  },
});

/** What the run costs, for the approval and for the log of runs that are not asked (and dry runs). */
function costLines(t: ProcessTarget, s: SizeData): string[] {
  const lines = pauseLines(t, s, 'heap dump');
  if (t.runtime === 'jvm') {
    lines.push(
      `a full GC, then ~${formatBytes(s.estimateBytes)} (the live heap) written to ${s.containerFile} in the container (${formatBytes(s.containerFree ?? 0)} free there)`,
    );
    lines.push(
      `copied out over exec (${s.via === 'tar' ? 'tar' : 'a plain byte stream: no tar in the image'}): ~${formatBytes(s.estimateBytes)} to transfer, size and sha256 checked on both sides, to ${s.localFile}`,
    );
    lines.push('the file in the container is deleted afterwards, and also on failure or Ctrl-C');
  } else {
    lines.push(inspectorLine(t));
    lines.push(`the snapshot (usually 1–2× the JS heap) is streamed to ${s.localFile}: nothing is written in the container`);
  }
  lines.push('a heap dump holds whatever the process has in memory (passwords, tokens, personal data): the file is private (mode 0600); handle it as a secret');
  return lines;
}

const inspector = inspectorStep<Params>(target);

type DumpData =
  | { runtime: 'jvm'; containerFile: string; bytes: number; seconds: number | null; tool: 'jcmd' | 'jmap' }
  | {
      runtime: 'node';
      localFile: string;
      bytes: number;
      sha256: string;
      jsHeapUsed: number;
      nodes: number;
      edges: number;
      parsed: 'full' | 'header';
      seconds: number;
    };

async function removeInContainer(kube: KubeClient, t: ProcessTarget, file: string): Promise<void> {
  if (!OUR_FILE.test(file)) throw new Error(`refusing to delete ${file}: not a file this tool wrote`);
  const out = await shellOk(kube, t, `rm -f ${file}`, 'rm -f "$1"; if [ -e "$1" ]; then echo present; else echo gone; fi', [file]);
  if (!out.includes('gone')) throw new StepError(`${file} is still there in container ${t.container} of pod ${t.pod}`);
}

async function containerSize(kube: KubeClient, t: ProcessTarget, file: string): Promise<number | null> {
  const r = await shellIn(kube, t, '[ -f "$1" ] || { echo @@missing; exit 0; }; wc -c < "$1"', [file]);
  const text = r.stdout.toString('utf8').trim();
  if (text.includes('@@missing')) return null;
  if (r.exitCode !== 0 || !/^\d+$/.test(text))
    throw new StepError(`cannot read the size of ${file} in container ${t.container}: ${r.stderr.trim() || r.error || text}`);
  return Number(text);
}

const dump = step({
  id: 'dump',
  title: 'Take the heap dump',
  why: "The runtime's own way: jcmd GC.heap_dump (jmap where jcmd is missing) into the container's temp folder for a JVM; HeapProfiler.takeHeapSnapshot streamed from the inspector for Node.js (the seed's `kill -USR1` only opens the inspector, and `node --inspect-brk=0.0.0.0:9229` starts a second process exposed to the network).",
  risk: 'write',
  equivalent: (p, env) => {
    const c = { pod: p.pod ?? '<pod>', container: p.container ?? '<container>' };
    return `JVM: ${kubectlExec(c, ns(env), `jcmd ${p.pid ?? '<pid>'} GC.heap_dump /tmp/runbook-heap-${p.pid ?? '<pid>'}-<run>.hprof`)}; Node.js: chrome://inspect → the forwarded 127.0.0.1:9229 → Memory → Take heap snapshot`;
  },
  async plan(ctx) {
    const t = ctx.get(target);
    const s = ctx.get(size);
    const pause = `stop-the-world ~${formatDuration(s.pauseSeconds * 1000)}`;
    if (t.runtime === 'jvm')
      return [
        {
          action: `heap dump (${t.tools.jcmd ? 'jcmd GC.heap_dump' : 'jmap -dump:live'}; a full GC, then ${pause})`,
          target: where(t),
          after: `${s.containerFile} in the container (~${formatBytes(s.estimateBytes)}; ${formatBytes(s.containerFree ?? 0)} free there)`,
        },
      ];
    return [
      {
        action: `heap snapshot (HeapProfiler.takeHeapSnapshot; ${pause})`,
        target: where(t),
        after: `${s.localFile} (streamed here; nothing written in the container)`,
      },
    ];
  },
  async run(ctx): Promise<DumpData> {
    const t = ctx.get(target);
    const s = ctx.get(size);
    const kube = await ctx.clients.kube();
    if (t.runtime === 'jvm') return jvmDump(ctx, kube, t, s);
    return nodeSnapshot(ctx, kube, t, s);
  },
  async undo(ctx, data) {
    if (data.runtime !== 'jvm') return;
    await removeInContainer(await ctx.clients.kube(), ctx.get(target), data.containerFile);
  },
  undoByHand: (ctx, data) =>
    data.runtime === 'jvm' ? kubectlExec(ctx.get(target), ns(ctx.env), `rm -f ${data.containerFile}`) : 'nothing: the snapshot wrote nothing in the container',
  postcondition: {
    describe: 'the dump is still there (in the container for a JVM, here for Node.js)',
    async check(ctx, d) {
      if (d.runtime === 'node') return (await sizeOf(d.localFile)) === d.bytes ? { holds: true } : { holds: false, found: `${d.localFile} is gone or changed` };
      const bytes = await containerSize(await ctx.clients.kube(), ctx.get(target), d.containerFile);
      return bytes === d.bytes
        ? { holds: true }
        : { holds: false, found: bytes === null ? `${d.containerFile} is gone (deleted by the compensation)` : `${d.containerFile} has ${bytes} bytes now` };
    },
  },
});

async function sizeOf(file: string): Promise<number | null> {
  try {
    return (await stat(file)).size;
  } catch {
    return null;
  }
}

async function jvmDump(ctx: StepContext<Params>, kube: KubeClient, t: ProcessTarget, s: SizeData): Promise<DumpData> {
  const file = s.containerFile!;
  // Checked again right before writing: the folder is shared with the application.
  const free = await containerFree(kube, t, t.tmpDir);
  if (free !== null && free < roomFor(s.estimateBytes)) {
    throw new StepError(
      `not enough room left in ${t.tmpDir} of container ${t.container}: ${formatBytes(free)} free, ${formatBytes(roomFor(s.estimateBytes))} needed; nothing was written`,
    );
  }
  const tool = t.tools.jcmd ? 'jcmd' : 'jmap';
  const args = t.tools.jcmd ? [t.tools.jcmd, String(t.pid), 'GC.heap_dump', file] : [t.tools.jmap!, `-dump:live,format=b,file=${file}`, String(t.pid)];
  const t0 = performance.now();
  ctx.log(`${tool}: dumping the heap of pid ${t.pid} to ${file} …`);
  try {
    // Not cut short by Ctrl-C: the JVM writes the file whatever happens to jcmd. The interrupt is
    // honoured once it is done, and this step's undo deletes the file.
    const r = await shellIn(kube, t, '"$@"', args, { timeoutMs: 60 * 60_000, maxBytes: 1024 * 1024 });
    const out = r.stdout.toString('utf8');
    if (r.exitCode !== 0 || /Exception|Error|Unable to|File exists/.test(out) || !/Heap dump file created/.test(out)) {
      throw new StepError(
        `${tool} could not dump the heap of pid ${t.pid}: ${(out.trim().split('\n').slice(-2).join(' ') || r.stderr.trim() || r.error || `exit code ${r.exitCode}`).slice(0, 300)}`,
      );
    }
    const done = parseHeapDumpDone(out);
    const bytes = await containerSize(kube, t, file);
    if (bytes === null) throw new StepError(`${tool} said it wrote ${file}, but it is not there`);
    if (done && done.bytes !== bytes) throw new StepError(`${file} has ${bytes} bytes, ${tool} said ${done.bytes}`);
    ctx.log(`heap dump written: ${formatBytes(bytes)} in ${done ? `${done.seconds}s` : formatDuration(performance.now() - t0)}`);
    return { runtime: 'jvm', containerFile: file, bytes, seconds: done?.seconds ?? null, tool };
  } catch (err) {
    // Whatever got written is removed before the step fails (its undo only runs once it succeeded).
    await removeInContainer(kube, t, file).catch((e: unknown) =>
      ctx.reporter.warn(`could not delete ${file} in container ${t.container}: ${errorMessage(e)} (run: ${kubectlExec(t, t.namespace, `rm -f ${file}`)})`),
    );
    throw err;
  }
}

/** Node.js: the snapshot, streamed from the inspector to `<file>.part`, checked, then renamed. */
async function nodeSnapshot(ctx: StepContext<Params>, kube: KubeClient, t: ProcessTarget, s: SizeData): Promise<DumpData> {
  const port = inspectorPort(t, ctx.find(inspector));
  const file = s.localFile!;
  const part = `${file}.part`;
  const session = await connectInspector(kube, t.pod, port, ctx.signal);
  let heap;
  let streamed;
  const t0 = performance.now();
  try {
    heap = await heapUsage(session);
    ctx.log(`JS heap of pid ${t.pid}: ${formatBytes(heap.used)} used of ${formatBytes(heap.total)}; taking the snapshot …`);
    let last = performance.now();
    streamed = await streamHeapSnapshot(session, part, ctx.signal, (bytes) => {
      if (performance.now() - last < 5000) return;
      last = performance.now();
      ctx.log(`snapshot: ${formatBytes(bytes)} so far`);
    });
  } catch (err) {
    await unlink(part).catch(() => undefined);
    throw err;
  } finally {
    session.close();
  }
  const seconds = Math.round((performance.now() - t0) / 100) / 10;
  try {
    const check = await checkSnapshotFile(part, streamed.bytes);
    await publish(part, file);
    ctx.log(`heap snapshot: ${formatBytes(streamed.bytes)}, ${check.nodes} nodes and ${check.edges} edges, in ${seconds}s`);
    return {
      runtime: 'node',
      localFile: file,
      bytes: streamed.bytes,
      sha256: streamed.sha256,
      jsHeapUsed: heap.used,
      nodes: check.nodes,
      edges: check.edges,
      parsed: check.parsed,
      seconds,
    };
  } catch (err) {
    await unlink(part).catch(() => undefined);
    throw err;
  }
}

const FULL_PARSE = 64 * 2 ** 20;

async function checkSnapshotFile(file: string, bytes: number) {
  const fh = await open(file, 'r');
  try {
    const head = Buffer.alloc(Math.min(bytes, 64 * 1024));
    await fh.read(head, 0, head.length, 0);
    if (bytes <= FULL_PARSE) return checkHeapSnapshot((await fh.readFile()).toString('utf8'), head.toString('utf8'));
    const tail = Buffer.alloc(Math.min(bytes, 1024));
    await fh.read(tail, 0, tail.length, bytes - tail.length);
    if (!/\]\s*\}\s*$/.test(tail.toString('utf8'))) throw new StepError('the heap snapshot is cut short (it does not end its JSON)');
    return checkHeapSnapshot(null, head.toString('utf8'), false);
  } finally {
    await fh.close();
  }
}

/** `part` becomes `file`, never replacing one that exists. */
async function publish(part: string, file: string): Promise<void> {
  try {
    await link(part, file);
  } catch (err) {
    throw new StepError(`cannot create ${file}: ${(err as NodeJS.ErrnoException).code ?? errorMessage(err)}`);
  }
  await unlink(part);
}

interface CopyData {
  /** Where the dump is now, on this machine. */
  localFile: string;
  bytes: number;
  sha256: string;
  via: 'tar' | 'cat' | 'inspector';
  /** sha256 compared with the container's (or, without sha256sum there, the size only). */
  verified: 'sha256' | 'size';
  /** The container's own sha256 of the file (null: no sha256sum there; Node.js: nothing in the container). */
  containerSha256: string | null;
}

const copy = step({
  id: 'copy',
  title: 'Copy the dump out and verify it',
  why: "Copied over exec as a byte stream (tar when the image has it, else cat; `kubectl cp` needs tar and checks nothing), then its size and sha256 are compared with the container's and the file must open (an hprof header; a snapshot with nodes and edges).",
  risk: 'read',
  followsWrite: true,
  equivalent: (p, env) => {
    const c = { pod: p.pod ?? '<pod>', container: p.container ?? '<container>' };
    const f = `/tmp/runbook-heap-${p.pid ?? '<pid>'}-<run>.hprof`;
    return `${kubectlExec(c, ns(env), `sha256sum ${f}`)} && ${kubectlExec(c, ns(env), `cat ${f}`)} > heap.hprof && sha256sum heap.hprof  # compare the two`;
  },
  async plan(ctx) {
    const t = ctx.get(target);
    const s = ctx.get(size);
    if (t.runtime !== 'jvm') return [{ action: 'check the snapshot parses (nodes and edges)', target: s.localFile ?? '' }];
    return [
      {
        action: `copy out over exec (${s.via}) and compare size and sha256 on both sides (~${formatBytes(s.estimateBytes)})`,
        target: `${s.containerFile} in the container`,
        after: s.localFile,
      },
    ];
  },
  async run(ctx): Promise<CopyData> {
    const d = ctx.get(dump);
    if (d.runtime === 'node') return { localFile: d.localFile, bytes: d.bytes, sha256: d.sha256, via: 'inspector', verified: 'sha256', containerSha256: null };
    const t = ctx.get(target);
    const s = ctx.get(size);
    const kube = await ctx.clients.kube();
    return copyOut(ctx, kube, t, s, d);
  },
  postcondition: {
    describe: 'the copy is here, with its size',
    check: async (_ctx, c) => ((await sizeOf(c.localFile)) === c.bytes ? { holds: true } : { holds: false, found: `${c.localFile} is gone or changed` }),
  },
});

async function remoteSha256(kube: KubeClient, t: ProcessTarget, file: string, signal: AbortSignal): Promise<string | null> {
  const script =
    'if command -v sha256sum >/dev/null 2>&1; then sha256sum "$1"; elif command -v openssl >/dev/null 2>&1; then openssl dgst -sha256 -r "$1"; else echo @@nosha; fi';
  const r = await shellIn(kube, t, script, [file], { signal, timeoutMs: 30 * 60_000 });
  const text = r.stdout.toString('utf8');
  if (text.includes('@@nosha')) return null;
  const m = /^([0-9a-f]{64})\b/m.exec(text);
  if (r.exitCode !== 0 || !m) throw new StepError(`sha256sum ${file} failed in container ${t.container}: ${r.stderr.trim() || r.error || text.slice(0, 100)}`);
  return m[1];
}

async function copyOut(ctx: StepContext<Params>, kube: KubeClient, t: ProcessTarget, s: SizeData, d: Extract<DumpData, { runtime: 'jvm' }>): Promise<CopyData> {
  const file = s.localFile!;
  const part = `${file}.part`;
  const theirs = await remoteSha256(kube, t, d.containerFile, ctx.signal);
  if (theirs === null) ctx.reporter.warn(`no sha256sum (or openssl) in container ${t.container}: the copy is checked by its size only`);
  const via = s.via === 'tar' ? 'tar' : 'cat';
  const slash = d.containerFile.lastIndexOf('/');
  const command =
    via === 'tar' ? ['tar', '-cf', '-', '-C', d.containerFile.slice(0, slash) || '/', d.containerFile.slice(slash + 1)] : ['cat', d.containerFile];
  const hash = createHash('sha256');
  let bytes = 0;
  let header = Buffer.alloc(0);
  const count = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      bytes += chunk.length;
      if (header.length < 20) header = Buffer.concat([header, chunk.subarray(0, 20 - header.length)]);
      cb(null, chunk);
    },
  });
  const entry = via === 'tar' ? new TarFileExtractor() : new PassThrough();
  const sink = createWriteStream(part, { flags: 'wx', mode: 0o600 });
  const written = pipeline(entry, count, sink);
  let last = performance.now();
  const progress = setInterval(() => {
    if (performance.now() - last < 5000) return;
    last = performance.now();
    ctx.log(`copy: ${formatBytes(bytes)} of ${formatBytes(d.bytes)}`);
  }, 1000);
  try {
    const r = await execOf(kube)(t.pod, t.container, ['sh', '-c', '"$@"', 'sh', ...command], { stdout: entry, signal: ctx.signal });
    if (r.exitCode !== 0) {
      entry.destroy(new Error(r.error ?? 'copy failed'));
      throw new StepError(
        `copying ${d.containerFile} out (${via}) failed after ${formatBytes(r.bytes)}: ${(r.stderr.trim() || r.error || `exit code ${r.exitCode}`).slice(0, 300)}`,
      );
    }
    entry.end();
    await written;
    if (entry instanceof TarFileExtractor && entry.size !== d.bytes)
      throw new StepError(`the tar stream holds ${entry.size} bytes for ${d.containerFile}, which has ${d.bytes}`);
    if (bytes !== d.bytes) throw new StepError(`copied ${bytes} bytes of ${d.containerFile}, which has ${d.bytes}: the copy is incomplete`);
    const ours = hash.digest('hex');
    if (theirs !== null && ours !== theirs) throw new StepError(`the copy's sha256 ${ours.slice(0, 12)}… differs from the container's ${theirs.slice(0, 12)}…`);
    if (!header.toString('latin1').startsWith('JAVA PROFILE 1.0.'))
      throw new StepError(`${d.containerFile} is not an hprof heap dump (it starts with ${JSON.stringify(header.toString('latin1'))})`);
    await publish(part, file);
    ctx.log(`copied to ${file}: ${formatBytes(bytes)}, ${theirs === null ? 'size checked' : "sha256 matches the container's"}`);
    return { localFile: file, bytes, sha256: ours, via, verified: theirs === null ? 'size' : 'sha256', containerSha256: theirs };
  } catch (err) {
    entry.destroy();
    sink.destroy();
    await written.catch(() => undefined);
    await unlink(part).catch(() => undefined);
    if (ctx.signal.aborted) throw ctx.signal.reason;
    throw err instanceof StepError ? err : new StepError(`copying ${d.containerFile} out failed: ${errorMessage(err)}`);
  } finally {
    clearInterval(progress);
  }
}

const cleanup = step({
  id: 'cleanup',
  title: 'Delete the dump in the container',
  why: "Nothing is left behind in the container (the seed leaves /tmp/heap.bin, a copy of the heap with every secret in it, in a folder the node's disk holds); the same delete is the dump step's undo, so it happens on failure and Ctrl-C too.",
  risk: 'write',
  restores: true,
  settles: ['dump'],
  equivalent: (p, env) =>
    kubectlExec({ pod: p.pod ?? '<pod>', container: p.container ?? '<container>' }, ns(env), `rm -f /tmp/runbook-heap-${p.pid ?? '<pid>'}-<run>.hprof`),
  async plan(ctx) {
    const t = ctx.get(target);
    if (t.runtime !== 'jvm') return [];
    return [{ action: 'delete', target: `${ctx.get(size).containerFile} in container ${t.container}`, after: 'gone' }];
  },
  async run(ctx) {
    const d = ctx.get(dump);
    if (d.runtime !== 'jvm') return { deleted: null };
    await removeInContainer(await ctx.clients.kube(), ctx.get(target), d.containerFile);
    return { deleted: d.containerFile };
  },
});

const closeInspector = closeInspectorStep<Params>(target, inspector);

export default defineProcedure<Params>({
  name: 'pod heap-dump',
  summary: 'Heap dump of the Java or Node.js process in a pod, found inside the container; copied here and verified (sha256), nothing left behind',
  seedFixes: [
    "`$(pgrep java)` and `$(pgrep node)` run on the laptop, not in the pod: the PID is the laptop's. Here the process is found inside the container, through exec (its /proc); several candidates are refused (say --pid), never guessed.",
    "`jmap -dump … file=/tmp/heap.bin` writes into the container's /tmp with no check of free space, and the dump is left there: here free space is checked against the heap size (df in the container, and here) before anything is written, and the file is deleted afterwards — also on failure or Ctrl-C (the delete is the dump step's compensation).",
    '`kubectl cp` needs tar in the image and verifies nothing: the dump is streamed over exec (tar if the image has it, a plain byte stream otherwise) and its size and sha256 are compared on both sides; an hprof must start with its JAVA PROFILE header.',
    "`kubectl exec … node --inspect-brk=0.0.0.0:9229` starts a second Node.js process in the pod (and would expose a debugger on every interface); it does not inspect the running one. Here SIGUSR1 opens the running process's own inspector on the pod's loopback, a port-forward reaches it from here, HeapProfiler.takeHeapSnapshot is streamed to a local .heapsnapshot (nothing written in the container), and the inspector is closed again.",
    '`kill -USR1` on Node.js opens the inspector; it does not collect garbage (that is `runbook pod gc`).',
    "The gate says what it costs: a stop-the-world pause of about the heap's size (and whether the liveness probe would restart the container meanwhile), the bytes to transfer, and where the file lands (mode 0600: a heap dump holds secrets).",
  ],
  params: [...PROCESS_TARGET_PARAMS, { name: 'out', flag: '--out <dir>', description: 'folder for the dump (default: the current folder)', type: 'string' }],
  examples: [[], ['app-7d9f8b6c5d-x2kqp', '--container', 'api', '--out', './dumps'], ['app-7d9f8b6c5d-x2kqp', '--pid', '1', '--dry-run']],
  requires: ['kubernetes'],
  kube: ['execInPod', 'getDeployment', 'getPod', 'listPodMetrics', 'listPods', 'portForward'],
  approval: {
    before: 'inspector',
    summary: (ctx) => costLines(ctx.get(target), ctx.get(size)),
  },
  steps: [target, size, inspector, dump, copy, cleanup, closeInspector],
  render(run) {
    const t = run.find(target);
    const c = run.find(copy);
    const d = run.find(dump);
    if (!t || !c || !d) return '';
    const lines = [
      `heap dump of ${runtimeName(t.runtime)} ${where(t)}`,
      `  file     ${c.localFile}`,
      `  size     ${formatBytes(c.bytes)} (${c.bytes} bytes), sha256 ${c.sha256}`,
      `  checked  ${c.via === 'inspector' ? `parses as a heap snapshot: ${d.runtime === 'node' ? `${d.nodes} nodes, ${d.edges} edges` : ''}` : c.verified === 'sha256' ? "size and sha256 match the container's copy; hprof header" : 'size matches (no sha256sum in the container); hprof header'}`,
    ];
    if (d.runtime === 'jvm') lines.push(`  in pod   ${d.containerFile}: ${run.find(cleanup)?.deleted ? 'deleted' : 'NOT deleted'}`);
    if (d.runtime === 'node') lines.push(`  JS heap  ${formatBytes(d.jsHeapUsed)} used; nothing was written in the container`);
    lines.push(`  open it  ${t.runtime === 'jvm' ? 'Eclipse MAT or VisualVM (File › Load)' : 'Chrome DevTools › Memory › Load profile'}`);
    return `${lines.join('\n')}\n`;
  },
});
