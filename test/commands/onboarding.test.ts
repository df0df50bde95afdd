// Issue 12: help, version, config mistakes explained, `config`, completion and `doctor`.
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { runCli, tempDir, REPO_ROOT } from '../support/cli.js';
import { writeConfig, twoEnvironments } from '../support/config.js';
import { FakeKube, fakeFactories } from '../support/fakes/fake-kube.js';
import { runFile } from '../support/journal-files.js';

const withSecret = () => {
  const c = twoEnvironments() as { environments: Record<string, Record<string, unknown>> };
  c.environments.staging.postgres = { url: { env: 'STAGING_DB_URL' } };
  c.environments.staging.statuspage = { url: 'https://status.example.com/v1/pages/x', token: { env: 'STATUS_TOKEN' } };
  c.environments['sandbox-protected'] = { protected: true };
  return c;
};

describe('help and version', () => {
  it('help <noun> <verb> prints the verb’s help, with the global flags and required flags marked', async () => {
    const r = await runCli(['help', 'app', 'scale']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Usage: runbook app scale');
    expect(r.stdout).toMatch(/--replicas <n>\s+desired number of replicas \(required\)/);
    expect(r.stdout).toContain('Global Options:');
    for (const flag of ['-e, --env', '--dry-run', '--yes', '--json', '--confirm']) expect(r.stdout).toContain(flag);
    expect(r.stdout).toContain('Examples:');
    const db = await runCli(['help', 'db', 'restart']);
    expect(db.stdout).toContain('Usage: runbook db restart');
    const sub = await runCli(['app', 'restart', '--help']);
    expect(sub.stdout).toContain('Global Options:');
  });

  it('help alone and help <noun> still work; nouns list their verbs', async () => {
    expect((await runCli(['help'])).stdout).toContain('Exit codes:');
    const noun = await runCli(['help', 'app']);
    expect(noun.stdout).toMatch(/scale\b/);
    expect((await runCli(['--help'])).stdout).toMatch(/app: restart, scale/);
  });

  it('version and --version print the version', async () => {
    const r = await runCli(['version']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^runbook \d+\.\d+\.\d+/);
    expect((await runCli(['--version'])).stdout).toMatch(/^\d+\.\d+\.\d+/);
    expect(JSON.parse((await runCli(['version', '--json'])).stdout).version).toMatch(/\d+\.\d+/);
  });
});

describe('config mistakes, explained (exit 2)', () => {
  it('an unknown key is named with its path and the nearest known key', async () => {
    const { dir } = writeConfig('default: s\nenvironments:\n  s:\n    kubernetes:\n      namspace: prod\n      deployment: app\n');
    const r = await runCli(['config', 'current'], { cwd: dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('environments.s.kubernetes.namspace: unknown key "namspace" (did you mean namespace?)');
    expect(r.stderr).toMatch(/hint: known keys at environments\.s\.kubernetes: .*namespace/);
  });

  it('a misspelt required key is reported once, as the unknown key', async () => {
    const { dir } = writeConfig('default: s\nenvironments:\n  s:\n    kubernetes:\n      deploymnt: app\n');
    const r = await runCli(['app', 'restart', '--dry-run=offline'], { cwd: dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('unknown key "deploymnt" (did you mean deployment?)');
    expect(r.stderr).not.toMatch(/and 1 more|received undefined/);
  });

  it('a YAML syntax error shows the line and its text', async () => {
    const { dir } = writeConfig('default: s\nenvironments:\n  s:\n    kubernetes:\n      namespace: [prod\n      deployment: app\n');
    const r = await runCli(['config', 'current'], { cwd: dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/malformed YAML in .*runbook\.yaml at line \d+, column \d+: .+: ".+"/);
    expect(r.stderr).not.toMatch(/column \d+:\s*$/m);
  });

  it('an unknown environment suggests the nearest one', async () => {
    const { dir } = writeConfig(withSecret());
    const r = await runCli(['config', 'current', '-e', 'sandbox-protectd'], { cwd: dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/unknown environment "sandbox-protectd".*did you mean sandbox-protected\?/);
  });
});

describe('runbook config', () => {
  it('current says which environment and why', async () => {
    const { dir } = writeConfig(withSecret());
    expect((await runCli(['config', 'current'], { cwd: dir })).stdout).toMatch(/^staging .*the config's "default"/);
    expect((await runCli(['config', 'current', '-e', 'production'], { cwd: dir })).stdout).toMatch(/^production \(protected\) .*-e/);
    const viaEnv = await runCli(['config', 'current', '--json'], { cwd: dir, env: { RUNBOOK_ENV: 'production' } });
    expect(JSON.parse(viaEnv.stdout)).toMatchObject({ environment: 'production', reason: '$RUNBOOK_ENV', protected: true });
  });

  it('list shows every environment and whether it is protected', async () => {
    const { dir } = writeConfig(withSecret());
    const r = await runCli(['config', 'list'], { cwd: dir });
    expect(r.stdout).toMatch(/\*\s+staging\s+unprotected, default/);
    expect(r.stdout).toMatch(/production\s+protected/);
    const j = JSON.parse((await runCli(['config', 'environments', '--json'], { cwd: dir })).stdout) as Array<{ name: string; protected: boolean }>;
    expect(j.map((e) => e.name)).toEqual(['staging', 'production', 'sandbox-protected']);
  });

  it('view shows the resolved environment with secrets as references, never their values', async () => {
    const { dir } = writeConfig(withSecret());
    const r = await runCli(['config', 'view'], { cwd: dir, env: { STAGING_DB_URL: 'postgres://u:hunter22@db/x', STATUS_TOKEN: 'sekrit-token' } });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('environment: staging');
    expect(r.stdout).toMatch(/env: STAGING_DB_URL/);
    expect(r.stdout).toMatch(/env: STATUS_TOKEN/);
    expect(r.stdout).toContain('maxReplicas: 20');
    expect(r.stdout).not.toMatch(/hunter22|sekrit/);
    const j = JSON.parse((await runCli(['config', 'view', 'production', '--json'], { cwd: dir })).stdout);
    expect(j).toMatchObject({ environment: 'production', protected: true });
  });

  it('path shows the file in use and the search order', async () => {
    const { dir, path } = writeConfig(withSecret());
    const r = await runCli(['config', 'path'], { cwd: dir });
    expect(r.stdout).toContain(`config: ${path}`);
    expect(r.stdout).toMatch(/\.\/runbook\.yaml\s+.*← in use/);
    expect(r.stdout).toContain('$XDG_CONFIG_HOME/runbook/config.yaml');
  });

  it('works without a config (the built-in example) and says so', async () => {
    const r = await runCli(['config', 'current']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^example/);
    expect(r.stderr).toContain('no config file found');
    expect((await runCli(['config', 'path'])).stdout).toMatch(/config: none found.*built-in "example"/);
    expect((await runCli(['config', 'list'])).stdout).toMatch(/example\s+protected/);
  });
});

describe('completion', () => {
  const complete = async (words: string[], cwd?: string, env: Record<string, string> = {}) =>
    (await runCli(['__complete', ...words], { cwd, env })).stdout.split('\n').filter(Boolean);

  it('completes nouns, verbs, flags, environments and run ids', async () => {
    const { dir } = writeConfig(withSecret());
    expect(await complete(['a'])).toEqual(expect.arrayContaining(['app']));
    expect(await complete([''])).toEqual(expect.arrayContaining(['app', 'db', 'config', 'doctor', 'completion']));
    expect(await complete(['app', 'sc'])).toEqual(['scale', 'scaling']);
    expect(await complete(['app', 'env', ''])).toEqual(['set', 'unset']);
    expect(await complete(['app', 'scale', '--re'])).toEqual(['--replicas']);
    expect(await complete(['app', 'scale', '--j'])).toEqual(['--json']);
    expect(await complete(['app', 'restart', '-e', ''], dir)).toEqual(['staging', 'production', 'sandbox-protected']);
    expect(await complete(['config', ''])).toEqual(expect.arrayContaining(['current', 'list', 'view', 'path']));
    expect(await complete(['completion', ''])).toEqual(['bash', 'zsh', 'fish']);
    expect(await complete(['app', 'restart', '--dry-run', '=', 'of'])).toEqual(['offline']);
    expect(await complete(['app', 'restart', '--dry-run=o'])).toEqual(['--dry-run=offline']);
    const journal = tempDir('journal-');
    // A run in its day folder, and a file an older build left in runs/ itself.
    const dayFile = runFile(journal, '20260102T000000-beef');
    mkdirSync(dirname(dayFile), { recursive: true });
    writeFileSync(dayFile, '');
    writeFileSync(join(journal, 'runs', '20260101-000000-abcd.ndjson'), '');
    expect(await complete(['show', ''], dir, { RUNBOOK_JOURNAL_DIR: journal })).toEqual(['20260102T000000-beef', '20260101-000000-abcd']);
  });

  it('prints a script for each shell, and the bash one completes in bash', async () => {
    for (const shell of ['bash', 'zsh', 'fish']) {
      const r = await runCli(['completion', shell]);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain('__complete');
    }
    expect((await runCli(['completion', 'tcsh'])).code).toBe(2);
    const script = (await runCli(['completion', 'bash'])).stdout;
    // A stand-in `runbook` that answers as `runbook __complete` would, so the script's own logic is what is tested.
    const bin = tempDir('bin-');
    const answers = (await runCli(['__complete', 'app', 'sc'])).stdout;
    writeFileSync(join(bin, 'runbook'), `#!/bin/sh\n[ "$1" = __complete ] && [ "$2" = app ] && [ "$3" = sc ] && printf '${answers.replace(/\n/g, '\\n')}'\n`);
    chmodSync(join(bin, 'runbook'), 0o755);
    const file = join(bin, 'completion.bash');
    writeFileSync(file, script);
    const out = execFileSync('bash', ['-c', `source ${file}; COMP_WORDS=(runbook app sc); COMP_CWORD=2; _runbook; printf '%s\\n' "\${COMPREPLY[@]}"`], {
      env: { PATH: `${bin}:${process.env.PATH}` },
      cwd: REPO_ROOT,
    }).toString();
    expect(out.split('\n').filter(Boolean)).toEqual(['scale', 'scaling']);
  });
});

describe('doctor', () => {
  it('checks config, environment, secrets, kubeconfig and journal; exit 4 when one fails', async () => {
    const { dir } = writeConfig(withSecret());
    const kubeconfig = join(tempDir('kube-'), 'config');
    writeFileSync(kubeconfig, 'apiVersion: v1\ncurrent-context: sandbox\ncontexts:\n  - name: sandbox\n    context: { cluster: c }\n');
    const r = await runCli(['doctor'], { cwd: dir, env: { KUBECONFIG: kubeconfig, STATUS_TOKEN: 'x' } });
    expect(r.code).toBe(4);
    expect(r.stdout).toMatch(/✔ config\s+.*runbook\.yaml is valid/);
    expect(r.stdout).toMatch(/✔ environment\s+staging/);
    expect(r.stdout).toMatch(/✖ secret\s+environments\.staging\.postgres\.url: \$STAGING_DB_URL is not set/);
    expect(r.stdout).toMatch(/fix: export STAGING_DB_URL=/);
    expect(r.stdout).toMatch(/✔ kubeconfig\s+context sandbox/);
    expect(r.stdout).toMatch(/✔ journal/);
    const ok = await runCli(['doctor', '--json'], { cwd: dir, env: { KUBECONFIG: kubeconfig, STATUS_TOKEN: 'x', STAGING_DB_URL: 'postgres://db/x' } });
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ ok: true, environment: 'staging' });
  });

  it('reports an invalid config as a failed check, and --online reaches the services through the client factories', async () => {
    const bad = writeConfig('environments:\n  s:\n    protectd: true\n');
    const r = await runCli(['doctor'], { cwd: bad.dir });
    expect(r.code).toBe(4);
    expect(r.stdout).toMatch(/✖ config\s+.*did you mean protected\?/);

    const { dir } = writeConfig(twoEnvironments());
    const kubeconfig = join(tempDir('kube-'), 'config');
    writeFileSync(kubeconfig, 'current-context: sandbox\ncontexts:\n  - name: sandbox\n');
    const online = await runCli(['doctor', '--online'], { cwd: dir, env: { KUBECONFIG: kubeconfig }, clientFactories: fakeFactories(new FakeKube(2)) });
    expect(online.stdout).toMatch(/✔ kubernetes\s+.*deployment app/);
    expect(online.code).toBe(0);
  });

  it('--online reports each service that does not answer, with a fix, and exits 4', async () => {
    const c = twoEnvironments() as { environments: Record<string, Record<string, unknown>> };
    c.environments.staging.postgres = { url: 'postgres://db.internal:5432/app' };
    c.environments.staging.health = { url: 'http://health.invalid/health' };
    const { dir } = writeConfig(c);
    const kubeconfig = join(tempDir('kube-'), 'config');
    writeFileSync(kubeconfig, 'current-context: sandbox\ncontexts:\n  - name: sandbox\n');
    const queries: string[] = [];
    const factories = {
      ...fakeFactories(new FakeKube(2)),
      postgres: async () => ({
        target: 'db.internal:5432/app',
        query: async <R>(sql: string) => {
          queries.push(sql);
          return [] as R[];
        },
        close: async () => undefined,
      }),
      http: { request: async () => ({ status: 503, headers: {}, text: 'down' }) },
    };
    const r = await runCli(['doctor', '--online', '--json'], { cwd: dir, env: { KUBECONFIG: kubeconfig }, clientFactories: factories });
    expect(r.code).toBe(4);
    const checks = (JSON.parse(r.stdout) as { checks: Array<{ name: string; ok: boolean; detail: string; fix?: string }> }).checks;
    expect(checks.find((k) => k.name === 'postgres')).toMatchObject({ ok: true, detail: 'db.internal:5432/app: answered' });
    expect(queries).toEqual(['SELECT current_user AS role']);
    expect(checks.find((k) => k.name === 'health')).toMatchObject({
      ok: false,
      detail: 'http://health.invalid/health: HTTP 503',
      fix: 'curl -i http://health.invalid/health',
    });
  });
});

describe('startup cost', () => {
  /** Runs the CLI from src in a child process, recording every module it loads. */
  const traced = (args: string[], cwd: string) => {
    const trace = join(tempDir('trace-'), 'imports.txt');
    const code = `import(${JSON.stringify(join(REPO_ROOT, 'src', 'main.ts'))}).then(async (m) => { process.exitCode = await m.run(process.argv.slice(1)); })`;
    try {
      execFileSync(process.execPath, ['--import', 'tsx', '--import', join(REPO_ROOT, 'test/support/trace-imports.mjs'), '-e', code, '--', ...args], {
        cwd: REPO_ROOT,
        env: { ...process.env, TRACE_IMPORTS_FILE: trace, RUNBOOK_CONFIG: join(cwd, 'runbook.yaml'), RUNBOOK_JOURNAL_DIR: tempDir('journal-'), NO_COLOR: '1' },
        stdio: 'pipe',
      });
    } catch {
      // doctor exits 4 here (no kubeconfig): only what it loaded matters
    }
    return readFileSync(trace, 'utf8');
  };
  const SDK = /node_modules\/(@kubernetes\/|@aws-sdk\/|@smithy\/|pg\/|ioredis\/|execa\/)/;

  it('doctor without --online, config and __complete load no SDK', () => {
    const { dir } = writeConfig(withSecret());
    for (const args of [['doctor'], ['config', 'view'], ['__complete', 'app', 'scale', '--']]) {
      const loaded = traced(args, dir);
      expect(loaded).toContain('src/main.ts');
      expect(loaded.split('\n').filter((u) => SDK.test(u))).toEqual([]);
    }
  });
});

describe('global flags before the noun', () => {
  it('-n offline app restart is an offline dry run of app restart', async () => {
    const r = await runCli(['-n', 'offline', 'app', 'restart']);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('DRY RUN');
  });

  it('-n production (kubectl habit) says the namespace comes from -e', async () => {
    const r = await runCli(['app', 'restart', '-n', 'production']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('-n is --dry-run, not a namespace');
    expect(r.stderr).toMatch(/hint: the namespace comes from the environment: choose it with -e/);
  });

  it('help for an unknown command is a usage error with a suggestion', async () => {
    const r = await runCli(['help', 'ap']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/unknown command 'ap'[\s\S]*Did you mean app\?/);
  });
});
