// Bundled by scripts/bundle.mjs in place of pg/lib/crypto/utils.js (not run from here): the same
// helpers, on node:crypto instead of WebCrypto. pg reaches WebCrypto at load and awaits it for every
// step of SCRAM-SHA-256, which costs ~2 ms of each PostgreSQL command on Node 20 (loading its
// internals, then a promise per hash); the bundle runs on Node only. Each returns what pg's own
// does (a Buffer where WebCrypto gives an ArrayBuffer: pg reads both with Buffer.from), as
// test/scripts/pg-node-crypto.test.ts checks against pg's.
'use strict';
const nodeCrypto = require('node:crypto');

const md5Hex = (data) => nodeCrypto.createHash('md5').update(data, 'utf-8').digest('hex');

module.exports = {
  postgresMd5PasswordHash: async (user, password, salt) => 'md5' + md5Hex(Buffer.concat([Buffer.from(md5Hex(password + user)), salt])),
  randomBytes: (length) => nodeCrypto.randomBytes(length),
  deriveKey: (password, salt, iterations) =>
    new Promise((resolve, reject) => nodeCrypto.pbkdf2(password, salt, iterations, 32, 'sha256', (err, key) => (err ? reject(err) : resolve(key)))),
  sha256: async (data) => nodeCrypto.createHash('sha256').update(data).digest(),
  // WebCrypto's names (SHA-256, SHA-384, SHA-512) as node:crypto spells them
  hashByName: async (hashName, data) => nodeCrypto.createHash(hashName.replace('-', '').toLowerCase()).update(data).digest(),
  hmacSha256: async (key, msg) => nodeCrypto.createHmac('sha256', Buffer.from(key)).update(msg).digest(),
  md5: async (data) => md5Hex(data),
};
