// The bundle's stand-in for pg's crypto helpers (scripts/pg-node-crypto.cjs) gives what pg's own
// (node_modules/pg/lib/crypto/utils.js, on WebCrypto) gives, for the same inputs.
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';

type Helpers = {
  postgresMd5PasswordHash(user: string, password: string, salt: Buffer): Promise<string>;
  randomBytes(length: number): Buffer;
  deriveKey(password: string, salt: Uint8Array, iterations: number): Promise<ArrayBuffer | Buffer>;
  sha256(data: ArrayBuffer | Buffer): Promise<ArrayBuffer | Buffer>;
  hashByName(name: string, data: Buffer): Promise<ArrayBuffer | Buffer>;
  hmacSha256(key: ArrayBuffer | Buffer, msg: string): Promise<ArrayBuffer | Buffer>;
  md5(data: string | Buffer): Promise<string>;
};
const require = createRequire(import.meta.url);
const pgOwn = require('pg/lib/crypto/utils.js') as Helpers;
const ours = require('../../scripts/pg-node-crypto.cjs') as Helpers;
const hex = (b: ArrayBuffer | Buffer) => Buffer.from(b as ArrayBuffer).toString('hex');

describe("the bundle's pg crypto helpers", () => {
  it('export the same names as pg', () => {
    expect(Object.keys(ours).sort()).toEqual(Object.keys(pgOwn).sort());
  });

  it('compute what pg computes: SCRAM-SHA-256 key derivation, hashes, HMAC, MD5 passwords', async () => {
    const salt = Buffer.from('c2FsdHlzYWx0c2FsdHk=', 'base64');
    for (const password of ['pencil', 'c0rrect-h0rse-battery', 'pässwörd ✓']) {
      const [a, b] = await Promise.all([pgOwn.deriveKey(password, salt, 4096), ours.deriveKey(password, salt, 4096)]);
      expect(hex(b)).toBe(hex(a));
      expect(hex(await ours.hmacSha256(b, 'Client Key'))).toBe(hex(await pgOwn.hmacSha256(a, 'Client Key')));
      expect(hex(await ours.sha256(b))).toBe(hex(await pgOwn.sha256(a)));
      expect(await ours.postgresMd5PasswordHash('app', password, Buffer.from([1, 2, 3, 4]))).toBe(
        await pgOwn.postgresMd5PasswordHash('app', password, Buffer.from([1, 2, 3, 4])),
      );
    }
    for (const name of ['SHA-256', 'SHA-384', 'SHA-512']) expect(hex(await ours.hashByName(name, salt))).toBe(hex(await pgOwn.hashByName(name, salt)));
    expect(await ours.md5('text')).toBe(await pgOwn.md5('text'));
    const r = ours.randomBytes(18);
    expect(Buffer.isBuffer(r) && r.length).toBe(18);
  });
});
