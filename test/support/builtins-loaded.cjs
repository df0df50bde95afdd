// Loaded with `node --require`: at exit, writes every Node built-in the process loaded (Node's own
// start-up included) to $BUILTINS_LOADED_FILE, one a line, e.g. `tty` or `internal/streams/writable`.
'use strict';
const { writeFileSync } = require('node:fs');

process.on('exit', () => {
  const names = process.moduleLoadList.filter((m) => m.startsWith('NativeModule ')).map((m) => m.slice('NativeModule '.length));
  if (process.env.BUILTINS_LOADED_FILE) writeFileSync(process.env.BUILTINS_LOADED_FILE, names.join('\n') + '\n');
});
