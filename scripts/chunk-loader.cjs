// Copied by scripts/bundle.mjs to bundle/loader.cjs, with the build's id in place of BUILD_ID below
// (not run from here): runs the bundle's chunks, bundle/*.js and bundle/*.cjs (CommonJS), through
// node:vm with V8's code cache. Node 20 keeps no code cache of its own (module.enableCompileCache
// is Node 22), so without this every run compiles again what it runs: for `--help` that is most of
// its time beyond Node's own start, for a Kubernetes command the 2 MB SDK. With the cache, V8 reads
// the bytecode of an earlier run instead, including the functions it compiled on first call.
// The caches live in $XDG_CACHE_HOME/runbook/code (else ~/.cache), a folder per build, Node version
// and architecture, a file per chunk, written at exit for each chunk that had none (or one V8
// rejected: another source, V8 version or flags). Any problem with them only costs the compile.
// With codeCache false (-v/--verbose), Node's own require() runs the chunks, so that stack traces
// go through the source maps, which Node applies only to the modules it loads itself.
'use strict';
const { mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } = require('node:fs');
const { join } = require('node:path');
const { Script } = require('node:vm');

const build = 'BUILD_ID';
const chunkName = /^[\w.-]+\.c?js$/;
/**
 * When this build writes its caches, another build's folder goes if it was not written to for a
 * week, or if it is not among the few written to last (a developer's rebuilds add one each).
 */
const keepOthersMs = 7 * 24 * 3600 * 1000;
const keepOthers = 3;

const modules = new Map(); // chunk file name → its module
const compiled = []; // [chunk name, Script] compiled without a usable cache, written at exit

function codeDir() {
  const env = process.env;
  const base = env.XDG_CACHE_HOME || join(env.HOME || require('node:os').homedir(), '.cache');
  return join(base, 'runbook', 'code');
}
const buildDir = () => join(codeDir(), `${build}-${process.version}-${process.arch}`);

/** What a chunk's require() gives: another chunk through this loader, anything else from Node. */
function chunkRequire(id) {
  if (id.startsWith('./') && chunkName.test(id.slice(2))) return loadChunk(id.slice(2));
  return require(id);
}
chunkRequire.resolve = require.resolve; // from bundle/, where the chunks are
chunkRequire.cache = require.cache;
chunkRequire.main = require.main;

function loadChunk(name) {
  const known = modules.get(name);
  if (known) return known.exports;
  const file = join(__dirname, name);
  // ASCII only (the build checks), so any decoding gives the same text; Node reads UTF-8 in one
  // native call, faster than latin1's path through JavaScript.
  const source = readFileSync(file, 'utf8');
  let cachedData;
  try {
    cachedData = readFileSync(join(buildDir(), `${name}.v8`));
  } catch {
    cachedData = undefined;
  }
  // The file is the function that a CommonJS wrapper would make (scripts/bundle.mjs, cjsBanner).
  const script = new Script(source, { filename: file, cachedData });
  const module = { exports: {}, id: file, filename: file, loaded: false };
  modules.set(name, module);
  try {
    script.runInThisContext().call(module.exports, module.exports, chunkRequire, module, file, __dirname);
  } catch (err) {
    modules.delete(name); // as require() does: the next load tries again
    throw err;
  }
  module.loaded = true;
  if (cachedData === undefined || script.cachedDataRejected) {
    if (!compiled.length) process.once('exit', writeCaches);
    compiled.push([name, script]);
  }
  return module.exports;
}

/** At exit, so each cache holds every function the run compiled, not only the top level. */
function writeCaches() {
  try {
    const base = codeDir();
    const dir = buildDir();
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    for (const [name, script] of compiled) {
      const tmp = join(dir, `${name}.v8.${process.pid}.tmp`);
      writeFileSync(tmp, script.createCachedData(), { mode: 0o600 });
      renameSync(tmp, join(dir, `${name}.v8`));
    }
    const now = Date.now();
    const others = readdirSync(base)
      .map((entry) => join(base, entry))
      .filter((path) => path !== dir)
      .map((path) => ({ path, mtimeMs: statSync(path).mtimeMs }))
      .sort((a, b) => b.mtimeMs - a.mtimeMs);
    others.forEach(({ path, mtimeMs }, i) => {
      if (i >= keepOthers || now - mtimeMs > keepOthersMs) rmSync(path, { recursive: true, force: true });
    });
  } catch {
    // a read-only or full disk: compile again next time
  }
}

/** The exports of bundle/<name>. */
exports.load = function load(name, { codeCache }) {
  if (!chunkName.test(name)) throw new Error(`not a chunk of the bundle: ${name}`);
  return codeCache ? loadChunk(name) : require(join(__dirname, name));
};
