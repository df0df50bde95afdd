#!/usr/bin/env node
// Thin launcher: the CLI lives in dist/main.js. Never calls process.exit, so the journal flushes.
import { run } from '../dist/main.js';

process.exitCode = await run(process.argv.slice(2));
