/** How much a step can change: `read` never asks, `write` asks, `destructive` asks more strictly. */
export type Risk = 'read' | 'write' | 'destructive';

/** One previewed effect of a write: what, on which target, from what to what. */
export interface Change {
  target: string;
  action: string;
  before?: string;
  after?: string;
  /** Set when the preview was validated by the server (Kubernetes dryRun=All). */
  validated?: boolean;
}
