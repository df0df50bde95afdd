#!/usr/bin/env node
// Thin launcher: the CLI lives in bundle/main.js (built from dist/ by scripts/bundle.mjs). Never calls process.exit, so the journal flushes.
// With -v/--verbose, stack traces point at src/*.ts through the bundle's source maps (read only then:
// they are large, and parsing them would slow every command).
const argv = process.argv.slice(2);
if (argv.includes('-v') || argv.includes('--verbose')) process.setSourceMapsEnabled(true);
const { run } = await import('../bundle/main.js');

process.exitCode = await run(argv);
