import { table } from '../../core/table.js';
import type { CheckedReference, ContainerReport, EventSummary, Finding, LogExcerpt, UsageData } from './diagnosis.js';
import type { PodsData } from './diagnosis.js';
import { formatMemory, formatCpu, formatPct, type ContainerUsage } from './usage.js';

/** What the steps of `pod diagnose` found (a step that did not run is missing). */
export interface DiagnosisData {
  pods?: PodsData;
  events?: Record<string, EventSummary[]>;
  logs?: LogExcerpt[];
  usage?: UsageData;
  references?: CheckedReference[];
  findings?: { unhealthy: string | null; findings: Finding[] };
}

const indent = (s: string, n: number) =>
  s
    .trimEnd()
    .split('\n')
    .map((l) => `${' '.repeat(n)}${l}`)
    .join('\n');

function containerLines(c: ContainerReport, usage: ContainerUsage | undefined): string[] {
  const out: string[] = [];
  const state = c.waiting
    ? `waiting: ${c.waiting.reason}`
    : c.terminated
      ? `terminated: ${c.terminated.reason ?? ''} exit code ${c.terminated.exitCode}`
      : c.state;
  out.push(`${c.init ? 'init container' : 'container'} ${c.name}  ${state}  ready=${c.ready}  restarts=${c.restarts}  image ${c.image}`);
  if (c.waiting?.message) out.push(`  message: ${c.waiting.message}`);
  const t = c.lastTermination;
  if (t)
    out.push(
      `  last termination: ${t.reason ?? 'terminated'}, exit code ${t.exitCode}${t.finishedAt ? `, finished ${t.finishedAt}` : ''}${t.reason === 'OOMKilled' ? (c.limits.memory ? ` — at its memory limit of ${c.limits.memory}` : ' — no memory limit: the node ran out') : ''}${t.message ? ` — ${t.message}` : ''}`,
    );
  const res = (o: { cpu?: string; memory?: string }) => `cpu ${o.cpu ?? '-'} memory ${o.memory ?? '-'}`;
  out.push(`  requests ${res(c.requests)}   limits ${res(c.limits)}`);
  if (usage && (usage.cpu !== null || usage.memory !== null)) {
    out.push(
      `  usage    cpu ${formatCpu(usage.cpu)} (${formatPct(usage.cpuPctOfLimit)} of limit)   memory ${formatMemory(usage.memory)} (${formatPct(usage.memoryPctOfLimit)} of limit)`,
    );
  }
  if (c.probes.length === 0 && !c.init) out.push('  probes: none');
  for (const p of c.probes) {
    out.push(
      `  ${p.kind} probe: ${p.action} (delay ${p.initialDelaySeconds}s, every ${p.periodSeconds}s, timeout ${p.timeoutSeconds}s, ${p.failureThreshold} failures)`,
    );
  }
  return out;
}

function eventLines(events: EventSummary[]): string {
  if (!events.length) return 'events: none';
  return `events:\n${indent(
    table(
      ['LAST', 'TYPE', 'REASON', 'COUNT', 'MESSAGE'],
      events.map((e) => [e.last ?? '', e.type, e.reason, e.count, e.message]),
    ),
    2,
  )}`;
}

function findingLines(f: Finding): string {
  const where = [f.pod, f.container].filter(Boolean).join('/');
  const lines = [`${f.severity.toUpperCase().padEnd(8)} ${where ? `${where}: ` : ''}${f.problem}`];
  if (f.cause) lines.push(`         likely cause: ${f.cause}`);
  for (const n of f.next) lines.push(`         next: ${n}`);
  return lines.join('\n');
}

/** The readable report: a pod table (deployment mode), details of the pods that need a look, references, findings. */
export function renderDiagnosis(found: DiagnosisData): string {
  const data = found.pods;
  if (!data) return '';
  const events = found.events ?? {};
  const logs = found.logs ?? [];
  const usage = found.usage;
  const refs = found.references ?? [];
  const result = found.findings;
  const parts: string[] = [];

  if (data.deployment) {
    parts.push(`deployment/${data.deployment} in ${data.namespace}: ${data.pods.length} pod(s), worst first`);
    if (data.pods.length)
      parts.push(
        table(
          ['POD', 'STATUS', 'READY', 'RESTARTS', 'AGE', 'NODE', 'VERDICT'],
          data.pods.map((p) => [p.name, p.status, p.ready, p.restarts, p.age, p.node, p.verdict]),
        ).trimEnd(),
      );
  }
  for (const p of data.pods) {
    if (data.deployment && !(p.name in events)) continue;
    const lines = [
      `pod ${p.name}  (namespace ${data.namespace}${p.node ? `, node ${p.node}` : ''})`,
      `  status ${p.status}  phase ${p.phase}  ready ${p.ready}  restarts ${p.restarts}  age ${p.age}`,
    ];
    for (const c of p.conditions) lines.push(`  condition ${c.type} not true${c.reason ? `: ${c.reason}` : ''}${c.message ? ` — ${c.message}` : ''}`);
    for (const c of p.containers)
      lines.push(
        ...containerLines(
          c,
          usage?.containers.find((u) => u.pod === p.name && u.container === c.name),
        ).map((l) => `  ${l}`),
      );
    lines.push(indent(eventLines(events[p.name] ?? []), 2));
    for (const l of logs.filter((x) => x.pod === p.name)) {
      const head = `${l.previous ? 'previous' : 'current'} log of ${l.container} (last ${l.lines.length} lines)`;
      if (l.error) lines.push(`  ${head}: unavailable: ${l.error}`);
      else lines.push(`  ${head}:${l.lines.length ? `\n${indent(l.lines.join('\n'), 4)}` : ' (empty)'}`);
    }
    parts.push(lines.join('\n'));
  }
  if (usage && !usage.available) parts.push(`usage: unavailable (${usage.error ?? 'metrics.k8s.io'})`);
  if (refs.length) {
    parts.push(
      `secrets and config maps referenced:\n${indent(
        table(
          ['KIND', 'NAME', 'STATUS', 'USED BY'],
          refs.map((r) => [
            r.kind,
            r.name,
            r.status === 'missing-key' ? `missing key ${(r.missingKeys ?? []).join(',')}` : r.status + (r.optional ? ' (optional)' : ''),
            r.usedBy.join(', '),
          ]),
        ),
        2,
      )}`,
    );
  }
  if (result) {
    parts.push(result.findings.length ? `findings:\n${result.findings.map(findingLines).join('\n')}` : 'findings: none');
    parts.push(
      result.unhealthy ? `UNHEALTHY: ${result.unhealthy}` : data.deployment ? `all ${data.pods.length} pod(s) healthy` : `pod ${data.pods[0]?.name} is healthy`,
    );
  }
  return parts.join('\n\n') + '\n';
}
