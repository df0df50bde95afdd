/** Container log storage for `/pods/{name}/log` (current and previous container instances). */

export interface LogLine {
  time: Date;
  text: string;
}

export interface LogQuery {
  container: string;
  previous?: boolean | undefined;
  tailLines?: number | undefined;
  sinceSeconds?: number | undefined;
  sinceTime?: string | undefined;
  timestamps?: boolean | undefined;
  limitBytes?: number | undefined;
}

type Listener = (line: LogLine) => void;

export class PodLogs {
  private readonly lines = new Map<string, LogLine[]>();
  private readonly followers = new Map<string, Set<Listener>>();

  private static key(ns: string, pod: string, container: string, previous: boolean): string {
    return `${ns}/${pod}/${container}/${previous ? 'previous' : 'current'}`;
  }

  has(ns: string, pod: string, container: string, previous: boolean): boolean {
    return this.lines.has(PodLogs.key(ns, pod, container, previous));
  }

  /** Replaces a container's log. */
  set(ns: string, pod: string, container: string, previous: boolean, lines: string[]): void {
    const now = Date.now();
    this.lines.set(
      PodLogs.key(ns, pod, container, previous),
      lines.map((text, i) => ({ time: new Date(now - (lines.length - i) * 1000), text })),
    );
  }

  /** Appends lines (delivered to `follow=true` readers too). */
  append(ns: string, pod: string, container: string, lines: string[]): void {
    const key = PodLogs.key(ns, pod, container, false);
    const list = this.lines.get(key) ?? [];
    this.lines.set(key, list);
    for (const text of lines) {
      const line = { time: new Date(), text };
      list.push(line);
      for (const f of this.followers.get(key) ?? []) f(line);
    }
  }

  /** Drops all logs of a pod (on deletion). */
  dropPod(ns: string, pod: string): void {
    const prefix = `${ns}/${pod}/`;
    for (const k of [...this.lines.keys()]) if (k.startsWith(prefix)) this.lines.delete(k);
  }

  /** Renders the log text for a query (each line newline-terminated). */
  read(ns: string, pod: string, q: LogQuery): string {
    let list = this.lines.get(PodLogs.key(ns, pod, q.container, q.previous === true)) ?? [];
    const since = q.sinceTime ? Date.parse(q.sinceTime) : q.sinceSeconds ? Date.now() - q.sinceSeconds * 1000 : undefined;
    if (since !== undefined && !Number.isNaN(since)) list = list.filter((l) => l.time.getTime() >= since);
    if (q.tailLines !== undefined && q.tailLines >= 0) list = q.tailLines === 0 ? [] : list.slice(-q.tailLines);
    let text = list.map((l) => PodLogs.format(l, q.timestamps === true)).join('');
    if (q.limitBytes !== undefined && q.limitBytes > 0) text = Buffer.from(text).subarray(0, q.limitBytes).toString();
    return text;
  }

  static format(l: LogLine, timestamps: boolean): string {
    return `${timestamps ? `${l.time.toISOString().replace('Z', '000000Z')} ` : ''}${l.text}\n`;
  }

  /** Subscribes to appended lines of a container's current log; returns unsubscribe. */
  follow(ns: string, pod: string, container: string, listener: Listener): () => void {
    const key = PodLogs.key(ns, pod, container, false);
    let set = this.followers.get(key);
    if (!set) {
      set = new Set();
      this.followers.set(key, set);
    }
    set.add(listener);
    return () => set.delete(listener);
  }
}
