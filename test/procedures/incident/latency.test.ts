import { describe, expect, it } from 'vitest';
import type { V1Deployment } from '../../../src/clients/kube.js';
import { podCpu, replicasFor } from '../../../src/procedures/incident/latency-signals.js';
import { latencySuggestions } from '../../../src/procedures/incident/latency.js';
import { runData } from '../../../src/core/procedure.js';

const deployment = (limit?: string, request?: string) =>
  ({
    spec: {
      replicas: 2,
      selector: {},
      template: {
        spec: { containers: [{ name: 'api', resources: { limits: limit ? { cpu: limit } : undefined, requests: request ? { cpu: request } : undefined } }] },
      },
    },
  }) as unknown as V1Deployment;

const params = { minMeanMs: 1000, limit: 5, olderThan: 300_000, maxLagSeconds: 30, minHitRate: 0.8 };

describe('incident latency', () => {
  it('CPU saturation against the limit, else the request, else unknown', () => {
    const m = [
      { name: 'a', containers: [{ name: 'api', usage: { cpu: '400m', memory: '1Mi' } }] },
      { name: 'b', containers: [{ name: 'api', usage: { cpu: '123456789n', memory: '1Mi' } }] },
    ];
    expect(podCpu(deployment('500m'), m).map((p) => [p.pod, p.saturation])).toEqual([
      ['a', 0.8],
      ['b', expect.closeTo(0.2469, 3)],
    ]);
    expect(podCpu(deployment(undefined, '1'), m)[0].saturation).toBeCloseTo(0.4);
    expect(podCpu(deployment(), m)[0].saturation).toBeNull();
  });

  it('replicas sized from saturation, at least one more, at most the limit', () => {
    expect(replicasFor(3, 0.9, 0.6, 20)).toBe(5);
    expect(replicasFor(3, 0.62, 0.6, 20)).toBe(4);
    expect(replicasFor(10, 1, 0.6, 12)).toBe(12);
  });

  it('maps findings to commands, and says nothing when nothing stands out', () => {
    const state = {
      cpu: { available: true, replicas: 2, pods: [{ pod: 'a', cpu: 0.5, request: null, limit: 0.5, saturation: 1 }] },
      locks: { blocked: [{ pid: 2 }], blocking: [{ pid: 1, root: true, xactSeconds: 600, blocks: 1 }] },
      cache: { hitRate: 0.5, evictedKeys: 10 },
      replicas: { replicas: [{ name: 'r1', ok: true, lagSeconds: 120 }] },
    };
    const s = latencySuggestions(runData(state), params, 20).join('\n');
    expect(s).toMatch(/runbook app scale --replicas 4/);
    expect(s).toMatch(/runbook db kill-long-running --older-than 5m/);
    expect(s).toMatch(/runbook cache flush --pattern/);
    expect(s).toMatch(/replica r1 is 120s behind/);
    expect(latencySuggestions(runData({ locks: { error: 'down' }, cache: { hitRate: 0.95, evictedKeys: 0 } }), params, 20)).toEqual([]);
  });
});
