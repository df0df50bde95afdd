// docs/ is generated from the procedures (npm run docs): this fails when a page drifts from the code.
import { describe, expect, it } from 'vitest';
import { catalog } from '../src/procedures/catalog.js';
import { generatedOnDisk, pageName, renderDocs } from '../scripts/docs.js';

describe('the reference in docs/', () => {
  it('is what `npm run docs` generates from the procedures now (run it after changing a procedure)', async () => {
    const expected = await renderDocs();
    const onDisk = generatedOnDisk();
    expect([...onDisk.keys()].sort(), 'files in docs/ (npm run docs adds and removes them)').toEqual([...expected.keys()].sort());
    for (const [name, text] of expected) expect(onDisk.get(name), `docs/${name} is out of date: run npm run docs`).toBe(text);
  });

  it('has one page per procedure with its steps, flags (required marked), examples and seed fixes', async () => {
    const docs = await renderDocs();
    for (const entry of catalog) {
      const proc = await entry.load();
      const page = docs.get(pageName(proc.name));
      expect(page, proc.name).toBeDefined();
      expect(page).toContain(`# runbook ${proc.name}`);
      for (const s of proc.steps) {
        expect(page).toContain(`. ${s.title}`);
        expect(page).toContain(s.why);
      }
      for (const e of proc.examples) expect(page).toContain(`runbook ${proc.name} ${e.join(' ')}`.trimEnd());
      for (const f of proc.seedFixes ?? []) expect(page).toContain(f);
      expect(docs.get('README.md')).toContain(`](${pageName(proc.name)})`);
      expect(docs.get('runbook.1')).toContain(`.B runbook ${proc.name.replace(/-/g, '\\-')}`);
    }
    expect(docs.get('app-scale.md')).toMatch(/\| `--replicas <n>` \| desired number of replicas \(at least 0\) \|\s*\| yes \|/);
    expect(docs.get('app-scale.md')).toContain('kubectl scale deployment/app --replicas=3 -n production');
    expect(docs.get('README.md')).toMatch(/\| `--json` \|/);
  });
});
