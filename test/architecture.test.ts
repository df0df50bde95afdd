// The dependency rules of src/, checked on every `npm test` (README › Layout):
//   commands → procedures → core ← clients; core imports no client; no cycles;
//   an SDK is imported (as a value) only by src/clients, and procedures reach clients through ctx.clients;
//   no file imports a procedure's own file (composites compose steps), shared/ imports no area.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = normalize(join(dirname(fileURLToPath(import.meta.url)), '..'));
const SDKS = ['@aws-sdk/', '@kubernetes/client-node', 'pg', 'ioredis', 'execa'];

interface Edge {
  from: string;
  to: string;
  typeOnly: boolean;
  dynamic: boolean;
}

function sources(dir: string): string[] {
  return readdirSync(join(root, dir), { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    return e.isDirectory() ? sources(p) : p.endsWith('.ts') ? [p] : [];
  });
}

const files = sources('src');
const text = new Map(files.map((f) => [f, readFileSync(join(root, f), 'utf8')]));

function importsOf(file: string): Array<{ spec: string; typeOnly: boolean; dynamic: boolean }> {
  const src = text
    .get(file)!
    .replace(/\/\*[\s\S]*?\*\//g, '')
    .replace(/^\s*\/\/.*$/gm, '');
  const out: Array<{ spec: string; typeOnly: boolean; dynamic: boolean }> = [];
  for (const m of src.matchAll(/^\s*(import|export)\s+(type\s+)?([^'";]*?)\s*from\s*['"]([^'"]+)['"]/gm)) {
    // `import { type A, type B }` is type-only too.
    const names = m[3];
    const allTypes =
      /^\{[^}]*\}$/.test(names.trim()) &&
      names
        .replace(/[{}\s]/g, '')
        .split(',')
        .filter(Boolean)
        .every((n) => n.startsWith('type'));
    out.push({ spec: m[4], typeOnly: Boolean(m[2]) || allTypes, dynamic: false });
  }
  for (const m of src.matchAll(/^\s*import\s+['"]([^'"]+)['"]/gm)) out.push({ spec: m[1], typeOnly: false, dynamic: false });
  for (const m of src.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g)) out.push({ spec: m[1], typeOnly: false, dynamic: true });
  return out;
}

const edges: Edge[] = [];
const packages: Array<{ from: string; pkg: string; typeOnly: boolean }> = [];
for (const f of files) {
  for (const i of importsOf(f)) {
    if (i.spec.startsWith('.')) {
      const to = normalize(join(dirname(f), i.spec)).replace(/\.js$/, '.ts');
      edges.push({ from: f, to, typeOnly: i.typeOnly, dynamic: i.dynamic });
    } else if (!i.spec.startsWith('node:')) packages.push({ from: f, pkg: i.spec, typeOnly: i.typeOnly });
  }
}

type Layer = 'entry' | 'commands' | 'procedures' | 'core' | 'clients';
function layer(f: string): Layer {
  const [, top] = f.split('/');
  if (top === 'commands' || top === 'procedures' || top === 'core' || top === 'clients') return top;
  return 'entry';
}
const ALLOWED: Record<Layer, Layer[]> = {
  entry: ['entry', 'commands', 'procedures', 'core', 'clients'],
  commands: ['commands', 'procedures', 'core', 'clients'],
  procedures: ['procedures', 'core', 'clients'],
  core: ['core'],
  clients: ['clients', 'core'],
};

const isProcedureFile = (f: string) => f.startsWith('src/procedures/') && /export default defineProcedure/.test(text.get(f) ?? '');
const areaOf = (f: string) => (f.startsWith('src/procedures/') ? f.split('/')[2] : undefined);
const show = (e: Edge) => `${e.from} → ${relative('.', e.to)}`;

describe('architecture', () => {
  it('every relative import resolves to a source file', () => {
    expect(edges.filter((e) => !text.has(e.to)).map(show)).toEqual([]);
  });

  it('layers: commands → procedures → core ← clients, and core imports no client (not even a type)', () => {
    expect(edges.filter((e) => !ALLOWED[layer(e.from)].includes(layer(e.to))).map(show)).toEqual([]);
  });

  it('procedures reach clients through ctx.clients: no dynamic import of a client module', () => {
    expect(edges.filter((e) => layer(e.from) === 'procedures' && layer(e.to) === 'clients' && e.dynamic).map(show)).toEqual([]);
  });

  it('an SDK is imported as a value only in src/clients', () => {
    const bad = packages.filter((p) => !p.typeOnly && layer(p.from) !== 'clients' && SDKS.some((s) => p.pkg === s || p.pkg.startsWith(s)));
    expect(bad.map((p) => `${p.from} → ${p.pkg}`)).toEqual([]);
  });

  it('no file imports a procedure file (composites compose steps); only the catalogue loads them', () => {
    const bad = edges.filter((e) => isProcedureFile(e.to) && e.from !== 'src/procedures/catalog.ts');
    expect(bad.map(show)).toEqual([]);
    // …and the catalogue lists every procedure file there is.
    const listed = new Set(edges.filter((e) => e.from === 'src/procedures/catalog.ts').map((e) => e.to));
    expect(files.filter(isProcedureFile).filter((f) => !listed.has(f))).toEqual([]);
  });

  it('steps shared by several areas import no area', () => {
    const bad = edges.filter((e) => areaOf(e.from) === 'shared' && areaOf(e.to) !== undefined && areaOf(e.to) !== 'shared');
    expect(bad.map(show)).toEqual([]);
  });

  it('no import cycles (type-only imports included)', () => {
    const out = new Map<string, string[]>();
    for (const e of edges) out.set(e.from, [...(out.get(e.from) ?? []), e.to]);
    // Tarjan's strongly connected components.
    let index = 0;
    const idx = new Map<string, number>();
    const low = new Map<string, number>();
    const stack: string[] = [];
    const on = new Set<string>();
    const cycles: string[][] = [];
    const visit = (v: string) => {
      idx.set(v, index);
      low.set(v, index++);
      stack.push(v);
      on.add(v);
      for (const w of out.get(v) ?? []) {
        if (!idx.has(w)) {
          visit(w);
          low.set(v, Math.min(low.get(v)!, low.get(w)!));
        } else if (on.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
      }
      if (low.get(v) === idx.get(v)) {
        const scc: string[] = [];
        let w: string;
        do {
          w = stack.pop()!;
          on.delete(w);
          scc.push(w);
        } while (w !== v);
        if (scc.length > 1) cycles.push(scc.sort());
      }
    };
    for (const f of files) if (!idx.has(f)) visit(f);
    expect(cycles).toEqual([]);
  });
});
