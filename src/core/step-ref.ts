/**
 * A handle (any Step is one) on what a step returns. Later steps (and render/check) read it with `ctx.get(step)`,
 * typed by the step's own `run`, never by a string id: renaming a step or changing what it returns
 * is a compile error wherever that data is read.
 */
export interface StepRef<D> {
  readonly id: string;
  run(ctx: never): Promise<D>;
}
