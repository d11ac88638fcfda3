// Turns the message bytes smtp-server hands over (dot-unstuffed) into DATA bytes for the upstream:
// refuses any bare CR or LF (the SMTP smuggling defence), counts the size, dot-stuffs line starts
// (RFC 5321 §4.5.2) and copies the header block aside for the X-Mailer / User-Agent hints.
import { Transform, type TransformCallback } from 'node:stream';

const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;
const CRLF = Buffer.from('\r\n');
const DOT_BUF = Buffer.from('.');
const HEADER_END = Buffer.from('\r\n\r\n');

export type DataRefusalReason = 'bare-line-ending' | 'too-big';

/** Why a message is refused while streaming; nothing after the offending byte reaches the upstream. */
export class DataRefusal extends Error {
  constructor(readonly reason: DataRefusalReason) {
    super(reason === 'too-big' ? 'message exceeds the size limit' : 'bare CR or LF in message data');
    this.name = 'DataRefusal';
  }
}

export interface DataEncoderOptions {
  readonly maxBytes: number;
  /** Largest header block copied for hints (the rest of a longer block is not looked at). */
  readonly maxHeaderBytes?: number;
  /** Called once with the header block (up to and including the empty line), or null if none fits. */
  readonly onHeaderBlock?: (block: Buffer | null) => void;
}

export class DataEncoder extends Transform {
  /** Bytes received (before dot-stuffing): the message size as SIZE counts it. */
  bytesIn = 0;
  /** A CR that ended the previous chunk: valid only if the next chunk starts with LF. */
  private heldCR = false;
  private atLineStart = true;
  /** True once the last bytes written ended a line (so the final dot can follow directly). */
  private endsWithCrlf = true;
  private header: Buffer[] | null = [];
  private headerBytes = 0;

  constructor(private readonly options: DataEncoderOptions) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytesIn += chunk.length;
    if (this.bytesIn > this.options.maxBytes) return callback(new DataRefusal('too-big'));
    if (this.header) this.captureHeader(chunk);
    const out: Buffer[] = [];
    let data = chunk;
    if (this.heldCR) {
      if (data[0] !== LF) return callback(new DataRefusal('bare-line-ending'));
      out.push(CRLF);
      this.heldCR = false;
      this.atLineStart = this.endsWithCrlf = true;
      data = data.subarray(1);
    }
    if (data.length === 0) return callback(null, out.length ? Buffer.concat(out) : undefined);

    let segmentStart = 0;
    if (this.atLineStart && data[0] === DOT) out.push(DOT_BUF);
    let pos = 0;
    let lineStart = -1;
    for (;;) {
      const lf = data.indexOf(LF, pos);
      const cr = data.indexOf(CR, pos);
      if (cr === -1 && lf === -1) break;
      // An LF before any CR (from pos) has no CR in front of it: a bare LF.
      if (cr === -1 || (lf !== -1 && lf < cr)) return callback(new DataRefusal('bare-line-ending'));
      if (cr === data.length - 1) {
        out.push(data.subarray(segmentStart, cr));
        this.heldCR = true;
        segmentStart = data.length;
        break;
      }
      if (data[cr + 1] !== LF) return callback(new DataRefusal('bare-line-ending'));
      pos = cr + 2;
      lineStart = pos;
      if (pos < data.length && data[pos] === DOT) {
        // RFC 5321 §4.5.2: a line starting with "." gets one more, so no line ends the data early.
        out.push(data.subarray(segmentStart, pos), DOT_BUF);
        segmentStart = pos;
      }
    }
    if (segmentStart < data.length) out.push(data.subarray(segmentStart));
    this.atLineStart = !this.heldCR && lineStart === data.length;
    this.endsWithCrlf = this.atLineStart;
    // The common case (no line starting with a dot) passes the chunk through without a copy.
    callback(null, out.length === 1 ? out[0] : Buffer.concat(out));
  }

  override _flush(callback: TransformCallback): void {
    if (this.heldCR) return callback(new DataRefusal('bare-line-ending'));
    // A message that is all header (no empty line) still has a header block.
    if (this.header) this.finishHeader(this.headerBytes > 0 ? Buffer.concat(this.header) : null);
    // The final "." must start a line; smtp-server's data always ends with CRLF, a Buffer may not.
    callback(null, this.endsWithCrlf ? undefined : CRLF);
  }

  private captureHeader(chunk: Buffer): void {
    const max = this.options.maxHeaderBytes ?? 64 * 1024;
    const parts = this.header as Buffer[];
    let take = Math.min(chunk.length, Math.max(0, max - this.headerBytes));
    // Copy no further than the empty line when it is in this chunk (most messages: the first one),
    // not the whole chunk of body behind it. An empty line split across chunks is found below.
    const inChunk = chunk.indexOf(HEADER_END);
    if (inChunk >= 0) take = Math.min(take, inChunk + HEADER_END.length);
    parts.push(chunk.subarray(0, take));
    this.headerBytes = Math.min(max, this.headerBytes + take);
    const copied = Buffer.concat(parts);
    this.header = [copied];
    // A message may have no header at all (it starts with the empty line).
    if (copied.subarray(0, 2).equals(CRLF)) return this.finishHeader(copied.subarray(0, 2));
    const end = copied.indexOf(HEADER_END);
    if (end >= 0) return this.finishHeader(copied.subarray(0, end + HEADER_END.length));
    if (this.headerBytes >= max) this.finishHeader(null);
  }

  private finishHeader(block: Buffer | null): void {
    this.header = null;
    this.options.onHeaderBlock?.(block);
  }
}
