// Bundled into the CLI by scripts/bundle.mjs (not run from here): loads an SDK that the bundle keeps
// as one classic script, bundle/sdk-<name>.cjs, through node:vm with V8's code cache. Compiling the
// Kubernetes SDK (2 MB) is the largest cost of a Kubernetes command; with the cache, V8 reads the
// bytecode of the previous run instead, including the functions that run compiled on first call.
// The cache lives in $XDG_CACHE_HOME/runbook/code (else ~/.cache), one file per SDK, named after
// the build, the Node version and the architecture; V8 itself rejects a cache made for another
// source, V8 version or flags, and then it is made again. Any problem with it only costs the compile.
'use strict';
const { mkdirSync, readFileSync, readdirSync, renameSync, unlinkSync, writeFileSync } = require('node:fs');
const { homedir } = require('node:os');
const { dirname, join } = require('node:path');
const { fileURLToPath } = require('node:url');
const { Script } = require('node:vm');

// __chunkURL: the URL of the bundle chunk this code ends up in (the banner of scripts/bundle.mjs);
// the SDK scripts sit beside it in bundle/.
/* global __chunkURL */

function cachePath(name, build) {
  const env = process.env;
  const base = env.XDG_CACHE_HOME || join(env.HOME || homedir(), '.cache');
  return join(base, 'runbook', 'code', `${name}-${build}-${process.version}-${process.arch}.v8`);
}

/** Records the compiled code, at exit: by then it holds every function the run compiled. */
function writeCache(file, script, name) {
  try {
    const data = script.createCachedData();
    const dir = dirname(file);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    for (const f of readdirSync(dir)) if (f.startsWith(`${name}-`) && f.endsWith('.v8') && join(dir, f) !== file) unlinkSync(join(dir, f));
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, data, { mode: 0o600 });
    renameSync(tmp, file);
  } catch {
    // a read-only or full disk: compile again next time
  }
}

/** The exports of bundle/sdk-<name>.cjs, run as a CommonJS module (strict, as the ESM bundle is). */
exports.loadSdk = function loadSdk(name, build) {
  const file = fileURLToPath(new URL(`sdk-${name}.cjs`, __chunkURL));
  // ASCII only (the build checks): latin1 reads it as it is, without decoding 2 MB of UTF-8.
  const source = readFileSync(file, 'latin1');
  let cacheFile;
  let cachedData;
  try {
    cacheFile = cachePath(name, build);
    cachedData = readFileSync(cacheFile);
  } catch {
    cachedData = undefined;
  }
  // The wrapper has a line of its own and lineOffset takes it back: stack lines stay the file's.
  const script = new Script(`(function (exports, require, module, __filename, __dirname) { 'use strict';\n${source}\n})`, {
    filename: file,
    lineOffset: -1,
    cachedData,
  });
  const module = { exports: {} };
  script.runInThisContext().call(module.exports, module.exports, require, module, file, dirname(file));
  if (cacheFile && (cachedData === undefined || script.cachedDataRejected)) process.once('exit', () => writeCache(cacheFile, script, name));
  return module.exports;
};
