import { Command, CommanderError, Help, Option } from 'commander';
import { catalog, findEntry } from './procedures/catalog.js';
import { addProcedureParams, collectParams } from './commands/procedure-command.js';
import type { Procedure } from './core/procedure.js';
import { GLOBAL_FLAGS, TOOL_COMMANDS, type BuiltinName } from './commands/words.js';

export { COMPLETION_SHELLS, CONFIG_VERBS, GLOBAL_FLAGS, TOOL_COMMANDS } from './commands/words.js';

export const EXIT_CODES_HELP = `
Exit codes:
  0    success
  1    a step failed; its changes were put back (or the state is as reported)
  2    usage or config error; nothing was contacted or changed
  3    declined at a gate, or approval missing without a terminal; nothing past the gate changed
  4    a check failed (threshold exceeded, precondition not met, backup corrupt, cert expiring)
  5    a step failed AND its compensation failed; the summary says what to do by hand
  6    another operator holds the lock for this procedure and target
  130  interrupted (SIGINT); 143 terminated (SIGTERM); compensation runs first
`;

/** What the chosen command asks main() to do once parsing succeeded. */
export type Action =
  | { kind: 'procedure'; proc: Procedure; opts: Record<string, unknown>; params: () => Record<string, unknown> }
  | { kind: 'builtin'; name: BuiltinName; opts: Record<string, unknown>; args: string[] }
  | { kind: 'tool'; name: 'config' | 'completion' | 'doctor' | 'version'; verb?: string; opts: Record<string, unknown>; args: string[] };

/**
 * `help <noun> <verb>` is `<noun> <verb> --help` (commander's own help command takes one word),
 * and `help` alone is `--help`.
 */
export function normalizeArgv(argv: string[]): string[] {
  const takesValue = new Set(GLOBAL_FLAGS.filter((f) => f.value).flatMap((f) => f.flags));
  let i = 0;
  while (i < argv.length && argv[i].startsWith('-') && argv[i] !== '--') i += takesValue.has(argv[i]) ? 2 : 1;
  if (argv[i] !== 'help') return argv;
  const rest = [...argv.slice(0, i), ...argv.slice(i + 1)];
  // `help frobnicate` is the unknown command it names (exit 2, with commander's "did you mean"), not the root help.
  const topic = rest.find((a) => !a.startsWith('-'));
  const known = topic === undefined || catalog.some((e) => e.name.split(' ')[0] === topic) || (TOOL_COMMANDS as readonly string[]).includes(topic);
  return known ? [...rest, '--help'] : rest;
}

function globalOptions(cmd: Command): Command {
  return cmd
    .option('-e, --env <name>', 'environment from the config (default: the config\'s "default")')
    .option('-c, --config <file>', 'config file (else $RUNBOOK_CONFIG, ./runbook.yaml, $XDG_CONFIG_HOME/runbook/config.yaml)')
    .addOption(new Option('-n, --dry-run [mode]', 'preview: "plan" (reads are real, writes previewed) or "offline" (nothing contacted)'))
    .option('-y, --yes', 'approve gates without a prompt (a severe gate also needs --confirm <env>)')
    .option('--confirm <env>', 'typed confirmation of the environment name, non-interactively')
    .option('--no-input', 'never prompt; a gate not approved by flags fails (exit 3)')
    .option('--json', 'print exactly one JSON document (the run result) on stdout')
    .option('-q, --quiet', 'only errors and the target banner on stderr')
    .option('-v, --verbose', 'more detail, and stack traces on errors')
    .option('--no-color', 'no colour (also NO_COLOR)')
    .option('--timeout <duration>', 'overall time limit, e.g. 10m');
}

/** Finds the command path in argv (skipping global options and their values). */
export function commandPath(argv: string[]): string[] {
  const takesValue = new Set(GLOBAL_FLAGS.filter((f) => f.value).flatMap((f) => f.flags));
  const words: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') break;
    if (a.startsWith('-')) {
      if (takesValue.has(a)) i++;
      // `-n offline app restart`: --dry-run's value is optional, and these are the only two it takes.
      else if ((a === '-n' || a === '--dry-run') && (argv[i + 1] === 'plan' || argv[i + 1] === 'offline')) i++;
      continue;
    }
    words.push(a);
    if (words.length === 3) break;
  }
  return words;
}

export interface Program {
  program: Command;
  action(): Action | undefined;
}

/** Where commander writes help and usage errors, and the width it wraps them to (a terminal's, else 80). */
export interface ProgramOutput {
  stdout(s: string): void;
  stderr(s: string): void;
  stdoutWidth(): number;
  stderrWidth(): number;
}

/**
 * Builds the commander tree. Only the invoked procedure's module is loaded (for its flags);
 * the others appear by name and summary, so help and startup never import an SDK.
 */
export async function buildProgram(argv: string[], out: ProgramOutput, version: string): Promise<Program> {
  let chosen: Action | undefined;
  // Every command gets these, so commander never asks process.stdout (making it costs more than
  // --help); the help is plain text, with no colour to strip.
  const output = {
    writeOut: out.stdout,
    writeErr: out.stderr,
    getOutHelpWidth: out.stdoutWidth,
    getErrHelpWidth: out.stderrWidth,
    getOutHasColors: () => false,
    getErrHasColors: () => false,
  };
  // Built-ins whose options were not made (see withOptions below).
  const unbuiltOptions = new WeakSet<Command>();
  const program = globalOptions(new Command('runbook'))
    .description('The operations runbook as typed, safe commands: gates before destructive steps, a journal, compensation on failure.')
    .version(version, '--version')
    .usage('<noun> <verb> [args] [flags]')
    .showHelpAfterError('(add --help for usage)')
    .configureOutput(output)
    .addHelpText('after', EXIT_CODES_HELP)
    .configureHelp({
      showGlobalOptions: true,
      // A built-in's options are made only when it is the command invoked; listed, it still says it has some.
      subcommandTerm(cmd) {
        const term = Help.prototype.subcommandTerm.call(this, cmd);
        if (!unbuiltOptions.has(cmd)) return term;
        const head = cmd.name() + (cmd.aliases()[0] ? `|${cmd.aliases()[0]}` : '');
        return `${head} [options]${term.slice(head.length)}`;
      },
    })
    .exitOverride();

  const path = commandPath(argv);
  // Only the invoked noun's verbs are built (`help <noun>` asks for its noun's): the other nouns
  // are listed by name, as `runbook --help` shows them, and ~50 unused commands cost startup time.
  const invokedNoun = path[0];
  const nouns = new Map<string, Command>();
  const nounDescription = (key: string) => {
    const depth = key.split(' ').length;
    const verbs = [...new Set(catalog.filter((e) => e.name.startsWith(`${key} `)).map((e) => e.name.split(' ')[depth]))];
    return `${key}: ${verbs.join(', ')}`;
  };
  for (const entry of catalog) {
    const words = entry.name.split(' ');
    if (words.length > 1 && words[0] !== invokedNoun) {
      if (!nouns.has(words[0])) {
        const cmd = program.command(words[0]).description(nounDescription(words[0]));
        cmd.configureOutput(output).exitOverride().showHelpAfterError('(add --help for usage)');
        nouns.set(words[0], cmd);
      }
      continue;
    }
    let parent = program;
    for (let depth = 0; depth < words.length - 1; depth++) {
      const key = words.slice(0, depth + 1).join(' ');
      let noun = nouns.get(key);
      if (!noun) {
        noun = parent.command(words[depth]).description(nounDescription(key));
        noun.configureOutput(output).exitOverride().showHelpAfterError('(add --help for usage)');
        nouns.set(key, noun);
      }
      parent = noun;
    }
    const leaf = parent.command(words[words.length - 1]).description(`${entry.summary}  [${entry.risk}]`);
    leaf.configureOutput(output).exitOverride();
    const invoked = path.slice(0, words.length).join(' ') === entry.name;
    if (invoked) {
      const proc = await entry.load();
      addProcedureParams(leaf, proc);
      leaf.addHelpText('after', EXIT_CODES_HELP);
      leaf.action((...args: unknown[]) => {
        const cmd = args[args.length - 1] as Command;
        const opts = cmd.optsWithGlobals();
        chosen = { kind: 'procedure', proc, opts, params: () => collectParams(proc, cmd.opts(), cmd.processedArgs) };
      });
    } else {
      leaf.allowUnknownOption().allowExcessArguments().helpOption(false);
    }
  }

  // The options (and config's verbs, below) of a command other than the one invoked are never
  // parsed nor shown: making them is skipped (~1 ms of --help).
  const withOptions = (cmd: Command, add: (cmd: Command) => void) => {
    if (cmd.name() === path[0]) add(cmd);
    else unbuiltOptions.add(cmd);
  };
  const builtin = (name: BuiltinName, args: string, description: string, options?: (cmd: Command) => void) => {
    const cmd = program.command(`${name}${args ? ` ${args}` : ''}`).description(description);
    cmd.configureOutput(output).exitOverride();
    cmd.action((...a: unknown[]) => {
      const c = a[a.length - 1] as Command;
      chosen = { kind: 'builtin', name, opts: c.optsWithGlobals(), args: c.args };
    });
    if (options) withOptions(cmd, options);
    return cmd;
  };
  builtin('list', '', 'List every procedure and what it can change');
  builtin('explain', '<procedure...>', 'The training view: each step, why, the equivalent command, and what the seed got wrong');
  builtin('history', '', 'Past runs from the journal, newest first (-e: of that environment only)', (cmd) =>
    cmd
      .option('--limit <n>', 'how many', '20')
      .option('--procedure <name>', 'only runs of this procedure (e.g. "db restart")')
      .option('--since <duration>', 'only runs that started within this window (e.g. 2h, 7d)')
      .option('--status <status>', 'only runs that ended so: succeeded, failed, declined, interrupted, partial, locked, check-failed')
      .option('--operator <who>', 'only runs by this operator (user@host, or the user part)')
      .option('--no-dry-runs', 'leave out dry runs')
      .option('--team', "the team's runs too (journal.shared), merged with this machine's by run id")
      .option('-o, --output <format>', 'json or yaml (--json is -o json)'),
  );
  builtin('show', '<run-id>', 'One run from the journal: parameters, gates, steps and their data');
  builtin('resume', '<run-id>', 'Continue a failed or interrupted run from its first unfinished step', (cmd) =>
    cmd.option(
      '--takeover',
      "continue another operator's run (its lock expired, or was released with runbook release); recorded in the journal, the lock and an Event",
    ),
  );
  builtin('verify', '<run-id>', "Check a run's journal hash chain; names the first line that does not match (exit 4)");
  builtin('release', '<run-id>', 'Give up the locks your crashed or stopped run still holds, so another operator can take it over');
  builtin('approve', '<run-id>', "Approve another operator's run that waits for a second approver (two-person approval; -y: without the prompt)");
  builtin('deny', '<run-id>', "Deny another operator's run that waits for a second approver; it stops with nothing changed", (cmd) =>
    cmd.option('--reason <text>', 'why, for the requester, the journal and the notification'),
  );
  builtin('rbac', '[procedure...]', 'The least-privilege Kubernetes Role (and ClusterRole for nodes) the procedures need, derived from what they call', (cmd) =>
    cmd
      .option('--name <name>', 'name of the Role and bindings', 'runbook-operator')
      .option('--group <group>', 'the group the bindings grant it to', 'runbook-operators')
      .option(
        '--approval',
        "only two-person approval's: the requester and approver Roles and the policy that guards requests (environment's approval.namespace)",
      )
      .option('--approver-group <group>', 'the group the approver Role is bound to', 'runbook-approvers'),
  );

  const tool = (cmd: Command, name: 'config' | 'completion' | 'doctor' | 'version', verb?: string) => {
    cmd.configureOutput(output).exitOverride();
    cmd.action((...a: unknown[]) => {
      const c = a[a.length - 1] as Command;
      chosen = { kind: 'tool', name, verb, opts: c.optsWithGlobals(), args: c.args };
    });
    return cmd;
  };
  tool(program.command('version').description('Print the version'), 'version');
  const config = program
    .command('config')
    .description('The config in use: current environment, environments, resolved settings (secrets redacted), file')
    .configureOutput(output)
    .exitOverride()
    .showHelpAfterError('(add --help for usage)');
  if (path[0] === 'config') {
    tool(config.command('current').description('The environment in use, and why (-e, $RUNBOOK_ENV or the config default)'), 'config', 'current');
    tool(config.command('list').alias('environments').description('Every environment, protected or not'), 'config', 'list');
    tool(
      config.command('view [environment]').description('The resolved config of one environment (default: the current one); secrets as references'),
      'config',
      'view',
    );
    tool(config.command('path').description('The config file in use, and where runbook looks for one'), 'config', 'path');
  }
  tool(
    program
      .command('completion <shell>')
      .description('Print a shell completion script (bash, zsh or fish)')
      .addHelpText(
        'after',
        `\nExamples:\n  source <(runbook completion bash)          # in ~/.bashrc\n  runbook completion zsh > "\${fpath[1]}/_runbook"\n  runbook completion fish > ~/.config/fish/completions/runbook.fish\n`,
      ),
    'completion',
  );
  const doctor = program
    .command('doctor')
    .description('Check the config, the environment, kubeconfig and journal (and with --online, reach each service); exit 4 when a check fails');
  withOptions(doctor, (cmd) => cmd.option('--online', 'also reach each configured service, read-only, with short timeouts'));
  tool(doctor, 'doctor');

  return { program, action: () => chosen };
}

export { CommanderError, findEntry };
