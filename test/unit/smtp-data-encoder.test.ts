// DataEncoder: dot-stuffing that round-trips under any chunking, refusal of every bare CR or LF
// (wherever it falls relative to chunk boundaries), the size limit, and the header-block copy.
import fc from 'fast-check';
import { DataEncoder, DataRefusal } from '../../src/smtp/data-encoder';

interface Run {
  readonly output: Buffer;
  readonly error: Error | null;
  readonly header: Buffer | null | undefined;
}

/** Feeds `input` split at `cuts` (offsets) and collects what comes out. */
async function encode(input: Buffer, cuts: readonly number[] = [], maxBytes = Number.MAX_SAFE_INTEGER): Promise<Run> {
  let header: Buffer | null | undefined;
  const encoder = new DataEncoder({ maxBytes, onHeaderBlock: (b) => (header = b) });
  const out: Buffer[] = [];
  encoder.on('data', (c: Buffer) => out.push(c));
  const done = new Promise<Error | null>((resolve) => {
    encoder.on('end', () => resolve(null));
    encoder.on('error', (e) => resolve(e));
  });
  const points = [...new Set(cuts.map((c) => Math.min(c, input.length)))].sort((a, b) => a - b);
  let last = 0;
  for (const p of [...points, input.length]) {
    if (p > last) encoder.write(input.subarray(last, p));
    last = p;
  }
  encoder.end();
  return { output: Buffer.concat(out), error: await done, header };
}

/** What an SMTP server does with DATA bytes: remove one leading dot from each line. */
function unstuff(data: Buffer): Buffer {
  return Buffer.from(
    data
      .toString('latin1')
      .split('\r\n')
      .map((line) => (line.startsWith('.') ? line.slice(1) : line))
      .join('\r\n'),
    'latin1',
  );
}

/** Lines of printable bytes, dots and 8-bit bytes, always joined with CRLF. */
const line = fc.array(fc.constantFrom(...'ab. .\u00e9x\t'.split('')), { maxLength: 12 }).map((chars) => chars.join(''));
const validMessage = fc
  .array(line, { maxLength: 12 })
  .map((lines) => Buffer.from(lines.map((l) => `${l}\r\n`).join(''), 'latin1'));
const cuts = fc.array(fc.nat({ max: 200 }), { maxLength: 8 });

describe('DataEncoder', () => {
  it('dot-stuffs so that unstuffing gives the input back, under any chunking', async () => {
    await fc.assert(
      fc.asyncProperty(validMessage, cuts, async (message, at) => {
        const { output, error } = await encode(message, at);
        expect(error).toBeNull();
        expect(unstuff(output).equals(message)).toBe(true);
        // No line of the output is a lone "." (that would end the data early).
        expect(`\r\n${output.toString('latin1')}`.includes('\r\n.\r\n')).toBe(false);
      }),
    );
  });

  it('refuses any bare CR or LF, wherever it falls', async () => {
    const bare = fc.tuple(validMessage, fc.constantFrom('\r', '\n', '\r\r\n', '\n\r'), validMessage, cuts);
    await fc.assert(
      fc.asyncProperty(bare, async ([before, lone, after, at]) => {
        const input = Buffer.concat([before, Buffer.from(`x${lone}y`, 'latin1'), after]);
        const { error } = await encode(input, at);
        expect(error).toBeInstanceOf(DataRefusal);
        expect((error as DataRefusal).reason).toBe('bare-line-ending');
      }),
    );
  });

  it('never writes the offending byte or anything after it', async () => {
    const input = Buffer.from('Subject: x\r\n\r\nhello\n.\r\nMAIL FROM:<ceo@example.com>\r\n');
    const { output, error } = await encode(input, [3, 17, 21]);
    expect(error).toBeInstanceOf(DataRefusal);
    expect(output.toString()).not.toContain('\n.');
    expect(output.toString()).not.toContain('MAIL FROM');
  });

  it('holds a CR that ends a chunk until it knows an LF follows', async () => {
    const { output, error } = await encode(Buffer.from('a\r\nb\r\n'), [2, 5]);
    expect(error).toBeNull();
    expect(output.toString()).toBe('a\r\nb\r\n');
    const refused = await encode(Buffer.from('a\r\rb'), [2]);
    expect(refused.error).toBeInstanceOf(DataRefusal);
  });

  it('refuses a message over the limit', async () => {
    const { error } = await encode(Buffer.alloc(3000, 'ab\r\n'), [1000, 2000], 2500);
    expect((error as DataRefusal).reason).toBe('too-big');
  });

  it('adds the CRLF the final dot needs only when the data does not end with one', async () => {
    expect((await encode(Buffer.from('abc'))).output.toString()).toBe('abc\r\n');
    expect((await encode(Buffer.from(''))).output.toString()).toBe('');
    expect((await encode(Buffer.from('abc\r\n'))).output.toString()).toBe('abc\r\n');
  });

  it('copies the header block up to and including the empty line, under any chunking', async () => {
    const message = Buffer.from('From: a@b\r\nX-Mailer: iPhone Mail (22C161)\r\n\r\nbody\r\n\r\nmore\r\n');
    await fc.assert(
      fc.asyncProperty(cuts, async (at) => {
        const { header } = await encode(message, at);
        expect(header?.toString()).toBe('From: a@b\r\nX-Mailer: iPhone Mail (22C161)\r\n\r\n');
      }),
    );
    expect((await encode(Buffer.from('\r\nno header\r\n'))).header?.toString()).toBe('\r\n');
    expect((await encode(Buffer.from('Subject: only\r\n'))).header?.toString()).toBe('Subject: only\r\n');
  });
});
