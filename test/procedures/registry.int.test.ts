// Walks every procedure in the catalogue with its first example against the full sandbox, and holds
// each to the safety contract: a real run works, a dry run changes nothing, no terminal and no --yes
// fails closed (exit 3) with no change, a declined gate exits 3 with no change, and a failure after
// any step runs the compensations of the completed steps. New procedures are covered automatically.
// Kubernetes is the real control plane: the examples' node names become the sandbox's own nodes.
import { failAfter } from '../support/inject.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { catalog } from '../../src/procedures/catalog.js';
import { NEEDS_LIVE_PROCESS } from '../support/sandbox/live-process.js';
import type { Procedure, Step } from '../../src/core/procedure.js';
import { procedureRisk } from '../../src/core/procedure.js';
import type { Prompter } from '../../src/core/prompter.js';
import { runCli, tempDir } from '../support/cli.js';
import { Journal } from '../../src/core/journal.js';
import { Redactor } from '../../src/core/redact.js';
import { startSandbox, type Sandbox } from '../support/sandbox/index.js';
import { findConfigPath, loadConfig, selectEnvironment } from '../../src/core/config.js';

let sb: Sandbox;

beforeAll(async () => {
  sb = await startSandbox();
}, 180_000);
afterAll(async () => {
  await sb?.stop();
});

/** Says no to everything: yes/no → no, typed confirmation → a wrong name. */
class DecliningPrompter implements Prompter {
  asked = 0;
  async confirm() {
    this.asked += 1;
    return false;
  }
  async text() {
    this.asked += 1;
    return 'no';
  }
  async select<T extends string>(): Promise<T> {
    throw new Error('a declining prompter cannot choose');
  }
}

/** A fresh journal in which an `outage start` turned maintenance mode on (an open outage), for `outage recover`. */
function preconditionEnv(name: string): Record<string, string> {
  if (name !== 'outage recover') return {};
  const dir = tempDir('runbook-journal-');
  for (const [i, environment] of ['sandbox', 'sandbox-protected'].entries()) {
    const j = new Journal(dir, `20000101T00000${i}-open`, new Redactor(), () => new Date('2000-01-01T00:00:00Z'));
    j.append('run-start', { procedure: 'outage start', environment, dryRun: 'off' });
    j.append('step-end', { step: 'apply', status: 'succeeded', data: { container: 'app', index: 0, previous: null } });
    j.append('run-end', { status: 'succeeded', exitCode: 0 });
    j.close();
  }
  return { RUNBOOK_JOURNAL_DIR: dir };
}

function cli(argv: string[], extra: Parameters<typeof runCli>[1] = {}) {
  return runCli(argv, { ...extra, env: { ...sb.env, ...(extra.env ?? {}) } });
}

describe.each(catalog.filter((e) => !NEEDS_LIVE_PROCESS.has(e.name)).map((e) => [e.name, e] as const))('%s', (name, entry) => {
  let proc: Procedure;
  let args: string[];
  const words = name.split(' ');
  // The world each example assumes: `outage recover` needs an open outage (else it refuses, exit 4).
  const run = (argv: string[], extra: Parameters<typeof runCli>[1] = {}) => cli(argv, { ...extra, env: { ...preconditionEnv(name), ...(extra.env ?? {}) } });

  beforeAll(async () => {
    proc = await entry.load();
    args = sb.localize(proc.examples[0] ?? []);
    // An autoscaler left by an earlier procedure (app autoscale) is a live controller: the real HPA
    // controller would change the deployment's replicas under this procedure's fingerprints.
    for (const h of await sb.kube.list('horizontalpodautoscalers', { namespace: sb.namespace }))
      await sb.kube.remove('horizontalpodautoscalers', sb.namespace, h.metadata.name);
  });

  it('has an example, a why and an equivalent command for every step', () => {
    expect(proc.examples.length).toBeGreaterThan(0);
    for (const s of proc.steps) {
      expect(s.why.length, s.id).toBeGreaterThan(10);
      expect(typeof s.equivalent).toBe('function');
    }
  });

  it('runs for real with its first example', async () => {
    const r = await run([...words, ...args, '--yes', '--confirm', 'sandbox', '--json']);
    expect([0, 4], r.stderr).toContain(r.code);
    const doc = JSON.parse(r.stdout);
    expect(doc.procedure).toBe(name);
  });

  it('--dry-run changes nothing', async () => {
    const before = await sb.fingerprint();
    const r = await run([...words, ...args, '--dry-run', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).status).toBe('planned');
    expect(await sb.fingerprint()).toEqual(before);
  });

  it('--dry-run=offline contacts nothing and shows each step', async () => {
    const r = await run([...words, ...args, '--dry-run=offline', '--json'], { env: { KUBECONFIG: '/nonexistent', AWS_ENDPOINT_URL: 'http://127.0.0.1:9' } });
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout);
    const planned = doc.steps.filter((s: { status: string }) => s.status === 'planned');
    expect(planned.length).toBeGreaterThan(0);
    for (const s of planned) expect(s.equivalent, s.id).toMatch(/\S/);
  });

  it('fails closed without a terminal in a protected environment (exit 3, no change)', async () => {
    const env = selectEnvironment(await loadConfig(findConfigPath(undefined, sb.env, process.cwd())), 'sandbox-protected', {});
    const before = await sb.fingerprint();
    const r = await run([...words, ...args, '--env', 'sandbox-protected']);
    const params = {} as never;
    if (procedureRisk(proc, params, env) === 'read') {
      expect([0, 4], r.stderr).toContain(r.code);
    } else {
      expect(r.code, r.stderr).toBe(3);
      expect(r.stderr).toMatch(/--yes/);
    }
    expect(await sb.fingerprint()).toEqual(before);
  });

  it('a declined gate exits 3 and changes nothing', async () => {
    const before = await sb.fingerprint();
    const prompter = new DecliningPrompter();
    const r = await run([...words, ...args, '--env', 'sandbox-protected'], { tty: true, prompter });
    if (prompter.asked === 0) {
      expect([0, 4], r.stderr).toContain(r.code);
    } else {
      expect(r.code, r.stderr).toBe(3);
    }
    expect(await sb.fingerprint()).toEqual(before);
  });

  it('a failure after each step runs the compensations of the completed steps, last first', async () => {
    for (let i = 0; i < proc.steps.length; i++) {
      const before = await sb.fingerprint();
      const r = await run([...words, ...args, '--yes', '--confirm', 'sandbox', '--json'], { procedureOverride: failAfter(i) });
      const doc = JSON.parse(r.stdout);
      const injected = doc.steps.find((s: { id: string }) => s.id === 'injected-failure');
      if (injected.status === 'not-run') {
        // An earlier step failed on its own: that is a bug in the example or the procedure.
        throw new Error(`step before the injection failed: ${r.stderr}`);
      }
      expect(r.code, r.stderr).toBe(1);
      const completed: Step[] = [];
      doc.steps.forEach((s: { id: string; status: string }, k: number) => {
        const step = [...proc.steps.slice(0, i + 1), undefined, ...proc.steps.slice(i + 1)][k];
        if (!step || s.status !== 'succeeded') return;
        for (const settled of step.settles ?? []) {
          const j = completed.findIndex((c) => c.id === settled);
          if (j >= 0) completed.splice(j, 1);
        }
        if (step.undo) completed.push(step);
      });
      expect(doc.compensations, `after step ${i} (${proc.steps[i].id})`).toEqual(completed.reverse().map((s) => ({ step: s.id, status: 'succeeded' })));
      const irreversible = doc.steps.some((s: { id: string; status: string; risk: string }, k: number) => {
        const step = [...proc.steps.slice(0, i + 1), undefined, ...proc.steps.slice(i + 1)][k];
        return step && s.status === 'succeeded' && s.risk !== 'read' && !step.undo;
      });
      if (!irreversible) expect(await sb.fingerprint(), `state after failing at step ${i}`).toEqual(before);
    }
  });
});
