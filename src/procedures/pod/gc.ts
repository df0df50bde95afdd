import { StepError } from '../../core/errors.js';
import { formatBytes } from '../../core/format.js';
import { formatDuration } from '../../core/duration.js';
import { defineProcedure, stepFor } from '../../core/procedure.js';
import { ns } from '../shared/pods.js';
import { connectInspector, heapUsage } from './inspector.js';
import {
  PROCESS_TARGET_PARAMS,
  closeInspectorStep,
  inspectorPort,
  inspectorStep,
  jvmHeap,
  pauseEstimate,
  pauseLines,
  runtimeName,
  targetStep,
  where,
  type ProcessParams,
  type ProcessTarget,
  type SizeData,
  inspectorLine,
} from './process-steps.js';
import { kubectlExec, shellOk } from './runtime.js';

type Params = ProcessParams;

const step = stepFor<Params>();

const target = targetStep<Params>({
  why: "The PID is looked up inside the container, through exec (the seed's `$(pgrep node)` runs on the laptop); several Java/Node.js processes there are refused, never guessed: say --pid.",
});

const size = step({
  id: 'size',
  title: 'Read the heap before the collection',
  why: 'The heap in use says how long the pause will be (and is the "before" of the result); for Node.js the RSS stands in until the inspector is open.',
  risk: 'read',
  equivalent: (p, env) =>
    `JVM: ${kubectlExec({ pod: p.pod ?? '<pod>', container: p.container ?? '<container>' }, ns(env), `jcmd ${p.pid ?? '<pid>'} GC.heap_info`)}`,
  async run(ctx): Promise<SizeData> {
    const t = ctx.get(target);
    const kube = await ctx.clients.kube();
    const heap = t.runtime === 'jvm' ? await jvmHeap(kube, t, ctx.signal) : null;
    const estimate = heap?.used ?? t.rssBytes ?? 0;
    const s: SizeData = { runtime: t.runtime, heap, rssBytes: t.rssBytes, estimateBytes: estimate, pauseSeconds: pauseEstimate(t.runtime, 'gc', estimate) };
    for (const line of costLines(t, s)) ctx.log(line);
    return s;
  },
});

function costLines(t: ProcessTarget, s: SizeData): string[] {
  const lines = pauseLines(t, s, 'a forced full garbage collection');
  if (t.runtime === 'node') {
    lines.push(inspectorLine(t));
  }
  lines.push('a forced collection frees only garbage: memory that stays in use afterwards is what a leak holds (see `runbook pod heap-dump`)');
  return lines;
}

const inspector = inspectorStep<Params>(target);

interface GcData {
  runtime: 'jvm' | 'node';
  /** Heap in use before and after, in bytes (Java heap, or the JS heap). */
  before: number;
  after: number;
  freed: number;
  /** Committed (JVM) or total (JS) heap after. */
  heapAfter: number | null;
  seconds: number;
  how: string;
  note?: string;
}

// No postcondition: a collection leaves nothing to read back (its heap numbers are what it returned), so resume takes the journal's word.
const gc = step({
  id: 'gc',
  title: 'Force a full garbage collection',
  why: "A real collection, the runtime's own way: jcmd GC.run for a JVM, HeapProfiler.collectGarbage through the inspector for Node.js (the seed's `kill -USR1` only opens the inspector).",
  risk: 'write',
  equivalent: (p, env) =>
    `JVM: ${kubectlExec({ pod: p.pod ?? '<pod>', container: p.container ?? '<container>' }, ns(env), `jcmd ${p.pid ?? '<pid>'} GC.run`)}; Node.js: HeapProfiler.collectGarbage in chrome://inspect (through kubectl port-forward pod/${p.pod ?? '<pod>'} 9229)`,
  async plan(ctx) {
    const t = ctx.get(target);
    const s = ctx.get(size);
    return [
      {
        action: `full garbage collection (${t.runtime === 'jvm' ? 'jcmd GC.run' : 'HeapProfiler.collectGarbage'}; stop-the-world ~${formatDuration(s.pauseSeconds * 1000)})`,
        target: where(t),
        before: s.heap ? `${formatBytes(s.heap.used)} in use` : s.rssBytes ? `RSS ${formatBytes(s.rssBytes)}` : undefined,
      },
    ];
  },
  async run(ctx): Promise<GcData> {
    const t = ctx.get(target);
    const kube = await ctx.clients.kube();
    if (t.runtime === 'jvm') {
      const before = await jvmHeap(kube, t, ctx.signal);
      const t0 = performance.now();
      const out = await shellOk(kube, t, 'jcmd GC.run', '"$1" "$2" GC.run', [t.tools.jcmd ?? 'jcmd', String(t.pid)], { timeoutMs: 30 * 60_000 });
      const seconds = Math.round((performance.now() - t0) / 100) / 10;
      const disabled = /Explicit GC is disabled/i.test(out);
      if (!disabled && !/Command executed successfully/.test(out))
        throw new StepError(`jcmd ${t.pid} GC.run: ${out.trim().split('\n').slice(-2).join(' ').slice(0, 300)}`);
      const after = await jvmHeap(kube, t, ctx.signal);
      if (!before || !after) throw new StepError('jcmd GC.heap_info said nothing about the heap');
      return {
        runtime: 'jvm',
        before: before.used,
        after: after.used,
        freed: before.used - after.used,
        heapAfter: after.committed,
        seconds,
        how: 'jcmd GC.run',
        ...(disabled ? { note: 'the JVM runs with -XX:+DisableExplicitGC: no collection was done' } : {}),
      };
    }
    const session = await connectInspector(kube, t.pod, inspectorPort(t, ctx.find(inspector)), ctx.signal);
    try {
      const before = await heapUsage(session);
      await session.call('HeapProfiler.enable');
      const t0 = performance.now();
      await session.call('HeapProfiler.collectGarbage', {}, 30 * 60_000);
      const seconds = Math.round((performance.now() - t0) / 100) / 10;
      const after = await heapUsage(session);
      return {
        runtime: 'node',
        before: before.used,
        after: after.used,
        freed: before.used - after.used,
        heapAfter: after.total,
        seconds,
        how: 'HeapProfiler.collectGarbage',
      };
    } finally {
      session.close();
    }
  },
});

const closeInspector = closeInspectorStep<Params>(target, inspector);

export default defineProcedure<Params>({
  name: 'pod gc',
  summary: 'Force a full garbage collection of the Java or Node.js process in a pod (jcmd GC.run / the inspector), with the heap before and after',
  seedFixes: [
    "`kubectl exec … kill -USR1 $(pgrep node)`: `pgrep` runs on the laptop (the PID is the laptop's), and SIGUSR1 opens the Node.js inspector — it does not collect garbage. Here the process is found inside the container, and the collection is real: HeapProfiler.collectGarbage through the inspector (opened on the pod's loopback, reached by a port-forward, closed again), or jcmd GC.run for a JVM.",
    'The heap in use is read before and after, so the result says what a collection frees — and what it does not (the memory a leak holds).',
    "The gate says what it costs: a stop-the-world pause of about the heap's size, and whether the liveness probe would restart the container meanwhile.",
  ],
  params: [...PROCESS_TARGET_PARAMS],
  examples: [[], ['app-7d9f8b6c5d-x2kqp', '--container', 'api'], ['app-7d9f8b6c5d-x2kqp', '--pid', '1', '--json']],
  requires: ['kubernetes'],
  kube: ['execInPod', 'getDeployment', 'getPod', 'listPodMetrics', 'listPods', 'portForward'],
  approval: {
    before: 'inspector',
    summary: (ctx) => costLines(ctx.get(target), ctx.get(size)),
  },
  steps: [target, size, inspector, gc, closeInspector],
  render(run) {
    const t = run.find(target);
    const g = run.find(gc);
    if (!t || !g) return '';
    const pct = g.before ? Math.round((g.freed / g.before) * 1000) / 10 : 0;
    const lines = [
      `garbage collection of ${runtimeName(t.runtime)} ${where(t)} (${g.how}, ${g.seconds}s)`,
      `  heap in use  ${formatBytes(g.before)} → ${formatBytes(g.after)}  (${g.freed >= 0 ? `${formatBytes(g.freed)} freed, ${pct}%` : `${formatBytes(-g.freed)} more`})`,
    ];
    if (g.heapAfter !== null) lines.push(`  heap size    ${formatBytes(g.heapAfter)} ${t.runtime === 'jvm' ? 'committed' : 'total'} after`);
    if (g.note) lines.push(`  note         ${g.note}`);
    return `${lines.join('\n')}\n`;
  },
});
