/** Table-driven checks of the fake API server's patch implementations (strategic merge directives etc.). */
import { describe, expect, it } from 'vitest';
import { jsonPatch, mergePatch, PatchError, strategicMergePatch } from '../support/kube/patch.js';

const pod = {
  spec: {
    containers: [
      { name: 'app', image: 'app:1', env: [{ name: 'A', value: '1' }, { name: 'B', value: '2' }], ports: [{ containerPort: 80 }] },
      { name: 'sidecar', image: 'side:1' },
    ],
    volumes: [{ name: 'data', emptyDir: {} }, { name: 'tmp', emptyDir: {} }],
    tolerations: [{ key: 'x' }],
  },
  metadata: { finalizers: ['a', 'b'], labels: { app: 'x', tier: 'web' } },
};

describe('strategic merge patch', () => {
  const cases: Array<[string, unknown, unknown]> = [
    [
      'merges containers and env by name',
      { spec: { containers: [{ name: 'app', env: [{ name: 'B', value: 'two' }, { name: 'C', value: '3' }] }] } },
      [{ name: 'A', value: '1' }, { name: 'B', value: 'two' }, { name: 'C', value: '3' }],
    ],
    ['$patch: delete removes one env entry', { spec: { containers: [{ name: 'app', env: [{ name: 'A', $patch: 'delete' }] }] } }, [{ name: 'B', value: '2' }]],
    ['$patch: replace replaces the list', { spec: { containers: [{ name: 'app', env: [{ $patch: 'replace' }, { name: 'Z', value: '9' }] }] } }, [{ name: 'Z', value: '9' }]],
    ['null deletes a field', { spec: { containers: [{ name: 'app', env: null }] } }, undefined],
  ];
  for (const [title, patch, env] of cases) {
    it(title, () => {
      const out = strategicMergePatch(pod, patch) as typeof pod;
      expect(out.spec.containers[0]?.env).toEqual(env);
      expect(out.spec.containers[1]).toEqual({ name: 'sidecar', image: 'side:1' });
    });
  }

  it('$setElementOrder, ports by containerPort, volumes by name, atomic lists replaced', () => {
    const out = strategicMergePatch(pod, {
      spec: {
        '$setElementOrder/containers': [{ name: 'sidecar' }, { name: 'app' }],
        containers: [{ name: 'app', ports: [{ containerPort: 80, name: 'http' }] }],
        volumes: [{ name: 'tmp', $patch: 'delete' }],
        tolerations: [{ key: 'y' }],
      },
    }) as typeof pod;
    expect(out.spec.containers.map((c) => c.name)).toEqual(['sidecar', 'app']);
    expect(out.spec.containers[1]?.ports).toEqual([{ containerPort: 80, name: 'http' }]);
    expect(out.spec.volumes).toEqual([{ name: 'data', emptyDir: {} }]);
    expect(out.spec.tolerations).toEqual([{ key: 'y' }]);
  });

  it('$retainKeys, $deleteFromPrimitiveList, merged primitive lists, map $patch', () => {
    const out = strategicMergePatch(pod, {
      metadata: { '$deleteFromPrimitiveList/finalizers': ['a'], labels: { $patch: 'replace', only: 'this' } },
      spec: { volumes: [{ name: 'data', $retainKeys: ['name', 'hostPath'], hostPath: { path: '/x' } }] },
    }) as typeof pod & { spec: { volumes: Array<Record<string, unknown>> } };
    expect(out.metadata.finalizers).toEqual(['b']);
    expect(out.metadata.labels).toEqual({ only: 'this' });
    expect(out.spec.volumes[0]).toEqual({ name: 'data', hostPath: { path: '/x' } });
    expect((strategicMergePatch(pod, { metadata: { finalizers: ['b', 'c'] } }) as typeof pod).metadata.finalizers).toEqual(['a', 'b', 'c']);
    expect(strategicMergePatch(pod, { spec: { $patch: 'delete' } })).toEqual({ metadata: pod.metadata });
  });
});

describe('merge patch and json patch', () => {
  it('RFC 7386 merge patch replaces lists and deletes nulls', () => {
    expect(mergePatch({ a: { b: 1, c: 2 }, l: [1, 2] }, { a: { b: null, d: 3 }, l: [3] })).toEqual({ a: { c: 2, d: 3 }, l: [3] });
  });

  it('RFC 6902 json patch ops', () => {
    const doc = { metadata: { annotations: { 'a/b': '1' } }, list: [1, 2, 3] };
    expect(
      jsonPatch(doc, [
        { op: 'test', path: '/metadata/annotations/a~1b', value: '1' },
        { op: 'replace', path: '/metadata/annotations', value: { x: 'y' } },
        { op: 'add', path: '/list/-', value: 4 },
        { op: 'remove', path: '/list/0' },
        { op: 'copy', from: '/list/0', path: '/first' },
        { op: 'move', from: '/first', path: '/moved' },
      ]),
    ).toEqual({ metadata: { annotations: { x: 'y' } }, list: [2, 3, 4], moved: 2 });
    expect(() => jsonPatch(doc, [{ op: 'replace', path: '/spec/replicas', value: 1 }])).toThrow(PatchError);
    expect(() => jsonPatch(doc, [{ op: 'test', path: '/list/0', value: 9 }])).toThrow(/testing value/);
  });
});
