import type { S3Client } from '@aws-sdk/client-s3';
import type { SharedJournalConfig } from '../core/config-schema.js';
import { SharedJournal, SharedStoreError, type SharedListing, type SharedStore } from '../core/journal-share.js';
import { envCredentials } from './aws.js';

export interface SharedS3Target {
  bucket: string;
  prefix: string;
  region?: string;
  endpoint?: string;
}

/**
 * Where the team journal is: journal.shared.s3, the region from it, else $AWS_REGION /
 * $AWS_DEFAULT_REGION, else the environment's aws.region (else the SDK's own chain: the profile's);
 * the endpoint from it, else $AWS_ENDPOINT_URL.
 */
export function sharedS3Target(config: SharedJournalConfig, env: Record<string, string | undefined>, environmentRegion?: string): SharedS3Target {
  const { bucket, prefix, region, endpoint } = config.s3;
  return {
    bucket,
    prefix,
    region: region ?? (env.AWS_REGION || env.AWS_DEFAULT_REGION || environmentRegion),
    endpoint: endpoint ?? (env.AWS_ENDPOINT_URL || undefined),
  };
}

/** The team journal on S3 (credentials from the SDK's default chain; nothing is loaded or contacted until first used). */
export function openSharedJournal(config: SharedJournalConfig, env: Record<string, string | undefined>, environmentRegion?: string): SharedJournal {
  const target = sharedS3Target(config, env, environmentRegion);
  return new SharedJournal(new S3Store(target, env), target.prefix);
}

/** Errors that only a change to the config (or the bucket) can fix. */
const CONFIG_MISTAKES = new Set([
  'NoSuchBucket',
  'InvalidBucketName',
  'PermanentRedirect',
  'AuthorizationHeaderMalformed',
  'IllegalLocationConstraintException',
]);

function storeError(err: unknown, bucket: string): SharedStoreError {
  if (err instanceof SharedStoreError) return err;
  const e = err as { name?: string; message?: string; code?: string; Code?: string; $metadata?: { httpStatusCode?: number } };
  const status = e?.$metadata?.httpStatusCode;
  if (e?.name === 'TimeoutError' || e?.name === 'AbortError') return new SharedStoreError('no answer in time', 'Timeout', false);
  // A socket error (ECONNREFUSED, ENOTFOUND …): the SDK passes Node's error through.
  if (typeof e?.code === 'string' && /^E[A-Z]+$/.test(e.code)) return new SharedStoreError(`cannot connect: ${e.code}`, e.code, false);
  let code = e?.Code ?? e?.name ?? 'Error';
  if (status === 404 && (code === 'NotFound' || code === 'Unknown')) code = 'NoSuchBucket';
  const message = code === 'NoSuchBucket' ? `bucket ${bucket} does not exist` : (e?.message ?? String(err)).split('\n')[0];
  return new SharedStoreError(`${code}${status ? ` (${status})` : ''}: ${message}`, code, CONFIG_MISTAKES.has(code));
}

class S3Store implements SharedStore {
  private client: Promise<{ s3: S3Client; sdk: typeof import('@aws-sdk/client-s3') }> | undefined;

  constructor(
    private readonly target: SharedS3Target,
    private readonly env: Record<string, string | undefined>,
  ) {}

  get bucket(): string {
    return this.target.bucket;
  }

  private connect() {
    this.client ??= (async () => {
      process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
      const sdk = await import('@aws-sdk/client-s3');
      const { region, endpoint } = this.target;
      const env = this.env;
      const s3 = new sdk.S3Client({
        ...(region ? { region } : {}),
        ...(endpoint ? { endpoint, forcePathStyle: true } : {}),
        ...envCredentials(env),
        // The journal is never worth a long wait: an unreachable sink is caught up later.
        maxAttempts: 2,
        requestHandler: { connectionTimeout: 3000, requestTimeout: 10_000 },
      });
      return { s3, sdk };
    })();
    return this.client;
  }

  async put(key: string, body: string, metadata: Readonly<Record<string, string>>, signal?: AbortSignal): Promise<void> {
    try {
      const { s3, sdk } = await this.connect();
      // A checksum of the body (S3 Object Lock requires one on every PUT; the SDK computes it).
      await s3.send(
        new sdk.PutObjectCommand({
          Bucket: this.bucket,
          Key: key,
          Body: body,
          ContentType: 'application/x-ndjson',
          Metadata: { ...metadata },
          ChecksumAlgorithm: 'SHA256',
        }),
        { abortSignal: signal },
      );
    } catch (err) {
      throw storeError(err, this.bucket);
    }
  }

  async get(key: string, signal?: AbortSignal): Promise<string | null> {
    try {
      const { s3, sdk } = await this.connect();
      const r = await s3.send(new sdk.GetObjectCommand({ Bucket: this.bucket, Key: key }), { abortSignal: signal });
      return (await r.Body?.transformToString('utf8')) ?? '';
    } catch (err) {
      const e = err as { name?: string; Code?: string };
      if (e?.name === 'NoSuchKey' || e?.Code === 'NoSuchKey') return null;
      throw storeError(err, this.bucket);
    }
  }

  async list(prefix: string, opts: { startAfter?: string; signal?: AbortSignal } = {}): Promise<SharedListing> {
    try {
      const { s3, sdk } = await this.connect();
      const out: SharedListing = { keys: [], prefixes: [] };
      let token: string | undefined;
      do {
        const r = await s3.send(
          new sdk.ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: prefix || undefined,
            Delimiter: '/',
            ContinuationToken: token,
            StartAfter: token ? undefined : opts.startAfter,
          }),
          { abortSignal: opts.signal },
        );
        for (const o of r.Contents ?? []) if (o.Key) out.keys.push(o.Key);
        for (const p of r.CommonPrefixes ?? []) if (p.Prefix) out.prefixes.push(p.Prefix);
        token = r.IsTruncated ? r.NextContinuationToken : undefined;
      } while (token);
      return out;
    } catch (err) {
      throw storeError(err, this.bucket);
    }
  }

  close(): void {
    const made = this.client;
    this.client = undefined;
    void made?.then(
      ({ s3 }) => s3.destroy(),
      () => undefined,
    );
  }
}
