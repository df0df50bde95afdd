// Reaching into a container: commands run through pods/exec (never on this machine), the target
// process found by reading the container's own /proc, and the parsers of what the container's tools
// print (jcmd GC.heap_info, df -P, /proc/<pid>/net/tcp). The parsers are pure, for unit tests.
import type { ExecOptions, ExecResult, KubeClient } from '../../clients/kube.js';
import { StepError } from '../../core/errors.js';

export type Runtime = 'jvm' | 'node';

/** A container to run commands in, through the API server. */
export interface Container {
  pod: string;
  container: string;
}

/** kubectl's way of saying where a command runs (for equivalents and by-hand advice). */
export function kubectlExec(c: Container, namespace: string, command: string): string {
  return `kubectl exec ${c.pod} -c ${c.container} -n ${namespace} -- ${command}`;
}

/** The client's exec (a fake without one cannot reach into containers). */
export function execOf(kube: KubeClient): NonNullable<KubeClient['execInPod']> {
  if (!kube.execInPod) throw new StepError('this Kubernetes client cannot exec into containers');
  return kube.execInPod.bind(kube);
}

/**
 * Runs a POSIX sh script in the container (`sh -c script sh args…`: the arguments are never part of
 * the script text). A container without sh (distroless) gets one clear line and a way round it.
 */
export async function shellIn(kube: KubeClient, c: Container, script: string, args: string[] = [], opts: ExecOptions = {}): Promise<ExecResult> {
  const exec = execOf(kube);
  const r = await exec(c.pod, c.container, ['sh', '-c', script, 'sh', ...args], { timeoutMs: 60_000, ...opts });
  if (r.exitCode === null && /executable file not found|no such file or directory.*\bsh\b|"sh"/i.test(r.error ?? '')) {
    throw new StepError(
      `container ${c.container} of pod ${c.pod} has no /bin/sh (a distroless image?): ${r.error}`,
      `attach a debug container that shares its processes: kubectl debug -it ${c.pod} --image=eclipse-temurin:17-jdk --target=${c.container} -- sh`,
    );
  }
  return r;
}

/** Runs a script that must succeed; its stdout as text. */
export async function shellOk(kube: KubeClient, c: Container, what: string, script: string, args: string[] = [], opts: ExecOptions = {}): Promise<string> {
  const r = await shellIn(kube, c, script, args, opts);
  if (r.exitCode !== 0) {
    const why = r.stderr.trim().split('\n').slice(-3).join(' ') || r.error || `exit code ${r.exitCode}`;
    throw new StepError(`${what} failed in container ${c.container} of pod ${c.pod}: ${why}`);
  }
  return r.stdout.toString('utf8');
}

/**
 * What the discovery script prints, in sections starting with "@@": the temp dir, the user, the
 * tools on PATH (and next to each JVM's java), then each Java or Node.js process (java/node by its
 * executable or name, or any process with libjvm.so mapped) with its cmdline, status lines, and
 * for Node.js its socket inodes and TCP tables (to find the inspector's listening port).
 * `same` is 1 when the process is in the shell's own cgroup: the container exec'd into (a pod that
 * shares its process namespace shows the other containers' processes too).
 */
export const DISCOVERY_SCRIPT = `
mycg=$(cat /proc/self/cgroup 2>/dev/null)
printf '@@tmp %s\\n' "\${TMPDIR:-/tmp}"
printf '@@uid %s\\n' "$(id -u 2>/dev/null)"
for t in jcmd jmap tar sha256sum df; do
  p=$(command -v "$t" 2>/dev/null) && printf '@@tool %s %s\\n' "$t" "$p"
done
if [ -n "$JAVA_HOME" ]; then for t in jcmd jmap; do [ -x "$JAVA_HOME/bin/$t" ] && printf '@@tool %s %s\\n' "$t" "$JAVA_HOME/bin/$t"; done; fi
for d in /proc/[0-9]*; do
  pid=\${d#/proc/}
  [ "$pid" = "$$" ] && continue
  comm=$(cat "$d/comm" 2>/dev/null) || continue
  exe=$(readlink "$d/exe" 2>/dev/null) || exe=
  kind=
  case "\${exe##*/}" in java) kind=jvm ;; node|nodejs) kind=node ;; esac
  if [ -z "$kind" ]; then case "$comm" in java) kind=jvm ;; node|nodejs) kind=node ;; esac; fi
  if [ -z "$kind" ] && grep -qF libjvm.so "$d/maps" 2>/dev/null; then kind=jvm; fi
  [ -n "$kind" ] || continue
  same=0
  [ "$(cat "$d/cgroup" 2>/dev/null)" = "$mycg" ] && same=1
  printf '@@proc %s %s %s %s\\n' "$pid" "$kind" "$same" "$exe"
  printf '@@cmdline\\n'
  cat "$d/cmdline" 2>/dev/null
  printf '\\n@@status\\n'
  grep -E '^(Name|PPid|Uid|VmRSS):' "$d/status" 2>/dev/null
  if [ "$kind" = jvm ] && [ -n "$exe" ]; then
    for t in jcmd jmap; do [ -x "\${exe%/*}/$t" ] && printf '@@jvmtool %s %s %s\\n' "$pid" "$t" "\${exe%/*}/$t"; done
  fi
  if [ "$kind" = node ]; then
    printf '@@nodeoptions '
    tr '\\0' '\\n' < "$d/environ" 2>/dev/null | grep '^NODE_OPTIONS=' | head -n 1
    printf '\\n@@sockets'
    for f in "$d"/fd/*; do l=$(readlink "$f" 2>/dev/null) && case "$l" in socket:*) printf ' %s' "$l" ;; esac; done
    printf '\\n@@tcp\\n'
    cat "$d/net/tcp" "$d/net/tcp6" 2>/dev/null
  fi
done
printf '@@end\\n'
`;

/** The sockets a process listens on: its socket inodes and the TCP tables of its network namespace. */
export const LISTENING_SCRIPT = `
d=/proc/$1
[ -d "$d" ] || { printf '@@gone\\n'; exit 0; }
printf '@@sockets'
for f in "$d"/fd/*; do l=$(readlink "$f" 2>/dev/null) && case "$l" in socket:*) printf ' %s' "$l" ;; esac; done
printf '\\n@@tcp\\n'
cat "$d/net/tcp" "$d/net/tcp6" 2>/dev/null
printf '@@end\\n'
`;

export interface Listener {
  address: string;
  port: number;
}

export interface FoundProcess {
  pid: number;
  runtime: Runtime;
  /** In the container exec'd into (its cgroup). */
  sameContainer: boolean;
  exe: string;
  /** The executable and its main class, jar or script: never the other arguments (they may hold secrets). */
  command: string;
  /** npm, npx, yarn, pnpm: a Node.js process that only launches the application. */
  launcher: boolean;
  /** A JDK tool (jcmd, jps …), not an application. */
  tool: boolean;
  uid: number | null;
  ppid: number | null;
  rssBytes: number | null;
  /** Node.js: the TCP ports it listens on now. */
  listening: Listener[];
  /** Node.js: its --inspect* / --debug-port flags, from argv and NODE_OPTIONS (nothing else of them is kept). */
  inspectFlags: string[];
}

export interface Discovery {
  tmpDir: string;
  uid: number | null;
  /** Tools found: name → path (jcmd/jmap next to the chosen JVM's java are added per process). */
  tools: Record<string, string>;
  jvmTools: Record<number, Record<string, string>>;
  processes: FoundProcess[];
  complete: boolean;
}

const JDK_TOOL = /^(?:jdk\.[\w.]+\/)?sun\.tools\.|^jdk\.jcmd\//;
const NODE_LAUNCHER = /(?:^|\/)(?:npm|npx|yarn|pnpm|corepack)(?:-cli)?(?:\.c?js)?$/;

/** The executable and the main class / jar / script from argv, nothing else. */
export function commandSummary(argv: string[], runtime: Runtime): string {
  const exe = (argv[0] ?? '').split('/').pop() || (runtime === 'jvm' ? 'java' : 'node');
  const withValue =
    runtime === 'jvm'
      ? new Set([
          '-cp',
          '-classpath',
          '--class-path',
          '-p',
          '--module-path',
          '--add-modules',
          '--add-opens',
          '--add-exports',
          '--add-reads',
          '--patch-module',
          '--upgrade-module-path',
          '--limit-modules',
        ])
      : new Set([
          '-r',
          '--require',
          '--import',
          '--loader',
          '--experimental-loader',
          '-C',
          '--conditions',
          '--env-file',
          '--title',
          '--inspect-port',
          '--debug-port',
        ]);
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i];
    if (runtime === 'jvm' && (a === '-jar' || a === '-m' || a === '--module')) return `${exe} ${a} ${argv[i + 1] ?? ''}`.trim();
    if (runtime === 'node' && (a === '-e' || a === '--eval' || a === '-p' || a === '--print')) return `${exe} ${a} …`;
    if (withValue.has(a)) {
      i++;
      continue;
    }
    if (a.startsWith('-')) continue;
    return `${exe} ${a}`;
  }
  return exe;
}

/** Parses /proc/<pid>/net/tcp(6) lines: the LISTEN sockets among `inodes`. */
export function parseListeners(tcp: string, inodes: Set<string>): Listener[] {
  const out: Listener[] = [];
  for (const line of tcp.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10 || f[3] !== '0A' || !inodes.has(f[9])) continue;
    const [addrHex, portHex] = f[1].split(':');
    const port = parseInt(portHex, 16);
    if (!Number.isFinite(port)) continue;
    out.push({ address: decodeAddress(addrHex), port });
  }
  const seen = new Set<string>();
  return out.filter((l) => (seen.has(`${l.address}:${l.port}`) ? false : (seen.add(`${l.address}:${l.port}`), true))).sort((a, b) => a.port - b.port);
}

/** /proc's hex address (little-endian words) as text: 0100007F → 127.0.0.1, 32 digits → IPv6. */
export function decodeAddress(hex: string): string {
  if (hex.length === 8) return [6, 4, 2, 0].map((i) => parseInt(hex.slice(i, i + 2), 16)).join('.');
  if (hex.length === 32) {
    const bytes: number[] = [];
    for (let w = 0; w < 4; w++) {
      const word = hex.slice(w * 8, w * 8 + 8);
      for (const i of [6, 4, 2, 0]) bytes.push(parseInt(word.slice(i, i + 2), 16));
    }
    if (bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 255 && bytes[11] === 255) return bytes.slice(12).join('.');
    const groups: string[] = [];
    for (let i = 0; i < 16; i += 2) groups.push(((bytes[i] << 8) | bytes[i + 1]).toString(16));
    return groups
      .join(':')
      .replace(/\b(?:0:){2,}/, '::')
      .replace(/^0::/, '::')
      .replace(/:{3,}/, '::');
  }
  return hex;
}

export function isLoopback(address: string): boolean {
  return /^127\./.test(address) || address === '::1' || address === '0:0:0:0:0:0:0:1';
}

function socketInodes(line: string): Set<string> {
  return new Set([...line.matchAll(/socket:\[(\d+)\]/g)].map((m) => m[1]));
}

/** The --inspect* and --debug-port flags among a Node.js process's arguments (before its script). */
function inspectFlagsOf(args: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (!a.startsWith('-')) break;
    if (/^--(?:inspect(?:-brk|-wait|-port)?|debug-port)(?:=|$)/.test(a)) out.push(!a.includes('=') && /port$/.test(a) && args[i + 1] ? `${a}=${args[++i]}` : a);
  }
  return out;
}

/** Parses the discovery script's output. */
export function parseDiscovery(text: string): Discovery {
  const d: Discovery = { tmpDir: '/tmp', uid: null, tools: {}, jvmTools: {}, processes: [], complete: /\n?@@end\n?$/.test(text) };
  const sections = text.split(/\n?(?=@@(?:tmp|uid|tool|proc|cmdline|status|jvmtool|nodeoptions|sockets|tcp|end)\b)/);
  let cur: FoundProcess | undefined;
  let inodes = new Set<string>();
  for (const sec of sections) {
    if (sec.startsWith('@@tmp ')) d.tmpDir = sec.slice(6).split('\n')[0].trim() || '/tmp';
    else if (sec.startsWith('@@uid ')) d.uid = /^\d+$/.test(sec.slice(6).trim()) ? Number(sec.slice(6).trim()) : null;
    else if (sec.startsWith('@@tool ')) {
      const [, name, ...path] = sec.split('\n')[0].split(' ');
      if (name && path.length && !d.tools[name]) d.tools[name] = path.join(' ');
    } else if (sec.startsWith('@@jvmtool ')) {
      const [, pid, name, ...path] = sec.split('\n')[0].split(' ');
      (d.jvmTools[Number(pid)] ??= {})[name] = path.join(' ');
    } else if (sec.startsWith('@@proc ')) {
      const [, pid, kind, same, ...exe] = sec.split('\n')[0].split(' ');
      cur = {
        pid: Number(pid),
        runtime: kind === 'node' ? 'node' : 'jvm',
        sameContainer: same === '1',
        exe: exe.join(' '),
        command: '',
        launcher: false,
        tool: false,
        uid: null,
        ppid: null,
        rssBytes: null,
        listening: [],
        inspectFlags: [],
      };
      if (Number.isSafeInteger(cur.pid)) d.processes.push(cur);
    } else if (sec.startsWith('@@cmdline') && cur) {
      let argv = sec
        .replace(/^@@cmdline\n/, '')
        .split('\0')
        .filter((a) => a !== '');
      // A process that set its title (npm does) shows one string with spaces instead of its argv.
      if (argv.length === 1 && argv[0].includes(' ')) argv = argv[0].split(' ').filter(Boolean);
      cur.command = commandSummary(argv.length ? argv : [cur.exe], cur.runtime);
      if (cur.runtime === 'node')
        cur.launcher = NODE_LAUNCHER.test(argv.find((a, i) => i > 0 && !a.startsWith('-')) ?? '') || NODE_LAUNCHER.test(argv[0] ?? '');
      if (cur.runtime === 'jvm') cur.tool = argv.some((a, i) => i > 0 && JDK_TOOL.test(a));
      if (cur.runtime === 'node') cur.inspectFlags.push(...inspectFlagsOf(argv.slice(1)));
    } else if (sec.startsWith('@@nodeoptions') && cur) {
      const value = /NODE_OPTIONS=(.*)/.exec(sec.split('\n')[0])?.[1] ?? '';
      cur.inspectFlags.unshift(...inspectFlagsOf(value.split(/\s+/)));
    } else if (sec.startsWith('@@status') && cur) {
      for (const line of sec.split('\n')) {
        const m = /^(\w+):\s+(.*)$/.exec(line);
        if (!m) continue;
        if (m[1] === 'PPid') cur.ppid = Number(m[2]) || null;
        if (m[1] === 'Uid') cur.uid = Number(m[2].split(/\s+/)[0]);
        if (m[1] === 'VmRSS') cur.rssBytes = Number(m[2].replace(/\s*kB$/, '')) * 1024;
      }
    } else if (sec.startsWith('@@sockets')) inodes = socketInodes(sec.split('\n')[0]);
    else if (sec.startsWith('@@tcp') && cur) cur.listening = parseListeners(sec.replace(/^@@tcp\n/, ''), inodes);
  }
  return d;
}

/** Parses LISTENING_SCRIPT's output; null when the process is gone. */
export function parseListening(text: string): Listener[] | null {
  if (text.includes('@@gone')) return null;
  const sockets = /@@sockets([^\n]*)/.exec(text)?.[1] ?? '';
  const tcp = text.split('@@tcp\n')[1]?.split('@@end')[0] ?? '';
  return parseListeners(tcp, socketInodes(sockets));
}

/** The sockets `pid` listens on now, read inside the container. */
export async function listeningNow(kube: KubeClient, c: Container, pid: number, signal?: AbortSignal): Promise<Listener[] | null> {
  return parseListening(await shellOk(kube, c, "reading the process's sockets", LISTENING_SCRIPT, [String(pid)], { signal }));
}

export interface HeapInfo {
  /** Bytes of Java heap in use (all generations), and committed. */
  used: number;
  committed: number | null;
  /** The collector, as jcmd names its heap ("garbage-first heap", "ZHeap" …). */
  collector: string;
}

const UNIT: Record<string, number> = { K: 1024, M: 1024 ** 2, G: 1024 ** 3, B: 1 };
const size = (n: string, u = 'K') => Number(n) * (UNIT[u.toUpperCase()] ?? 1024);

/** Parses `jcmd <pid> GC.heap_info` (G1, Parallel, Serial, ZGC, Shenandoah); null when it says nothing usable. */
export function parseHeapInfo(text: string): HeapInfo | null {
  const g1 = /garbage-first heap\s+total (\d+)([KMG]), used (\d+)([KMG])/.exec(text);
  if (g1) return { used: size(g1[3], g1[4]), committed: size(g1[1], g1[2]), collector: 'garbage-first heap' };
  const gens = [...text.matchAll(/^\s*(PSYoungGen|ParOldGen|PSOldGen|def new generation|tenured generation)\s+total (\d+)([KMG]), used (\d+)([KMG])/gm)];
  if (gens.length) {
    return {
      used: gens.reduce((n, g) => n + size(g[4], g[5]), 0),
      committed: gens.reduce((n, g) => n + size(g[2], g[3]), 0),
      collector: gens.map((g) => g[1]).join(' + '),
    };
  }
  const z = /ZHeap\s+used (\d+)([KMG]), capacity (\d+)([KMG])/.exec(text);
  if (z) return { used: size(z[1], z[2]), committed: size(z[3], z[4]), collector: 'ZHeap' };
  const shen = /Shenandoah Heap[\s\S]*?(\d+)([KMG]) committed, (\d+)([KMG]) used/.exec(text);
  if (shen) return { used: size(shen[3], shen[4]), committed: size(shen[1], shen[2]), collector: 'Shenandoah' };
  return null;
}

/** Available bytes from `df -P -k <dir>` (the last line's fourth column). */
export function parseDfAvailable(text: string): number | null {
  const lines = text
    .trim()
    .split('\n')
    .filter((l) => l.trim() && !/^Filesystem\b/i.test(l));
  const last = lines[lines.length - 1];
  if (!last) return null;
  const f = last.trim().split(/\s+/);
  // A long device name can wrap the line: the numbers are then the first columns of the next one.
  const nums = f.filter((x) => /^\d+$/.test(x));
  if (nums.length < 3) return null;
  return Number(nums[2]) * 1024;
}

/** `Heap dump file created [N bytes in S secs]` → bytes and seconds. */
export function parseHeapDumpDone(text: string): { bytes: number; seconds: number } | null {
  const m = /Heap dump file created \[(\d+) bytes in ([\d.]+) secs\]/.exec(text);
  return m ? { bytes: Number(m[1]), seconds: Number(m[2]) } : null;
}

/** Runs discovery in the container. */
export async function discover(kube: KubeClient, c: Container, signal?: AbortSignal): Promise<Discovery> {
  const r = await shellIn(kube, c, DISCOVERY_SCRIPT, [], { signal, timeoutMs: 60_000 });
  const text = r.stdout.toString('latin1');
  const d = parseDiscovery(text);
  if (r.exitCode !== 0 || !d.complete) {
    throw new StepError(
      `could not list the processes of container ${c.container} in pod ${c.pod}: ${r.stderr.trim().split('\n').pop() || r.error || 'no answer'}`,
    );
  }
  return d;
}

/**
 * The one process to work on: --pid if given (it must be a Java or Node.js process there), else the
 * only application process of the container. Several: refused, never guessed.
 */
export function chooseProcess(d: Discovery, c: Container, pid: number | undefined): FoundProcess {
  const where = `container ${c.container} of pod ${c.pod}`;
  const list = (ps: FoundProcess[]) => ps.map((p) => `${p.pid} (${p.command})`).join(', ');
  if (pid !== undefined) {
    const p = d.processes.find((x) => x.pid === pid);
    if (!p) {
      throw new StepError(
        `no Java or Node.js process with pid ${pid} in ${where}`,
        d.processes.length ? `found: ${list(d.processes)}` : 'no Java or Node.js process runs there',
      );
    }
    return p;
  }
  const apps = d.processes.filter((p) => !p.launcher && !p.tool);
  const mine = apps.filter((p) => p.sameContainer);
  const candidates = mine.length ? mine : apps;
  if (candidates.length === 1) return candidates[0];
  if (candidates.length === 0) {
    throw new StepError(
      `no Java or Node.js process found in ${where}`,
      d.processes.length ? `only launchers and tools: ${list(d.processes)}` : 'is it the right container? (--container)',
    );
  }
  throw new StepError(`${candidates.length} Java/Node.js processes in ${where}: ${list(candidates)}; not guessing which`, 'say which with --pid <pid>');
}

/** The jcmd (or jmap) to use for a JVM: the one next to its java, else the one on PATH / in JAVA_HOME. */
export function jvmTool(d: Discovery, pid: number, name: 'jcmd' | 'jmap'): string | null {
  return d.jvmTools[pid]?.[name] ?? d.tools[name] ?? null;
}
