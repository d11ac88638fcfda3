// Property-based tests (fast-check) of the PROXY protocol parser: it never throws on any bytes, a v1
// header it is given round-trips, every proper prefix of a header asks for more, and bytes that are
// not a header are refused. Bounded runs (FUZZ_RUNS raises them for long runs).
import fc from 'fast-check';
import { parseProxyHeader } from '../../src/imap/proxy-protocol';
import { fuzzRuns } from './fuzz-runs';

const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((p) => p.join('.'));
const port = fc.nat(65535);

test('any bytes: a result, never a throw', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
    expect(['more', 'done', 'error']).toContain(parseProxyHeader(Buffer.from(bytes)).state);
  }), fuzzRuns(300));
});

test('any bytes after a v2 signature: a result, never a throw', () => {
  const sig = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
  fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
    expect(['more', 'done', 'error']).toContain(parseProxyHeader(Buffer.concat([sig, Buffer.from(bytes)])).state);
  }), fuzzRuns(300));
});

test('a v1 TCP4 header round-trips, keeps what follows, and each proper prefix asks for more', () => {
  fc.assert(fc.property(ipv4, ipv4, port, port, fc.uint8Array({ maxLength: 20 }), (src, dst, sport, dport, rest) => {
    const line = Buffer.from(`PROXY TCP4 ${src} ${dst} ${sport} ${dport}\r\n`, 'latin1');
    const result = parseProxyHeader(Buffer.concat([line, Buffer.from(rest)]));
    expect(result).toEqual({ state: 'done', header: { address: src, port: sport, localAddress: dst, localPort: dport }, rest: Buffer.from(rest) });
    for (let n = 0; n < line.length - 1; n++) expect(parseProxyHeader(line.subarray(0, n)).state).toBe('more');
  }), fuzzRuns(100, 1 / 3));
});

test('a line that does not start with "PROXY " is refused', () => {
  fc.assert(fc.property(fc.string({ minLength: 1, maxLength: 60 }).filter((s) => !'PROXY '.startsWith(s.slice(0, 6)) && s[0] !== '\r'), (s) => {
    expect(parseProxyHeader(Buffer.from(`${s}\r\n`, 'latin1')).state).toBe('error');
  }), fuzzRuns(300));
});
