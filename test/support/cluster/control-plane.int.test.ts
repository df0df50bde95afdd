/** The test control plane itself, driven by the real kubectl through the harness: pods run, logs and exec come from kwok, fault stages hold, metrics are served. */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startKube, type KubeHarness } from './index.js';
import type { Pod } from './types.js';
let kube: KubeHarness;
beforeAll(async () => {
  kube = await startKube({ namespace: 'smoke' });
}, 120_000);
afterAll(async () => {
  await kube?.close();
});
it('runs a deployment, logs and kubectl through the proxy', async () => {
  await kube.seedDeployment({ name: 'app', replicas: 2 });
  const pods = await kube.list<Pod>('pods', { namespace: kube.namespace });
  expect(pods.length).toBe(2);
  // Pinned to this harness's nodes: other test files delete theirs while these run.
  for (const p of pods) expect(kube.nodes).toContain(p.spec.nodeName);
  await kube.setPodLogs(pods[0]!.metadata.name, ['hello', 'ERROR boom']);
  const r = await kube.kubectl(['logs', pods[0]!.metadata.name]);
  expect(r.stdout).toContain('ERROR boom');
  const s = await kube.kubectl(['scale', 'deploy/app', '--replicas=3']);
  expect(s.code).toBe(0);
  await kube.waitForRollout('app');
  expect(kube.mutations().some((m) => m.path.endsWith('/scale'))).toBe(true);
  await kube.failPods('never-ready');
  await kube.kubectl(['rollout', 'restart', 'deploy/app']);
  await new Promise((r) => setTimeout(r, 2000));
  expect(await kube.rolloutComplete('app')).toBe(false);
  await kube.failPods(undefined);
  await kube.create({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'crasher', namespace: kube.namespace },
    spec: { containers: [{ name: 'main', image: 'registry.example.com/main:1' }] },
  } as never);
  await kube.waitFor(
    async () => (await kube.get<any>('pods', kube.namespace, 'crasher'))?.status?.conditions?.some((c: any) => c.type === 'Ready' && c.status === 'True'),
    { what: 'crasher Ready' },
  );
  await kube.crashLoop('crasher', { restartCount: 3 });
  expect((await kube.get<any>('pods', kube.namespace, 'crasher')).status.containerStatuses[0].restartCount).toBe(3);
  const top = await kube.kubectl(['top', 'pods']);
  expect(top.code).toBe(0);
});
it('image pull failures hold, exec runs locally', async () => {
  await kube.failPods('image-pull');
  await kube.kubectl(['rollout', 'restart', 'deploy/app']);
  await new Promise((r) => setTimeout(r, 3000));
  const pods = await kube.list<any>('pods', { namespace: kube.namespace });
  expect(pods.some((p) => p.status?.containerStatuses?.[0]?.state?.waiting?.reason === 'ImagePullBackOff')).toBe(true);
  await kube.failPods(undefined);
  // exec: a pod of its own (the deployment's are mid-rollout), its commands run on this machine.
  await kube.create({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'exec-target', namespace: kube.namespace },
    spec: { containers: [{ name: 'main', image: 'registry.example.com/main:1' }] },
  } as never);
  await kube.waitFor(async () => (await kube.get<any>('pods', kube.namespace, 'exec-target'))?.status?.phase === 'Running', { what: 'exec-target Running' });
  await kube.enableExec('exec-target');
  const r = await kube.kubectl(['exec', 'exec-target', '--', 'sh', '-c', 'echo in-pod']);
  expect(r.code, r.stderr).toBe(0);
  expect(r.stdout).toContain('in-pod');
});
