import { bindClient } from './bind.js';
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { AwsClients } from './aws.js';

/** One object of a listing. */
export interface S3Object {
  key: string;
  size: number;
  etag: string;
  lastModified: string;
}

export const unquote = (etag: string | undefined) => (etag ?? '').replace(/^"|"$/g, '');

/** Throws the SDK error (NoSuchBucket, AccessDenied …) so callers can tell a config error from an outage. */
export async function headBucket(aws: AwsClients, bucket: string, region?: string): Promise<void> {
  const s3 = await aws.s3(region);
  const { HeadBucketCommand } = await import('@aws-sdk/client-s3');
  try {
    await s3.send(new HeadBucketCommand({ Bucket: bucket }));
  } catch (err) {
    // HeadBucket has no body, so the SDK reports a bare 404 as "NotFound".
    const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
    if (e.$metadata?.httpStatusCode === 404 || e.name === 'NotFound') Object.assign(e, { name: 'NoSuchBucket', message: `bucket ${bucket} does not exist` });
    throw err;
  }
}

/** Every object under the prefix (paginated; S3 returns at most 1000 a page). */
export async function listObjects(aws: AwsClients, bucket: string, prefix: string, region?: string): Promise<S3Object[]> {
  const s3 = await aws.s3(region);
  const { ListObjectsV2Command } = await import('@aws-sdk/client-s3');
  const out: S3Object[] = [];
  let token: string | undefined;
  do {
    const r: import('@aws-sdk/client-s3').ListObjectsV2CommandOutput = await s3.send(
      new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix || undefined, ContinuationToken: token }),
    );
    for (const o of r.Contents ?? []) {
      if (!o.Key) continue;
      out.push({ key: o.Key, size: o.Size ?? 0, etag: unquote(o.ETag), lastModified: (o.LastModified ?? new Date(0)).toISOString() });
    }
    token = r.IsTruncated ? r.NextContinuationToken : undefined;
  } while (token);
  return out;
}

/**
 * Computes MD5s while bytes pass: of the whole stream, and of each `partSize` slice (to check a
 * multipart ETag, which is the MD5 of the parts' MD5s followed by "-<parts>").
 */
class Digest extends Transform {
  bytes = 0;
  private whole = createHash('md5');
  private part = createHash('md5');
  private inPart = 0;
  readonly parts: Buffer[] = [];
  constructor(private readonly partSize?: number) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null, data?: Buffer) => void) {
    this.bytes += chunk.length;
    this.whole.update(chunk);
    if (this.partSize) {
      let off = 0;
      while (off < chunk.length) {
        const take = Math.min(this.partSize - this.inPart, chunk.length - off);
        this.part.update(chunk.subarray(off, off + take));
        this.inPart += take;
        off += take;
        if (this.inPart === this.partSize) {
          this.parts.push(this.part.digest());
          this.part = createHash('md5');
          this.inPart = 0;
        }
      }
    }
    cb(null, chunk);
  }
  result(): { md5: string; multipart?: string } {
    const md5 = this.whole.digest('hex');
    if (!this.partSize) return { md5 };
    if (this.inPart > 0) this.parts.push(this.part.digest());
    return { md5, multipart: `${createHash('md5').update(Buffer.concat(this.parts)).digest('hex')}-${this.parts.length}` };
  }
}

export interface DownloadResult {
  file: string;
  bytes: number;
  expectedBytes: number;
  etag: string;
  /** How the ETag was checked: the MD5 of the bytes, the multipart MD5-of-MD5s, or not at all (SSE-KMS etc.). */
  etagCheck: 'md5' | 'multipart' | 'unverifiable';
  etagMatches: boolean;
}

/**
 * Streams an object to `file` (never whole in memory), pinned to the listed ETag with If-Match so a
 * backup replaced meanwhile fails instead of mixing versions; checks the size and the ETag.
 */
export async function downloadObject(
  aws: AwsClients,
  bucket: string,
  key: string,
  file: string,
  expect: { etag: string; size: number },
  opts: { region?: string; signal?: AbortSignal } = {},
): Promise<DownloadResult> {
  const s3 = await aws.s3(opts.region);
  const { GetObjectCommand, HeadObjectCommand } = await import('@aws-sdk/client-s3');
  const multipart = /-(\d+)$/.exec(expect.etag);
  let partSize: number | undefined;
  if (multipart) {
    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key, PartNumber: 1, IfMatch: `"${expect.etag}"` }));
    partSize = head.ContentLength;
  }
  const r = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key, IfMatch: `"${expect.etag}"` }), { abortSignal: opts.signal });
  const expectedBytes = r.ContentLength ?? expect.size;
  const digest = new Digest(partSize);
  await pipeline(r.Body as Readable, digest, createWriteStream(file, { flags: 'wx', mode: 0o600 }), { signal: opts.signal });
  const { md5, multipart: mp } = digest.result();
  const etag = unquote(r.ETag) || expect.etag;
  let etagCheck: DownloadResult['etagCheck'] = 'md5';
  let etagMatches: boolean;
  if (multipart) {
    etagCheck = partSize ? 'multipart' : 'unverifiable';
    etagMatches = partSize ? mp === etag : true;
  } else if (/^[0-9a-f]{32}$/.test(etag)) {
    etagMatches = md5 === etag;
  } else {
    etagCheck = 'unverifiable';
    etagMatches = true;
  }
  return { file, bytes: digest.bytes, expectedBytes, etag, etagCheck, etagMatches };
}

/** MD5 (hex and base64) and size of a local file, streamed. */
export async function fileMd5(file: string): Promise<{ hex: string; base64: string; size: number }> {
  const h = createHash('md5');
  // eslint-disable-next-line require-yield -- a pipeline() sink: it consumes the stream
  await pipeline(createReadStream(file), async function* (src: AsyncIterable<Buffer>) {
    for await (const c of src) h.update(c);
  });
  const d = h.digest();
  return { hex: d.toString('hex'), base64: d.toString('base64'), size: (await stat(file)).size };
}

/** Uploads a file as one object with Content-MD5, so S3 itself rejects a corrupted transfer. */
export async function uploadFile(
  aws: AwsClients,
  bucket: string,
  key: string,
  file: string,
  md5Base64: string,
  opts: { region?: string; signal?: AbortSignal } = {},
): Promise<string> {
  const s3 = await aws.s3(opts.region);
  const { PutObjectCommand } = await import('@aws-sdk/client-s3');
  const size = (await stat(file)).size;
  const r = await s3.send(
    new PutObjectCommand({
      Bucket: bucket,
      Key: key,
      Body: createReadStream(file),
      ContentLength: size,
      ContentMD5: md5Base64,
      ContentType: 'application/gzip',
    }),
    { abortSignal: opts.signal },
  );
  return unquote(r.ETag);
}

export async function deleteObjects(aws: AwsClients, bucket: string, keys: string[], region?: string): Promise<{ deleted: string[]; errors: string[] }> {
  const s3 = await aws.s3(region);
  const { DeleteObjectsCommand } = await import('@aws-sdk/client-s3');
  const deleted: string[] = [];
  const errors: string[] = [];
  for (let i = 0; i < keys.length; i += 1000) {
    const r = await s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys.slice(i, i + 1000).map((Key) => ({ Key })), Quiet: false } }));
    for (const d of r.Deleted ?? []) if (d.Key) deleted.push(d.Key);
    for (const e of r.Errors ?? []) errors.push(`${e.Key}: ${e.Code} ${e.Message ?? ''}`.trim());
  }
  return { deleted, errors };
}

/** The S3 calls of the procedures, bound to the run's AWS clients (`ctx.clients.s3()`); fileMd5 reads a local file. */
export function s3Api(aws: AwsClients) {
  return { ...bindClient(aws, { headBucket, listObjects, downloadObject, uploadFile, deleteObjects }), fileMd5 };
}
export type S3Api = ReturnType<typeof s3Api>;
