// `npm run docs`: the reference in docs/ (one page per procedure, an index, and the runbook.1 man page),
// generated from the procedures themselves: their steps, flags, examples and seed fixes. test/docs.test.ts
// regenerates it in memory and fails when docs/ differs, so the reference cannot drift from the code.
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { catalog, type CatalogEntry } from '../src/procedures/catalog.js';
import { buildProgram, EXIT_CODES_HELP } from '../src/program.js';
import { exampleConfig } from '../src/core/example-config.js';
import { selectEnvironment, type ResolvedEnvironment } from '../src/core/config.js';
import { gateKind } from '../src/core/gates.js';
import { exampleParams } from '../src/core/params.js';
import type { ParamSpec, Procedure, Step } from '../src/core/procedure.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const DOCS_DIR = join(ROOT, 'docs');
/** Files in docs/ written by hand, never by the generator. */
const HAND_WRITTEN = new Set(['run-result.schema.json']);

/** The page of a procedure: `app scale` → app-scale.md. */
export const pageName = (name: string) => `${name.replace(/ /g, '-')}.md`;

const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
const code = (s: string) => (s.includes('`') ? `\`\` ${s} \`\`` : `\`${s}\``);

/** A step's risk for the example's arguments, or what it depends on. */
function riskOf(step: Step<unknown>, params: unknown, env: ResolvedEnvironment): string {
  if (typeof step.risk !== 'function') return step.risk;
  try {
    return `${step.risk(params, env)} for the example (depends on the arguments)`;
  } catch {
    return 'depends on the arguments';
  }
}

function gateOf(step: Step<unknown>, params: unknown, env: ResolvedEnvironment): string {
  if (step.restores) return 'none (it puts back what the run took away)';
  let risk;
  try {
    risk = typeof step.risk === 'function' ? step.risk(params, env) : step.risk;
  } catch {
    return 'depends on the arguments';
  }
  const say = (k: string) => (k === 'severe' ? 'type the environment name' : k === 'confirm' ? 'yes/no' : 'none');
  const open = say(gateKind(risk, false, step.severe));
  const prot = say(gateKind(risk, true, step.severe));
  return open === prot ? open : `${open}; in a protected environment: ${prot}`;
}

function equivalentOf(step: Step<unknown>, params: unknown, env: ResolvedEnvironment): string {
  try {
    return step.equivalent(params, env);
  } catch {
    return '(needs a configured environment: `runbook explain` with your config shows it)';
  }
}

function flagRows(params: ParamSpec[]): string[] {
  if (!params.length) return ['No flags of its own.'];
  const rows = params.map((p) => {
    const what = p.argument ?? p.flag ?? p.name;
    const dflt = p.default !== undefined && p.default !== false ? code(String(p.default)) : '';
    const range =
      p.min !== undefined && p.max !== undefined
        ? ` (${p.min}–${p.max})`
        : p.min !== undefined
          ? ` (at least ${p.min})`
          : p.max !== undefined
            ? ` (at most ${p.max})`
            : '';
    const choices = p.choices ? ` One of: ${p.choices.map(code).join(', ')}.` : '';
    return `| ${code(what)} | ${cell(p.description)}${range}${choices} | ${dflt} | ${p.required || p.argument?.startsWith('<') ? 'yes' : ''} |`;
  });
  return ['| flag or argument | what | default | required |', '|---|---|---|---|', ...rows];
}

function riskLabel(entry: CatalogEntry): string {
  return entry.riskFor ? `${entry.riskFor.usually} (${entry.risk} ${entry.riskFor.when})` : entry.risk;
}

/** One procedure's page. */
export function procedurePage(entry: CatalogEntry, proc: Procedure, env: ResolvedEnvironment): string {
  const params = exampleParams(proc);
  const args = proc.params.filter((p) => p.argument).map((p) => p.argument);
  const lines = [
    `# runbook ${proc.name}`,
    '',
    proc.summary + '.',
    '',
    `- **Risk:** ${riskLabel(entry)}`,
    `- **Seed runbook section:** ${entry.seed}`,
    `- **Needs in the config:** ${proc.requires.length ? proc.requires.map(code).join(', ') : 'nothing (works without a config)'}`,
    '',
    '```',
    `runbook ${proc.name}${args.length ? ` ${args.join(' ')}` : ''} [flags]`,
    '```',
    '',
    '## Flags',
    '',
    ...flagRows(proc.params),
    '',
    'And the [global flags](README.md#global-flags) (`-e`, `--dry-run`, `--yes`, `--json` …).',
    '',
    '## Examples',
    '',
    '```sh',
    ...proc.examples.map((e) => `runbook ${proc.name} ${e.join(' ')}`.trimEnd()),
    '```',
    '',
    '## Steps',
    '',
    `Equivalent commands are shown for the first example on the built-in \`${env.name}\` environment (\`runbook explain ${proc.name}\` shows them for yours).`,
    '',
  ];
  proc.steps.forEach((s, i) => {
    lines.push(`### ${i + 1}. ${s.title}`, '');
    lines.push(`- **Step id:** ${code(s.id)} (its data is \`result.${s.id}\` in \`--json\`)`);
    lines.push(`- **Risk:** ${riskOf(s as Step<unknown>, params, env)}`);
    lines.push(`- **Gate:** ${gateOf(s as Step<unknown>, params, env)}`);
    lines.push(`- **Undo:** ${s.undo ? 'put back automatically when a later step fails' : s.restores ? 'it is itself the put-back' : 'none needed'}`);
    if (s.postcondition) lines.push(`- **Done means:** ${s.postcondition.describe} (re-checked by \`runbook resume\`)`);
    if (s.followsWrite) lines.push('- **Dry run:** previewed, not run (it waits on an earlier write)');
    lines.push(`- **Why:** ${s.why}`, '', '```sh', equivalentOf(s as Step<unknown>, params, env), '```', '');
  });
  if (proc.seedFixes?.length) lines.push('## What the seed runbook got wrong', '', ...proc.seedFixes.map((f) => `- ${f}`), '');
  if (proc.check) lines.push('## Exit code', '', 'Exit 4 when the check fails (for cron and monitoring).', '');
  return lines.join('\n');
}

interface GlobalFlag {
  flags: string;
  description: string;
}

async function globalFlags(): Promise<GlobalFlag[]> {
  const { program } = await buildProgram([], { stdout: () => undefined, stderr: () => undefined, stdoutWidth: () => 80, stderrWidth: () => 80 }, '0.0.0');
  return program.options.filter((o) => o.long !== '--version').map((o) => ({ flags: o.flags, description: o.description ?? '' }));
}

function indexPage(entries: Array<{ entry: CatalogEntry; proc: Procedure }>, flags: GlobalFlag[]): string {
  return [
    '# runbook reference',
    '',
    'Generated from the procedures by `npm run docs` (do not edit: `test/docs.test.ts` fails when these pages drift from the code).',
    'The same reference is the man page [`runbook.1`](runbook.1) (`man ./docs/runbook.1`).',
    '',
    '## Procedures',
    '',
    '| command | what it does | risk | seed section |',
    '|---|---|---|---|',
    ...entries.map(({ entry, proc }) => `| [\`${proc.name}\`](${pageName(proc.name)}) | ${cell(proc.summary)} | ${riskLabel(entry)} | ${cell(entry.seed)} |`),
    '',
    '## Global flags',
    '',
    'Before or after the command (`runbook -n offline app restart`).',
    '',
    '| flag | what |',
    '|---|---|',
    ...flags.map((f) => `| ${code(f.flags)} | ${cell(f.description)} |`),
    '',
    '## `--json`',
    '',
    'Every procedure prints exactly one JSON document on stdout with `--json`, described by [run-result.schema.json](run-result.schema.json):',
    '`{ procedure, env, status, exitCode, runId, dryRun, startedAt, durationMs, params, result, steps, compensations, error?, byHand? }`.',
    "`result` holds each step's data by step id (each page names its steps); durations are whole milliseconds.",
    'A usage or config error (nothing ran) prints `{ status: "error", exitCode: 2, error: { message, hint } }`.',
    '',
    '## Exit codes',
    '',
    '```',
    EXIT_CODES_HELP.trim().replace(/^Exit codes:\n/, ''),
    '```',
    '',
  ].join('\n');
}

const roff = (s: string) =>
  s
    .replace(/\\/g, '\\e')
    .replace(/-/g, '\\-')
    .replace(/^([.'])/gm, '\\&$1');

function manPage(entries: Array<{ entry: CatalogEntry; proc: Procedure }>, flags: GlobalFlag[], version: string): string {
  const lines = [
    `.TH RUNBOOK 1 "" "runbook ${version}" "User Commands"`,
    '.SH NAME',
    'runbook \\- the operations runbook as typed, safe commands',
    '.SH SYNOPSIS',
    '.B runbook',
    '.I noun verb',
    '[\\fIargs\\fR] [\\fIflags\\fR]',
    '.SH DESCRIPTION',
    roff(
      'Every procedure calls the Kubernetes, AWS, PostgreSQL and Redis APIs directly, asks before destructive steps, journals everything it does, and puts things back when a step fails. runbook explain <procedure> shows each step, why it exists and the equivalent command.',
    ),
    '.SH GLOBAL OPTIONS',
    ...flags.flatMap((f) => ['.TP', `.B ${roff(f.flags)}`, roff(f.description)]),
    '.SH PROCEDURES',
  ];
  for (const { entry, proc } of entries) {
    const args = proc.params.filter((p) => p.argument).map((p) => p.argument);
    lines.push('.TP', `.B runbook ${roff(proc.name)}${args.length ? ` ${roff(args.join(' '))}` : ''}`, roff(`${proc.summary} [${riskLabel(entry)}]`));
    for (const p of proc.params.filter((x) => x.flag)) {
      const extra = p.required ? ' (required)' : p.default !== undefined && p.default !== false ? ` (default: ${p.default})` : '';
      lines.push('.RS', '.TP', `.B ${roff(p.flag!)}`, roff(p.description + extra), '.RE');
    }
  }
  lines.push(
    '.SH OTHER COMMANDS',
    roff(
      'list, explain <procedure>, history, show <run-id>, resume <run-id>, rbac, config current|list|view|path, doctor [--online], completion bash|zsh|fish, version, help <noun> <verb>.',
    ),
    '.SH EXIT STATUS',
    '.nf',
    roff(EXIT_CODES_HELP.trim().replace(/^Exit codes:\n/, '')),
    '.fi',
    '.SH FILES',
    roff(
      'Config: --config, else $RUNBOOK_CONFIG, ./runbook.yaml, $XDG_CONFIG_HOME/runbook/config.yaml. Journal: $XDG_STATE_HOME/runbook/runs/ (or $RUNBOOK_JOURNAL_DIR).',
    ),
    '.SH SEE ALSO',
    roff('The pages in docs/ (one per procedure), docs/run-result.schema.json, kubectl(1), aws(1), psql(1), redis-cli(1).'),
    '',
  );
  return lines.join('\n');
}

/** Every generated file of docs/, by file name. */
export async function renderDocs(): Promise<Map<string, string>> {
  const env = selectEnvironment({ config: exampleConfig, path: null }, undefined, {});
  const entries = await Promise.all(catalog.map(async (entry) => ({ entry, proc: await entry.load() })));
  const flags = await globalFlags();
  const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  const files = new Map<string, string>();
  for (const { entry, proc } of entries) files.set(pageName(proc.name), procedurePage(entry, proc, env));
  files.set('README.md', indexPage(entries, flags));
  files.set('runbook.1', manPage(entries, flags, version));
  return files;
}

/** The generated files docs/ holds now (everything but the hand-written ones). */
export function generatedOnDisk(): Map<string, string> {
  const files = new Map<string, string>();
  let names: string[];
  try {
    names = readdirSync(DOCS_DIR);
  } catch {
    return files;
  }
  for (const n of names) if (!HAND_WRITTEN.has(n)) files.set(n, readFileSync(join(DOCS_DIR, n), 'utf8'));
  return files;
}

async function main(): Promise<void> {
  const files = await renderDocs();
  mkdirSync(DOCS_DIR, { recursive: true });
  for (const name of generatedOnDisk().keys()) if (!files.has(name)) rmSync(join(DOCS_DIR, name));
  for (const [name, text] of files) writeFileSync(join(DOCS_DIR, name), text);
  process.stdout.write(`wrote ${files.size} files to ${DOCS_DIR}\n`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await main();
