#!/usr/bin/env node
// Thin launcher: the CLI lives in bundle/main.js (built from dist/ by scripts/bundle.mjs). Never calls process.exit, so the journal flushes.
import { run } from '../bundle/main.js';

process.exitCode = await run(process.argv.slice(2));
