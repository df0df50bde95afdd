// The Node.js inspector of a process in a pod, over the Chrome DevTools protocol, reached through a
// Kubernetes port-forward (KubeClient.portForward): nothing listens on this machine, and the
// inspector itself stays on the pod's loopback.
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import type { KubeClient, PodWebSocket } from '../../clients/kube.js';
import { StepError, errorMessage } from '../../core/errors.js';

interface Pending {
  resolve(result: unknown): void;
  reject(err: Error): void;
  method: string;
}

/** One DevTools protocol session: calls by id, events by name. */
export class DevToolsSession {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly handlers = new Map<string, (params: unknown) => void>();
  private ended: string | undefined;

  constructor(readonly socket: PodWebSocket) {
    socket.onMessage((text) => this.onMessage(text));
    void socket.closed.then((reason) => {
      this.ended = reason;
      for (const p of this.pending.values()) p.reject(new Error(`the inspector connection closed during ${p.method}: ${reason}`));
      this.pending.clear();
    });
  }

  call<T = unknown>(method: string, params: Record<string, unknown> = {}, timeoutMs = 30_000): Promise<T> {
    if (this.ended) return Promise.reject(new Error(`the inspector connection is closed (${this.ended})`));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer =
        timeoutMs > 0
          ? setTimeout(() => {
              this.pending.delete(id);
              reject(new Error(`the inspector did not answer ${method} within ${Math.round(timeoutMs / 1000)}s`));
            }, timeoutMs)
          : undefined;
      this.pending.set(id, {
        method,
        resolve: (r) => {
          clearTimeout(timer);
          resolve(r as T);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.socket.send(JSON.stringify({ id, method, params }));
    });
  }

  on(event: string, handler: (params: unknown) => void): void {
    this.handlers.set(event, handler);
  }

  close(): void {
    this.socket.close();
  }

  private onMessage(text: string): void {
    let msg: { id?: number; method?: string; params?: unknown; result?: unknown; error?: { message?: string } };
    try {
      msg = JSON.parse(text);
    } catch {
      return;
    }
    if (msg.id !== undefined) {
      const p = this.pending.get(msg.id);
      if (!p) return;
      this.pending.delete(msg.id);
      if (msg.error) p.reject(new Error(`${p.method}: ${msg.error.message ?? 'error'}`));
      else p.resolve(msg.result);
    } else if (msg.method) this.handlers.get(msg.method)?.(msg.params);
  }
}

function forwardOf(kube: KubeClient): NonNullable<KubeClient['portForward']> {
  if (!kube.portForward) throw new StepError('this Kubernetes client cannot port-forward to pods');
  return kube.portForward.bind(kube);
}

/** The inspector's WebSocket path, from its /json/list (what `chrome://inspect` reads). */
export async function inspectorTarget(kube: KubeClient, pod: string, port: number, signal?: AbortSignal): Promise<{ path: string; title?: string }> {
  const pf = await forwardOf(kube)(pod, port);
  const r = await pf.httpGet('/json/list', { signal, timeoutMs: 15_000 });
  if (r.status !== 200) throw new StepError(`the inspector on port ${port} of pod ${pod} answered /json/list with HTTP ${r.status}`);
  let list: Array<{ webSocketDebuggerUrl?: string; title?: string }>;
  try {
    list = JSON.parse(r.body);
  } catch {
    throw new StepError(`port ${port} of pod ${pod} is not a Node.js inspector (its /json/list is not JSON)`);
  }
  const t = list.find((x) => x.webSocketDebuggerUrl);
  if (!t?.webSocketDebuggerUrl) throw new StepError(`the inspector on port ${port} of pod ${pod} lists no target (is a debugger already attached?)`);
  return { path: new URL(t.webSocketDebuggerUrl).pathname, title: t.title };
}

/** A session with the inspector on the pod's port (through a port-forward). */
export async function connectInspector(kube: KubeClient, pod: string, port: number, signal?: AbortSignal): Promise<DevToolsSession> {
  const { path } = await inspectorTarget(kube, pod, port, signal);
  const pf = await forwardOf(kube)(pod, port);
  return new DevToolsSession(await pf.webSocket(path, { signal, timeoutMs: 15_000 }));
}

export interface JsHeap {
  used: number;
  total: number;
}

export async function heapUsage(s: DevToolsSession): Promise<JsHeap> {
  const r = await s.call<{ usedSize: number; totalSize: number }>('Runtime.getHeapUsage');
  return { used: r.usedSize, total: r.totalSize };
}

export interface SnapshotFile {
  bytes: number;
  sha256: string;
}

/**
 * HeapProfiler.takeHeapSnapshot, its chunks streamed into `file` (created, never overwritten) as
 * they come; the session is paused while the file cannot keep up. Stops (and says so) on `signal`.
 */
export async function streamHeapSnapshot(s: DevToolsSession, file: string, signal: AbortSignal, onProgress?: (bytes: number) => void): Promise<SnapshotFile> {
  const out = createWriteStream(file, { flags: 'wx', mode: 0o600 });
  const opened = new Promise<void>((resolve, reject) => {
    out.once('open', () => resolve());
    out.once('error', reject);
  });
  await opened;
  const hash = createHash('sha256');
  let bytes = 0;
  let failed: Error | undefined;
  out.on('error', (err) => (failed ??= err));
  let paused = false;
  s.on('HeapProfiler.addHeapSnapshotChunk', (params) => {
    const chunk = (params as { chunk: string }).chunk;
    const buf = Buffer.from(chunk, 'utf8');
    hash.update(buf);
    bytes += buf.length;
    onProgress?.(bytes);
    if (!out.write(buf) && !paused) {
      paused = true;
      s.socket.pause();
      out.once('drain', () => {
        paused = false;
        s.socket.resume();
      });
    }
  });
  const onAbort = () => s.close();
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    await s.call('HeapProfiler.enable');
    // No time limit: the process is busy until the whole snapshot is written; the socket says if it dies.
    await s.call('HeapProfiler.takeHeapSnapshot', { reportProgress: false, captureNumericValue: false }, 0);
  } catch (err) {
    out.destroy();
    if (signal.aborted) throw signal.reason;
    throw new StepError(`the heap snapshot failed: ${errorMessage(err)}`);
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
  await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
  if (failed) throw new StepError(`cannot write ${file}: ${failed.message}`);
  return { bytes, sha256: hash.digest('hex') };
}

/**
 * Closes the inspector SIGUSR1 opened (inspector.close(), which is process._debugEnd): the answer
 * may never come, since the connection closes with it.
 */
export async function closeInspector(kube: KubeClient, pod: string, port: number, signal?: AbortSignal): Promise<void> {
  const s = await connectInspector(kube, pod, port, signal);
  const expression = "(process.getBuiltinModule ? process.getBuiltinModule('node:inspector').close() : process._debugEnd()), 'closed'";
  await Promise.race([
    s.call('Runtime.evaluate', { expression, returnByValue: true }, 10_000).catch(() => undefined),
    s.socket.closed,
    new Promise((r) => setTimeout(r, 10_000)),
  ]);
  s.close();
}

/** What a heapsnapshot file holds: the node and edge counts its header promises, checked against its arrays. */
export interface SnapshotCheck {
  nodes: number;
  edges: number;
  /** Parsed in full (arrays counted), or only the header read (too large to parse here). */
  parsed: 'full' | 'header';
}

/**
 * The file is a heap snapshot: JSON with a snapshot header, nodes and edges, the array lengths as
 * the header says (node_count × node_fields). Files over `maxParse` bytes get their header checked.
 */
export function checkHeapSnapshot(text: string | null, head: string, maxParse = true): SnapshotCheck {
  const counts = /"node_count":(\d+),"edge_count":(\d+)/.exec(head);
  if (text !== null && maxParse) {
    let doc: {
      snapshot?: { meta?: { node_fields?: unknown[]; edge_fields?: unknown[] }; node_count?: number; edge_count?: number };
      nodes?: unknown[];
      edges?: unknown[];
    };
    try {
      doc = JSON.parse(text);
    } catch (err) {
      throw new StepError(`the heap snapshot is not valid JSON: ${errorMessage(err)}`);
    }
    const nf = doc.snapshot?.meta?.node_fields?.length ?? 0;
    const ef = doc.snapshot?.meta?.edge_fields?.length ?? 0;
    if (!Array.isArray(doc.nodes) || !Array.isArray(doc.edges) || !nf || !ef) throw new StepError('the heap snapshot has no nodes and edges');
    const nodes = doc.nodes.length / nf;
    const edges = doc.edges.length / ef;
    if (doc.snapshot?.node_count !== undefined && doc.snapshot.node_count !== nodes)
      throw new StepError(`the heap snapshot is incomplete: ${nodes} nodes, its header says ${doc.snapshot.node_count}`);
    if (doc.snapshot?.edge_count !== undefined && doc.snapshot.edge_count !== edges)
      throw new StepError(`the heap snapshot is incomplete: ${edges} edges, its header says ${doc.snapshot.edge_count}`);
    return { nodes, edges, parsed: 'full' };
  }
  if (!counts || !/^\{"snapshot":\{"meta":/.test(head)) throw new StepError('the file does not start like a heap snapshot');
  return { nodes: Number(counts[1]), edges: Number(counts[2]), parsed: 'header' };
}
