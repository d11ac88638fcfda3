// The upstream read buffers: quiet sessions share one buffer, so a chunk must never change under a
// sink that keeps it; bulk reads get a buffer of their own.
import { UpstreamReads } from '../../src/imap/read-buffer';

/** One read as libuv does it: ask for the buffer, fill it, call back with the byte count. */
function read(reads: UpstreamReads, text: string): void {
  const buf = reads.onread.buffer();
  const n = buf.write(text, 'latin1');
  reads.onread.callback(n, buf);
}

describe('UpstreamReads', () => {
  it('quiet sessions read into one shared buffer, and what a sink keeps stays as it was read', () => {
    const a = new UpstreamReads();
    const b = new UpstreamReads();
    const kept: Buffer[] = [];
    a.take((chunk) => kept.push(chunk));
    b.take((chunk) => kept.push(chunk));
    expect(a.onread.buffer()).toBe(b.onread.buffer());
    read(a, '* 3 EXISTS\r\n');
    read(b, '* 9 EXPUNGE\r\n');
    read(a, '* 4 EXISTS\r\n');
    expect(kept.map((c) => c.toString('latin1'))).toEqual(['* 3 EXISTS\r\n', '* 9 EXPUNGE\r\n', '* 4 EXISTS\r\n']);
  });

  it('after a full read a session gets its own large buffer, reused unless a sink retained the chunk', () => {
    const a = new UpstreamReads();
    const quiet = a.onread.buffer();
    a.take(() => undefined);
    a.onread.callback(quiet.length, quiet);
    const large = a.onread.buffer();
    expect(large).not.toBe(quiet);
    expect(large.length).toBeGreaterThan(quiet.length);
    a.onread.callback(large.length, large);
    expect(a.onread.buffer()).toBe(large);
    a.onread.callback(large.length, large);
    a.retain();
    const next = a.onread.buffer();
    expect(next).not.toBe(large);
    a.onread.callback(10, next);
    expect(a.onread.buffer()).toBe(quiet);
  });

  it('before the relay takes over, reads are emitted as data events with copies', () => {
    const a = new UpstreamReads();
    const seen: Buffer[] = [];
    a.attach({ emit: (_event: string, chunk: Buffer) => seen.push(chunk) } as never);
    read(a, 'A1 OK LOGIN completed\r\n');
    read(a, '* 1 EXISTS\r\n');
    expect(seen.map((c) => c.toString('latin1'))).toEqual(['A1 OK LOGIN completed\r\n', '* 1 EXISTS\r\n']);
  });
});
