// The runner's own contract, on a synthetic procedure whose steps only record what happens to them:
// plan → gate → run per step, read steps never asked, LIFO compensation with each step's own data,
// `settles`, declines, interrupts (soft and hard), dry runs, typed step data and resume.
import { describe, expect, it } from 'vitest';
import { runCli, tempDir } from '../support/cli.js';
import { runIds } from '../support/journal-files.js';
import { InterruptedError, StepError } from '../../src/core/errors.js';
import { defineProcedure, stepFor, type Procedure, type Step } from '../../src/core/procedure.js';
import type { Prompter } from '../../src/core/prompter.js';

interface Params {
  failAt?: string;
}

/** Prompts land in the same log as the steps, so the order of asking and doing is visible. */
class LoggingPrompter implements Prompter {
  constructor(
    private readonly log: string[],
    private readonly answers: boolean[],
  ) {}
  async confirm(message: string): Promise<boolean> {
    this.log.push(`ask ${/^(Change A|Change B|Finish)/.exec(message)?.[0] ?? message}`);
    const a = this.answers.shift();
    if (a === undefined) throw new Error(`unscripted prompt: ${message}`);
    return a;
  }
  async text(message: string): Promise<string> {
    throw new Error(`unexpected text prompt: ${message}`);
  }
  async select<T extends string>(message: string): Promise<T> {
    throw new Error(`unexpected select prompt: ${message}`);
  }
}

function synthetic(log: string[], opts: { failAt?: string; waitIn?: string; started?: () => void; settle?: boolean } = {}): Procedure<Params> {
  const step = stepFor<Params>();
  const fails = (id: string) => {
    if (opts.failAt === id) throw new StepError(`${id} broke`);
  };
  const look = step({
    id: 'look',
    title: 'Look',
    why: 'read first',
    risk: 'read',
    equivalent: () => 'look',
    async run() {
      log.push('run look');
      fails('look');
      return { seen: 3 };
    },
  });
  const changeA = step({
    id: 'change-a',
    title: 'Change A',
    why: 'first change',
    risk: 'write',
    equivalent: () => 'change a',
    async plan(ctx) {
      log.push('plan change-a');
      return [{ action: 'set', target: 'a', before: String(ctx.get(look).seen), after: '0' }];
    },
    async run(ctx) {
      log.push('run change-a');
      fails('change-a');
      return { was: ctx.get(look).seen };
    },
    async undo(_ctx, data) {
      log.push(`undo change-a to ${data.was}`);
    },
    undoByHand: (_ctx, data) => `put a back to ${data.was}`,
  });
  const changeB = step({
    id: 'change-b',
    title: 'Change B',
    why: 'second change',
    risk: 'write',
    equivalent: () => 'change b',
    async plan() {
      log.push('plan change-b');
      return [{ action: 'set', target: 'b', before: '1', after: '2' }];
    },
    async run(ctx) {
      log.push('run change-b');
      if (opts.waitIn === 'change-b') {
        opts.started?.();
        await new Promise((_r, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason), { once: true }));
      }
      fails('change-b');
      return { b: 2 };
    },
    async undo(_ctx, data) {
      log.push(`undo change-b from ${data.b}`);
    },
  });
  const finish: Step<Params, { done: boolean }> = step({
    id: 'finish',
    title: 'Finish',
    why: 'settles A',
    risk: 'write',
    settles: opts.settle ? ['change-a'] : undefined,
    equivalent: () => 'finish',
    async plan() {
      log.push('plan finish');
      return [{ action: 'finish', target: 'all' }];
    },
    async run(ctx) {
      log.push('run finish');
      fails('finish');
      return { done: ctx.get(changeB).b === 2 };
    },
  });
  const after = step({
    id: 'after',
    title: 'After',
    why: 'a check after the changes',
    risk: 'read',
    followsWrite: true,
    equivalent: () => 'check',
    async run() {
      fails('after');
      return { checked: true };
    },
  });
  return defineProcedure<Params>({
    name: 'info',
    summary: 'synthetic',
    params: [],
    examples: [[]],
    requires: [],
    worksWithoutConfig: true,
    steps: [look, changeA, changeB, finish, after],
    render: (run) => `seen ${run.find(look)?.seen ?? '-'}, done ${run.find(finish)?.done ?? false}\n`,
  });
}

async function run(
  log: string[],
  o: {
    answers?: boolean[];
    args?: string[];
    tty?: boolean;
    proc?: Parameters<typeof synthetic>[1];
    env?: Record<string, string>;
    interrupts?: { signal: AbortSignal; hard: AbortSignal };
  } = {},
) {
  return runCli(['info', ...(o.args ?? [])], {
    tty: o.tty ?? true,
    prompter: new LoggingPrompter(log, o.answers ?? []),
    procedureOverride: () => synthetic(log, o.proc),
    env: o.env,
    interrupts: o.interrupts,
  });
}

describe('runner', () => {
  it('reads, then for each write: plan, ask, run; the render reads the steps’ typed data', async () => {
    const log: string[] = [];
    const r = await run(log, { answers: [true, true, true] });
    expect(r.code, r.stderr).toBe(0);
    expect(log).toEqual([
      'run look',
      'plan change-a',
      'ask Change A',
      'run change-a',
      'plan change-b',
      'ask Change B',
      'run change-b',
      'plan finish',
      'ask Finish',
      'run finish',
    ]);
    expect(r.stdout).toBe('seen 3, done true\n');
  });

  it('--yes asks nothing; without a terminal and without --yes nothing that changes anything runs (exit 3)', async () => {
    const yes: string[] = [];
    expect((await run(yes, { args: ['--yes'] })).code).toBe(0);
    expect(yes.filter((l) => l.startsWith('ask'))).toEqual([]);
    const closed: string[] = [];
    const r = await run(closed, { tty: false });
    expect(r.code).toBe(3);
    expect(closed.filter((l) => l.startsWith('run change') || l.startsWith('run finish'))).toEqual([]);
  });

  it('a failing step puts back what ran, last in first out, each undo with the data its step returned (exit 1)', async () => {
    const log: string[] = [];
    const r = await run(log, { args: ['--yes'], proc: { failAt: 'finish' } });
    expect(r.code).toBe(1);
    expect(log.slice(log.indexOf('run finish'))).toEqual(['run finish', 'undo change-b from 2', 'undo change-a to 3']);
    // Once, as the run's error line (not also on the step's line).
    expect(r.stderr.match(/finish broke/g)).toHaveLength(1);
    expect(r.stderr).toMatch(/error: finish broke/);
  });

  it('a step that settles another takes that one off the undo list', async () => {
    const settled: string[] = [];
    expect((await run(settled, { args: ['--yes'], proc: { failAt: 'after', settle: true } })).code).toBe(1);
    expect(settled.filter((l) => l.startsWith('undo'))).toEqual(['undo change-b from 2']);
    const unsettled: string[] = [];
    expect((await run(unsettled, { args: ['--yes'], proc: { failAt: 'after' } })).code).toBe(1);
    expect(unsettled.filter((l) => l.startsWith('undo'))).toEqual(['undo change-b from 2', 'undo change-a to 3']);
  });

  it('declining a gate runs nothing more, puts back what ran, and exits 3', async () => {
    const log: string[] = [];
    const r = await run(log, { answers: [true, false] });
    expect(r.code).toBe(3);
    expect(log).toEqual(['run look', 'plan change-a', 'ask Change A', 'run change-a', 'plan change-b', 'ask Change B', 'undo change-a to 3']);
  });

  it('Ctrl-C during a step compensates (exit 130); a second Ctrl-C skips compensation and says what to undo by hand (exit 5)', async () => {
    for (const hard of [false, true]) {
      const log: string[] = [];
      const soft = new AbortController();
      const hardC = new AbortController();
      const r = await run(log, {
        args: ['--yes'],
        interrupts: { signal: soft.signal, hard: hardC.signal },
        proc: {
          waitIn: 'change-b',
          started: () => {
            setTimeout(() => {
              soft.abort(new InterruptedError('SIGINT'));
              if (hard) hardC.abort(new InterruptedError('SIGINT'));
            }, 10);
          },
        },
      });
      if (hard) {
        expect(r.code).toBe(5);
        expect(log.filter((l) => l.startsWith('undo'))).toEqual([]);
        expect(r.stderr).toMatch(/skipped by a second interrupt/);
        expect(r.stderr).toContain('put a back to 3');
      } else {
        expect(r.code).toBe(130);
        expect(log.filter((l) => l.startsWith('undo'))).toEqual(['undo change-a to 3']);
      }
    }
  });

  it('--json reports durations in whole milliseconds', async () => {
    const r = await run([], { args: ['--yes', '--json'] });
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout);
    for (const d of [result.durationMs, ...result.steps.map((s: { durationMs: number }) => s.durationMs)]) expect(Number.isInteger(d)).toBe(true);
  });

  it('a dry run runs the reads and plans the writes, and changes nothing', async () => {
    const log: string[] = [];
    const r = await run(log, { args: ['--dry-run'] });
    expect(r.code, r.stderr).toBe(0);
    expect(log).toEqual(['run look', 'plan change-a', 'plan change-b', 'plan finish']);
    expect(r.stderr).toMatch(/set a: 3 → 0|a.*3 → 0/);
  });

  it('resume skips what the failed run finished and hands its journaled data to the steps after it', async () => {
    const journal = tempDir('runner-journal-');
    const env = { RUNBOOK_JOURNAL_DIR: journal };
    const first: string[] = [];
    const failed = await run(first, { args: ['--yes'], env, proc: { failAt: 'change-b' } });
    expect(failed.code).toBe(1);
    const [runId] = runIds(journal);
    // The failure put change-a back, so resume has to do change-a again; look's data comes from the journal.
    const second: string[] = [];
    const resumed = await runCli(['resume', runId, '--yes'], {
      tty: true,
      prompter: new LoggingPrompter(second, []),
      procedureOverride: () => synthetic(second),
      env,
    });
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(second).not.toContain('run look');
    expect(second).toEqual(expect.arrayContaining(['run change-a', 'run change-b', 'run finish']));
    expect(resumed.stdout).toBe('seen 3, done true\n');
  });
});
