// Which environment answered: read commands print one target line on stderr (not with --quiet or --json);
// changes print the full banner always; runs that read only local data print no progress at all.
import { describe, expect, it } from 'vitest';
import { runCli, tempDir } from '../support/cli.js';
import { twoEnvironments, writeConfig } from '../support/config.js';
import { FakeKube, fakeFactories } from '../support/fakes/fake-kube.js';

describe('the target banner', () => {
  const setup = () => {
    const { dir } = writeConfig(twoEnvironments());
    return { cwd: dir, clientFactories: fakeFactories(new FakeKube(3)), env: { RUNBOOK_JOURNAL_DIR: tempDir() } };
  };

  it('a read command names the environment, context and namespace in one line on stderr', async () => {
    const opts = setup();
    const r = await runCli(['app', 'scaling'], opts);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stderr.split('\n').filter((l) => l.startsWith('▶'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toBe('▶ runbook app scaling → staging · kube (current context) ns/production deploy/app');
    expect(r.stdout).not.toContain('▶');
    const prod = await runCli(['app', 'scaling', '-e', 'production'], opts);
    expect(prod.stderr).toMatch(/▶ runbook app scaling → production \(PROTECTED\) · kube/);
  });

  it('is left out with --quiet and with --json', async () => {
    const opts = setup();
    expect((await runCli(['app', 'scaling', '--quiet'], opts)).stderr).not.toContain('▶');
    const json = await runCli(['app', 'scaling', '--json'], opts);
    expect(json.code).toBe(0);
    expect(json.stderr).not.toContain('▶');
  });

  it('a change still shows the full banner, even with --quiet', async () => {
    const r = await runCli(['app', 'scale', '--replicas', '4', '--quiet'], setup());
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/^▶ runbook app scale → staging$/m);
    expect(r.stderr).toMatch(/^ {2}kube /m);
  });
});
