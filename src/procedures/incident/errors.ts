import { StepError, errorMessage } from '../../core/errors.js';
import { formatDuration, parseDuration } from '../../core/duration.js';
import { defineProcedure, stepFor, type RunData, type StepContext } from '../../core/procedure.js';
import { table } from '../../core/table.js';
import { deploymentName, logContainerOf, ns, ownedReplicaSets, revisionOf, selectorOf } from '../shared/pods.js';
import {
  asFraction,
  compileErrorPattern,
  errorFields,
  groupErrors,
  parseRate,
  pickErrorRate,
  summarizeAccessLogs,
  type AccessLogSummary,
  type ErrorGroup,
} from './error-analysis.js';

export interface IncidentErrorsParams {
  since: number;
  pattern?: string;
  maxErrorRate?: string;
  top: number;
}

interface MetricsData {
  url: string;
  status?: number;
  error?: string;
  fields: Record<string, number>;
  errorRate: { field: string; value: number; fraction: number } | null;
}

interface RevisionInfo {
  revision: number;
  replicaSet: string;
  image: string;
  createdAt?: string;
  changeCause?: string;
}

interface HistoryData {
  deployment: string;
  current: number;
  revisions: RevisionInfo[];
}

interface LogData {
  pods: Array<{ pod: string; lines: number; error?: string }>;
  lines: number;
  errorLines: number;
  groups: ErrorGroup[];
}

/** The rate the check compares, and where it comes from. */
interface ObservedRate {
  fraction: number;
  source: string;
}

interface Suggested {
  errorRate: ObservedRate | null;
  suggestions: string[];
}

const MAX_PODS = 20;

function ago(ms: number): string {
  return formatDuration(Math.max(0, Math.round(ms / 1000)) * 1000);
}

async function readMetrics(ctx: StepContext<IncidentErrorsParams>): Promise<MetricsData> {
  const m = ctx.env.config.metrics!;
  const headers: Record<string, string> = { accept: 'application/json' };
  if (m.token) headers.authorization = `Bearer ${ctx.clients.secret(m.token, `environments.${ctx.env.name}.metrics.token`)}`;
  const out: MetricsData = { url: m.url, fields: {}, errorRate: null };
  try {
    const res = await ctx.clients.http.request(m.url, { headers, timeoutMs: parseDuration(m.timeout), signal: ctx.signal });
    out.status = res.status;
    if (res.status < 200 || res.status > 299) {
      out.error = `HTTP ${res.status}`;
    } else {
      const doc = JSON.parse(res.text) as unknown;
      out.fields = errorFields(doc);
      const rate = pickErrorRate(doc, m.errorRateField);
      out.errorRate = rate ? { ...rate, fraction: asFraction(rate.value, m.errorRateUnit) } : null;
      if (!rate) ctx.reporter.warn(`no error-rate field in ${m.url}${m.errorRateField ? ` at "${m.errorRateField}"` : ''}; set metrics.errorRateField`);
    }
  } catch (err) {
    if (ctx.signal.aborted) throw ctx.signal.reason;
    out.error = err instanceof SyntaxError ? 'the answer is not JSON' : errorMessage(err);
  }
  if (out.error) ctx.reporter.warn(`metrics endpoint: ${out.error}`);
  return out;
}

/** The rate the check compares: the metrics endpoint's, else the access logs' share of 5xx. */
function observedRate(run: RunData): ObservedRate | null {
  const m = run.find(metrics);
  if (m?.errorRate) return { fraction: m.errorRate.fraction, source: `metrics ${m.errorRate.field}` };
  const a = run.find(access);
  if (a && a.requests > 0) return { fraction: a.errors5xx / a.requests, source: 'access logs (share of 5xx)' };
  return null;
}

function pct(f: number): string {
  return `${(f * 100).toFixed(2)}%`;
}

export function suggestions(run: RunData, now: Date, sinceMs: number): string[] {
  const out: string[] = [];
  const h = run.find(history);
  const l = run.find(logs);
  const a = run.find(access);
  const cur = h?.revisions.find((r) => r.revision === h.current);
  const firstError = l?.groups
    .map((g) => g.firstSeen)
    .filter((t): t is string => Boolean(t))
    .sort()[0];
  if (h && cur?.createdAt) {
    const rolledAt = Date.parse(cur.createdAt);
    const recent = now.getTime() - rolledAt <= sinceMs;
    const previous = h.revisions.filter((r) => r.revision < h.current).map((r) => r.revision);
    const startedAfter = firstError !== undefined && Date.parse(firstError) >= rolledAt - 1000;
    if (recent && startedAfter && previous.length) {
      out.push(
        `revision ${h.current} rolled out ${ago(now.getTime() - rolledAt)} ago and errors started after it: runbook app rollback (back to revision ${Math.max(...previous)})`,
      );
    } else if (recent && startedAfter) {
      out.push(`errors started after revision ${h.current} rolled out ${ago(now.getTime() - rolledAt)} ago, but there is no earlier revision to roll back to`);
    } else if (recent && firstError) {
      out.push(`revision ${h.current} rolled out ${ago(now.getTime() - rolledAt)} ago, but errors started before it: a rollback alone may not help`);
    } else if (!recent && l?.errorLines) {
      out.push(`no rollout in the window (revision ${h.current} is ${ago(now.getTime() - rolledAt)} old): look at dependencies and load rather than the code`);
    }
  }
  const top = l?.groups[0];
  if (top && /timeout|connection|refused|unavailable|pool/i.test(top.type)) {
    out.push(
      `most errors are ${top.type}: a dependency is failing; runbook app circuit-breaker enable, and check it (runbook db connections, runbook cache stats)`,
    );
  }
  const worst = a?.endpoints.find((e) => e['5xx'] > 0);
  if (worst && a) {
    out.push(`${worst.endpoint} has the most 5xx (${worst['5xx']} of ${worst.total}; ${pct(a.errors5xx / Math.max(1, a.requests))} of all requests are 5xx)`);
    if (worst['5xx'] / Math.max(1, a.errors5xx) < 0.5 && a.errors5xx > 10)
      out.push('5xx are spread over many endpoints: a shared dependency is more likely than one handler');
  }
  const rates = a?.endpoints.filter((e) => (e.statuses['429'] ?? 0) > 0) ?? [];
  if (rates.length) out.push(`requests are being rate limited (429) on ${rates.length} endpoint(s); runbook app env set RATE_LIMIT=<n> to change the limit`);
  return out;
}

const step = stepFor<IncidentErrorsParams>();

const metrics = step({
  id: 'metrics',
  title: 'Read the error metrics',
  why: 'The error rate says how bad it is and whether it is still rising; the other steps say why.',
  risk: 'read',
  when: (_p, env) => Boolean(env.config.metrics),
  secrets: ['metrics'],
  equivalent: (_p, env) =>
    `curl -fsS ${env.config.metrics?.token ? '-H "Authorization: Bearer $TOKEN" ' : ''}${env.config.metrics?.url ?? '<metrics url>'} | jq .`,
  run: (ctx) => readMetrics(ctx),
});

const history = step({
  id: 'history',
  title: 'Read the rollout history',
  why: 'Most error spikes follow a deployment: when each revision rolled out is compared with when the errors started.',
  risk: 'read',
  equivalent: (_p, env) => `kubectl rollout history deployment/${deploymentName(env)} -n ${ns(env)}`,
  async run(ctx): Promise<HistoryData> {
    const kube = await ctx.clients.kube();
    const d = await kube.getDeployment(deploymentName(ctx.env));
    const sets = await ownedReplicaSets(kube, d);
    return {
      deployment: d.metadata?.name ?? deploymentName(ctx.env),
      current: revisionOf(d),
      revisions: sets.map((rs) => ({
        revision: revisionOf(rs),
        replicaSet: rs.metadata?.name ?? '',
        image: (rs.spec?.template?.spec?.containers ?? []).map((c) => c.image ?? '?').join(','),
        createdAt: rs.metadata?.creationTimestamp ? new Date(rs.metadata.creationTimestamp).toISOString() : undefined,
        changeCause: rs.metadata?.annotations?.['kubernetes.io/change-cause'],
      })),
    };
  },
});

const logs = step({
  id: 'logs',
  title: 'Group the error lines of the pods by type',
  why: 'Which error dominates, on which pods and since when, points at the cause (a bad release, a failing dependency, one sick node).',
  risk: 'read',
  equivalent: (p, env) =>
    `kubectl logs -n ${ns(env)} -l ${env.config.kubernetes?.selector ?? `app=${deploymentName(env)}`} --since=${Math.round(p.since / 1000)}s --timestamps --prefix | grep -E 'ERROR|"level":"error"'  # then count by type`,
  async run(ctx): Promise<LogData> {
    const kube = await ctx.clients.kube();
    const d = await kube.getDeployment(deploymentName(ctx.env));
    const pods = (await kube.listPods(selectorOf(d))).filter((p) => p.status?.phase !== 'Pending');
    if (pods.length > MAX_PODS) ctx.reporter.warn(`${pods.length} pods; reading the logs of the first ${MAX_PODS}`);
    const configured = ctx.env.config.kubernetes?.container;
    const sinceSeconds = Math.max(1, Math.round(ctx.params.since / 1000));
    const read = await Promise.all(
      pods.slice(0, MAX_PODS).map(async (p) => {
        const pod = p.metadata!.name!;
        try {
          // A pod with sidecars refuses a log request that names no container: name the one kubectl logs would.
          return { pod, text: await kube.readPodLog(pod, { container: logContainerOf(p, configured), sinceSeconds, timestamps: true }) };
        } catch (err) {
          if (ctx.signal.aborted) throw ctx.signal.reason;
          return { pod, text: '', error: errorMessage(err) };
        }
      }),
    );
    const failed = read.filter((r) => r.error);
    if (failed.length === read.length && read.length > 0)
      throw new StepError(`could not read the logs of any pod: ${failed[0].error}`, `kubectl logs -n ${ns(ctx.env)} ${failed[0].pod}`);
    for (const f of failed) ctx.reporter.warn(`logs of ${f.pod}: ${f.error}`);
    const pattern = ctx.params.pattern !== undefined ? compileErrorPattern(ctx.params.pattern) : null;
    const grouped = groupErrors(read, pattern);
    if (grouped.errorLines) ctx.log(`${grouped.errorLines} error line(s) of ${grouped.lines} in ${read.length} pod(s)`);
    return {
      pods: read.map((r) => ({ pod: r.pod, lines: r.text.split('\n').filter(Boolean).length, ...(r.error ? { error: r.error } : {}) })),
      lines: grouped.lines,
      errorLines: grouped.errorLines,
      groups: grouped.groups,
    };
  },
});

const access = step({
  id: 'access',
  title: 'Count requests by endpoint and status in the access logs',
  why: 'Which endpoints fail, and with which status, separates one broken handler from a shared dependency.',
  risk: 'read',
  when: (_p, env) => Boolean(env.config.accessLogs),
  equivalent: (_p, env) => `awk '{print $6, $7, $9}' ${(env.config.accessLogs?.files ?? ['/var/log/nginx/access.log']).join(' ')} | sort | uniq -c | sort -rn`,
  async run(ctx): Promise<AccessLogSummary> {
    const a = await summarizeAccessLogs(ctx.env.config.accessLogs!.files, ctx.now().getTime() - ctx.params.since, ctx.signal);
    for (const f of a.files) if (f.error) ctx.reporter.warn(`access log ${f.path}: ${f.error}`);
    if (a.unparsed) ctx.reporter.warn(`${a.unparsed} access-log line(s) not in the nginx combined format were skipped`);
    return { ...a, endpoints: a.endpoints.slice(0, Math.max(ctx.params.top, 50)) };
  },
});

const suggest = step({
  id: 'suggest',
  title: 'Suggest the next step',
  why: 'Turns the findings into the command to run next (rollback, circuit breaker, rate limit), so nobody has to remember them at 3 a.m.',
  risk: 'read',
  equivalent: () => '# read the output above',
  async run(ctx): Promise<Suggested> {
    const rate = observedRate(ctx);
    return { errorRate: rate, suggestions: suggestions(ctx, ctx.now(), ctx.params.since) };
  },
});

export default defineProcedure<IncidentErrorsParams>({
  name: 'incident errors',
  summary: 'Diagnose a high error rate: metrics, rollout history, error types from pod logs, 5xx by endpoint; suggests the next command',
  seedFixes: [
    "The seed groups errors with `awk '{print $5}'`, which breaks as soon as the log format moves a field; this parses a regular expression with a named group `type` (--pattern), and JSON logs by their level and error fields.",
    'The seed reads only --tail=1000 lines of the pods matched by a hard-coded label; this reads every pod of the deployment for the --since window, with timestamps, so it can say whether errors started before or after the last rollout.',
    "The seed greps one endpoint's status codes with awk; this streams every configured access log (flat memory) and counts endpoint × status, ids collapsed, top endpoints by 5xx.",
    'Exit 4 when the error rate is above --max-error-rate, for scripts and alerts.',
  ],
  params: [
    { name: 'since', flag: '--since <duration>', description: 'how far back to look', type: 'duration', default: '1h' },
    {
      name: 'pattern',
      flag: '--pattern <regex>',
      description: 'error line pattern with a named group "type" (default: "ERROR <Type>" or JSON level/error fields)',
      type: 'string',
    },
    { name: 'maxErrorRate', flag: '--max-error-rate <rate>', description: 'exit 4 above this error rate (0.05 or 5%)', type: 'string' },
    { name: 'top', flag: '--top <n>', description: 'rows per table', type: 'int', default: 10, min: 1, max: 1000 },
  ],
  examples: [[], ['--since', '30m', '--max-error-rate', '5%'], ['--pattern', String.raw`level=error kind=(?<type>\w+)`]],
  requires: ['kubernetes'],
  kube: ['getDeployment', 'listPods', 'listReplicaSets', 'readPodLog'],
  validate(p) {
    if (p.pattern !== undefined) compileErrorPattern(p.pattern);
    if (p.maxErrorRate !== undefined) parseRate(p.maxErrorRate);
  },
  steps: [metrics, history, logs, access, suggest],
  check(run, p) {
    if (p.maxErrorRate === undefined) return null;
    const max = parseRate(p.maxErrorRate);
    const rate = observedRate(run);
    if (!rate) return 'no error rate to compare with --max-error-rate (no metrics endpoint answer and no access-log requests in the window)';
    return rate.fraction > max ? `error rate ${pct(rate.fraction)} (${rate.source}) is above --max-error-rate ${pct(max)}` : null;
  },
  render(run) {
    const parts: string[] = [];
    const m = run.find(metrics);
    if (m) {
      const rows = Object.entries(m.fields).map(([k, v]) => [k, String(v)]);
      parts.push(m.error ? `metrics: ${m.error}\n` : rows.length ? table(['METRIC', 'VALUE'], rows) : 'metrics: no error fields\n');
    }
    const h = run.find(history);
    if (h)
      parts.push(
        table(
          ['REVISION', 'IMAGE', 'ROLLED OUT', 'CHANGE-CAUSE'],
          h.revisions.map((r) => [`${r.revision}${r.revision === h.current ? ' (current)' : ''}`, r.image, r.createdAt ?? '', r.changeCause ?? '']),
        ),
      );
    const l = run.find(logs);
    if (l) {
      parts.push(
        l.groups.length
          ? table(
              ['COUNT', 'TYPE', 'PODS', 'FIRST SEEN', 'SAMPLE'],
              l.groups.slice(0, 10).map((g) => [String(g.count), g.type, String(g.pods.length), g.firstSeen ?? '', g.sample.slice(0, 80)]),
            )
          : `no error lines in ${l.lines} log line(s) of ${l.pods.length} pod(s)\n`,
      );
    }
    const a = run.find(access);
    if (a) {
      parts.push(
        a.requests
          ? table(
              ['ENDPOINT', 'TOTAL', '2XX', '3XX', '4XX', '5XX'],
              a.endpoints.slice(0, 10).map((e) => [e.endpoint, String(e.total), String(e['2xx']), String(e['3xx']), String(e['4xx']), String(e['5xx'])]),
            )
          : 'no requests in the access logs for this window\n',
      );
    }
    const s = run.find(suggest);
    if (s?.errorRate) parts.push(`error rate: ${pct(s.errorRate.fraction)} (${s.errorRate.source})\n`);
    if (s?.suggestions.length) parts.push(s.suggestions.map((x) => `→ ${x}`).join('\n') + '\n');
    return parts.join('\n');
  },
});
