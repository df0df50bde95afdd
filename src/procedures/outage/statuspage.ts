import type { StepContext } from '../../core/procedure.js';
import type { IncidentRef } from '../../clients/statuspage.js';

/** The part of a Statuspage incident the procedures keep (and journal); the calls are `ctx.clients.statuspage()`. */
export type { IncidentRef };

/** The equivalent `curl` of a status-page call (the token shown as $STATUSPAGE_TOKEN). */
export function curlIncident(env: StepContext<unknown>['env'], method: string, path: string, json?: unknown): string {
  const base = env.config.statuspage?.url ?? 'https://api.statuspage.io/v1/pages/PAGE_ID';
  return `curl -fsS -X ${method} ${base.replace(/\/+$/, '')}${path} -H "Authorization: OAuth $STATUSPAGE_TOKEN"${json === undefined ? '' : ` -H 'Content-Type: application/json' -d '${JSON.stringify(json)}'`}`;
}

/** The incident the most recent real `outage start` in this environment opened (and did not take back), from the journal. */
export async function incidentFromJournal(ctx: Pick<StepContext<unknown>, 'env' | 'journal'>): Promise<{ runId: string; incident: IncidentRef } | null> {
  const isIncident = (v: unknown): v is IncidentRef => typeof v === 'object' && v !== null && 'id' in v && typeof v.id === 'string';
  const run = await ctx.journal.lastEffective('outage start', {
    env: ctx.env.name,
    steps: ['incident'],
    // The newest start that opened one decides: taken back (opened in error), there is none to resolve.
    where: (r) => (!r.done('incident') ? false : r.undone('incident') ? 'none' : isIncident(r.effect('incident'))),
  });
  const incident = run?.effect('incident');
  return run && isIncident(incident) ? { runId: run.runId, incident } : null;
}
