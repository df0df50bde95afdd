/** The direct read path's Date fields are the SDK's: derived here from its models, so an upgrade that adds one fails this test. */
import * as k8s from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { DATE_FIELDS, revive } from '../../src/clients/kube-rest.js';

type Model = { getAttributeTypeMap(): Array<{ name: string; baseName: string; type: string }> };

function dateFields(roots: string[]): Set<string> {
  const out = new Set<string>();
  const seen = new Set<string>();
  const walk = (type: string) => {
    if (seen.has(type)) return;
    seen.add(type);
    const model = (k8s as unknown as Record<string, Model | undefined>)[type];
    if (typeof model?.getAttributeTypeMap !== 'function') return;
    for (const a of model.getAttributeTypeMap()) {
      const inner = a.type.replace(/^Array<(.*)>$/, '$1').replace(/^\{ \[key: string\]: (.*); \}$/, '$1');
      if (inner === 'Date') out.add(a.baseName);
      else walk(inner);
    }
  };
  roots.forEach(walk);
  return out;
}

describe('kube-rest', () => {
  it('revives exactly the fields the SDK gives as dates in the objects it reads', () => {
    const sdk = dateFields(['V1DeploymentList', 'V1PodList', 'V1ReplicaSetList', 'V2HorizontalPodAutoscalerList', 'CoreV1EventList', 'V1NodeList']);
    expect([...DATE_FIELDS].sort()).toEqual([...sdk].sort());
  });

  it('turns dates into Dates, leaves free-form maps alone', () => {
    const obj = revive({
      metadata: { creationTimestamp: '2026-01-02T03:04:05Z', labels: { time: 'noon' }, annotations: { startTime: 'x' } },
      status: { conditions: [{ lastTransitionTime: '2026-01-02T03:04:06Z', reason: 'r' }] },
      data: { time: 'kept' },
    }) as {
      metadata: { creationTimestamp: Date; labels: Record<string, string>; annotations: Record<string, string> };
      status: { conditions: Array<{ lastTransitionTime: Date }> };
      data: Record<string, string>;
    };
    expect(obj.metadata.creationTimestamp).toEqual(new Date('2026-01-02T03:04:05Z'));
    expect(obj.status.conditions[0].lastTransitionTime).toBeInstanceOf(Date);
    expect(obj.metadata.labels.time).toBe('noon');
    expect(obj.metadata.annotations.startTime).toBe('x');
    expect(obj.data.time).toBe('kept');
  });
});
