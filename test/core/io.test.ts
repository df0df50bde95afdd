// The process's output without Node's streams (FdOutput), and the guard that absorbs its failures.
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { FdOutput, GuardedOutput, isTerminal } from '../../src/core/io.js';
import { tempDir } from '../support/cli.js';

function errno(code: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: write`), { code });
}

/** A PassThrough that keeps what it was given. */
function capture(): PassThrough & { text: () => string } {
  const s = new PassThrough();
  const chunks: Buffer[] = [];
  s.on('data', (d: Buffer) => chunks.push(d));
  return Object.assign(s, { text: () => Buffer.concat(chunks).toString('utf8') });
}

describe('FdOutput', () => {
  it('writes every byte to its descriptor, UTF-8 included, and never makes a stream', () => {
    const file = join(tempDir('fd-output-'), 'out.txt');
    const fd = openSync(file, 'w');
    let made = 0;
    const out = new FdOutput(fd, () => {
      made++;
      return new PassThrough();
    });
    out.write('plain line\n');
    out.write('naïve ✔ 漢字\n');
    out.write(Buffer.from('bytes\n'));
    closeSync(fd);
    expect(readFileSync(file, 'utf8')).toBe('plain line\nnaïve ✔ 漢字\nbytes\n');
    expect(made).toBe(0);
    expect(out.isTTY).toBe(false);
    expect(out.columns).toBeUndefined();
  });

  it('goes on after a short write until all of the chunk is written', () => {
    const got: Buffer[] = [];
    const out = new FdOutput(
      9,
      () => new PassThrough(),
      (_fd, data, offset, length) => {
        const n = Math.min(3, length);
        got.push(Buffer.from(data.subarray(offset, offset + n)));
        return n;
      },
    );
    expect(out.write('✔ twelve bytes')).toBe(true);
    expect(Buffer.concat(got).toString('utf8')).toBe('✔ twelve bytes');
    expect(got.length).toBeGreaterThan(3);
  });

  it('when the descriptor would block (EAGAIN), the rest of the chunk and every later write go through Node’s stream, in order', () => {
    const written: string[] = [];
    let calls = 0;
    const stream = capture();
    const out = new FdOutput(
      9,
      () => stream,
      (_fd, data, offset, length) => {
        calls++;
        if (calls === 2) throw errno('EAGAIN');
        const n = Math.min(4, length);
        written.push(Buffer.from(data.subarray(offset, offset + n)).toString());
        return n;
      },
    );
    out.write('abcdefgh');
    out.write('ijkl');
    expect(calls).toBe(2);
    expect(written.join('') + stream.text()).toBe('abcdefghijkl');
    expect(written.join('')).toBe('abcd');
  });

  it('other write errors reach the caller; a guard absorbs the first, tells its listeners once and drops what follows', () => {
    let calls = 0;
    const out = new FdOutput(
      9,
      () => new PassThrough(),
      () => {
        calls++;
        throw errno('EPIPE');
      },
    );
    expect(() => out.write('x')).toThrow(/EPIPE/);
    const guard = new GuardedOutput(out);
    const closed: string[] = [];
    guard.onClose((err) => closed.push(err.code ?? ''));
    expect(guard.write('first')).toBe(true);
    expect(guard.write('second')).toBe(true);
    expect(closed).toEqual(['EPIPE']);
    expect(guard.broken).toBe(true);
    expect(calls).toBe(2); // the second write never reached the descriptor
  });

  it("the stream's own errors, once it is made, reach the guard too", () => {
    const stream = new PassThrough();
    const out = new FdOutput(
      9,
      () => stream,
      () => {
        throw errno('EAGAIN');
      },
    );
    const guard = new GuardedOutput(out);
    guard.write('moves to the stream');
    stream.emit('error', errno('EIO'));
    expect(guard.failure?.code).toBe('EIO');
  });
});

describe('isTerminal', () => {
  it('is false for a file, /dev/null and a pipe', async () => {
    const file = openSync(join(tempDir('is-terminal-'), 'f'), 'w');
    const devNull = openSync('/dev/null', 'w');
    try {
      expect(isTerminal(file)).toBe(false);
      expect(isTerminal(devNull)).toBe(false);
    } finally {
      closeSync(file);
      closeSync(devNull);
    }
    // Node's own descriptors, in a process of its own: stdin a file, stdout a pipe, stderr /dev/null.
    // (That --help loads no node:tty for them is the built CLI's test.)
    const probe = 'const { isTerminal } = await import(process.argv[1]); process.stdout.write(JSON.stringify([0, 1, 2].map(isTerminal)));';
    const input = join(tempDir('is-terminal-'), 'in');
    writeSync(openSync(input, 'w'), 'x');
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', probe, join(import.meta.dirname, '../../src/core/io.ts')], {
      stdio: [openSync(input, 'r'), 'pipe', openSync('/dev/null', 'w')],
    });
    let text = '';
    child.stdout!.on('data', (d: Buffer) => (text += d));
    await new Promise((resolve) => child.on('close', resolve));
    expect(JSON.parse(text)).toEqual([false, false, false]);
  });
});
