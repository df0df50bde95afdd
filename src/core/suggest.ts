import { byText } from './format.js';

/** Edit distance (insert, delete, substitute, swap of neighbours): how far a typo is from a name. */
export function distance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}

/**
 * The names a mistyped one most likely meant (closest first), as a hint: "did you mean …?". Within
 * a third of the name's length (at least 1, at most 3 edits), or the names it is a prefix of.
 */
export function suggest(given: string, names: readonly string[], max = 3): string[] {
  const g = given.toLowerCase();
  const limit = Math.min(3, Math.max(1, Math.floor(g.length / 3)));
  return names
    .map((n) => ({ n, d: n.toLowerCase().startsWith(g) && g.length >= 2 ? 0.5 : distance(g, n.toLowerCase()) }))
    .filter((x) => x.d <= limit && x.n !== given)
    .sort((x, y) => x.d - y.d || byText(x.n, y.n))
    .slice(0, max)
    .map((x) => x.n);
}

/** " (did you mean a or b?)" or "" — for the end of an error message. */
export function didYouMean(given: string, names: readonly string[]): string {
  const s = suggest(given, names);
  return s.length ? `did you mean ${s.map((x) => `"${x}"`).join(' or ')}?` : '';
}
