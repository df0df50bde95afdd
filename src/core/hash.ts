// node:crypto, with the streams it pulls in, costs a few milliseconds to load: `list` or an offline
// dry run should not pay that for a hash they never compute. (process.getBuiltinModule: Node 20.16.)
let loaded: typeof import('node:crypto') | undefined;
const nodeCrypto = () => (loaded ??= process.getBuiltinModule('node:crypto'));

/** SHA-256 of the text (UTF-8) or bytes, as 64 lower-case hex digits. */
export function sha256Hex(data: string | Uint8Array): string {
  return nodeCrypto().createHash('sha256').update(data).digest('hex');
}

/** SHA-1 as hex: only where a protocol names it (Redis script ids), never for integrity. */
export function sha1Hex(data: string): string {
  return nodeCrypto().createHash('sha1').update(data).digest('hex');
}

/** `bytes` random bytes from the system's CSPRNG, as hex. */
export function randomHex(bytes: number): string {
  return nodeCrypto().randomBytes(bytes).toString('hex');
}
