#!/usr/bin/env node
// Thin launcher: the CLI lives in bundle/ (built from dist/ by scripts/bundle.mjs), run by
// bundle/loader.cjs with V8's code cache. CommonJS (bin/package.json), as the bundle is: an ES
// module entry alone costs Node ~4 ms of loader start-up. Calls process.exit only once nothing is
// left in flight, so the journal always flushes. With -v/--verbose, stack traces point at src/*.ts
// through the bundle's source maps: Node reads them (large, and slow to parse) only then, and only
// for modules it loads itself.
'use strict';
const argv = process.argv.slice(2);
const verbose = argv.includes('-v') || argv.includes('--verbose');
if (verbose) process.setSourceMapsEnabled(true);
const { run } = require('../bundle/loader.cjs').load('main.js', { codeCache: !verbose });

run(argv).then((code) => {
  process.exitCode = code;
  // With no handle, request or timer left (the journal is synced, output went out with write(2)),
  // end now: waiting would only run V8's pending tasks and tear the heap down (~1 ms of --help).
  process.nextTick(() => {
    if (process.getActiveResourcesInfo().length === 0) process.exit();
  });
});
