import { createHash } from 'node:crypto';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { createWriteStream } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { CoreV1Event, V1Pod } from '@kubernetes/client-node';
import type { KubeClient } from '../../clients/kube.js';
import { StepError, errorMessage } from '../../core/errors.js';
import { formatDuration } from '../../core/duration.js';
import { journalDir } from '../../core/journal.js';
import type { Step, StepContext } from '../../core/procedure.js';
import { ns } from '../shared/pods.js';

/** `--dir` and `--since` of the evidence step. */
export interface EvidenceParams {
  dir?: string;
  since?: number;
}

/** One file of the evidence folder, as listed in manifest.json. */
export interface EvidenceFile {
  file: string;
  pod?: string;
  container?: string;
  previous?: boolean;
  bytes: number;
  sha256: string;
  collectedAt: string;
  /** Set when the log could not be read completely; the file holds what arrived. */
  error?: string;
}

export interface EvidenceData {
  folder: string;
  namespace: string;
  logs: number;
  previousLogs: number;
  events: number;
  bytes: number;
  failed: Array<{ file: string; error: string }>;
}

interface LogTask {
  pod: string;
  container: string;
  previous: boolean;
}

const PARALLEL = 4;

/** Counts and hashes what passes through, so each file's sha256 is known without reading it back. */
class Digest extends Transform {
  readonly hash = createHash('sha256');
  bytes = 0;
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    cb(null, chunk);
  }
}

/** Every container (init containers too) of every pod, plus the previous instance where it restarted. */
export function logTasks(pods: V1Pod[]): LogTask[] {
  const out: LogTask[] = [];
  for (const p of pods) {
    const pod = p.metadata!.name!;
    const restarts = new Map([...(p.status?.initContainerStatuses ?? []), ...(p.status?.containerStatuses ?? [])].map((s) => [s.name, s.restartCount ?? 0]));
    for (const c of [...(p.spec?.initContainers ?? []), ...(p.spec?.containers ?? [])]) {
      out.push({ pod, container: c.name, previous: false });
      if ((restarts.get(c.name) ?? 0) > 0) out.push({ pod, container: c.name, previous: true });
    }
  }
  return out;
}

function eventTime(e: CoreV1Event): number {
  const t = e.lastTimestamp ?? e.eventTime ?? e.firstTimestamp ?? e.metadata?.creationTimestamp;
  return t ? new Date(t as unknown as string).getTime() : 0;
}

export function evidenceParent(ctx: Pick<StepContext<EvidenceParams>, 'params' | 'env' | 'io'>): string {
  const dir = ctx.params.dir ?? ctx.env.config.security?.evidenceDir ?? join(journalDir(ctx.io.env, ctx.env.journalDir), 'evidence');
  return isAbsolute(dir) ? dir : resolve(ctx.io.cwd, dir);
}

async function collectLog(kube: KubeClient, folder: string, t: LogTask, sinceSeconds: number | undefined, now: () => Date): Promise<EvidenceFile> {
  const file = `${t.pod}__${t.container}${t.previous ? '.previous' : ''}.log`;
  const digest = new Digest();
  const written = pipeline(digest, createWriteStream(join(folder, file), { flags: 'wx', mode: 0o600 }));
  let error: string | undefined;
  try {
    await kube.streamPodLog(t.pod, digest, { container: t.container, previous: t.previous, sinceSeconds });
  } catch (err) {
    error = errorMessage(err);
    if (!digest.destroyed && !digest.writableEnded) digest.end();
  }
  try {
    await written;
  } catch (err) {
    error ??= errorMessage(err);
  }
  return {
    file,
    pod: t.pod,
    container: t.container,
    previous: t.previous,
    bytes: digest.bytes,
    sha256: digest.hash.digest('hex'),
    collectedAt: now().toISOString(),
    ...(error ? { error } : {}),
  };
}

/**
 * Step: every container's log (and the previous instance's where a container restarted) and the
 * namespace's events, each streamed into its own file of a new folder, then a sha256 manifest.
 * Read-only for the cluster; the files are written only in a real run (a dry run previews them).
 */
export function evidenceStep<P extends EvidenceParams>(): Step<P, EvidenceData> {
  return {
    id: 'evidence',
    title: 'Preserve logs and events in a new evidence folder',
    why: 'Logs vanish when pods are replaced (the audit-mode change rolls them), so they are copied first, untouched, into a private folder with a sha256 manifest that shows later they were not altered.',
    risk: 'read',
    // Writing local files is an effect: previewed, not done, in a dry run.
    followsWrite: true,
    equivalent: (p, env) =>
      `for pod in $(kubectl get pods -n ${ns(env)} -o name); do kubectl logs -n ${ns(env)} "$pod" --all-containers --prefix${p.since ? ` --since=${Math.ceil(p.since / 1000)}s` : ''} > "$(basename "$pod").log"; done; kubectl get events -n ${ns(env)} -o json > events.json; sha256sum *.log events.json > MANIFEST.sha256`,
    async plan(ctx) {
      const kube = await ctx.clients.kube();
      const tasks = logTasks(await kube.listPods());
      const events = await kube.listEvents();
      const prev = tasks.filter((t) => t.previous).length;
      return [
        {
          action: 'collect into',
          target: join(evidenceParent(ctx), `evidence-${kube.namespace}-<timestamp>`),
          after: `${tasks.length - prev} container logs${prev ? ` + ${prev} previous` : ''}, ${events.length} events${ctx.params.since ? ` (last ${formatDuration(ctx.params.since)})` : ''}, MANIFEST.sha256, manifest.json`,
        },
      ];
    },
    async run(ctx): Promise<EvidenceData> {
      const kube = await ctx.clients.kube();
      const parent = evidenceParent(ctx);
      await mkdir(parent, { recursive: true, mode: 0o700 });
      const folder = join(parent, `evidence-${kube.namespace}-${ctx.runId}`);
      try {
        // Not recursive: an existing folder is an error, so evidence is never overwritten.
        await mkdir(folder, { mode: 0o700 });
      } catch (err) {
        throw new StepError(
          `cannot create the evidence folder ${folder}: ${errorMessage(err)}`,
          'evidence is never written into an existing folder; pass --dir for another place',
        );
      }
      await chmod(folder, 0o700);
      const sinceSeconds = ctx.params.since ? Math.ceil(ctx.params.since / 1000) : undefined;
      const tasks = logTasks(await kube.listPods());
      const files: EvidenceFile[] = new Array(tasks.length);
      let next = 0;
      const worker = async () => {
        while (next < tasks.length) {
          const i = next++;
          files[i] = await collectLog(kube, folder, tasks[i], sinceSeconds, ctx.now);
          if (files[i].error) ctx.reporter.warn(`${files[i].file}: ${files[i].error}`);
        }
      };
      await Promise.all(Array.from({ length: Math.min(PARALLEL, tasks.length) }, worker));

      const cutoff = ctx.params.since ? ctx.now().getTime() - ctx.params.since : undefined;
      const events = (await kube.listEvents()).filter((e) => cutoff === undefined || eventTime(e) >= cutoff);
      const eventsText = JSON.stringify({ apiVersion: 'v1', kind: 'EventList', items: events }, null, 2) + '\n';
      await writeFile(join(folder, 'events.json'), eventsText, { flag: 'wx', mode: 0o600 });
      const eventsFile: EvidenceFile = {
        file: 'events.json',
        bytes: Buffer.byteLength(eventsText),
        sha256: createHash('sha256').update(eventsText).digest('hex'),
        collectedAt: ctx.now().toISOString(),
      };
      const all = [...files, eventsFile];
      await writeFile(join(folder, 'MANIFEST.sha256'), all.map((f) => `${f.sha256}  ${f.file}\n`).join(''), { flag: 'wx', mode: 0o600 });
      const manifest = {
        namespace: kube.namespace,
        context: kube.context,
        server: kube.server,
        runId: ctx.runId,
        since: ctx.params.since ? formatDuration(ctx.params.since) : null,
        collectedAt: ctx.now().toISOString(),
        files: all,
      };
      await writeFile(join(folder, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n', { flag: 'wx', mode: 0o600 });
      const failed = all.filter((f) => f.error).map((f) => ({ file: f.file, error: f.error! }));
      return {
        folder,
        namespace: kube.namespace,
        logs: files.filter((f) => !f.previous).length,
        previousLogs: files.filter((f) => f.previous).length,
        events: events.length,
        bytes: all.reduce((n, f) => n + f.bytes, 0),
        failed,
      };
    },
  };
}

export function renderEvidence(d: EvidenceData): string {
  const lines = [
    `evidence folder: ${d.folder}`,
    `  ${d.logs} container logs, ${d.previousLogs} previous-instance logs, ${d.events} events, ${d.bytes} bytes`,
    `  verify with: (cd ${d.folder} && sha256sum -c MANIFEST.sha256)`,
  ];
  for (const f of d.failed) lines.push(`  incomplete: ${f.file} (${f.error})`);
  return lines.join('\n') + '\n';
}
