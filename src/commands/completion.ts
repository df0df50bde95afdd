import { readFileSync } from 'node:fs';
import { findConfigPath } from '../core/config.js';
import { ExitCode, UsageError } from '../core/errors.js';
import type { IO } from '../core/io.js';
import { journalDir } from '../core/journal.js';
import { catalog, findEntry } from '../procedures/catalog.js';
import { listRunFiles } from '../core/journal-reader.js';
import { COMPLETION_SHELLS, CONFIG_VERBS, GLOBAL_FLAGS, TOOL_COMMANDS } from './words.js';

/**
 * The script each shell sources. Every <Tab> asks `runbook __complete <words so far> <current word>`,
 * which prints one candidate a line; no candidate means "complete a file name".
 */
export function completionScript(shell: string): string {
  switch (shell) {
    case 'bash':
      return `# runbook completion for bash: source <(runbook completion bash)
_runbook() {
  local cur="\${COMP_WORDS[COMP_CWORD]}"
  local IFS=$'\\n'
  COMPREPLY=($(runbook __complete "\${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null))
  if [ \${#COMPREPLY[@]} -eq 0 ]; then
    COMPREPLY=($(compgen -f -- "$cur"))
  fi
}
complete -o filenames -F _runbook runbook
`;
    case 'zsh':
      return `#compdef runbook
# runbook completion for zsh: runbook completion zsh > "\${fpath[1]}/_runbook"  (or: source <(runbook completion zsh))
_runbook() {
  local -a candidates
  candidates=(\${(f)"$(runbook __complete "\${(@)words[2,CURRENT]}" 2>/dev/null)"})
  if (( \${#candidates} )); then
    compadd -- \${candidates}
  else
    _files
  fi
}
if [[ $zsh_eval_context[-1] == loadautofunc ]]; then _runbook "$@"; else compdef _runbook runbook; fi
`;
    case 'fish':
      return `# runbook completion for fish: runbook completion fish > ~/.config/fish/completions/runbook.fish
function __runbook_complete
    set -l tokens (commandline -opc) (commandline -ct)
    runbook __complete $tokens[2..-1] 2>/dev/null
end
complete -c runbook -f -a '(__runbook_complete)'
`;
    default:
      throw new UsageError(`unknown shell "${shell}"`, `one of: ${COMPLETION_SHELLS.join(', ')}`);
  }
}

const VALUE_FLAGS = new Set(GLOBAL_FLAGS.filter((f) => f.value).flatMap((f) => f.flags));
const GLOBAL_LONG = GLOBAL_FLAGS.map((f) => f.flags[f.flags.length - 1]);

/** `words`: the words after `runbook`, the last one being the word under the cursor (maybe ""). Prints candidates. */
export async function complete(words: string[], io: IO): Promise<number> {
  const all = words.length ? words : [''];
  const current = all[all.length - 1];
  const before = all.slice(0, -1);
  const candidates = (await candidatesFor(before, current, io)).filter((c) => c.startsWith(current));
  if (candidates.length) io.stdout.write(candidates.join('\n') + '\n');
  return ExitCode.ok;
}

async function candidatesFor(before: string[], current: string, io: IO): Promise<string[]> {
  // bash splits `--dry-run=off` at "=": the word before the "=" is the flag.
  const previous = before[before.length - 1] === '=' ? before[before.length - 2] : before[before.length - 1];
  const configFlag = flagValue(before, ['-c', '--config']);
  if (previous === '-e' || previous === '--env' || previous === '--confirm') return environments(io, configFlag);
  if (previous === '-c' || previous === '--config' || previous === '--timeout') return [];
  if (previous === '-n' || previous === '--dry-run') return current.startsWith('-') ? [] : ['plan', 'offline'];
  if (current.startsWith('--dry-run=')) return ['--dry-run=plan', '--dry-run=offline'];
  // The command words typed so far (flags and their values left out).
  const path: string[] = [];
  for (let i = 0; i < before.length; i++) {
    if (before[i].startsWith('-')) {
      if (VALUE_FLAGS.has(before[i])) i++;
      continue;
    }
    path.push(before[i]);
  }
  if (current.startsWith('-')) return flags(path);
  const [first, second] = path;
  if (first === undefined) return [...new Set([...catalog.map((e) => e.name.split(' ')[0]), ...TOOL_COMMANDS])].sort();
  if (first === 'help' || first === 'explain' || first === 'rbac') return procedureWords(path.slice(1));
  if (first === 'config')
    return path.length === 1 ? [...CONFIG_VERBS, 'environments'] : second === 'view' && path.length === 2 ? environments(io, configFlag) : [];
  if (first === 'completion') return path.length === 1 ? [...COMPLETION_SHELLS] : [];
  if (['show', 'resume', 'verify', 'release', 'approve', 'deny'].includes(first)) return path.length === 1 ? runIds(io, configFlag) : [];
  if ((TOOL_COMMANDS as readonly string[]).includes(first)) return [];
  return procedureWords(path);
}

/** The next word of a procedure name after `typed` (e.g. app → restart, scale, …). */
function procedureWords(typed: string[]): string[] {
  const prefix = typed.join(' ');
  if (typed.length && findEntry(typed)) return [];
  const next = catalog.filter((e) => typed.length === 0 || e.name.startsWith(`${prefix} `)).map((e) => e.name.split(' ')[typed.length]);
  return [...new Set(next)].filter(Boolean);
}

async function flags(path: string[]): Promise<string[]> {
  const own: string[] = [];
  // The longest procedure name the words spell: its module declares its flags (no SDK is imported by it).
  const entry = [3, 2].map((n) => findEntry(path.slice(0, n))).find(Boolean);
  if (entry) {
    const proc = await entry.load();
    for (const p of proc.params) {
      const long = p.flag?.split(/[ ,]+/).find((s) => s.startsWith('--'));
      if (long) own.push(long);
    }
  } else if (path[0] === 'doctor') own.push('--online');
  else if (path[0] === 'history') own.push('--limit', '--procedure', '--since', '--status', '--operator', '--no-dry-runs');
  return [...own, ...GLOBAL_LONG, '--help'];
}

function flagValue(words: string[], names: string[]): string | undefined {
  for (let i = words.length - 2; i >= 0; i--) if (names.includes(words[i])) return words[i + 1];
  const eq = words.find((w) => names.some((n) => w.startsWith(`${n}=`)));
  return eq?.slice(eq.indexOf('=') + 1);
}

/** The raw config (YAML parsed, not validated: a <Tab> must be fast, and a half-written config still completes). */
async function rawConfig(io: IO, flag: string | undefined): Promise<{ environments?: Record<string, unknown>; journal?: { dir?: string } } | undefined> {
  const path = findConfigPath(flag, io.env, io.cwd);
  if (!path) return undefined;
  try {
    const { parse } = await import('yaml');
    const doc = parse(readFileSync(path, 'utf8')) as unknown;
    return doc && typeof doc === 'object' ? (doc as { environments?: Record<string, unknown> }) : undefined;
  } catch {
    return undefined;
  }
}

async function environments(io: IO, flag: string | undefined): Promise<string[]> {
  const path = findConfigPath(flag, io.env, io.cwd);
  if (!path) return ['example'];
  const doc = await rawConfig(io, flag);
  return Object.keys(doc?.environments ?? {});
}

async function runIds(io: IO, flag: string | undefined): Promise<string[]> {
  const doc = await rawConfig(io, flag);
  const dir = journalDir(io.env, typeof doc?.journal?.dir === 'string' ? doc.journal.dir : undefined);
  const ids: string[] = [];
  try {
    // Newest first, listing only as many day folders as 100 ids take.
    for await (const e of listRunFiles(dir)) if (ids.push(e.id) >= 100) break;
  } catch {
    // No journal yet: nothing to complete.
  }
  return ids;
}
