// The pure parts of pod heap-dump, pod gc and pod memory --watch: what the container's tools print
// (discovery, jcmd, df, /proc/net/tcp), the process choice, the tar stream, the snapshot check and
// the growth rate. The real thing runs in heap-dump.int.test.ts and leak-signals.int.test.ts.
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import {
  chooseProcess,
  commandSummary,
  decodeAddress,
  parseDfAvailable,
  parseDiscovery,
  parseHeapDumpDone,
  parseHeapInfo,
  parseListeners,
  parseListening,
  type Discovery,
  type FoundProcess,
} from '../../../src/procedures/pod/runtime.js';
import { inspectAddress, pauseEstimate, roomFor } from '../../../src/procedures/pod/process-steps.js';
import { TarFileExtractor } from '../../../src/procedures/pod/tar.js';
import { checkHeapSnapshot } from '../../../src/procedures/pod/inspector.js';
import { growthOf, rate, slopePerMinute, type Sample } from '../../../src/procedures/pod/memory.js';
import { diagnose, inspectPod } from '../../../src/procedures/pod/diagnosis.js';

const c = { pod: 'app-1', container: 'api' };

function proc(pid: number, kind: string, same: 0 | 1, exe: string, argv: string[], extra = ''): string {
  return `@@proc ${pid} ${kind} ${same} ${exe}\n@@cmdline\n${argv.join('\0')}\0\n@@status\nName:\tx\nPPid:\t1\nUid:\t1000\t1000\t1000\t1000\nVmRSS:\t  204800 kB\n${extra}`;
}

describe('discovery output', () => {
  const text = [
    '@@tmp /tmp',
    '@@uid 1000',
    '@@tool tar /bin/tar',
    '@@tool df /bin/df',
    proc(1, 'jvm', 1, '/opt/java/bin/java', [
      '/opt/java/bin/java',
      '-Xmx1g',
      '-cp',
      '/app/lib/*',
      '-Ddb.password=hunter2',
      'com.example.Main',
      '--port',
      '8080',
    ]),
    '@@jvmtool 1 jcmd /opt/java/bin/jcmd',
    proc(40, 'node', 1, '/usr/bin/node', ['npm start']),
    '@@nodeoptions NODE_OPTIONS=--max-old-space-size=512 --inspect-port=127.0.0.1:9339',
    '@@sockets socket:[111] socket:[222]',
    '@@tcp',
    '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode',
    '   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 111 1 0000000000000000 100 0 0 10 0',
    '   1: 0100007F:2405 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 999 1 0000000000000000 100 0 0 10 0',
    proc(41, 'node', 0, '/usr/bin/node', ['node', '--require', 'dd-trace/init', 'server.js', '--secret=x']),
    '@@sockets',
    '@@tcp',
    '@@end',
  ].join('\n');

  it('reads the temp dir, the tools, each process without its other arguments, and its listening sockets', () => {
    const d = parseDiscovery(text);
    expect(d).toMatchObject({
      tmpDir: '/tmp',
      uid: 1000,
      tools: { tar: '/bin/tar', df: '/bin/df' },
      jvmTools: { 1: { jcmd: '/opt/java/bin/jcmd' } },
      complete: true,
    });
    expect(d.processes.map((p) => [p.pid, p.runtime, p.sameContainer, p.command, p.launcher, p.rssBytes])).toEqual([
      [1, 'jvm', true, 'java com.example.Main', false, 204800 * 1024],
      [40, 'node', true, 'npm start', true, 204800 * 1024],
      [41, 'node', false, 'node server.js', false, 204800 * 1024],
    ]);
    expect(JSON.stringify(d)).not.toContain('hunter2');
    expect(d.processes[1]).toMatchObject({ listening: [{ address: '0.0.0.0', port: 8080 }], inspectFlags: ['--inspect-port=127.0.0.1:9339'] });
  });

  it('chooses the only application process of the container: launchers, JDK tools and other containers do not count', () => {
    const d = parseDiscovery(text);
    expect(chooseProcess(d, c, undefined).pid).toBe(1);
    expect(chooseProcess(d, c, 41).pid).toBe(41);
    const two: Discovery = { ...d, processes: d.processes.map((p): FoundProcess => ({ ...p, sameContainer: true, launcher: false })) };
    expect(() => chooseProcess(two, c, undefined)).toThrow(
      /3 Java\/Node\.js processes in container api of pod app-1: 1 \(java com\.example\.Main\), 40 \(npm start\), 41 \(node server\.js\); not guessing which/,
    );
    expect(() => chooseProcess(d, c, 7)).toThrow(/no Java or Node\.js process with pid 7 in container api of pod app-1/);
    expect(() => chooseProcess({ ...d, processes: [] }, c, undefined)).toThrow(/no Java or Node\.js process found in container api/);
    const jcmd = parseDiscovery(
      `${proc(9, 'jvm', 1, '/opt/java/bin/java', ['/opt/java/bin/java', '-Dapplication.home=/opt/java', 'jdk.jcmd/sun.tools.jcmd.JCmd', '-l'])}\n${proc(1, 'jvm', 1, '/opt/java/bin/java', ['java', '-jar', '/app.jar'])}\n@@end\n`,
    );
    expect(chooseProcess(jcmd, c, undefined)).toMatchObject({ pid: 1, command: 'java -jar /app.jar' });
  });

  it('an output cut short is noticed', () => {
    expect(parseDiscovery('@@tmp /tmp\n').complete).toBe(false);
  });

  it.each([
    [['java', '-jar', 'app.jar', '--password=x'], 'jvm', 'java -jar app.jar'],
    [['/usr/bin/java', '-Xms1g', '-classpath', 'a:b', 'Main'], 'jvm', 'java Main'],
    [['java', '-m', 'mod/app.Main'], 'jvm', 'java -m mod/app.Main'],
    [['node', '--inspect', '-r', 'x', 'dist/server.js', 'token'], 'node', 'node dist/server.js'],
    [['node', '-e', 'secret()'], 'node', 'node -e …'],
    [['node'], 'node', 'node'],
  ] as const)('commandSummary(%j) = %s', (argv, runtime, want) => {
    expect(commandSummary([...argv], runtime)).toBe(want);
  });
});

describe('sockets from /proc/<pid>/net/tcp', () => {
  it('decodes IPv4 and IPv6 addresses', () => {
    expect(decodeAddress('0100007F')).toBe('127.0.0.1');
    expect(decodeAddress('00000000')).toBe('0.0.0.0');
    expect(decodeAddress('00000000000000000000000001000000')).toBe('::1');
    expect(decodeAddress('0000000000000000FFFF00000100007F')).toBe('127.0.0.1');
  });

  it('keeps the listening sockets of the process only', () => {
    const tcp = [
      '   0: 0100007F:2405 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5 1',
      '   1: 0100007F:2405 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 6 1',
      '   2: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 7 1',
    ].join('\n');
    expect(parseListeners(tcp, new Set(['5', '6']))).toEqual([{ address: '127.0.0.1', port: 9221 }]);
    expect(parseListening(`@@sockets socket:[7]\n@@tcp\n${tcp}\n@@end\n`)).toEqual([{ address: '127.0.0.1', port: 8080 }]);
    expect(parseListening('@@gone\n')).toBeNull();
  });

  it('where SIGUSR1 opens the inspector: 127.0.0.1:9229 unless --inspect-port says otherwise', () => {
    expect(inspectAddress([])).toEqual({ host: '127.0.0.1', port: 9229 });
    expect(inspectAddress(['--inspect-port=9339'])).toEqual({ host: '127.0.0.1', port: 9339 });
    expect(inspectAddress(['--inspect-port=0.0.0.0:9229'])).toEqual({ host: '0.0.0.0', port: 9229 });
    expect(inspectAddress(['--inspect=[::1]:9400'])).toEqual({ host: '::1', port: 9400 });
  });
});

describe('what the JVM tools print', () => {
  it.each([
    [
      ' garbage-first heap   total 1191936K, used 90036K [0x0000000687400000, 0x0000000800000000)\n  region size 4096K\n Metaspace       used 78K, committed 320K',
      90036 * 1024,
      'garbage-first heap',
    ],
    [
      ' PSYoungGen      total 76288K, used 3932K [0x…)\n ParOldGen       total 175104K, used 8192K [0x…)\n Metaspace       used 3000K',
      (3932 + 8192) * 1024,
      'PSYoungGen + ParOldGen',
    ],
    [
      ' def new generation   total 4928K, used 1024K [0x…)\n tenured generation   total 10944K, used 2048K [0x…)',
      3072 * 1024,
      'def new generation + tenured generation',
    ],
    [' ZHeap           used 8M, capacity 48M, max capacity 4096M\n Metaspace       used 700K', 8 * 2 ** 20, 'ZHeap'],
    ['Shenandoah Heap\n 4096M max, 4096M soft max, 256M committed, 12345K used', 12345 * 1024, 'Shenandoah'],
  ])('GC.heap_info: %#', (text, used, collector) => {
    expect(parseHeapInfo(text)).toMatchObject({ used, collector });
  });

  it('nothing usable is null', () => expect(parseHeapInfo('123:\nCommand executed successfully')).toBeNull());

  it('df -P -k: the available column, also when a long device name wraps the line', () => {
    expect(parseDfAvailable('Filesystem 1024-blocks Used Available Capacity Mounted on\noverlay 102400 2048 100352 2% /\n')).toBe(100352 * 1024);
    expect(
      parseDfAvailable('Filesystem 1024-blocks Used Available Capacity Mounted on\n/dev/mapper/very-long-volume-group-name\n 102400 2048 5000 2% /tmp\n'),
    ).toBe(5000 * 1024);
    expect(parseDfAvailable('df: /nope: No such file or directory\n')).toBeNull();
  });

  it('the heap dump result line', () => {
    expect(parseHeapDumpDone('1:\nDumping heap to /tmp/x.hprof ...\nHeap dump file created [70304254 bytes in 0.416 secs]\n')).toEqual({
      bytes: 70304254,
      seconds: 0.416,
    });
  });

  it('room and pause estimates grow with the heap', () => {
    expect(roomFor(100 * 2 ** 20)).toBe(Math.ceil(120 * 2 ** 20 + 64 * 2 ** 20));
    expect(pauseEstimate('jvm', 'dump', 1500 * 2 ** 20)).toBeCloseTo(10.2, 1);
    expect(pauseEstimate('node', 'dump', 120 * 2 ** 20)).toBeGreaterThan(pauseEstimate('jvm', 'dump', 120 * 2 ** 20));
  });
});

describe('the tar stream of the copy', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tar-'));
  const extract = (stream: Readable) =>
    new Promise<{ data: Buffer; x: TarFileExtractor }>((resolve, reject) => {
      const x = new TarFileExtractor();
      const chunks: Buffer[] = [];
      stream.pipe(x);
      x.on('data', (d: Buffer) => chunks.push(d));
      x.on('end', () => resolve({ data: Buffer.concat(chunks), x }));
      x.on('error', reject);
    });

  it.each(['ustar', 'gnu', 'pax'])('passes on exactly the file of a %s archive', async (format) => {
    const name = `runbook-heap-1-${'x'.repeat(format === 'ustar' ? 10 : 120)}.hprof`;
    const content = Buffer.concat([Buffer.from('JAVA PROFILE 1.0.2\0'), Buffer.alloc(200_003, 0xab)]);
    writeFileSync(join(dir, name), content);
    const tar = spawn('tar', [`--format=${format}`, '-cf', '-', '-C', dir, name]);
    const { data, x } = await extract(tar.stdout);
    expect(x.size).toBe(content.length);
    expect(data.equals(content)).toBe(true);
  });

  it('a stream cut short fails: a partial copy is never complete', async () => {
    writeFileSync(join(dir, 'cut.hprof'), Buffer.alloc(100_000, 1));
    const tar = spawn('sh', ['-c', `tar -cf - -C ${dir} cut.hprof | head -c 50000`]);
    await expect(extract(tar.stdout)).rejects.toThrow(/ended \d+ bytes before the end of the file/);
    await expect(extract(Readable.from([Buffer.alloc(100)]))).rejects.toThrow(/before the file's header/);
  });
});

describe('the heap snapshot check', () => {
  const snap = (nodes: number[], edges: number[], nodeCount: number) =>
    JSON.stringify({
      snapshot: { meta: { node_fields: ['type', 'name'], edge_fields: ['type'] }, node_count: nodeCount, edge_count: edges.length },
      nodes,
      edges,
      strings: [],
    });

  it('counts nodes and edges against the header', () => {
    const text = snap([1, 2, 3, 4], [5, 6, 7], 2);
    expect(checkHeapSnapshot(text, text)).toEqual({ nodes: 2, edges: 3, parsed: 'full' });
    expect(() => checkHeapSnapshot(snap([1, 2], [5], 2), '')).toThrow(/incomplete: 1 nodes, its header says 2/);
    expect(() => checkHeapSnapshot('{"snapshot":{', '')).toThrow(/not valid JSON/);
  });

  it('a file too large to parse here has its header checked', () => {
    const head = '{"snapshot":{"meta":{"node_fields":["type"]},"node_count":12,"edge_count":34,"trace_function_count":0},\n"nodes":[';
    expect(checkHeapSnapshot(null, head, false)).toEqual({ nodes: 12, edges: 34, parsed: 'header' });
    expect(() => checkHeapSnapshot(null, '{"a":1}', false)).toThrow(/does not start like a heap snapshot/);
  });
});

describe('memory growth (pod memory --watch)', () => {
  const Mi = 2 ** 20;
  const series = (values: Array<[number, number | null, number?, string?]>): Sample[] =>
    values.map(([s, mem, restarts = 0, reason]) => ({ at: s * 1000, memory: mem === null ? null : mem * Mi, restarts, reason, limit: 512 * Mi }));

  it('least-squares slope per minute', () => {
    expect(
      slopePerMinute([
        { at: 0, memory: 0 },
        { at: 60_000, memory: 10 * Mi },
        { at: 120_000, memory: 20 * Mi },
      ]),
    ).toBeCloseTo(10 * Mi, 0);
    expect(slopePerMinute([{ at: 0, memory: 5 }])).toBeNull();
  });

  it('rate, the time to the limit, and a restart (OOMKilled) starting the trend again', () => {
    const g = growthOf(
      new Map([
        [
          'a/api',
          series([
            [0, 100],
            [60, 110],
            [120, 120],
          ]),
        ],
        [
          'b/api',
          series([
            [0, 200],
            [60, 200],
            [120, 200],
          ]),
        ],
        [
          'c/api',
          series([
            [0, 500],
            [60, 100, 1, 'OOMKilled'],
            [120, 130, 1, 'OOMKilled'],
          ]),
        ],
        [
          'd/api',
          series([
            [0, null],
            [60, null],
          ]),
        ],
      ]),
    );
    expect(g.map((x) => `${x.pod} ${rate(x.perMinute)}`)).toEqual(['c +30Mi/min', 'a +10Mi/min', 'b steady', 'd -']);
    const a = g.find((x) => x.pod === 'a')!;
    expect(a).toMatchObject({ first: 100 * Mi, last: 120 * Mi, pctOfLimit: 23.4, restarts: 0, samples: 3 });
    expect(a.toLimitMs).toBe(Math.round(((512 - 120) / 10) * 60_000));
    expect(g.find((x) => x.pod === 'c')).toMatchObject({ restarts: 1, lastRestartReason: 'OOMKilled', first: 500 * Mi, last: 130 * Mi });
    expect(rate(-5 * Mi)).toBe('-5Mi/min');
    expect(rate(10 * Mi, 'h')).toBe('+600Mi/h');
    expect(rate(30 * Mi, 'h')).toBe('+1.8Gi/h');
  });
});

describe('pod diagnose: OOM kills', () => {
  const now = new Date('2026-01-01T12:00:00Z');
  const oomPod = (limit?: string) =>
    inspectPod(
      {
        metadata: { name: 'app-1', uid: 'u1' },
        spec: { containers: [{ name: 'api', image: 'api:1', resources: limit ? { limits: { memory: limit } } : {} }] },
        status: {
          phase: 'Running',
          conditions: [{ type: 'Ready', status: 'True' }],
          containerStatuses: [
            {
              name: 'api',
              ready: true,
              restartCount: 2,
              image: '',
              imageID: '',
              state: { running: {} },
              lastState: { terminated: { exitCode: 137, reason: 'OOMKilled' } },
            },
          ],
        },
      },
      now,
    );

  it('a restarted container names the OOM kill and its memory at the time (the limit), and now', () => {
    const usage = {
      available: true,
      containers: [
        {
          pod: 'app-1',
          container: 'api',
          cpu: 0.01,
          memory: 300 * 2 ** 20,
          cpuRequest: null,
          cpuLimit: null,
          memoryRequest: null,
          memoryLimit: 512 * 2 ** 20,
          memoryPctOfLimit: 58.6,
          cpuPctOfLimit: null,
        },
      ],
    };
    const f = diagnose({ namespace: 'ns', pods: [oomPod('512Mi')], events: {}, logs: [], usage, references: [], threshold: 90 });
    expect(f[0]).toMatchObject({ severity: 'warning', problem: 'container api was OOMKilled: 2 restart(s); last exit code 137 (OOMKilled)' });
    expect(f[0].cause).toBe(
      'killed for exceeding its memory limit (OOMKilled, exit code 137); it was killed at its memory limit of 512Mi (its memory at the time); 300Mi now (58.6% of the limit), since its restart',
    );
    expect(f[0].next).toEqual(
      expect.arrayContaining(['runbook pod heap-dump app-1 --container api', 'runbook pod memory --containers --watch  (a leak grows between restarts)']),
    );
    const nolimit = diagnose({ namespace: 'ns', pods: [oomPod()], events: {}, logs: [], references: [], threshold: 90 });
    expect(nolimit[0].cause).toMatch(/no memory limit: the node ran out of memory \(its memory at the time is not recorded\)$/);
  });
});
