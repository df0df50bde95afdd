import type { Prompter } from '../../src/core/prompter.js';

/** Answers prompts from a script; any prompt not scripted fails the test loudly. */
export class ScriptedPrompter implements Prompter {
  readonly asked: string[] = [];
  constructor(private readonly answers: Array<boolean | string> = []) {}

  private next(message: string): boolean | string {
    this.asked.push(message);
    if (this.answers.length === 0) throw new Error(`unscripted prompt: ${message}`);
    return this.answers.shift()!;
  }

  async confirm(message: string): Promise<boolean> {
    const a = this.next(message);
    if (typeof a !== 'boolean') throw new Error(`prompt "${message}" wanted yes/no, script had "${a}"`);
    return a;
  }

  async text(message: string): Promise<string> {
    const a = this.next(message);
    if (typeof a !== 'string') throw new Error(`prompt "${message}" wanted text, script had ${a}`);
    return a;
  }

  async select<T extends string>(message: string): Promise<T> {
    return String(this.next(message)) as T;
  }
}
