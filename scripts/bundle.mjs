// Bundles the compiled CLI (dist/, with tsc's source maps) into bundle/, the way it is run:
//  - main.js: everything a run loads before it knows its command (main, commander, the catalogue,
//    errors, io …), one file with no imports: `runbook --help` reads nothing else;
//  - engine.js: run-procedure and everything it imports beyond main.js (config, runner, journal,
//    reporter, gates …), one file every procedure and built-in imports, not ~15 shared chunks;
//  - every other lazily imported module (the built-ins, a procedure, a client) a chunk of its own,
//    split as esbuild does, importing what main.js and engine.js have from them (one copy of each
//    module, so instanceof and module state hold across chunks);
//  - every SDK bundled in too (one file instead of hundreds from node_modules), in chunks only the
//    commands calling it load: each `await import('<package>')` becomes bundle/sdk-<package>-<hash>.js
//    (code several share, such as the AWS core, goes to chunks only they import). The Kubernetes SDK,
//    the largest and used by most commands, is one script of its own, bundle/sdk-kubernetes.cjs.
// Built as ES modules (esbuild splits only those), then each chunk turned into CommonJS, which
// bundle/loader.cjs (scripts/chunk-loader.cjs) runs through node:vm with V8's code cache.
// Minified (whitespace and syntax), with source maps back to src/*.ts that bin/runbook.js turns on
// for -v/--verbose. bundle/chunks.json records what each chunk holds (tests use it to prove what a
// command loads; `node scripts/bundle.mjs --report` prints it with sizes).
// Measured with bench/ (median, same run, a loaded 2-CPU machine, no NODE_EXTRA_CA_CERTS): `app
// scaling` went from ~10× to ~1.8× `kubectl get hpa,pods`, `--help` from ~2× to ~1.35× `node -e 0`
// (ES module chunks without a code cache, the step before this layout: ~2.4× and ~1.7×).
import { build, transformSync } from 'esbuild';
import { existsSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { isBuiltin } from 'node:module';
import { dirname, isAbsolute, join, relative, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outdir = join(root, 'bundle');
const report = process.argv.includes('--report');

/**
 * Optional or native modules that must stay require()s resolved at run time from node_modules.
 * Each is required inside a try/catch by its user and is not installed by default; none is a .node
 * file shipped by a dependency (the build fails if a dependency's import cannot be resolved and
 * is not listed here).
 */
const optional = [
  'pg-native', // pg's native client: `pg.native` requires it lazily, MODULE_NOT_FOUND means "none"
  'bufferutil', // ws: optional native speed-ups
  'utf-8-validate',
  'encoding', // node-fetch: optional non-UTF-8 body decoding
  'supports-color', // debug (under ioredis and the proxy agents): optional colour detection
];

/** Whether esbuild reads a file as CommonJS (by its syntax, as it does when bundling). */
async function isCommonJS(file) {
  const r = await build({ entryPoints: [file], bundle: false, write: false, metafile: true, logLevel: 'silent', platform: 'node', format: 'esm' });
  return Object.values(r.metafile.inputs)[0]?.format === 'cjs';
}

/** The type Node gives a .js file: from the nearest package.json. */
function nodeTreatsAsCommonJS(file) {
  if (file.endsWith('.cjs')) return true;
  if (file.endsWith('.mjs')) return false;
  for (let dir = dirname(file); ; dir = dirname(dir)) {
    const pj = join(dir, 'package.json');
    if (existsSync(pj)) return JSON.parse(readFileSync(pj, 'utf8')).type !== 'module';
    if (dirname(dir) === dir) return true;
  }
}

const identifier = /^[A-Za-z_$][\w$]*$/;

/**
 * `await import('<package>')` → a chunk of its own, named after the package, whose exports are what
 * Node itself gives that import. (esbuild alone would give a CommonJS package's dynamic import only
 * a `default` export once it is split out, so `(await import('yaml')).parse` would be undefined.)
 */
const sdkChunks = {
  name: 'sdk-chunks',
  setup(b) {
    const slugs = new Map(); // resolved file → chunk name
    b.onResolve({ filter: /^[^./]/ }, async (args) => {
      if (args.kind !== 'dynamic-import' || isBuiltin(args.path) || args.pluginData?.plain) return undefined;
      const target = await b.resolve(args.path, { kind: args.kind, importer: args.importer, resolveDir: args.resolveDir, pluginData: { plain: true } });
      if (target.errors.length) return { errors: target.errors };
      if (target.external) return undefined;
      const cjs = await isCommonJS(target.path);
      const ours = !/[\\/]node_modules[\\/]/.test(args.importer);
      // A dependency's own import() of an ES module: esbuild's split is right, and its name is no API.
      if (!cjs && !ours) return undefined;
      let slug = slugs.get(target.path);
      if (!slug) {
        const base = `sdk-${args.path.replace(/^@/, '').replace(/[^\w.-]+/g, '-')}`;
        slug = base;
        for (let i = 2; [...slugs.values()].includes(slug); i++) slug = `${base}-${i}`;
        slugs.set(target.path, slug);
      }
      return { path: slug, namespace: 'sdk', pluginData: { file: target.path, cjs, specifier: args.path } };
    });
    b.onLoad({ filter: /.*/, namespace: 'sdk' }, async (args) => {
      const { file, cjs, specifier } = args.pluginData;
      const at = JSON.stringify(file);
      let contents;
      if (cjs) {
        // Node: default is module.exports; the named exports are those its lexer finds, read once.
        const names = Object.keys(await import(pathToFileURL(file).href)).filter((n) => n !== 'default');
        const lines = [`const m = require(${at});`, 'export default m;'];
        names.forEach((n, i) => {
          lines.push(`const x${i} = m[${JSON.stringify(n)}];`);
          lines.push(`export { x${i} as ${identifier.test(n) ? n : JSON.stringify(n)} };`);
        });
        contents = lines.join('\n');
      } else {
        // Our own import() of an ES module: the same exports, only the chunk's name is ours.
        const hasDefault = 'default' in (await import(specifier));
        contents = `export * from ${at};\n${hasDefault ? `export { default } from ${at};\n` : ''}`;
      }
      return { contents, loader: 'js', resolveDir: dirname(file) };
    });
  },
};

/**
 * node-fetch (under @kubernetes/client-node) requires whatwg-url only as a fallback for a missing
 * require('url').URL, which Node always has; bundling it would add its 250 kB Unicode table
 * (tr46) to every Kubernetes command's load.
 */
const noWhatwgUrl = {
  name: 'no-whatwg-url',
  setup(b) {
    b.onResolve({ filter: /^whatwg-url$/ }, (args) => {
      if (!/[\\/]node_modules[\\/]node-fetch[\\/]/.test(args.importer)) return undefined;
      return { path: 'whatwg-url', namespace: 'stub' };
    });
    b.onLoad({ filter: /.*/, namespace: 'stub' }, () => ({ contents: "module.exports = { URL: require('node:url').URL };", loader: 'js' }));
  },
};

/**
 * A CommonJS dependency that uses __dirname/__filename (ioredis reads its package.json for its
 * version, and filters stacks by its folder) gets them as Node would give them: its file in the
 * installed package, found at run time (dependencies stay installed).
 */
const cjsDirname = {
  name: 'cjs-dirname',
  setup(b) {
    b.onLoad({ filter: /[\\/]node_modules[\\/].*\.c?js$/ }, (args) => {
      const text = readFileSync(args.path, 'utf8');
      if (!/\b__(?:dirname|filename)\b/.test(text) || !nodeTreatsAsCommonJS(args.path) || /^\s*(?:import|export)\b/m.test(text)) return undefined;
      // Used in code, not only named in a comment (commander's JSDoc mentions __dirname).
      if (!/\b__(?:dirname|filename)\b/.test(transformSync(text, { loader: 'js', minifyWhitespace: true, legalComments: 'none', logLevel: 'silent' }).code))
        return undefined;
      const rel = relative(root, args.path).split(sep);
      const at = rel.lastIndexOf('node_modules');
      const pkgLen = rel[at + 1].startsWith('@') ? 2 : 1;
      const pkg = rel.slice(at + 1, at + 1 + pkgLen).join('/');
      const inPkg = rel.slice(at + 1 + pkgLen).join('/');
      const shim =
        `var __filename = (() => { try { return require('node:path').join(require('node:path').dirname(require.resolve(${JSON.stringify(`${pkg}/package.json`)})), ${JSON.stringify(inPkg)}); }` +
        ` catch { return require('node:url').fileURLToPath(__chunk.url); } })(), __dirname = require('node:path').dirname(__filename);`;
      // One line, so the module's own lines keep their numbers in the source map.
      return { contents: `${shim}${text}`, loader: 'js' };
    });
  },
};

/**
 * pg asks at load whether it runs in a Cloudflare Worker, and on Node 20 (no navigator) does so by
 * constructing a `Response`: that loads Node's bundled undici, ~30 ms of every PostgreSQL command
 * (a profile of `db connections`). This bundle runs on Node only, so the answer is fixed. If pg's
 * function is no longer there, the build says so and bundles it unchanged.
 */
const pgOnNode = {
  name: 'pg-on-node',
  setup(b) {
    b.onLoad({ filter: /[\\/]node_modules[\\/]pg[\\/]lib[\\/]stream\.js$/ }, (args) => {
      const text = readFileSync(args.path, 'utf8');
      const head = 'function isCloudflareRuntime() {';
      if (!text.includes(head)) {
        console.warn('bundle: pg no longer has isCloudflareRuntime() in lib/stream.js; bundled unchanged');
        return undefined;
      }
      return { contents: text.replace(head, `${head} return false;`), loader: 'js' };
    });
  },
};

/**
 * pg's crypto helpers (SCRAM-SHA-256, MD5 passwords) on node:crypto rather than WebCrypto:
 * scripts/pg-node-crypto.cjs says why, and a test holds it to pg's results. Only when pg's module
 * still exports exactly those helpers; else the build says so and bundles pg's own.
 */
const pgNodeCrypto = {
  name: 'pg-node-crypto',
  setup(b) {
    b.onLoad({ filter: /[\\/]node_modules[\\/]pg[\\/]lib[\\/]crypto[\\/]utils\.js$/ }, (args) => {
      const text = readFileSync(args.path, 'utf8');
      const exported = /module\.exports = \{([^}]*)\}/
        .exec(text)?.[1]
        .split(',')
        .map((n) => n.trim())
        .filter(Boolean)
        .sort()
        .join(',');
      if (exported !== 'deriveKey,hashByName,hmacSha256,md5,postgresMd5PasswordHash,randomBytes,sha256') {
        console.warn('bundle: pg/lib/crypto/utils.js no longer exports the helpers scripts/pg-node-crypto.cjs stands in for; bundled unchanged');
        return undefined;
      }
      return { contents: readFileSync(join(root, 'scripts/pg-node-crypto.cjs'), 'utf8'), loader: 'js' };
    });
  },
};

/**
 * ioredis defines its ~580 command methods one by one on Commander.prototype at load. V8 keeps a
 * class's prototype in fast mode, where each added property copies the ones before it: 11-16 ms
 * of every Redis command (a profile of cache stats). Turned into a dictionary first (a property
 * deleted out of order does that), the same loop takes ~0.5 ms; V8 makes the prototype fast again
 * when it is first used as one, and the methods, their order and their names are unchanged. If
 * ioredis's loop is no longer there, the build says so and bundles it unchanged.
 */
const ioredisPrototype = {
  name: 'ioredis-prototype',
  setup(b) {
    // Its connectors require node:tls at load for connect() alone (~3 ms, with _tls_wrap): only a
    // TLS connection (rediss://) needs it, so it is required on the first one.
    b.onLoad({ filter: /[\\/]node_modules[\\/]ioredis[\\/]built[\\/]connectors[\\/](StandaloneConnector|SentinelConnector[\\/]index)\.js$/ }, (args) => {
      const text = readFileSync(args.path, 'utf8');
      const line = 'const tls_1 = require("tls");';
      if (!text.includes(line) || (text.match(/tls_1\./g) ?? []).length !== (text.match(/\(0, tls_1\.connect\)\(/g) ?? []).length) {
        console.warn(`bundle: ioredis's ${relative(root, args.path)} no longer requires node:tls the known way; bundled unchanged`);
        return undefined;
      }
      return { contents: text.replace(line, 'const tls_1 = { connect: (...a) => require("tls").connect(...a) };'), loader: 'js' };
    });
    b.onLoad({ filter: /[\\/]node_modules[\\/]ioredis[\\/]built[\\/]utils[\\/]Commander\.js$/ }, (args) => {
      const text = readFileSync(args.path, 'utf8');
      const loop = 'commands.forEach(function (commandName) {\n    Commander.prototype[commandName] = ';
      if (!text.includes(loop)) {
        console.warn('bundle: ioredis no longer defines its commands the known way in utils/Commander.js; bundled unchanged');
        return undefined;
      }
      const dictionary = 'Commander.prototype.__rb1 = 0; Commander.prototype.__rb2 = 0; delete Commander.prototype.__rb1; delete Commander.prototype.__rb2; ';
      // On the loop's own line, so the module's lines keep their numbers in the source map.
      return { contents: text.replace(loop, `${dictionary}${loop}`), loader: 'js' };
    });
  },
};

/**
 * zod's namespace (`z`, which config-schema uses) re-exports every locale's messages: 260 kB of
 * the 460 kB zod costs the config path. Only English is ever used (zod registers it by default;
 * nothing here calls z.config(z.locales.*), and the build fails if a bundled module mentions them).
 */
const zodEnglishOnly = {
  name: 'zod-english-only',
  setup(b) {
    b.onLoad({ filter: /[\\/]node_modules[\\/]zod[\\/]v4[\\/]locales[\\/]index\.js$/ }, () => ({
      contents: 'export { default as en } from "./en.js";\n',
      loader: 'js',
    }));
  },
};

/**
 * The build's identity: the compiled sources, the locked dependency versions (esbuild's too) and
 * the build scripts. core/config.ts keys its cache of validated configs by it, and
 * scripts/chunk-loader.cjs its code caches (V8 checks only a source's length).
 */
function buildId() {
  const h = createHash('sha256');
  const walk = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = join(dir, entry.name);
      if (entry.isDirectory()) walk(p);
      else if (entry.name.endsWith('.js')) h.update(relative(root, p)).update('\0').update(readFileSync(p)).update('\0');
    }
  };
  walk(join(root, 'dist'));
  for (const f of ['package-lock.json', 'package.json', 'scripts/bundle.mjs', 'scripts/chunk-loader.cjs', 'scripts/pg-node-crypto.cjs'])
    if (existsSync(join(root, f))) h.update(readFileSync(join(root, f)));
  return h.digest('hex').slice(0, 16);
}

/**
 * commander requires node:child_process at load, for executable subcommands, which runbook has
 * none of: that pulls in net, dgram and the process bindings (~3 ms) on every start, `--help`
 * included. Required when first spawned instead. (If commander's line changes, the build says so
 * and bundles it unchanged.)
 */
const lazyChildProcess = {
  name: 'commander-lazy-child-process',
  setup(b) {
    b.onLoad({ filter: /[\\/]node_modules[\\/]commander[\\/]lib[\\/]command\.js$/ }, (args) => {
      const text = readFileSync(args.path, 'utf8');
      const line = "const childProcess = require('node:child_process');";
      if (!text.includes(line) || (text.match(/childProcess\./g) ?? []).length !== (text.match(/childProcess\.spawn\(/g) ?? []).length) {
        console.warn('bundle: commander no longer requires node:child_process the known way; bundled unchanged');
        return undefined;
      }
      const lazy = "let childProcessModule; const childProcess = { spawn: (...a) => (childProcessModule ??= require('node:child_process')).spawn(...a) };";
      return { contents: text.replace(line, lazy), loader: 'js' };
    });
  },
};

/**
 * What each chunk is once it is CommonJS: a function of the five names a CommonJS module has, in
 * the file as it is, so that scripts/chunk-loader.cjs compiles the file's own text (gluing a wrapper
 * on would copy each chunk's source in memory once more, and for --help that copy alone brings a
 * garbage collection). Run as a script, the file's value is that function, which the loader calls.
 * Under Node's require() (-v) `module` is defined, and the file calls the function itself. Strict,
 * as the ES modules it is made from are; __chunk.url is its file's URL, for import.meta.url and the
 * __filename shims above, worked out on first use (Node's first pathToFileURL costs ~0.7 ms, and
 * most chunks never ask).
 */
const cjsBanner =
  "(typeof module == 'object' ? (f) => f(exports, require, module, __filename, __dirname) : (f) => f)(function (exports, require, module, __filename, __dirname) {'use strict';var __chunk = { get url() { return require('node:url').pathToFileURL(__filename).href; } };";
const cjsFooter = '})';

/**
 * @kubernetes/client-node's index re-exports everything it has, and esbuild keeps a module whose
 * exports go unused if it might have side effects: exec/attach/cp/log/metrics bring ws, tar-fs and
 * streamx (~150 kB) into every Kubernetes command. Its modules are pure (declarations and their
 * static fields only; checked for the version below): let esbuild drop the unused ones. Another
 * version is bundled as it is until someone checks it again.
 */
const kubePure = {
  name: 'kube-pure',
  setup(b) {
    const checked = '1.4.0';
    const pkgJson = join(root, 'node_modules/@kubernetes/client-node/package.json');
    const version = existsSync(pkgJson) ? JSON.parse(readFileSync(pkgJson, 'utf8')).version : undefined;
    if (version !== checked) {
      console.warn(`bundle: @kubernetes/client-node ${version} is not the checked ${checked}: its unused modules stay in (scripts/bundle.mjs, kubePure)`);
      return;
    }
    b.onResolve({ filter: /.*/ }, async (args) => {
      if (args.pluginData?.kubePure) return undefined;
      if (args.path !== '@kubernetes/client-node' && !/[\\/]@kubernetes[\\/]client-node[\\/]dist[\\/]/.test(args.importer)) return undefined;
      const r = await b.resolve(args.path, { kind: args.kind, importer: args.importer, resolveDir: args.resolveDir, pluginData: { kubePure: true } });
      if (r.errors.length || r.external || !/[\\/]@kubernetes[\\/]client-node[\\/]dist[\\/]/.test(r.path))
        return r.errors.length ? { errors: r.errors } : undefined;
      return { path: r.path, sideEffects: false };
    });
  },
};

/** SDKs built as one script of their own (tree-shaken to what the CLI imports), by package. */
const scriptSdks = { '@kubernetes/client-node': 'kubernetes' };
const id = buildId();

/** In the CLI's own code, `import { … } from '<package>'` of such an SDK reads it through the loader. */
const scriptSdk = {
  name: 'script-sdk',
  setup(b) {
    const filter = new RegExp(
      `^(${Object.keys(scriptSdks)
        .map((p) => p.replace(/[/.]/g, (c) => `\\${c}`))
        .join('|')})$`,
    );
    b.onResolve({ filter }, (args) => {
      if (!scriptSdks[args.path] || /[\\/]node_modules[\\/]/.test(args.importer)) return undefined;
      if (args.kind !== 'import-statement')
        return { errors: [{ text: `${args.path} is loaded as a script with a code cache: import it statically (scripts/bundle.mjs)` }] };
      return { path: scriptSdks[args.path], namespace: 'script-sdk' };
    });
    // CommonJS, so the importer's named imports are read off the exports object (no list needed here).
    b.onLoad({ filter: /.*/, namespace: 'script-sdk' }, (args) => ({
      contents: `module.exports = require('./sdk-${args.path}.cjs');`,
      loader: 'js',
      resolveDir: root,
    }));
    b.onResolve({ filter: /.*/, namespace: 'script-sdk' }, (args) => ({ path: args.path, external: true }));
  },
};

/** The names the CLI imports from a package (tsc's output: one import statement per module). */
function importedNames(files, pkg) {
  const names = new Set();
  const quoted = `['"]${pkg.replace(/[/.]/g, (c) => `\\${c}`)}['"]`;
  for (const file of files) {
    const text = readFileSync(join(root, file), 'utf8');
    for (const m of text.matchAll(new RegExp(`import\\s*\\{([^}]*)\\}\\s*from\\s*${quoted}`, 'g'))) {
      for (const spec of m[1].split(',')) if (spec.trim()) names.add(spec.trim().split(/\s+as\s+/)[0]);
    }
    for (const line of text.split('\n')) {
      if (new RegExp(`from\\s*${quoted}`).test(line) && !/^import\s*\{[^}]*\}\s*from/.test(line)) {
        throw new Error(
          `${file}: only \`import { … } from '${pkg}'\` (on one line, as tsc writes it) is supported for an SDK loaded as a script (scripts/bundle.mjs)`,
        );
      }
    }
  }
  return [...names].sort();
}

const staging = `${outdir}.tmp-${process.pid}`;
rmSync(staging, { recursive: true, force: true });
const fail = (message) => {
  rmSync(staging, { recursive: true, force: true });
  console.error(`bundle: ${message}`);
  process.exit(1);
};

const common = {
  absWorkingDir: root,
  bundle: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external: optional,
  // Whitespace and syntax, not identifiers: dependencies read constructor.name (redis-errors',
  // jose's and openid-client's error names, zod's "received" types), and keepNames would cost more
  // than it saves (measured: the kube SDK compiles in 33 ms this way, 28 ms mangled, 37 ms kept).
  minifyWhitespace: true,
  minifySyntax: true,
  sourcemap: 'linked', // chained through tsc's maps in dist/ to src/*.ts
  sourcesContent: false,
  metafile: true,
  legalComments: 'none',
  define: {
    __RUNBOOK_BUILD_ID__: JSON.stringify(id),
    __RUNBOOK_VERSION__: JSON.stringify(JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version),
  },
  logLevel: 'warning',
};
const inNodeModules = (p) => /[\\/]node_modules[\\/]/.test(p);
const abs = (p) => (isAbsolute(p) ? p : join(root, p));

// 1. The core: what every run loads before it knows its command (main and what it imports
//    statically). One file: esbuild alone would split it into the ~8 chunks it shares with the lazy
//    modules, and each file costs a read and a link at startup (~0.4 ms). Found here by a first pass
//    with every import() left out.
/**
 * A first pass over the graph from `entry`, written nowhere: `decide(args, resolved)` says what an
 * import becomes (undefined: follow it as it is); it sees each import once, resolved by esbuild.
 */
const analyse = (entry, decide) =>
  build({
    ...common,
    entryPoints: [entry],
    write: false,
    sourcemap: false,
    plugins: [
      {
        name: 'analyse',
        setup(b) {
          b.onResolve({ filter: /.*/ }, async (args) => {
            if (args.pluginData?.analysed) return undefined;
            const r = await b.resolve(args.path, { kind: args.kind, importer: args.importer, resolveDir: args.resolveDir, pluginData: { analysed: true } });
            return r.errors.length ? { errors: r.errors } : decide(args, r);
          });
        },
      },
      lazyChildProcess,
      cjsDirname,
    ],
  });

const lazyTargets = new Set();
const analysis = await analyse(join(root, 'dist/main.js'), (args, r) => {
  if (args.kind !== 'dynamic-import') return undefined;
  if (inNodeModules(r.path) && !inNodeModules(args.importer))
    return {
      errors: [{ text: `the startup path imports the package ${args.path} lazily; import it from a lazily loaded module instead (scripts/bundle.mjs)` }],
    };
  lazyTargets.add(r.path);
  return { path: r.path, external: true };
});
const coreFiles = new Set(Object.keys(analysis.metafile.inputs).map(abs));
for (const t of lazyTargets) if (coreFiles.has(t)) lazyTargets.delete(t);

// What the core exports for the lazy modules: the bindings of its own modules and of the packages
// they import, with the names Node itself gives them. A name only one module exports (or several,
// the same object) is exported as it is, and an import of that module becomes an import from
// './main.js' (no file between); a module with a name others export differently, or a default
// export, is reached through a small re-export of unique names (`__core3_x`).
const coreModules = new Map(); // file → { names, ns, specifier?, index }
const corePackages = new Map(); // specifier → file
for (const [file, input] of Object.entries(analysis.metafile.inputs)) {
  if (inNodeModules(file)) continue;
  for (const imp of input.imports)
    if (imp.original && !imp.original.startsWith('.') && !isBuiltin(imp.original) && !imp.external) corePackages.set(imp.original, abs(imp.path));
}
for (const file of coreFiles) if (!inNodeModules(file) && /\.js$/.test(file)) coreModules.set(file, { ns: await import(pathToFileURL(file).href) });
for (const [specifier, file] of corePackages) coreModules.set(file, { ns: await import(specifier), specifier });
/**
 * How a layer (main.js, engine.js) exports its modules' bindings: a name only one of its modules
 * exports (or several, the same object) as it is; any other as `__<prefix><index>_<name>`. A module
 * all of whose names are plain is `direct`: an import of it becomes an import of the layer's file.
 */
function layerExports(modules, prefix) {
  const holders = new Map(); // name → [module]
  [...modules.values()].forEach((m, i) => {
    m.index = i;
    m.names = Object.keys(m.ns);
    for (const n of m.names) holders.set(n, [...(holders.get(n) ?? []), m]);
  });
  const plain = (n) => {
    if (n === 'default') return false;
    const hs = holders.get(n);
    if (hs.length === 1) return true;
    const v = hs[0].ns[n];
    return ((typeof v === 'object' && v !== null) || typeof v === 'function') && hs.every((m) => m.ns[n] === v);
  };
  for (const m of modules.values()) m.direct = m.names.every(plain);
  const alias = (m, name) => `__${prefix}${m.index}_${name}`;
  /** The layer file's own source: every module's bindings, re-exported under the names above. */
  const entrySource = () => {
    const lines = [];
    const done = new Set();
    for (const [file, m] of modules) {
      const names = [];
      for (const n of m.names) {
        if (plain(n) && !done.has(n)) names.push(exportName(n));
        if (plain(n)) done.add(n);
        else names.push(`${exportName(n)} as ${alias(m, n)}`);
      }
      if (names.length) lines.push(`export { ${names.join(', ')} } from ${JSON.stringify(m.specifier ?? file)};`);
    }
    return lines.join('\n');
  };
  /** What an importer outside the layer reads instead of a module that is not direct. */
  const reexport = (m, from) =>
    `export { ${m.names.map((n) => `${plain(n) ? exportName(n) : alias(m, n)} as ${exportName(n)}`).join(', ')} } from '${from}';\n`;
  return { entrySource, reexport };
}
const exportName = (n) => (identifier.test(n) ? n : JSON.stringify(n));
const coreLayer = layerExports(coreModules, 'core');

// 1b. The engine: run-procedure (every procedure's run: config, runner, journal, reporter, gates …)
//     and what it imports statically beyond the core. One file too: esbuild would split it into the
//     ~15 chunks the procedures share parts of, and a read command loaded all of them (measured:
//     ~18 ms as chunks, ~12 ms as one file). Procedures and built-ins read it from engine.js.
const engineRoot = join(root, 'dist/commands/run-procedure.js');
const engineAnalysis = await analyse(engineRoot, (args, r) => {
  if (args.kind === 'dynamic-import') return { path: args.path, external: true };
  return !r.external && coreFiles.has(r.path) ? { path: r.path, external: true } : undefined;
});
const engineFiles = new Set(
  Object.keys(engineAnalysis.metafile.inputs)
    .map(abs)
    .filter((f) => !inNodeModules(f) && !coreFiles.has(f) && /\.js$/.test(f)),
);
const engineModules = new Map(); // file → { names, ns, index }
for (const file of engineFiles) engineModules.set(file, { ns: await import(pathToFileURL(file).href) });
const engineLayer = layerExports(engineModules, 'engine');
const isEngineSide = (importer) => importer === 'engine' || engineFiles.has(abs(importer));

// 2. The lazy modules (the engine, built-ins, procedures, clients, SDKs), split as esbuild does,
//    each import of a core module read from main.js and of an engine module from engine.js instead
//    of a second copy.
const layerMap = {
  name: 'layers',
  setup(b) {
    b.onResolve({ filter: /.*/ }, async (args) => {
      if (args.pluginData?.layerMap || args.namespace === 'core' || args.namespace === 'engine-layer') return undefined;
      if (inNodeModules(args.importer) && !corePackages.has(args.path)) return undefined;
      const r = await b.resolve(args.path, {
        kind: args.kind,
        importer: args.importer,
        resolveDir: args.resolveDir,
        namespace: args.namespace === 'engine-entry' ? 'file' : args.namespace,
        pluginData: { ...args.pluginData, layerMap: true },
      });
      if (r.errors.length || r.external) return undefined;
      if (coreFiles.has(r.path)) {
        const m = coreModules.get(r.path);
        if (!m) return { errors: [{ text: `${relative(root, r.path)} is inside a package main.js bundles; import the package itself (scripts/bundle.mjs)` }] };
        return m.direct ? { path: './main.js', external: true } : { path: r.path, namespace: 'core' };
      }
      if (engineFiles.has(r.path) && !isEngineSide(args.importer)) {
        return engineModules.get(r.path).direct ? { path: './engine.js', external: true } : { path: r.path, namespace: 'engine-layer' };
      }
      return args.namespace === 'engine-entry' ? { path: r.path } : undefined;
    });
    b.onLoad({ filter: /.*/, namespace: 'core' }, (args) => ({ contents: coreLayer.reexport(coreModules.get(args.path), './main.js'), loader: 'js' }));
    b.onLoad({ filter: /.*/, namespace: 'engine-layer' }, (args) => ({
      contents: engineLayer.reexport(engineModules.get(args.path), './engine.js'),
      loader: 'js',
    }));
    b.onResolve({ filter: /^\.\/main\.js$/, namespace: 'core' }, () => ({ path: './main.js', external: true }));
    b.onResolve({ filter: /^\.\/engine\.js$/, namespace: 'engine-layer' }, () => ({ path: './engine.js', external: true }));
    b.onResolve({ filter: /^runbook:engine$/ }, () => ({ path: 'engine', namespace: 'engine-entry' }));
    b.onLoad({ filter: /.*/, namespace: 'engine-entry' }, () => ({ contents: engineLayer.entrySource(), loader: 'js', resolveDir: root }));
  },
};
const result = await build({
  ...common,
  entryPoints: [...[...lazyTargets].filter((t) => !engineFiles.has(t)), { in: 'runbook:engine', out: 'engine' }],
  outdir: staging,
  entryNames: '[name]-[hash]', // flat: chunks import './main.js', and the SDK script sits beside them
  splitting: true,
  plugins: [layerMap, scriptSdk, sdkChunks, noWhatwgUrl, pgOnNode, pgNodeCrypto, ioredisPrototype, zodEnglishOnly, lazyChildProcess, cjsDirname],
});
// An import of a core module reads main.js's exports: a namespace import (or export *) would see
// all of them, so the CLI's own modules may not use one on each other.
for (const file of Object.keys(result.metafile.inputs)) {
  if (inNodeModules(file) || !/^dist\/.*\.js$/.test(file)) continue;
  const m = /^\s*(import\s*\*\s*as\s+[\w$]+|export\s*\*(\s*as\s+[\w$]+)?)\s*from\s*['"]\./m.exec(readFileSync(abs(file), 'utf8'));
  if (m) {
    rmSync(staging, { recursive: true, force: true });
    console.error(`bundle: ${file}: \`${m[1]} from './…'\` is not supported (scripts/bundle.mjs maps imports of main.js's modules by name)`);
    process.exit(1);
  }
}
// The engine's file has a fixed name, which the chunks above import: engine-<hash>.js → engine.js.
{
  const [hashed] = Object.entries(result.metafile.outputs).find(([, out]) => out.entryPoint === 'engine-entry:engine') ?? [];
  if (!hashed) fail('the lazy build made no engine chunk');
  const name = relative(staging, abs(hashed));
  for (const [path, out] of Object.entries(result.metafile.outputs)) {
    if (out.imports.some((i) => i.path.endsWith(name))) fail(`${path} imports ${name} by its hashed name`);
  }
  const text = readFileSync(abs(hashed), 'utf8');
  const mapComment = `//# sourceMappingURL=${name}.map`;
  if (!text.trimEnd().endsWith(mapComment)) fail(`${name} does not end with its source map comment`);
  writeFileSync(join(staging, 'engine.js'), `${text.trimEnd().slice(0, -mapComment.length)}//# sourceMappingURL=engine.js.map\n`);
  const map = JSON.parse(readFileSync(`${abs(hashed)}.map`, 'utf8'));
  writeFileSync(join(staging, 'engine.js.map'), JSON.stringify({ ...map, file: 'engine.js' }));
  rmSync(abs(hashed));
  rmSync(`${abs(hashed)}.map`);
  const enginePath = relative(root, join(staging, 'engine.js'));
  result.metafile.outputs[enginePath] = result.metafile.outputs[hashed];
  delete result.metafile.outputs[hashed];
  result.metafile.outputs[`${enginePath}.map`] = result.metafile.outputs[`${hashed}.map`];
  delete result.metafile.outputs[`${hashed}.map`];
}
const lazyOutput = new Map(); // lazy module → its file in bundle/
for (const [path, out] of Object.entries(result.metafile.outputs)) if (out.entryPoint) lazyOutput.set(abs(out.entryPoint), `./${relative(staging, abs(path))}`);

// 3. main.js: the core, its exports for the lazy modules, its import()s pointing at their files.
const core = await build({
  ...common,
  entryPoints: { main: 'runbook:core' },
  outdir: staging,
  plugins: [
    {
      name: 'core-entry',
      setup(b) {
        b.onResolve({ filter: /^runbook:core$/ }, () => ({ path: 'core', namespace: 'core-entry' }));
        b.onLoad({ filter: /.*/, namespace: 'core-entry' }, () => ({ contents: coreLayer.entrySource(), loader: 'js', resolveDir: root }));
        b.onResolve({ filter: /.*/ }, async (args) => {
          if (args.kind !== 'dynamic-import' || args.pluginData?.coreEntry) return undefined;
          const r = await b.resolve(args.path, { kind: args.kind, importer: args.importer, resolveDir: args.resolveDir, pluginData: { coreEntry: true } });
          if (engineFiles.has(r.path)) {
            if (!engineModules.get(r.path).direct)
              return { errors: [{ text: `${relative(root, r.path)}: main.js imports it, so its names must be unique in the engine (scripts/bundle.mjs)` }] };
            return { path: './engine.js', external: true };
          }
          const file = lazyOutput.get(r.path);
          return file ? { path: file, external: true } : undefined;
        });
      },
    },
    lazyChildProcess,
    cjsDirname,
  ],
});
const coreNow = new Set(
  Object.keys(core.metafile.inputs)
    .filter((f) => !f.startsWith('core-entry:'))
    .map(abs),
);
const grown = [...coreNow].filter((f) => !coreFiles.has(f));
if (grown.length) {
  rmSync(staging, { recursive: true, force: true });
  console.error(`bundle: main.js took modules the first pass did not see: ${grown.map((f) => relative(root, f)).join(', ')}`);
  process.exit(1);
}

// The SDK scripts: only what the CLI imports (tree-shaken), CommonJS for node:vm, nothing shared.
const scripts = [];
for (const [pkg, name] of Object.entries(scriptSdks)) {
  const importers = Object.entries(result.metafile.inputs)
    .filter(([, input]) => input.imports.some((i) => i.original === pkg))
    .map(([file]) => file);
  if (!importers.length) continue;
  const names = importedNames(importers, pkg);
  scripts.push(
    await build({
      absWorkingDir: root,
      stdin: { contents: `export { ${names.join(', ')} } from '${pkg}';\n`, resolveDir: root, sourcefile: `sdk-${name}.js`, loader: 'js' },
      outfile: join(staging, `sdk-${name}.cjs`),
      bundle: true,
      format: 'cjs',
      platform: 'node',
      target: 'node20',
      external: optional,
      plugins: [kubePure, noWhatwgUrl, cjsDirname],
      minifyWhitespace: true,
      minifySyntax: true,
      sourcemap: 'linked',
      sourcesContent: false,
      metafile: true,
      legalComments: 'none',
      banner: { js: cjsBanner },
      footer: { js: cjsFooter },
      logLevel: 'warning',
    }),
  );
}

const outputs = Object.assign({}, core.metafile.outputs, result.metafile.outputs, ...scripts.map((r) => r.metafile.outputs));
const inputs = Object.assign({}, core.metafile.inputs, result.metafile.inputs, ...scripts.map((r) => r.metafile.inputs));
// Every import left external must be a Node built-in or a listed optional module, and a script
// (run by node:vm, with no module loader behind it) may not import() anything.
const stray = new Set();
for (const out of Object.values(outputs)) {
  for (const imp of out.imports) if (imp.external && !isBuiltin(imp.path) && !optional.includes(imp.path) && !imp.path.startsWith('./')) stray.add(imp.path);
}
if (stray.size) fail(`unresolved imports left external: ${[...stray].join(', ')} (bundle them, or list them in scripts/bundle.mjs's optional modules)`);
for (const r of scripts) {
  for (const [path, out] of Object.entries(r.metafile.outputs)) {
    if (out.imports.some((i) => i.kind === 'dynamic-import')) fail(`${path} would import() at run time, which a script run by node:vm cannot`);
  }
}
const localesUser = Object.keys(inputs).find(
  (f) => !/[\\/]node_modules[\\/]zod[\\/]/.test(f) && /\.js$/.test(f) && existsSync(join(root, f)) && readFileSync(join(root, f), 'utf8').includes('locales'),
);
if (localesUser && /^dist\//.test(localesUser)) fail(`${localesUser} mentions zod's locales, which the bundle leaves out (scripts/bundle.mjs, zodEnglishOnly)`);

// 4. CommonJS, chunk by chunk (each chunk's imports of the others become require()s, its import()s
//    require()s behind a promise), with source maps chained back to src/*.ts: Node 20 keeps no code
//    cache for ES modules, and V8's for a script (node:vm) saves most of each chunk's compile.
{
  const esm = readdirSync(staging).filter((f) => f.endsWith('.js'));
  const cjsDir = `${staging}-cjs`;
  // Node reads bundle/*.js as CommonJS too (under -v, it runs them itself); and so esbuild gives an
  // import() of a chunk the chunk's exports, not Node's view of a CommonJS module (all as default).
  writeFileSync(join(staging, 'package.json'), '{ "type": "commonjs" }\n');
  try {
    await build({
      absWorkingDir: root,
      entryPoints: esm.map((f) => join(staging, f)),
      outdir: cjsDir,
      bundle: false,
      format: 'cjs',
      platform: 'node',
      target: 'node20',
      supported: { 'dynamic-import': false },
      define: { 'import.meta.url': '__chunk.url' },
      banner: { js: cjsBanner },
      footer: { js: cjsFooter },
      minifyWhitespace: true,
      minifySyntax: true,
      sourcemap: 'linked',
      sourcesContent: false,
      legalComments: 'none',
      logLevel: 'warning',
    });
    for (const f of readdirSync(cjsDir)) renameSync(join(cjsDir, f), join(staging, f));
  } catch (err) {
    fail(`the CommonJS pass failed: ${err.message}`);
  } finally {
    rmSync(cjsDir, { recursive: true, force: true });
  }
  for (const f of readdirSync(staging)) {
    if (/\.c?js$/.test(f) && /[^\x00-\x7f]/.test(readFileSync(join(staging, f), 'latin1')))
      fail(`${f} is not ASCII, which scripts/chunk-loader.cjs reads it as`);
  }
  writeFileSync(join(staging, 'loader.cjs'), readFileSync(join(root, 'scripts/chunk-loader.cjs'), 'utf8').replace("'BUILD_ID'", JSON.stringify(id)));
}

// What each chunk holds: bytes by package ("(runbook)" for src/, "(glue)" for the wrappers above),
// runbook's own modules (as src/ paths), and the chunks it imports statically.
const chunks = {};
for (const [path, out] of Object.entries(outputs)) {
  if (path.endsWith('.map')) continue;
  const packages = {};
  const modules = [];
  for (const [input, { bytesInOutput }] of Object.entries(out.inputs)) {
    if (!bytesInOutput) continue;
    const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(input);
    const pkg = m ? m[1] : /^(sdk|stub|script-sdk|core|core-entry):|^<stdin>$/.test(input) || input.startsWith('scripts/') ? '(glue)' : '(runbook)';
    packages[pkg] = (packages[pkg] ?? 0) + bytesInOutput;
    if (pkg === '(runbook)') modules.push(input.replace(/^dist\//, 'src/').replace(/\.js$/, '.ts'));
  }
  const name = relative(staging, join(root, path));
  const imports = out.imports.filter((i) => i.kind === 'import-statement' && !i.external).map((i) => relative(staging, join(root, i.path)));
  chunks[name] = {
    bytes: statSync(join(staging, name)).size,
    packages: Object.fromEntries(Object.entries(packages).sort((a, b) => b[1] - a[1])),
    modules: modules.sort(),
    imports,
  };
}
writeFileSync(join(staging, 'chunks.json'), JSON.stringify(chunks, null, 1) + '\n');

// Swap in the new bundle (others may be running the CLI: keep the gap short), then drop the old.
const old = `${outdir}.old-${process.pid}`;
if (existsSync(outdir)) renameSync(outdir, old);
renameSync(staging, outdir);
rmSync(old, { recursive: true, force: true });

if (report) {
  const kb = (n) => `${(n / 1024).toFixed(0)} kB`;
  const rows = Object.entries(chunks).sort((a, b) => b[1].bytes - a[1].bytes);
  let total = 0;
  for (const [name, c] of rows) {
    total += c.bytes;
    const top = Object.entries(c.packages)
      .slice(0, 4)
      .map(([p, n]) => `${p} ${kb(n)}`)
      .join(', ');
    console.log(`${kb(c.bytes).padStart(8)}  ${name.padEnd(44)} ${top}`);
  }
  console.log(`${kb(total).padStart(8)}  total, ${rows.length} chunks`);
}
