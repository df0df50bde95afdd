// The Kubernetes client's exec and port-forward (over WebSocket, through the API server and the fault
// proxy) against the real control plane: kwok runs a pod's exec as a local process and forwards a
// pod's port to a local server, so exit codes, binary streams and forwarded HTTP/WebSocket are real.
import { startControlPlane } from '../../support/cluster/control-plane.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KubeClient } from '../../../src/clients/kube.js';
import { createKubeClient } from '../../../src/clients/kube-adapter.js';
import { tempDir } from '../../support/cli.js';
import { startKube, type KubeHarness, type Pod } from '../../support/cluster/index.js';

let kube: KubeHarness;
let client: KubeClient;
let pod: string;
let dir: string;
let http: Server;
const children: ChildProcess[] = [];

beforeAll(async () => {
  // A control plane of its own: kwok serves exec and port-forward for every node of a shared one, and
  // other files' node churn there made its exec answers fail under load.
  kube = await startKube({ namespace: 'kube-streams', nodes: 1, controlPlane: await startControlPlane() });
  dir = tempDir('kube-streams-');
  await kube.writeKubeconfig(join(dir, 'kubeconfig'));
  client = await createKubeClient({ kubeconfig: join(dir, 'kubeconfig'), namespace: kube.namespace }, {});
  await kube.seedDeployment({ name: 'app', replicas: 1 });
  pod = (await kube.list<Pod>('pods', { namespace: kube.namespace }))[0]!.metadata.name;
  mkdirSync(join(dir, 'work'));
  await kube.enableExec(pod, { workDir: join(dir, 'work'), env: { GREETING: 'hello' } });
  http = createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ path: req.url, host: req.headers.host }));
  });
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', () => r()));
  await kube.enablePortForward(pod, { port: (http.address() as AddressInfo).port }, { ports: [8080] });
}, 120_000);

afterAll(async () => {
  for (const c of children) c.kill('SIGKILL');
  http?.close();
  await kube?.close();
});

describe('exec into a container', () => {
  it('runs an argument array, returns stdout, stderr and the exit code', async () => {
    const ok = await client.execInPod!(pod, 'app', ['sh', '-c', 'echo "$GREETING from $(pwd)"; echo oops >&2']);
    expect(ok.exitCode).toBe(0);
    expect(ok.stdout.toString()).toBe(`hello from ${join(dir, 'work')}\n`);
    expect(ok.stderr).toBe('oops\n');
    const bad = await client.execInPod!(pod, 'app', ['sh', '-c', 'exit 3']);
    expect(bad.exitCode).toBe(3);
    expect(bad.error).toMatch(/exit status 3/);
  });

  it('streams binary stdout byte for byte', async () => {
    const data = randomBytes(5 * 1024 * 1024 + 17);
    writeFileSync(join(dir, 'work', 'blob.bin'), data);
    const out = new PassThrough();
    const hash = createHash('sha256');
    out.on('data', (c: Buffer) => hash.update(c));
    const r = await client.execInPod!(pod, 'app', ['cat', 'blob.bin'], { stdout: out });
    expect(r.exitCode).toBe(0);
    expect(r.bytes).toBe(data.length);
    expect(hash.digest('hex')).toBe(createHash('sha256').update(data).digest('hex'));
  });

  it("an unknown container is the API server's one-line error", async () => {
    await expect(client.execInPod!(pod, 'nope', ['true'])).rejects.toThrow(/container nope is not valid|not found|nope/);
  });

  it('an abort closes the stream and rejects with the reason', async () => {
    const ctl = new AbortController();
    setTimeout(() => ctl.abort(new Error('stop')), 300);
    await expect(client.execInPod!(pod, 'app', ['sleep', '20'], { signal: ctl.signal })).rejects.toThrow('stop');
  });
});

describe('port-forward to a pod', () => {
  it('HTTP GET over the forwarded connection', async () => {
    const pf = await client.portForward!(pod, 8080);
    const r = await pf.httpGet('/json/list');
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toEqual({ path: '/json/list', host: '127.0.0.1:8080' });
  });

  it('a WebSocket over the forwarded connection (a real node inspector)', async () => {
    const port = await new Promise<number>((resolve) => {
      const s = createServer();
      s.listen(0, '127.0.0.1', () => {
        const p = (s.address() as AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    const child = spawn(process.execPath, [`--inspect=127.0.0.1:${port}`, '-e', 'setInterval(() => {}, 1000)'], { stdio: ['ignore', 'ignore', 'pipe'] });
    children.push(child);
    await new Promise<void>((resolve) => child.stderr!.on('data', (d: Buffer) => d.toString().includes('Debugger listening') && resolve()));
    await kube.enablePortForward(pod, { port }, { ports: [9229] });
    const pf = await client.portForward!(pod, 9229);
    const list = JSON.parse((await pf.httpGet('/json/list')).body) as Array<{ webSocketDebuggerUrl: string }>;
    const path = new URL(list[0]!.webSocketDebuggerUrl).pathname;
    const ws = await pf.webSocket(path);
    const answer = new Promise<string>((resolve) => ws.onMessage(resolve));
    ws.send(JSON.stringify({ id: 1, method: 'Runtime.evaluate', params: { expression: '6 * 7', returnByValue: true } }));
    expect(JSON.parse(await answer)).toMatchObject({ id: 1, result: { result: { value: 42 } } });
    ws.close();
    expect(await ws.closed).toMatch(/closed/);
  });
});
