// Loaded with `node --import`: records every module the process loads into $TRACE_IMPORTS_FILE, one
// URL a line, so tests can prove that a command's startup path imports no SDK. Three ways in: ES
// modules (a loader hook), CommonJS through Node's require (Module._load), and the bundle's chunks,
// which bundle/loader.cjs compiles with node:vm (vm.Script, seen by the file name it is given).
import { appendFileSync } from 'node:fs';
import Module, { isBuiltin, register } from 'node:module';
import { pathToFileURL } from 'node:url';
import vm from 'node:vm';

const hook = `
import { appendFileSync } from 'node:fs';
export async function load(url, context, next) {
  if (process.env.TRACE_IMPORTS_FILE) appendFileSync(process.env.TRACE_IMPORTS_FILE, url + '\\n');
  return next(url, context);
}`;
register(`data:text/javascript,${encodeURIComponent(hook)}`);

const record = (file) => {
  if (process.env.TRACE_IMPORTS_FILE) appendFileSync(process.env.TRACE_IMPORTS_FILE, pathToFileURL(file).href + '\n');
};

const load = Module._load;
Module._load = function (request, parent, isMain) {
  if (!isBuiltin(request)) record(Module._resolveFilename(request, parent, isMain));
  return load.call(this, request, parent, isMain);
};

const Script = vm.Script;
vm.Script = class TracedScript extends Script {
  constructor(code, options) {
    if (typeof options?.filename === 'string' && options.filename.startsWith('/')) record(options.filename);
    super(code, options);
  }
};
