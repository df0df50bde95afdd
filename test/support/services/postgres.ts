/**
 * Real PostgreSQL for integration tests: a throwaway cluster (initdb) on a random loopback
 * port, scram-sha-256 password auth for TCP, pg_stat_statements preloaded and created, and
 * optionally a streaming hot-standby replica made with pg_basebackup -R -X stream.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execa } from 'execa';
import pg from 'pg';
import {
  LOOPBACK,
  StartError,
  freePort,
  killAndWait,
  killAndWaitSync,
  makeTempDir,
  onProcessExit,
  once,
  removeDirSync,
  requireBinary,
  spawnService,
  startupError,
  waitFor,
  withPortRetry,
  type Spawned,
} from './util.js';

export const POSTGRES_INSTALL_HINT = 'apt-get install -y postgresql postgresql-contrib';

export interface StartPostgresOptions {
  /** Also start a streaming hot-standby replica. */
  replica?: boolean;
  /** shared_preload_libraries; default ['pg_stat_statements']. */
  preload?: string[];
  /** Extra postgresql.conf lines, e.g. ["max_connections = 50"]. */
  config?: string[];
}

export interface PostgresService {
  /** postgres://postgres:PASSWORD@127.0.0.1:PORT/postgres */
  url: string;
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
  /** Same credentials, the replica's port (read-only hot standby). */
  replicaUrl?: string;
  replicaPort?: number;
  /** Role used by the replica for streaming replication. */
  replicationUser?: string;
  dataDir: string;
  replicaDataDir?: string;
  /** Directory holding logs, sockets and data dirs; removed on stop(). */
  baseDir: string;
  logFile: string;
  replicaLogFile?: string;
  /** Measured start-up time in ms (including the replica when requested). */
  startupMs: number;
  /** Environment for libpq tools (pg_dump, pg_restore, psql) pointed at the primary. */
  env(): Record<string, string>;
  /** Idempotent: fast-shutdown replica then primary, remove the temp dir. */
  stop(): Promise<void>;
}

// ---------------------------------------------------------------------------
// Binaries
// ---------------------------------------------------------------------------

let cachedBinDir: string | undefined;

/** Directory of the PostgreSQL server binaries (RUNBOOK_PG_BIN, else the newest /usr/lib/postgresql/N/bin, else PATH). */
export function pgBinDir(): string {
  if (cachedBinDir) return cachedBinDir;
  const fromEnv = process.env['RUNBOOK_PG_BIN'];
  if (fromEnv) return (cachedBinDir = fromEnv);
  const root = '/usr/lib/postgresql';
  try {
    const versions = fs
      .readdirSync(root)
      .filter((v) => /^\d+$/.test(v) && fs.existsSync(path.join(root, v, 'bin', 'initdb')))
      .sort((a, b) => Number(b) - Number(a));
    if (versions[0]) return (cachedBinDir = path.join(root, versions[0], 'bin'));
  } catch {
    /* fall through */
  }
  const initdb = requireBinary('initdb', POSTGRES_INSTALL_HINT);
  return (cachedBinDir = path.dirname(initdb));
}

/** Absolute path of a PostgreSQL binary (initdb, pg_ctl, pg_dump, pg_restore, psql, pg_basebackup …). */
export function pgBin(name: string): string {
  let dir: string;
  try {
    dir = pgBinDir();
  } catch {
    throw new Error(`${name} not found: ${POSTGRES_INSTALL_HINT}`);
  }
  return requireBinary(path.join(dir, name), POSTGRES_INSTALL_HINT);
}

/**
 * Environment for libpq client tools (pg_dump, pg_restore, psql, pg_basebackup) as the superuser
 * against a started cluster (the replica with `{ replica: true }`). Merge into execa's `env`.
 */
export function pgSuperuserEnv(
  svc: Pick<PostgresService, 'host' | 'port' | 'user' | 'password' | 'database' | 'replicaPort'>,
  opts: { replica?: boolean } = {},
): Record<string, string> {
  if (opts.replica && !svc.replicaPort) throw new Error('this postgres was started without a replica');
  return {
    PGHOST: svc.host,
    PGPORT: String(opts.replica ? svc.replicaPort : svc.port),
    PGUSER: svc.user,
    PGPASSWORD: svc.password,
    PGDATABASE: svc.database,
    PGSSLMODE: 'disable',
    PGCONNECT_TIMEOUT: '5',
  };
}

// ---------------------------------------------------------------------------
// Running things as the postgres OS user
// ---------------------------------------------------------------------------

interface OsUser {
  uid: number;
  gid: number;
}

function postgresOsUser(): OsUser | undefined {
  if (process.getuid?.() !== 0) return undefined; // not root: run the binaries as ourselves
  const line = fs
    .readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('postgres:'));
  if (!line) {
    throw new Error(`OS user "postgres" not found (PostgreSQL refuses to run as root): ${POSTGRES_INSTALL_HINT}`);
  }
  const f = line.split(':');
  return { uid: Number(f[2]), gid: Number(f[3]) };
}

/** Run a PostgreSQL binary to completion (as the postgres user when we are root). */
async function runPg(
  osUser: OsUser | undefined,
  bin: string,
  args: string[],
  opts: { cwd: string; logFile: string; what: string; env?: Record<string, string> },
): Promise<void> {
  const [file, argv] = osUser ? [requireBinary('runuser', 'apt-get install -y util-linux'), ['-u', 'postgres', '--', bin, ...args]] : [bin, args];
  const res = await execa(file, argv, {
    cwd: opts.cwd,
    env: { ...opts.env, LC_ALL: 'C' },
    reject: false,
    all: true,
    stdin: 'ignore',
  });
  fs.appendFileSync(opts.logFile, `$ ${[bin, ...args].join(' ')}\n${res.all ?? ''}\n`);
  if (res.exitCode !== 0) {
    throw startupError(opts.what, `${path.basename(bin)} exited with ${res.exitCode ?? res.signal}`, opts.logFile, false);
  }
}

function chownR(target: string, u: OsUser | undefined): void {
  if (!u) return;
  fs.chownSync(target, u.uid, u.gid);
  if (fs.statSync(target).isDirectory()) {
    for (const e of fs.readdirSync(target)) chownR(path.join(target, e), u);
  }
}

// ---------------------------------------------------------------------------
// Postmaster start / stop
// ---------------------------------------------------------------------------

function readPidFile(dataDir: string): { pid: number; status: string } | undefined {
  try {
    const lines = fs.readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n');
    const pid = Number(lines[0]);
    if (!pid) return undefined;
    return { pid, status: (lines[7] ?? '').trim() };
  } catch {
    return undefined;
  }
}

interface PortRef {
  port: number;
}

interface Postmaster {
  dataDir: string;
  /** Our child (runuser when root, else postgres itself): reaped by us, so no zombies are left. */
  proc: Spawned;
}

/** The postmaster's own pid (signals go there, not to runuser). */
function postmasterPid(pm: Postmaster): number | undefined {
  return readPidFile(pm.dataDir)?.pid;
}

/** Fast shutdown (SIGINT to the postmaster), escalating to SIGKILL; waits until our child is reaped. */
async function stopPostmaster(pm: Postmaster): Promise<void> {
  if (pm.proc.hasExited()) return;
  const pid = postmasterPid(pm);
  if (pid) await killAndWait(pid, 'SIGINT', { graceMs: 10_000 });
  const timer = setTimeout(() => pm.proc.killSync(), pid ? 2000 : 0);
  await pm.proc.exited;
  clearTimeout(timer);
}

/** Immediate shutdown (SIGQUIT) for process-exit handlers. */
function stopPostmasterSync(pm: Postmaster): void {
  if (pm.proc.hasExited()) return;
  const pid = postmasterPid(pm);
  if (pid) killAndWaitSync(pid, 'SIGQUIT', { graceMs: 2000 });
  pm.proc.killSync();
}

/**
 * Start a postmaster in the foreground as our (grand)child on `portRef.port` (picking new ports
 * on EADDRINUSE) and wait, polling every 50 ms, until postmaster.pid says "ready" and a real
 * password-authenticated TCP connection works.
 */
async function startPostmaster(
  osUser: OsUser | undefined,
  dataDir: string,
  logFile: string,
  portRef: PortRef,
  creds: { user: string; password: string; database: string },
  what: string,
  track: (pm: Postmaster) => void,
): Promise<Postmaster> {
  const postgres = pgBin('postgres');
  return withPortRetry(async (attempt) => {
    if (attempt > 0) portRef.port = await freePort();
    // A later "port =" line wins; keep appending on retries.
    fs.appendFileSync(path.join(dataDir, 'postgresql.conf'), `port = ${portRef.port}\n`);
    fs.rmSync(path.join(dataDir, 'postmaster.pid'), { force: true });
    const [file, argv] = osUser
      ? [requireBinary('runuser', 'apt-get install -y util-linux'), ['-u', 'postgres', '--', postgres, '-D', dataDir]]
      : [postgres, ['-D', dataDir]];
    const proc = spawnService(file, argv, {
      logFile,
      cwd: path.dirname(dataDir),
      env: { ...process.env, LC_ALL: 'C' },
    });
    const pm: Postmaster = { dataDir, proc };
    track(pm);
    try {
      await waitFor(
        `${what} to accept connections on ${LOOPBACK}:${portRef.port}`,
        async () => {
          const pf = readPidFile(dataDir);
          if (!pf || pf.status !== 'ready') return undefined;
          const client = new pg.Client({ host: LOOPBACK, port: portRef.port, ...creds, connectionTimeoutMillis: 2000 });
          try {
            await client.connect();
            await client.query('select 1');
          } finally {
            await client.end().catch(() => undefined);
          }
          return pf.pid;
        },
        {
          timeoutMs: 30_000,
          abortIf: () => {
            if (proc.hasExited()) throw startupError(what, 'postgres exited', logFile);
          },
        },
      );
      return pm;
    } catch (err) {
      await stopPostmaster(pm);
      if (err instanceof StartError) throw err;
      throw startupError(what, (err as Error).message, logFile);
    }
  });
}

// ---------------------------------------------------------------------------
// startPostgres
// ---------------------------------------------------------------------------

export async function startPostgres(opts: StartPostgresOptions = {}): Promise<PostgresService> {
  const t0 = performance.now();
  const initdb = pgBin('initdb');
  const osUser = postgresOsUser();
  const user = 'postgres';
  const database = 'postgres';
  const password = randomBytes(12).toString('hex');
  const replicationUser = 'replicator';
  const replicationPassword = randomBytes(12).toString('hex');
  const preload = opts.preload ?? ['pg_stat_statements'];

  const baseDir = makeTempDir('pg');
  fs.chmodSync(baseDir, 0o755);
  const dataDir = path.join(baseDir, 'primary');
  const replicaDataDir = path.join(baseDir, 'replica');
  const logFile = path.join(baseDir, 'primary.log');
  const replicaLogFile = path.join(baseDir, 'replica.log');
  const setupLog = path.join(baseDir, 'setup.log');
  const pwFile = path.join(baseDir, 'pwfile');
  fs.writeFileSync(pwFile, `${password}\n`, { mode: 0o600 });
  chownR(baseDir, osUser);

  const postmasters: Postmaster[] = []; // replica (if any) first
  const unregister = onProcessExit(() => {
    for (const pm of postmasters) stopPostmasterSync(pm);
    removeDirSync(baseDir);
  });
  const stop = once(async () => {
    unregister();
    // Replica first, then primary.
    for (const pm of [...postmasters]) await stopPostmaster(pm);
    removeDirSync(baseDir);
  });

  try {
    await runPg(
      osUser,
      initdb,
      [
        '-D',
        dataDir,
        '-U',
        user,
        '--auth-local=trust',
        '--auth-host=scram-sha-256',
        `--pwfile=${pwFile}`,
        '-E',
        'UTF8',
        '--locale=C',
        '--no-sync',
        '--no-instructions',
      ],
      { cwd: baseDir, logFile: setupLog, what: 'initdb' },
    );
    fs.rmSync(pwFile, { force: true });

    const primaryConf = [
      '',
      '# --- runbook test settings ---',
      `listen_addresses = '${LOOPBACK}'`,
      `unix_socket_directories = '${baseDir}'`,
      `shared_preload_libraries = '${preload.join(',')}'`,
      "password_encryption = 'scram-sha-256'",
      'wal_level = replica',
      'max_wal_senders = 10',
      'max_replication_slots = 10',
      'hot_standby = on',
      'fsync = off',
      'synchronous_commit = off',
      'full_page_writes = off',
      'shared_buffers = 32MB',
      'max_connections = 100',
      "cluster_name = 'primary'",
      'log_min_messages = warning',
      ...(preload.includes('pg_stat_statements') ? ['pg_stat_statements.track = all'] : []),
      ...(opts.config ?? []),
      '',
    ].join('\n');
    fs.appendFileSync(path.join(dataDir, 'postgresql.conf'), primaryConf);
    fs.writeFileSync(
      path.join(dataDir, 'pg_hba.conf'),
      [
        '# TYPE  DATABASE     USER  ADDRESS        METHOD',
        'local   all          all                  trust',
        'local   replication  all                  trust',
        `host    all          all   ${LOOPBACK}/32   scram-sha-256`,
        `host    replication  all   ${LOOPBACK}/32   scram-sha-256`,
        '',
      ].join('\n'),
    );
    chownR(dataDir, osUser);

    const primaryPort: PortRef = { port: await freePort() };
    const creds = { user, password, database };
    const track = (pm: Postmaster): void => void postmasters.unshift(pm);
    await startPostmaster(osUser, dataDir, logFile, primaryPort, creds, 'postgres primary', track);

    const admin = new pg.Client({ host: LOOPBACK, port: primaryPort.port, ...creds });
    await admin.connect();
    try {
      if (preload.includes('pg_stat_statements')) {
        await admin.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
      }
      if (opts.replica) {
        await admin.query(`CREATE ROLE ${replicationUser} WITH REPLICATION LOGIN PASSWORD '${replicationPassword}'`);
      }
    } finally {
      await admin.end();
    }

    let replicaPort: PortRef | undefined;
    if (opts.replica) {
      replicaPort = { port: await freePort() };
      await runPg(
        osUser,
        pgBin('pg_basebackup'),
        [
          '-D',
          replicaDataDir,
          '-d',
          `host=${LOOPBACK} port=${primaryPort.port} user=${replicationUser} password=${replicationPassword} application_name=replica`,
          '-R',
          '-X',
          'stream',
          '--checkpoint=fast',
          '--no-sync',
        ],
        { cwd: baseDir, logFile: setupLog, what: 'pg_basebackup' },
      );
      fs.appendFileSync(
        path.join(replicaDataDir, 'postgresql.conf'),
        ['', '# --- replica ---', "cluster_name = 'replica'", 'hot_standby_feedback = on', ''].join('\n'),
      );
      await startPostmaster(osUser, replicaDataDir, replicaLogFile, replicaPort, creds, 'postgres replica', track);
      // The primary must see the standby streaming.
      const mon = new pg.Client({ host: LOOPBACK, port: primaryPort.port, ...creds });
      await mon.connect();
      try {
        await waitFor(
          'the replica to be streaming (pg_stat_replication)',
          async () => {
            const r = await mon.query<{ state: string }>("select state from pg_stat_replication where state = 'streaming'");
            return r.rowCount ? true : undefined;
          },
          { timeoutMs: 30_000 },
        ).catch((err: unknown) => {
          throw startupError('postgres replica', (err as Error).message, replicaLogFile, false);
        });
      } finally {
        await mon.end();
      }
    }

    const port = primaryPort.port;
    const url = `postgres://${user}:${password}@${LOOPBACK}:${port}/${database}`;
    const svc: PostgresService = {
      url,
      host: LOOPBACK,
      port,
      user,
      password,
      database,
      dataDir,
      baseDir,
      logFile,
      startupMs: Math.round(performance.now() - t0),
      env: () => pgSuperuserEnv(svc),
      stop,
    };
    if (replicaPort) {
      svc.replicaPort = replicaPort.port;
      svc.replicaUrl = `postgres://${user}:${password}@${LOOPBACK}:${replicaPort.port}/${database}`;
      svc.replicaDataDir = replicaDataDir;
      svc.replicaLogFile = replicaLogFile;
      svc.replicationUser = replicationUser;
    }
    return svc;
  } catch (err) {
    await stop();
    throw err;
  }
}
