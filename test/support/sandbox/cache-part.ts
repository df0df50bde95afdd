import { redisCommands, requireBinary, REDIS_INSTALL_HINT, startRedis, type RedisService } from '../services/index.js';
import type { SandboxContext, SandboxPart } from './types.js';

/** Keys the sandbox Redis starts with (user:* is what `cache flush --pattern 'user:*'` removes). */
export const SANDBOX_CACHE_KEYS = { user: 200, session: 50 };

/** The cache part, with the server for tests that need to reach it directly. */
export interface CachePart extends SandboxPart {
  redis: RedisService;
  /** Runs commands on the sandbox Redis (authenticated). */
  commands(cmds: string[][]): Promise<unknown[]>;
  /** Re-creates the seed keys (after a test flushed them). */
  reseed(): Promise<void>;
}

const LOADER = `for i = 1, tonumber(ARGV[2]) do redis.call('SET', ARGV[1] .. i, 'v' .. i) end return 1`;
// Sorted key names hashed on the server: the keyspace identity without moving it to the test.
const DIGEST = `local c, keys = '0', {}
repeat local r = redis.call('SCAN', c, 'COUNT', 1000) c = r[1] for _, k in ipairs(r[2]) do keys[#keys + 1] = k end until c == '0'
table.sort(keys)
return redis.sha1hex(table.concat(keys, '\\n'))`;

/**
 * A password-protected redis-server (the password comes from SANDBOX_REDIS_PASSWORD, a secret
 * reference, as in production) with user:* and session:* keys, and `product` cache warmers that
 * write and read product:* keys with redis-cli (REDISCLI_AUTH carries the password).
 */
export async function startCachePart(_ctx: SandboxContext): Promise<CachePart> {
  const redisCli = requireBinary('redis-cli', REDIS_INSTALL_HINT);
  const password = `sandbox-redis-${Math.random().toString(36).slice(2, 10)}`;
  const redis = await startRedis({ password });
  const commands = async (cmds: string[][]) => {
    const [auth, ...rest] = await redisCommands(redis.port, [['AUTH', password], ...cmds], { timeoutMs: 10_000 });
    if (auth !== 'OK') throw new Error(`sandbox redis AUTH: ${String(auth)}`);
    return rest;
  };
  const reseed = async () => {
    await commands([['FLUSHDB'], ...Object.entries(SANDBOX_CACHE_KEYS).map(([prefix, n]) => ['EVAL', LOADER, '0', `${prefix}:`, String(n)])]);
  };
  await reseed();
  const cli = [redisCli, '-h', redis.host, '-p', String(redis.port), '--no-auth-warning'];
  return {
    name: 'cache',
    redis,
    commands,
    reseed,
    environment: {
      redis: { url: `redis://${redis.host}:${redis.port}/0`, password: { env: 'SANDBOX_REDIS_PASSWORD' }, connectTimeout: '2s' },
      cache: {
        warmers: {
          product: [
            [...cli, 'MSET', 'product:1', 'one', 'product:2', 'two', 'product:3', 'three'],
            [...cli, 'MGET', 'product:1', 'product:2', 'product:4'],
          ],
        },
        timeout: '30s',
      },
    },
    env: { SANDBOX_REDIS_PASSWORD: password, REDISCLI_AUTH: password },
    async fingerprint() {
      const [size, digest] = await commands([['DBSIZE'], ['EVAL', DIGEST, '0']]);
      return `dbsize=${String(size)} keys=${String(digest)}`;
    },
    stop: () => redis.stop(),
  };
}
