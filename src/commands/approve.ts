import { defaultFactories, makeClients, type Clients, type KubeClient } from '../clients/index.js';
import { findConfigPath, loadConfig, selectEnvironment, type ResolvedEnvironment } from '../core/config.js';
import {
  approvalGate,
  approvalTargets,
  decideRequest,
  describeRequest,
  findRequest,
  type ApprovalGate,
  type ApprovalRequest,
  type ApprovalStore,
} from '../core/approval.js';
import { ExitCode, GateError, UsageError, errorMessage } from '../core/errors.js';
import { isRunId } from '../core/journal.js';
import type { Procedure } from '../core/procedure.js';
import { TerminalPrompter } from '../core/prompter.js';
import type { Session } from '../core/session.js';
import { jsonText, visible } from '../core/terminal.js';

/**
 * The requester's side for a run in an environment that requires two-person approval: requests over
 * the run's Kubernetes client (the kubeconfig's identity), the decision told on Slack and as an Event
 * on the deployment.
 */
export function makeApprovalGate(
  session: Session,
  env: ResolvedEnvironment,
  proc: Procedure,
  runId: string,
  clients: Pick<Clients, 'kube' | 'secret' | 'notify'>,
): ApprovalGate | undefined {
  const config = env.config.approval;
  if (!config || config.required < 2) return undefined;
  const { reporter, redactor } = session;
  const deployment = env.config.kubernetes?.deployment;
  const event = async (message: string, denied: boolean) => {
    if (!deployment) return;
    const kube = await clients.kube();
    await kube
      .recordEvent({
        object: { apiVersion: 'apps/v1', kind: 'Deployment', name: deployment, namespace: kube.namespace },
        type: denied ? 'Warning' : 'Normal',
        reason: denied ? 'RunbookApprovalDenied' : 'RunbookApproved',
        message: redactor.text(message),
      })
      .catch((err: Error) => reporter.warn(`could not record the approval as an Event on deployment/${deployment}: ${err.message}`));
  };
  return approvalGate({
    config,
    store: clients.kube,
    runId,
    procedure: proc.name,
    environment: env.name,
    operator: session.operator,
    async targets() {
      const kube = await clients.kube();
      const awsAccount = env.config.aws && (proc.requires.includes('aws') || proc.requires.includes('rds')) ? await account(env, session) : undefined;
      return approvalTargets(env, proc.requires, {
        kube: { server: kube.server, context: kube.context, namespace: kube.namespace },
        awsAccount,
        resolve: clients.secret,
      });
    },
    redact: (v) => redactor.value(v),
    info: (m) => reporter.info(m),
    progress: (m) => reporter.progress(m),
    warn: (m) => reporter.warn(m),
    async announce(decision, message) {
      await Promise.all([
        clients.notify(message).catch((err: Error) => reporter.warn(`could not send the notification: ${err.message}`)),
        event(message, decision === 'denied'),
      ]);
    },
    now: session.now,
  });
}

/** `runbook approve <run-id>` / `runbook deny <run-id> [--reason]`: the second operator's decision. */
export async function decide(session: Session, state: 'approved' | 'denied', runId: string | undefined, opts: Record<string, unknown>): Promise<number> {
  const verb = state === 'approved' ? 'approve' : 'deny';
  if (!runId || !isRunId(runId))
    throw new UsageError(`"${runId ?? ''}" is not a run id`, `the requester's run prints the command: runbook ${verb} <run-id> -e <env>`);
  const reason = typeof opts.reason === 'string' ? opts.reason.trim() : undefined;
  if (opts.reason !== undefined && !reason) throw new UsageError('--reason needs a text');
  const { io } = session.deps;
  const env = selectEnvironment(await loadConfig(findConfigPath(session.flags.config, io.env, io.cwd)), session.flags.env, io.env);
  const config = env.config.approval;
  if (!config || config.required < 2)
    throw new UsageError(
      `environment ${env.name} does not require two-person approval (no approval section with required: 2)`,
      'pass -e with the environment the run is in',
    );
  const clients = makeClients(env, io.env, session.deps.clientFactories ?? defaultFactories, session.redactor);
  try {
    const kube: KubeClient = await clients.kube();
    const store: ApprovalStore = kube;
    const me = await kube.whoAmI();
    const request = await findRequest(store, config.namespace, runId);
    if (request.environment !== env.name)
      throw new GateError(`run ${runId} is in environment ${request.environment}, not ${env.name}`, `pass -e ${request.environment}`);
    for (const l of describeRequest(request, session.now())) session.reporter.info(l);
    const prompter = session.deps.prompter ?? new TerminalPrompter(io);
    const confirm =
      state === 'denied'
        ? undefined
        : session.flags.gate.yes
          ? undefined
          : session.interactive
            ? () =>
                prompter.confirm(
                  `Approve ${request.requester}'s ${request.procedure} in ${request.environment} exactly as above (digest ${request.digest.slice(0, 12)}…)?`,
                )
            : () => {
                throw new GateError(
                  `approving needs a prompt or --yes, and ${session.flags.gate.noInput ? '--no-input was given' : 'there is no terminal to ask on'}; nothing was recorded`,
                  `runbook approve ${runId} -e ${env.name} --yes`,
                );
              };
    const decided = await decideRequest(store, request, me, { state, reason, now: session.now(), confirm });
    printDecision(session, decided);
    return ExitCode.ok;
  } finally {
    await clients.closeAll();
  }
}

function printDecision(session: Session, r: ApprovalRequest): void {
  const { stdout } = session.deps.io;
  if (session.flags.json) {
    const doc = {
      runId: r.runId,
      procedure: r.procedure,
      environment: r.environment,
      request: `${r.namespace}/${r.name}`,
      state: r.state,
      requester: r.requester,
      approver: r.approver,
      digest: r.digest,
      decidedAt: r.decidedAt,
      reason: r.reason,
    };
    stdout.write(session.redactor.text(jsonText(doc)) + '\n');
    return;
  }
  const line = `${r.state} run ${r.runId} (${r.procedure} in ${r.environment}, requested by ${r.requester}) as ${r.approver}${r.reason ? `: ${r.reason}` : ''}\n`;
  stdout.write(visible(session.redactor.text(line), true));
}

/** The AWS account the environment's credentials sign in to (STS GetCallerIdentity), or why it is not known. */
async function account(env: ResolvedEnvironment, session: Session): Promise<string> {
  const a = env.config.aws!;
  try {
    const { callerIdentity } = await import('../clients/sts.js');
    return (await callerIdentity({ region: a.region, profile: a.profile, endpoint: a.endpoint }, session.deps.io.env, AbortSignal.timeout(10_000))).account;
  } catch (err) {
    return `unknown (${errorMessage(err)})`;
  }
}
