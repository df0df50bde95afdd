// Steps shared by `pod heap-dump` and `pod gc`: find the one Java or Node.js process of a container
// (through exec, never on this machine), size what the operation costs, and for Node.js open the
// inspector (SIGUSR1) and close it again.
import { constants as fsConstants } from 'node:fs';
import { access, stat, statfs } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
import type { KubeClient, V1Pod } from '../../clients/kube.js';
import { CheckFailedError, StepError, UsageError, errorMessage } from '../../core/errors.js';
import { byText, formatBytes } from '../../core/format.js';
import { formatDuration } from '../../core/duration.js';
import { quantityValue } from '../../core/params.js';
import { sleep } from '../../core/sleep.js';
import type { ParamSpec, Step, StepContext, StepRef } from '../../core/procedure.js';
import { deploymentName, ns, selectorOf } from '../shared/pods.js';
import { closeInspector, inspectorTarget } from './inspector.js';
import {
  type Container,
  type Listener,
  type Runtime,
  chooseProcess,
  discover,
  isLoopback,
  jvmTool,
  kubectlExec,
  listeningNow,
  parseDfAvailable,
  parseHeapInfo,
  shellIn,
  shellOk,
  type HeapInfo,
} from './runtime.js';

/** The flags every process procedure takes. */
export interface ProcessParams {
  pod?: string;
  container?: string;
  pid?: number;
}

export interface LivenessWindow {
  /** How long the container may not answer before the kubelet restarts it (period × failures + timeout). */
  seconds: number;
  probe: string;
}

/** The `target` step's data: the process, where it runs, and what the container has to work with. */
export interface ProcessTarget {
  namespace: string;
  pod: string;
  container: string;
  /** Why this pod (named, the only one, the one using the most memory). */
  podChosen: string;
  runtime: Runtime;
  pid: number;
  /** The executable and main class / jar / script (never the other arguments). */
  command: string;
  uid: number | null;
  rssBytes: number | null;
  tmpDir: string;
  tools: { jcmd: string | null; jmap: string | null; tar: boolean; sha256sum: boolean; df: boolean };
  /** Node.js: the ports it listens on now, and where its inspector is (or would open with SIGUSR1). */
  listening: Listener[];
  inspect?: { host: string; port: number; open: boolean };
  liveness: LivenessWindow | null;
  /** Other Java/Node.js processes seen there (launchers, tools, other containers'). */
  others: Array<{ pid: number; command: string }>;
}

const step = <P extends ProcessParams, D>(s: Step<P, D>): Step<P, D> => s;

export const runtimeName = (r: Runtime) => (r === 'jvm' ? 'JVM' : 'Node.js');
export const where = (t: Pick<ProcessTarget, 'pid' | 'command' | 'pod' | 'container'>) =>
  `pid ${t.pid} (${t.command}) in pod ${t.pod}, container ${t.container}`;

/** The pod: the one named, else the deployment's only running pod, else the one using the most memory. */
async function choosePod(ctx: StepContext<ProcessParams>, kube: KubeClient): Promise<{ pod: V1Pod; chosen: string }> {
  const namespace = ns(ctx.env);
  if (ctx.params.pod) {
    const pod = await kube.getPod(ctx.params.pod);
    if (!pod) throw new StepError(`pod "${ctx.params.pod}" not found in namespace ${namespace} (context ${kube.context})`, `kubectl get pods -n ${namespace}`);
    return { pod, chosen: 'named' };
  }
  const d = await kube.getDeployment(deploymentName(ctx.env));
  const selector = selectorOf(d);
  const running = (await kube.listPods(selector)).filter((p) => !p.metadata?.deletionTimestamp && p.status?.phase === 'Running');
  if (running.length === 0) throw new StepError(`deployment/${deploymentName(ctx.env)} has no running pod`, `kubectl get pods -n ${namespace} -l ${selector}`);
  if (running.length === 1) return { pod: running[0], chosen: `the only running pod of deployment/${deploymentName(ctx.env)}` };
  const names = running.map((p) => p.metadata?.name ?? '');
  let metrics;
  try {
    metrics = await kube.listPodMetrics(selector);
  } catch (err) {
    throw new StepError(
      `deployment/${deploymentName(ctx.env)} has ${running.length} pods and no usage figures to pick the one using the most memory (${errorMessage(err)})`,
      `name one: ${names.join(', ')}`,
    );
  }
  const used = (name: string) => (metrics.find((m) => m.name === name)?.containers ?? []).reduce((n, c) => n + (quantityValue(c.usage.memory) || 0), 0);
  const best = [...running].sort(
    (a, b) => used(b.metadata?.name ?? '') - used(a.metadata?.name ?? '') || byText(a.metadata?.name ?? '', b.metadata?.name ?? ''),
  )[0];
  const name = best.metadata?.name ?? '';
  if (!used(name))
    throw new StepError(`deployment/${deploymentName(ctx.env)} has ${running.length} pods and no usage figures for them`, `name one: ${names.join(', ')}`);
  return {
    pod: best,
    chosen: `the pod of deployment/${deploymentName(ctx.env)} using the most memory (${formatBytes(used(name))}, of ${running.length} pods)`,
  };
}

/** The container: --container, else the environment's, else the pod's only one. */
function chooseContainer(pod: V1Pod, wanted: string | undefined, configured: string | undefined): string {
  const names = (pod.spec?.containers ?? []).map((c) => c.name);
  const podName = pod.metadata?.name ?? '';
  if (wanted) {
    if (!names.includes(wanted)) throw new StepError(`pod ${podName} has no container "${wanted}"`, `containers: ${names.join(', ')}`);
    return wanted;
  }
  if (configured && names.includes(configured)) return configured;
  if (names.length === 1) return names[0];
  throw new StepError(`pod ${podName} has ${names.length} containers (${names.join(', ')}); say which with --container`, `e.g. --container ${names[0]}`);
}

function livenessOf(pod: V1Pod, container: string): LivenessWindow | null {
  const p = pod.spec?.containers.find((c) => c.name === container)?.livenessProbe;
  if (!p) return null;
  const period = p.periodSeconds ?? 10;
  const failures = p.failureThreshold ?? 3;
  const timeout = p.timeoutSeconds ?? 1;
  return { seconds: period * failures + timeout, probe: `${failures} failures × ${period}s` };
}

/** --inspect-port / --inspect=HOST:PORT in argv or NODE_OPTIONS: where SIGUSR1 opens the inspector. */
export function inspectAddress(flags: string[]): { host: string; port: number } {
  let host = '127.0.0.1';
  let port = 9229;
  for (const f of flags) {
    const m = /^--(?:inspect(?:-brk|-wait)?|inspect-port|debug-port)(?:=(.*))?$/.exec(f);
    if (!m) continue;
    const v = m[1];
    if (!v) continue;
    const hp = /^(?:\[?([^\]]*?)\]?:)?(\d+)$/.exec(v);
    if (hp) {
      if (hp[1]) host = hp[1];
      port = Number(hp[2]);
    } else host = v;
  }
  return { host, port };
}

/** Step: find the pod, the container and the one Java or Node.js process in it. */
export function targetStep<P extends ProcessParams>(opts: {
  why: string;
  /** Local checks before the pod is touched (a usage error here contacts nothing). */ prepare?: (ctx: StepContext<P>) => Promise<unknown>;
}): Step<P, ProcessTarget> {
  return step<P, ProcessTarget>({
    id: 'target',
    title: 'Find the process inside the container',
    why: opts.why,
    risk: 'read',
    equivalent: (p, env) =>
      `${kubectlExec({ pod: p.pod ?? '<pod>', container: p.container ?? '<container>' }, ns(env), "sh -c 'for d in /proc/[0-9]*; do echo ${d#/proc/} $(cat $d/comm); done'")}  # not $(pgrep java) on the laptop`,
    async run(ctx) {
      await opts.prepare?.(ctx);
      const kube = await ctx.clients.kube();
      const { pod, chosen } = await choosePod(ctx, kube);
      const podName = pod.metadata?.name ?? '';
      const container = chooseContainer(pod, ctx.params.container, ctx.env.config.kubernetes?.container);
      const status = pod.status?.containerStatuses?.find((s) => s.name === container);
      if (!status?.state?.running) {
        const state = status?.state?.waiting
          ? `waiting: ${status.state.waiting.reason}`
          : status?.state?.terminated
            ? `terminated: ${status.state.terminated.reason ?? status.state.terminated.exitCode}`
            : 'not started';
        throw new StepError(
          `container ${container} of pod ${podName} is not running (${state}): there is no process to reach`,
          `runbook pod diagnose ${podName}`,
        );
      }
      const c: Container = { pod: podName, container };
      const d = await discover(kube, c, ctx.signal);
      const p = chooseProcess(d, c, ctx.params.pid);
      const flags = p.inspectFlags;
      const target: ProcessTarget = {
        namespace: ns(ctx.env),
        pod: podName,
        container,
        podChosen: chosen,
        runtime: p.runtime,
        pid: p.pid,
        command: p.command,
        uid: p.uid,
        rssBytes: p.rssBytes,
        tmpDir: d.tmpDir,
        tools: {
          jcmd: jvmTool(d, p.pid, 'jcmd'),
          jmap: jvmTool(d, p.pid, 'jmap'),
          tar: Boolean(d.tools.tar),
          sha256sum: Boolean(d.tools.sha256sum),
          df: Boolean(d.tools.df),
        },
        listening: p.listening,
        liveness: livenessOf(pod, container),
        others: d.processes.filter((x) => x.pid !== p.pid).map((x) => ({ pid: x.pid, command: x.command })),
      };
      if (p.runtime === 'node') {
        const a = inspectAddress(flags);
        // Already listening there: opened at start (--inspect) or by an earlier SIGUSR1; left as found.
        const open = p.listening.some((l) => l.port === a.port);
        target.inspect = { host: a.host, port: a.port, open };
        if (!open && !isLoopback(a.host) && a.host !== 'localhost') {
          throw new StepError(
            `SIGUSR1 would open the inspector of ${where(target)} on ${a.host}:${a.port}, beyond the pod's loopback (its --inspect-port says so); not opening a debugger to the network`,
            'restart it without a non-loopback --inspect-port (NODE_OPTIONS too) to take a snapshot this way',
          );
        }
      } else if (!target.tools.jcmd && !target.tools.jmap) {
        throw new StepError(
          `container ${container} of pod ${podName} has no jcmd or jmap (a JRE image?): the JVM cannot be asked for a heap dump from inside`,
          `kubectl debug -it ${podName} --image=eclipse-temurin:17-jdk --target=${container} -- jcmd ${p.pid} GC.heap_info`,
        );
      }
      ctx.log(
        `${runtimeName(p.runtime)} ${where(target)}${p.rssBytes ? `, RSS ${formatBytes(p.rssBytes)}` : ''} (${chosen === 'named' ? 'pod named' : chosen}${ctx.params.pid ? ', --pid' : ', the only one there'})`,
      );
      return target;
    },
    postcondition: {
      describe: 'the process still runs in the container',
      async check(ctx, t) {
        const now = await listeningNow(await ctx.clients.kube(), t, t.pid, ctx.signal).catch(() => null);
        return now === null ? { holds: false, found: `pid ${t.pid} is gone from container ${t.container} of pod ${t.pod}` } : { holds: true };
      },
    },
  });
}

/** The `size` step's data: what the operation weighs, where files go, whether there is room. */
export interface SizeData {
  runtime: Runtime;
  /** JVM: the Java heap from jcmd GC.heap_info; null for Node.js (known once the inspector is open). */
  heap: HeapInfo | null;
  rssBytes: number | null;
  /** About how many bytes the dump holds (and are transferred). */
  estimateBytes: number;
  /** About how long the process is paused. */
  pauseSeconds: number;
  /** Where the local file lands (heap-dump). */
  localFile?: string;
  localFree?: number | null;
  /** JVM heap-dump: the file in the container, and the free space there. */
  containerFile?: string;
  containerFree?: number | null;
  via?: 'tar' | 'cat' | 'inspector';
}

// Rough rates for the "about N s" of a gate (measured on a laptop: a 70 MiB hprof in 0.4 s, a Node
// snapshot of a 22 MiB heap in 1.8 s); a busy node or disk is slower.
const JVM_DUMP_RATE = 150 * 2 ** 20;
const NODE_SNAPSHOT_RATE = 12 * 2 ** 20;
const GC_RATE = 1024 * 2 ** 20;

export function pauseEstimate(runtime: Runtime, op: 'dump' | 'gc', bytes: number): number {
  const rate = op === 'gc' ? GC_RATE : runtime === 'jvm' ? JVM_DUMP_RATE : NODE_SNAPSHOT_RATE;
  return Math.max(0.1, Math.round((bytes / rate + (runtime === 'jvm' ? 0.2 : 0.1)) * 10) / 10);
}

/** jcmd <pid> GC.heap_info, through exec. */
export async function jvmHeap(kube: KubeClient, t: ProcessTarget, signal?: AbortSignal): Promise<HeapInfo | null> {
  if (!t.tools.jcmd) return null;
  const text = await shellOk(kube, t, 'jcmd GC.heap_info', '"$1" "$2" GC.heap_info', [t.tools.jcmd, String(t.pid)], { signal });
  const h = parseHeapInfo(text);
  if (!h) throw new StepError(`jcmd ${t.pid} GC.heap_info said nothing about the heap: ${text.trim().split('\n').slice(-2).join(' ').slice(0, 200)}`);
  return h;
}

/** Free bytes in the container's directory (df -P -k, through exec); null without df. */
export async function containerFree(kube: KubeClient, t: ProcessTarget, dir: string, signal?: AbortSignal): Promise<number | null> {
  const r = await shellIn(kube, t, 'command -v df >/dev/null 2>&1 || { echo @@nodf; exit 0; }; df -P -k "$1"', [dir], { signal });
  const text = r.stdout.toString('utf8');
  if (text.includes('@@nodf')) return null;
  if (r.exitCode !== 0) throw new StepError(`df ${dir} failed in container ${t.container} of pod ${t.pod}: ${r.stderr.trim() || r.error}`);
  const free = parseDfAvailable(text);
  if (free === null) throw new StepError(`cannot read df's answer for ${dir} in container ${t.container}: ${JSON.stringify(text.slice(0, 200))}`);
  return free;
}

/** Where local files go: --out (made absolute against the working directory), which must be a writable folder. */
export async function outDir(ctx: StepContext<ProcessParams & { out?: string }>): Promise<string> {
  const dir = ctx.params.out ? (isAbsolute(ctx.params.out) ? ctx.params.out : resolve(ctx.io.cwd, ctx.params.out)) : ctx.io.cwd;
  try {
    if (!(await stat(dir)).isDirectory()) throw new UsageError(`--out ${dir} is not a folder`);
    await access(dir, fsConstants.W_OK);
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(
      `cannot write heap dumps to ${dir}: ${(err as NodeJS.ErrnoException).code ?? errorMessage(err)}`,
      'pass --out <folder> for another place',
    );
  }
  return dir;
}

export async function localFree(dir: string): Promise<number | null> {
  try {
    const s = await statfs(dir);
    return s.bavail * s.bsize;
  } catch {
    return null;
  }
}

/** Needs ~20% and 64 MiB above the estimate: an hprof of the live heap is about its size, rarely more. */
export const roomFor = (bytes: number) => Math.ceil(bytes * 1.2 + 64 * 2 ** 20);

export function localName(t: ProcessTarget, runId: string, ext: string): string {
  return `${t.pod}-${t.container}-${t.pid}-${runId}.${ext}`.replace(/[^A-Za-z0-9._-]/g, '-');
}

export function refuseIfNoRoom(free: number | null | undefined, needs: number, what: string, hint: string): void {
  if (free === null || free === undefined || free >= needs) return;
  throw new CheckFailedError(`${what}: ${formatBytes(free)} free, ${formatBytes(needs)} needed; nothing was written`, hint);
}

/** The inspector's port: the one this run opened, or the one the process already had open. */
export function inspectorPort(t: ProcessTarget, opened: InspectorData | undefined): number {
  return opened?.port ?? t.inspect?.port ?? 9229;
}

/** The `inspector` step's data: the port the inspector listens on inside the pod, and whether this run opened it. */
export interface InspectorData {
  port: number;
  address: string;
  opened: boolean;
}

/** Step: open the Node.js inspector of the process (SIGUSR1, through exec); undo closes it. */
export function inspectorStep<P extends ProcessParams>(target: StepRef<ProcessTarget>): Step<P, InspectorData> {
  return step<P, InspectorData>({
    id: 'inspector',
    title: 'Open the Node.js inspector of the process (SIGUSR1)',
    why: "The running process is inspected (not a second `node --inspect-brk` beside it): SIGUSR1 opens its inspector on the pod's loopback only, reached through a port-forward from here, and it is closed again afterwards.",
    risk: 'write',
    equivalent: (p, env) =>
      `${kubectlExec({ pod: p.pod ?? '<pod>', container: p.container ?? '<container>' }, ns(env), `kill -USR1 ${p.pid ?? '<pid>'}`)} && kubectl port-forward pod/${p.pod ?? '<pod>'} 9229:9229 -n ${ns(env)}  # --address stays 127.0.0.1`,
    async plan(ctx) {
      const t = ctx.get(target);
      if (t.runtime !== 'node' || t.inspect?.open) return [];
      return [
        {
          action: 'open the inspector (SIGUSR1)',
          target: where(t),
          after: `listening on ${t.inspect?.host ?? '127.0.0.1'}:${t.inspect?.port ?? 9229} inside the pod only, reached by a port-forward; closed again at the end`,
        },
      ];
    },
    async run(ctx) {
      const t = ctx.get(target);
      const kube = await ctx.clients.kube();
      const before = new Set(t.listening.map((l) => `${l.address}:${l.port}`));
      const r = await shellIn(kube, t, 'kill -USR1 "$1"', [String(t.pid)], { signal: ctx.signal });
      if (r.exitCode !== 0) throw new StepError(`kill -USR1 ${t.pid} failed in container ${t.container} of pod ${t.pod}: ${r.stderr.trim() || r.error}`);
      // The inspector thread binds within milliseconds; a busy process may take a moment.
      const deadline = Date.now() + 15_000;
      for (;;) {
        const now = await listeningNow(kube, t, t.pid, ctx.signal);
        if (now === null) throw new StepError(`${where(t)} is gone (did SIGUSR1 stop it? a process without an inspector exits on SIGUSR1)`);
        const fresh = now.filter((l) => !before.has(`${l.address}:${l.port}`));
        const expected = now.find((l) => l.port === (t.inspect?.port ?? 9229));
        const found = fresh.find((l) => l.port === (t.inspect?.port ?? 9229)) ?? (fresh.length === 1 ? fresh[0] : undefined) ?? expected;
        if (found) {
          if (!isLoopback(found.address)) {
            await closeInspector(kube, t.pod, found.port, ctx.signal).catch(() => undefined);
            throw new StepError(`the inspector of ${where(t)} opened on ${found.address}:${found.port}, beyond the pod's loopback; closed it again`);
          }
          // It answers as an inspector (and is not the app's own port that happened to open now).
          await inspectorTarget(kube, t.pod, found.port, ctx.signal);
          ctx.log(`inspector of pid ${t.pid} listening on ${found.address}:${found.port} inside the pod`);
          return { port: found.port, address: found.address, opened: true };
        }
        if (Date.now() > deadline)
          throw new StepError(
            `the inspector of ${where(t)} did not open within 15s of SIGUSR1 (started with --disable-sigusr1? or SIGUSR1 handled by the app)`,
          );
        await sleep(250, ctx.signal);
      }
    },
    async undo(ctx, data) {
      if (!data.opened) return;
      await shutInspector(ctx, ctx.get(target), data);
    },
    postcondition: {
      describe: 'the inspector still listens inside the pod',
      async check(ctx, data) {
        const t = ctx.get(target);
        const now = await listeningNow(await ctx.clients.kube(), t, t.pid, ctx.signal);
        return now?.some((l) => l.port === data.port) ? { holds: true } : { holds: false, found: `nothing listens on ${data.address}:${data.port} any more` };
      },
    },
    undoByHand: (ctx, data) => {
      const t = ctx.get(target);
      return `the inspector of pid ${t.pid} stays open on ${data.address}:${data.port} inside pod ${t.pod} until the process restarts: attach a debugger there and run process._debugEnd(), or restart the pod (kubectl delete pod ${t.pod} -n ${t.namespace})`;
    },
  });
}

/** Closes the inspector and checks, through exec, that nothing listens on its port any more. */
async function shutInspector(ctx: StepContext<ProcessParams>, t: ProcessTarget, data: InspectorData): Promise<void> {
  const kube = await ctx.clients.kube();
  await closeInspector(kube, t.pod, data.port, ctx.signal);
  const deadline = Date.now() + 10_000;
  for (;;) {
    const now = await listeningNow(kube, t, t.pid, ctx.signal);
    if (now === null || !now.some((l) => l.port === data.port)) return;
    if (Date.now() > deadline) throw new StepError(`the inspector of pid ${t.pid} still listens on ${data.address}:${data.port} in pod ${t.pod}`);
    await sleep(200, ctx.signal);
  }
}

/** Step: close the inspector this run opened (also the inspector step's undo, on failure or Ctrl-C). */
export function closeInspectorStep<P extends ProcessParams>(
  target: StepRef<ProcessTarget>,
  inspector: StepRef<InspectorData>,
): Step<P, { closed: string | null }> {
  return step<P, { closed: string | null }>({
    id: 'close-inspector',
    title: 'Close the inspector again',
    why: "An open inspector lets anyone in the pod's network namespace run code in the process: this run closes what it opened (and leaves one it found open as it was).",
    risk: 'write',
    restores: true,
    settles: ['inspector'],
    equivalent: () => '(in the inspector session) Runtime.evaluate process._debugEnd()',
    async plan(ctx) {
      const t = ctx.get(target);
      const i = ctx.find(inspector);
      if (t.runtime !== 'node' || t.inspect?.open || (i && !i.opened) || (!i && ctx.dryRun !== 'plan')) return [];
      return [
        {
          action: 'close the inspector',
          target: `${i?.address ?? t.inspect?.host ?? '127.0.0.1'}:${i?.port ?? t.inspect?.port ?? 9229} in pod ${t.pod}`,
          after: 'not listening',
        },
      ];
    },
    async run(ctx) {
      const t = ctx.get(target);
      const i = ctx.get(inspector);
      await shutInspector(ctx, t, i);
      ctx.log(`inspector of pid ${t.pid} closed`);
      return { closed: `${i.address}:${i.port}` };
    },
  });
}

/** The approval lines for the process, its pause and its probe: shared by both procedures. */
/** How a Node.js process's inspector is reached (heap-dump and gc go through it alike). */
export function inspectorLine(t: ProcessTarget): string {
  return t.inspect?.open
    ? `uses the inspector the process already has open on ${t.inspect.host}:${t.inspect.port} inside the pod (left open, as found), through a port-forward from here`
    : `opens its inspector (SIGUSR1) on ${t.inspect?.host ?? '127.0.0.1'}:${t.inspect?.port ?? 9229} inside the pod only, reached through a port-forward from here; closed again at the end, also on failure or Ctrl-C`;
}

export function pauseLines(t: ProcessTarget, s: SizeData, what: string): string[] {
  const lines = [`${what} of ${runtimeName(t.runtime)} ${where(t)}${t.podChosen === 'named' ? '' : ` — ${t.podChosen}`}`];
  const size = s.heap
    ? `${formatBytes(s.heap.used)} of Java heap in use`
    : `an RSS of ${formatBytes(s.rssBytes ?? s.estimateBytes)} (its JS heap is part of it)`;
  lines.push(`the process is paused (stop-the-world) for about ${formatDuration(s.pauseSeconds * 1000)}: ${size}; requests to this pod stall meanwhile`);
  if (t.liveness) {
    const risky = s.pauseSeconds >= t.liveness.seconds * 0.5;
    lines.push(
      `its liveness probe (${t.liveness.probe}) restarts the container after ~${t.liveness.seconds}s without an answer${risky ? ': a pause that long would lose the process and the dump' : ''}`,
    );
  }
  return lines;
}

/** How heap-dump and gc name their target: the pod, its container, the process in it. */
export const PROCESS_TARGET_PARAMS: ParamSpec[] = [
  { name: 'pod', argument: '[pod]', description: "pod name (default: the deployment's only running pod, or the one using the most memory)", type: 'k8sName' },
  {
    name: 'container',
    flag: '--container <name>',
    description: 'container of the pod (needed when it has several; -c is the global --config)',
    type: 'k8sName',
  },
  {
    name: 'pid',
    flag: '--pid <pid>',
    description: 'the process, when the container runs several Java/Node.js processes (its PID inside the container)',
    type: 'int',
    min: 1,
    max: 4_194_304,
  },
];
