#!/usr/bin/env node
// Thin launcher: the CLI lives in bundle/ (built from dist/ by scripts/bundle.mjs), run by
// bundle/loader.cjs with V8's code cache. CommonJS (bin/package.json), as the bundle is: an ES
// module entry alone costs Node ~4 ms of loader start-up. Never calls process.exit, so the journal
// flushes. With -v/--verbose, stack traces point at src/*.ts through the bundle's source maps: Node
// reads them (large, and slow to parse) only then, and only for modules it loads itself.
'use strict';
const argv = process.argv.slice(2);
const verbose = argv.includes('-v') || argv.includes('--verbose');
if (verbose) process.setSourceMapsEnabled(true);
const { run } = require('../bundle/loader.cjs').load('main.js', { codeCache: !verbose });

run(argv).then((code) => {
  process.exitCode = code;
});
