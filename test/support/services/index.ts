/**
 * Real services for integration tests (DESIGN.md §5): each starts on a random loopback port,
 * returns its connection facts and an idempotent stop(), and is also killed on process exit.
 * A missing binary throws an Error naming the package to install (tests fail, never skip).
 */
export {
  ADDR_IN_USE_RE,
  LOOPBACK,
  StartError,
  findBinary,
  freePort,
  killAndWait,
  makeTempDir,
  onProcessExit,
  readPem,
  removeDirSync,
  requireBinary,
  waitFor,
  type WaitOptions,
} from './util.js';
export { POSTGRES_INSTALL_HINT, pgBin, pgBinDir, pgSuperuserEnv, startPostgres, type PostgresService, type StartPostgresOptions } from './postgres.js';
export {
  REDIS_INSTALL_HINT,
  RespError,
  redisCommands,
  startRedis,
  startRedisCluster,
  type RedisClusterService,
  type RedisService,
  type RespValue,
  type StartRedisClusterOptions,
  type StartRedisOptions,
} from './redis.js';
export { MOTO_INSTALL_HINT, startMoto, type MotoService } from './moto.js';
export {
  startHttpServer,
  startHttpService,
  type HttpReply,
  type HttpRoutes,
  type HttpService,
  type RecordedRequest,
  type StartHttpServiceOptions,
} from './http.js';
export {
  OPENSSL_INSTALL_HINT,
  makeTestCertificates,
  startTlsServer,
  type CertSpec,
  type IssuedCert,
  type StartTlsServerOptions,
  type TestCertificates,
  type TlsServerService,
} from './tls.js';
