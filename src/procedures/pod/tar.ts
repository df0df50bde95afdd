import { Transform, type TransformCallback } from 'node:stream';

/**
 * The bytes of the one regular file in a tar stream (what `tar -cf - -C dir file` prints), passed on
 * as they arrive: ustar and GNU headers, pax size records, base-256 sizes. `size` is the file's size
 * from its header; a stream that ends before all of it came fails, so a cut copy is never complete.
 */
export class TarFileExtractor extends Transform {
  size: number | null = null;
  name: string | null = null;
  private buf: Buffer = Buffer.alloc(0);
  /** Bytes of the current entry's data still to pass on (file) or skip (others), then its padding. */
  private remaining = 0;
  private padding = 0;
  private emitting = false;
  private done = false;
  private paxSize: number | null = null;

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    try {
      this.drain();
      cb();
    } catch (err) {
      cb(err as Error);
    }
  }

  override _flush(cb: TransformCallback): void {
    if (this.size === null) return cb(new Error("the tar stream ended before the file's header"));
    if (!this.done) return cb(new Error(`the tar stream ended ${this.remaining} bytes before the end of the file`));
    cb();
  }

  private drain(): void {
    for (;;) {
      if (this.remaining > 0) {
        if (this.buf.length === 0) return;
        const n = Math.min(this.remaining, this.buf.length);
        if (this.emitting) this.push(this.buf.subarray(0, n));
        else if (this.paxPending) this.paxText += this.buf.subarray(0, n).toString('utf8');
        this.buf = this.buf.subarray(n);
        this.remaining -= n;
        if (this.remaining > 0) return;
        if (this.emitting) {
          this.emitting = false;
          this.done = true;
        }
        if (this.paxPending) {
          this.paxPending = false;
          const m = /(?:^|\n)\d+ size=(\d+)\n/.exec(this.paxText);
          this.paxSize = m ? Number(m[1]) : null;
        }
      }
      if (this.padding > 0) {
        const n = Math.min(this.padding, this.buf.length);
        this.buf = this.buf.subarray(n);
        this.padding -= n;
        if (this.padding > 0) return;
      }
      if (this.done) {
        this.buf = Buffer.alloc(0);
        return;
      }
      if (this.buf.length < 512) return;
      const h = this.buf.subarray(0, 512);
      this.buf = this.buf.subarray(512);
      if (h.every((b) => b === 0)) continue;
      const type = String.fromCharCode(h[156] || 48);
      const size = this.paxSize ?? headerSize(h);
      this.paxSize = null;
      this.remaining = size;
      this.padding = (512 - (size % 512)) % 512;
      if (type === '0' || type === '7') {
        this.size = size;
        this.name = h.subarray(0, 100).toString('utf8').replace(/\0.*$/s, '');
        this.emitting = true;
        if (size === 0) {
          this.emitting = false;
          this.done = true;
        }
      } else if (type === 'x') {
        this.paxPending = true;
        this.paxText = '';
      }
    }
  }

  private paxPending = false;
  private paxText = '';
}

function headerSize(h: Buffer): number {
  const field = h.subarray(124, 136);
  // GNU base-256 for sizes beyond 8 GiB: the high bit of the first byte is set.
  if (field[0] & 0x80) {
    let n = 0;
    for (let i = 1; i < field.length; i++) n = n * 256 + field[i];
    return n;
  }
  const text = field
    .toString('ascii')
    .replace(/[\0 ]+$/g, '')
    .trim();
  const n = parseInt(text || '0', 8);
  if (!Number.isFinite(n)) throw new Error('not a tar stream (bad size field)');
  return n;
}
