/**
 * Hand-over (issue 15): a second operator continues a run whose operator is gone, with `resume --takeover`,
 * only once the first operator's Lease has expired or was released (`runbook release`); a live Lease → exit 6.
 * Against the real Kubernetes API server (the Lease is coordination.k8s.io's).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { InterruptedError } from '../../src/core/errors.js';
import { runCli, tempDir, type CliOptions } from '../support/cli.js';
import { startSandbox, type Sandbox } from '../support/sandbox/index.js';
import type { Deployment, KubeObject } from '../support/cluster/index.js';
import { tappedFactories } from '../procedures/db/support.js';
import { verifyChain } from '../../src/core/journal-verify.js';
import { runFile } from '../../src/core/journal.js';

let sb: Sandbox;
let journal: string;
const ALICE = 'alice@laptop-a';
const BOB = 'bob@laptop-b';
const LEASE = 'runbook-deployment-app';

beforeAll(async () => {
  sb = await startSandbox({ parts: ['kubernetes'] });
}, 180_000);
afterAll(async () => {
  await sb?.stop();
});
beforeEach(async () => {
  journal = tempDir('runbook-takeover-journal-');
  await sb.kube.remove('leases', sb.namespace, LEASE).catch(() => undefined);
  await sb.kube.patch('deployments', sb.namespace, 'app', { spec: { replicas: 3 } });
  await sb.kube.waitForRollout('app', { timeoutMs: 30_000 });
});

const cli = (argv: string[], operator: string, extra: CliOptions = {}) =>
  runCli(argv, { ...extra, operator, env: { ...sb.env, RUNBOOK_JOURNAL_DIR: journal, ...(extra.env ?? {}) } });

const replicas = async () => (await sb.kube.get<Deployment>('deployments', sb.namespace, 'app'))!.spec.replicas;
const micro = (ms: number) => new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');

/** Alice's `app scale --replicas 5`, stopped hard right after the scale (as kill -9 leaves it), its journal cut there. */
async function aliceKilledAfterScale(): Promise<string> {
  const ctl = new AbortController();
  const hard = new AbortController();
  const r = await cli(['app', 'scale', '--replicas', '5', '--yes', '--json'], ALICE, {
    interrupts: { signal: ctl.signal, hard: hard.signal },
    clientFactories: tappedFactories((e) => {
      if (e === 'kube:watchDeployment' && !ctl.signal.aborted) {
        ctl.abort(new InterruptedError('SIGINT'));
        hard.abort(new InterruptedError('SIGINT'));
      }
    }),
  });
  const runId = JSON.parse(r.stdout).runId as string;
  const file = runFile(journal, runId);
  const lines = readFileSync(file, 'utf8').split('\n').filter(Boolean);
  const at = lines.findIndex((l) => JSON.parse(l).type === 'step-end' && JSON.parse(l).step === 'scale');
  expect(at, r.stderr).toBeGreaterThan(0);
  writeFileSync(file, lines.slice(0, at + 1).join('\n') + '\n');
  return runId;
}

/** The Lease alice's run would have left behind, renewed `ageMs` ago. */
async function aliceLease(runId: string, ageMs: number): Promise<void> {
  await sb.kube.create<KubeObject>({
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: { name: LEASE, namespace: sb.namespace, labels: { 'app.kubernetes.io/managed-by': 'runbook' } },
    spec: { holderIdentity: `${ALICE} run ${runId}`, leaseDurationSeconds: 60, acquireTime: micro(Date.now() - ageMs), renewTime: micro(Date.now() - ageMs) },
  } as KubeObject);
}

const lease = () => sb.kube.get<KubeObject & { spec: { holderIdentity?: string } }>('leases', sb.namespace, LEASE);

describe('resume --takeover', () => {
  it("someone else's run: plain resume says --takeover; a live Lease → exit 6; released by its operator → taken over, recorded", async () => {
    const runId = await aliceKilledAfterScale();
    await aliceLease(runId, 1_000);

    const plain = await cli(['resume', runId, '--yes'], BOB);
    expect(plain.code).toBe(2);
    expect(plain.stderr).toContain(`is ${ALICE}'s`);
    expect(plain.stderr).toContain('--takeover');

    const live = await cli(['resume', runId, '--takeover', '--yes'], BOB);
    expect(live.code, live.stderr).toBe(6);
    expect(live.stderr).toContain(`${ALICE} run ${runId}`);
    expect((await lease())?.spec.holderIdentity).toBe(`${ALICE} run ${runId}`);

    // Only alice releases alice's locks, and not while the run looks alive.
    expect((await cli(['release', runId], BOB)).code).toBe(2);
    const tooSoon = await cli(['release', runId], ALICE);
    expect(tooSoon.code).toBe(2);
    expect(tooSoon.stderr).toContain('looks alive');
    await sb.kube.remove('leases', sb.namespace, LEASE);
    await aliceLease(runId, 40_000);
    const released = await cli(['release', runId], ALICE);
    expect(released.code, released.stderr).toBe(0);
    expect(released.stderr).toContain(`released ${LEASE}`);
    expect(await lease()).toBeUndefined();

    await sb.kube.patch('deployments', sb.namespace, 'app', { spec: { replicas: 2 } });
    // While bob's run goes on, the Lease names the run it takes over.
    let holderMidRun: Promise<string | undefined> | undefined;
    const taken = await cli(['resume', runId, '--takeover', '--yes', '--json'], BOB, {
      clientFactories: tappedFactories((e) => {
        if (e === 'kube:watchDeployment') holderMidRun ??= lease().then((l) => l?.spec.holderIdentity);
      }),
    });
    expect(taken.code, taken.stderr).toBe(0);
    expect(await holderMidRun).toMatch(new RegExp(`^${BOB} run \\S+ \\(taking over ${ALICE} run ${runId}\\)$`));
    expect(taken.stderr).toContain(`taking over ${ALICE}'s run ${runId}`);
    // The scale was re-checked (someone set 2 meanwhile) and done again.
    expect(await replicas()).toBe(5);
    const newRun = JSON.parse(taken.stdout).runId as string;
    const text = readFileSync(runFile(journal, newRun), 'utf8');
    const start = JSON.parse(text.split('\n')[0]);
    expect(start).toMatchObject({ type: 'run-start', operator: BOB, resumedFrom: runId, takeoverFrom: ALICE });
    const lockLine = text
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l))
      .find((e) => e.type === 'lock');
    expect(lockLine?.lease).toBe(LEASE);
    expect(verifyChain(newRun, text).broken).toBeUndefined();
    expect(await lease()).toBeUndefined();
    // …and on the cluster, where `kubectl get events` shows it without this tool.
    const ev = await sb.kube.kubectl(['get', 'events', '-n', sb.namespace, '--field-selector', 'reason=RunbookTakeover', '-o', 'json']);
    const items = (JSON.parse(ev.stdout) as { items: Array<{ message: string; involvedObject: { kind: string; name: string } }> }).items;
    expect(items.find((e) => e.message.includes(`took over run ${runId} of ${ALICE}`))).toMatchObject({ involvedObject: { kind: 'Lease', name: LEASE } });
  });

  it('an expired Lease needs no release: the takeover goes ahead; your own run needs no --takeover', async () => {
    const runId = await aliceKilledAfterScale();
    await aliceLease(runId, 120_000);
    await sb.kube.patch('deployments', sb.namespace, 'app', { spec: { replicas: 3 } });
    const taken = await cli(['resume', runId, '--takeover', '--yes'], BOB);
    expect(taken.code, taken.stderr).toBe(0);
    expect(await replicas()).toBe(5);

    const own = await aliceKilledAfterScale();
    await aliceLease(own, 1_000);
    // Alice's own crashed run: her resume takes her own live Lease over at once.
    const mine = await cli(['resume', own, '--yes'], ALICE);
    expect(mine.code, mine.stderr).toBe(0);
    expect(await lease()).toBeUndefined();
  });
});
