import type { ResolvedEnvironment } from '../../core/config.js';
import { describeRef } from '../../core/config.js';
import { StepError } from '../../core/errors.js';
import { shellQuote } from '../../core/shell.js';
import { runData, type Step, type StepContext } from '../../core/procedure.js';

export interface AnnounceOptions<P> {
  id: string;
  title: string;
  why?: string;
  /** The message; built at run time, so it can use earlier steps' data (`find(step)`: a preview has none). */
  message(ctx: Pick<StepContext<P>, 'params' | 'env' | 'get' | 'find' | 'runId'>): string;
  /** Fail the run when no channel accepted the message (default: warn and carry on). */
  required?: boolean;
}

function channels(env: ResolvedEnvironment): string {
  const n = env.config.notify;
  const out: string[] = [];
  if (n?.slack) out.push(`slack webhook ${describeRef(n.slack.webhook)}${n.slack.channel ? ` (${n.slack.channel})` : ''}`);
  if (n?.command) out.push(`command ${n.command[0]}`);
  return out.join(' + ') || '(none)';
}

/**
 * Step: tell people through the environment's `notify` section (a Slack-compatible webhook and/or a
 * command). A message is an outside effect, so a dry run only previews it; the step is skipped when the
 * environment configures no notify channel.
 */
export interface Announced {
  message: string;
  sent: string[];
  failed: Array<{ channel: string; detail: string }>;
}

export function announceStep<P>(opts: AnnounceOptions<P>): Step<P, Announced> {
  const preview = (params: P, env: ResolvedEnvironment) => opts.message({ ...runData({}), params, env, runId: '<run-id>' });
  return {
    id: opts.id,
    title: opts.title,
    why: opts.why ?? 'People who depend on the system hear about the change from the tool, not from the outage.',
    risk: 'read',
    // Sending is previewed, never done, in a dry run.
    followsWrite: true,
    when: (_p, env) => Boolean(env.config.notify),
    secrets: ['notify'],
    equivalent(params, env) {
      const n = env.config.notify;
      const msg = preview(params, env);
      const parts: string[] = [];
      if (n?.slack) {
        const body = JSON.stringify({ text: msg, ...(n.slack.channel ? { channel: n.slack.channel } : {}) });
        parts.push(`curl -fsS -X POST -H 'content-type: application/json' -d ${shellQuote(body)} "${describeRef(n.slack.webhook)}"`);
      }
      if (n?.command) parts.push([...n.command, msg].map(shellQuote).join(' '));
      return parts.join(' && ') || '(no notify channel configured)';
    },
    plan: async (ctx) => [{ action: 'announce', target: channels(ctx.env), after: JSON.stringify(opts.message(ctx)) }],
    async run(ctx): Promise<Announced> {
      const message = opts.message(ctx);
      const results = await ctx.clients.notify(message, ctx.signal);
      const failed = results.filter((r) => !r.ok);
      for (const f of failed) ctx.reporter.warn(`notification via ${f.channel} failed: ${f.detail}`);
      if (opts.required && (results.length === 0 || failed.length === results.length)) {
        throw new StepError(
          `could not announce "${message}": ${failed.map((f) => `${f.channel}: ${f.detail}`).join('; ') || 'no channel'}`,
          'check environments.<env>.notify, or tell people by hand and run again',
        );
      }
      return { message, sent: results.filter((r) => r.ok).map((r) => r.channel), failed: failed.map((f) => ({ channel: f.channel, detail: f.detail })) };
    },
    // People who were told "starting now" are told when the run stops short, so nobody waits for it.
    async undo(ctx, data) {
      if (data.sent.length === 0) return;
      const results = await ctx.clients.notify(
        `Update: "${opts.title}" — the run stopped before finishing and is putting back what it changed; details: runbook show ${ctx.runId}`,
        ctx.signal,
      );
      for (const f of results.filter((r) => !r.ok)) ctx.reporter.warn(`notification via ${f.channel} failed: ${f.detail}`);
    },
    undoByHand: (ctx) => `tell the people you announced to that run ${ctx.runId} stopped (runbook show ${ctx.runId})`,
  };
}
