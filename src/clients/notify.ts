import type { EnvironmentConfig } from '../core/config.js';
import type { HttpClient } from './http.js';
import { runProcess } from './process.js';

export interface NotifyResult {
  channel: 'slack' | 'command';
  ok: boolean;
  detail: string;
}

/**
 * Sends a message through the environment's `notify` section: a Slack-compatible incoming webhook
 * and/or a configured command (the message is passed as its last argument, never through a shell).
 */
export async function sendNotification(
  notify: NonNullable<EnvironmentConfig['notify']>,
  message: string,
  deps: { http: HttpClient; webhookUrl?: string; signal?: AbortSignal },
): Promise<NotifyResult[]> {
  const results: NotifyResult[] = [];
  if (notify.slack && deps.webhookUrl) {
    const body = JSON.stringify({ text: message, ...(notify.slack.channel ? { channel: notify.slack.channel } : {}) });
    try {
      const res = await deps.http.request(deps.webhookUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
        timeoutMs: 10_000,
        signal: deps.signal,
      });
      results.push({ channel: 'slack', ok: res.status >= 200 && res.status < 300, detail: `HTTP ${res.status}` });
    } catch (err) {
      results.push({ channel: 'slack', ok: false, detail: (err as Error).message });
    }
  }
  if (notify.command) {
    const [file, ...args] = notify.command;
    try {
      const r = await runProcess(file, [...args, message], { timeoutMs: 30_000, signal: deps.signal });
      results.push({ channel: 'command', ok: r.exitCode === 0, detail: r.exitCode === 0 ? 'exit 0' : `exit ${r.exitCode}: ${r.stderr.split('\n')[0] ?? ''}` });
    } catch (err) {
      results.push({ channel: 'command', ok: false, detail: (err as Error).message });
    }
  }
  return results;
}
