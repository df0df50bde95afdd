// The physical floor of `runbook cache stats` for a Node program: start Node, open one TCP
// connection, send INFO everything, wait for the whole reply, print it. No client library, no
// config, no journal. Run by bench/read-commands.mjs as `node redis-info-floor.cjs <port> [host]`.
// CommonJS and a plain file, as bin/runbook.js is, so both pay the same Node start-up.
'use strict';
const { connect } = require('node:net');

const port = Number(process.argv[2]);
const host = process.argv[3] ?? '127.0.0.1';
const socket = connect(port, host, () => socket.write('*2\r\n$4\r\nINFO\r\n$10\r\neverything\r\n'));
const chunks = [];
let length = 0;
socket.on('data', (chunk) => {
  chunks.push(chunk);
  length += chunk.length;
  const reply = Buffer.concat(chunks, length);
  const eol = reply.indexOf('\r\n');
  if (eol < 0) return;
  if (reply[0] !== 0x24) throw new Error(`not a bulk reply: ${reply.toString('latin1', 0, eol)}`);
  const size = Number(reply.toString('latin1', 1, eol));
  if (reply.length < eol + 2 + size + 2) return;
  process.stdout.write(reply.subarray(eol + 2, eol + 2 + size));
  socket.end();
});
socket.on('error', (err) => {
  console.error(`redis-info-floor: ${err.message}`);
  process.exitCode = 1;
});
