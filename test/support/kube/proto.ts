/**
 * Minimal decoder for Kubernetes protobuf request bodies
 * (`application/vnd.kubernetes.protobuf`). kubectl's typed clients send
 * protobuf for some writes (e.g. `kubectl autoscale` POSTs an autoscaling/v1
 * HPA, `kubectl create configmap|secret`), with no JSON fallback on 415.
 * Only the kinds below are understood; responses are always JSON.
 */
import type { JsonObject, KubeObject } from './types.js';

export const PROTOBUF = 'application/vnd.kubernetes.protobuf';

type Scalar = 'string' | 'int32' | 'int64' | 'bool' | 'bytes' | 'time';
interface Field {
  name: string;
  type: Scalar | Schema | { map: 'string' | 'bytes' };
  repeated?: boolean;
}
interface Schema {
  [field: number]: Field;
}

const OWNER_REF: Schema = {
  1: { name: 'kind', type: 'string' },
  3: { name: 'name', type: 'string' },
  4: { name: 'uid', type: 'string' },
  5: { name: 'apiVersion', type: 'string' },
  6: { name: 'controller', type: 'bool' },
  7: { name: 'blockOwnerDeletion', type: 'bool' },
};

const OBJECT_META: Schema = {
  1: { name: 'name', type: 'string' },
  2: { name: 'generateName', type: 'string' },
  3: { name: 'namespace', type: 'string' },
  5: { name: 'uid', type: 'string' },
  6: { name: 'resourceVersion', type: 'string' },
  7: { name: 'generation', type: 'int64' },
  8: { name: 'creationTimestamp', type: 'time' },
  11: { name: 'labels', type: { map: 'string' } },
  12: { name: 'annotations', type: { map: 'string' } },
  13: { name: 'ownerReferences', type: OWNER_REF, repeated: true },
  14: { name: 'finalizers', type: 'string', repeated: true },
};

const SCHEMAS: Record<string, Schema> = {
  'autoscaling/v1/HorizontalPodAutoscaler': {
    1: { name: 'metadata', type: OBJECT_META },
    2: {
      name: 'spec',
      type: {
        1: { name: 'scaleTargetRef', type: { 1: { name: 'kind', type: 'string' }, 2: { name: 'name', type: 'string' }, 3: { name: 'apiVersion', type: 'string' } } },
        2: { name: 'minReplicas', type: 'int32' },
        3: { name: 'maxReplicas', type: 'int32' },
        4: { name: 'targetCPUUtilizationPercentage', type: 'int32' },
      },
    },
  },
  'v1/ConfigMap': {
    1: { name: 'metadata', type: OBJECT_META },
    2: { name: 'data', type: { map: 'string' } },
    3: { name: 'binaryData', type: { map: 'bytes' } },
    4: { name: 'immutable', type: 'bool' },
  },
  'v1/Secret': {
    1: { name: 'metadata', type: OBJECT_META },
    2: { name: 'data', type: { map: 'bytes' } },
    3: { name: 'type', type: 'string' },
    4: { name: 'stringData', type: { map: 'string' } },
    5: { name: 'immutable', type: 'bool' },
  },
};

export class ProtobufError extends Error {}

class Reader {
  pos = 0;
  constructor(readonly buf: Buffer) {}
  get done(): boolean {
    return this.pos >= this.buf.length;
  }
  varint(): bigint {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      if (this.pos >= this.buf.length) throw new ProtobufError('truncated varint');
      const b = this.buf[this.pos++] ?? 0;
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result;
      shift += 7n;
    }
  }
  bytes(): Buffer {
    const len = Number(this.varint());
    const out = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    return out;
  }
  skip(wire: number): void {
    if (wire === 0) this.varint();
    else if (wire === 1) this.pos += 8;
    else if (wire === 2) this.bytes();
    else if (wire === 5) this.pos += 4;
    else throw new ProtobufError(`unsupported wire type ${wire}`);
  }
}

function decodeMessage(buf: Buffer, schema: Schema): JsonObject {
  const r = new Reader(buf);
  const out: JsonObject = {};
  while (!r.done) {
    const tag = Number(r.varint());
    const num = tag >>> 3;
    const wire = tag & 7;
    const field = schema[num];
    if (!field) {
      r.skip(wire);
      continue;
    }
    const t = field.type;
    let value: unknown;
    if (t === 'string') value = r.bytes().toString('utf8');
    else if (t === 'bytes') value = r.bytes().toString('base64');
    else if (t === 'bool') value = r.varint() !== 0n;
    else if (t === 'int32' || t === 'int64') value = Number(BigInt.asIntN(64, r.varint()));
    else if (t === 'time') {
      const m = decodeMessage(r.bytes(), { 1: { name: 'seconds', type: 'int64' }, 2: { name: 'nanos', type: 'int32' } });
      value = new Date(Number(m.seconds ?? 0) * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
    } else if ('map' in t) {
      const entry = decodeMessage(r.bytes(), { 1: { name: 'key', type: 'string' }, 2: { name: 'value', type: t.map } });
      const map = (out[field.name] as Record<string, unknown> | undefined) ?? {};
      map[String(entry.key ?? '')] = entry.value ?? '';
      out[field.name] = map;
      continue;
    } else value = decodeMessage(r.bytes(), t);
    // gogo-protobuf encodes non-pointer fields even when empty; JSON would omit them.
    if ((value === '' || (t === 'int64' && value === 0)) && !field.repeated) continue;
    if (field.repeated) {
      const list = (out[field.name] as unknown[] | undefined) ?? [];
      list.push(value);
      out[field.name] = list;
    } else out[field.name] = value;
  }
  return out;
}

/** Decodes a `k8s\0`-prefixed runtime.Unknown envelope into a JSON-shaped object. */
export function decodeProtobufObject(body: Buffer): KubeObject {
  const magic = Buffer.from([0x6b, 0x38, 0x73, 0x00]);
  if (body.length < 4 || !body.subarray(0, 4).equals(magic)) throw new ProtobufError('missing k8s protobuf magic prefix');
  const unknown = decodeMessage(body.subarray(4), {
    1: { name: 'typeMeta', type: { 1: { name: 'apiVersion', type: 'string' }, 2: { name: 'kind', type: 'string' } } },
    2: { name: 'raw', type: 'bytes' },
  });
  const typeMeta = (unknown.typeMeta ?? {}) as { apiVersion?: string; kind?: string };
  const key = `${typeMeta.apiVersion ?? ''}/${typeMeta.kind ?? ''}`;
  const schema = SCHEMAS[key];
  if (!schema) throw new ProtobufError(`protobuf bodies of ${key} are not supported by the test server`);
  const obj = decodeMessage(Buffer.from(String(unknown.raw ?? ''), 'base64'), schema);
  return { apiVersion: typeMeta.apiVersion ?? '', kind: typeMeta.kind ?? '', ...obj, metadata: { name: '', ...(obj.metadata as JsonObject | undefined) } } as KubeObject;
}
