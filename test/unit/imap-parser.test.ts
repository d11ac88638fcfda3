// The pre-auth reader and tokenizer, the relay's literal detection and capability filter, the
// PROXY header parser and the upstream circuit breaker: pure functions, no sockets.
import fc from 'fast-check';
import { CommandReader, parseCommand, type ReaderEvent } from '../../src/imap/parser';
import { parseProxyHeader, trustedProxies, isTrusted } from '../../src/imap/proxy-protocol';
import { filterCapabilities, literalAt } from '../../src/imap/framing';
import { CircuitBreaker } from '../../src/core/circuit-breaker';

const limits = { maxLineBytes: 100, maxLiteralBytes: 50 };

function drain(reader: CommandReader): ReaderEvent[] {
  const out: ReaderEvent[] = [];
  for (let e = reader.next(); e; e = reader.next()) out.push(e);
  return out;
}

describe('CommandReader', () => {
  test('a synchronising literal asks for continuation, then completes the command', () => {
    const r = new CommandReader(limits);
    r.push(Buffer.from('a LOGIN {5}\r\n'));
    expect(drain(r)).toEqual([{ type: 'continue' }]);
    r.push(Buffer.from('alice pw\r\n'));
    expect(drain(r)).toEqual([{ type: 'command', segments: ['a LOGIN {5}', Buffer.from('alice'), ' pw'] }]);
  });

  test('a non-synchronising literal needs no continuation', () => {
    const r = new CommandReader(limits);
    r.push(Buffer.from('a LOGIN {5+}\r\nalice {2+}\r\npw\r\n'));
    expect(drain(r)).toEqual([{ type: 'command', segments: ['a LOGIN {5+}', Buffer.from('alice'), ' {2+}', Buffer.from('pw'), ''] }]);
  });

  test('literal too big, over-long line and too many literals are fatal; nothing after is read', () => {
    const big = new CommandReader(limits);
    big.push(Buffer.from('a LOGIN {51}\r\nb NOOP\r\n'));
    expect(drain(big)).toEqual([{ type: 'fatal', reason: 'literal-too-big' }]);
    const long = new CommandReader(limits);
    long.push(Buffer.alloc(101, 0x61));
    expect(drain(long)).toEqual([{ type: 'fatal', reason: 'line-too-long' }]);
    const many = new CommandReader(limits);
    many.push(Buffer.from('a X {1+}\r\na{1+}\r\nb{1+}\r\nc{1+}\r\nd{1+}\r\ne\r\n'));
    expect(drain(many)).toEqual([{ type: 'fatal', reason: 'too-many-literals' }]);
  });

  test('discard() forgets buffered bytes (STARTTLS)', () => {
    const r = new CommandReader(limits);
    r.push(Buffer.from('a STARTTLS\r\nb LOGIN x y\r\n'));
    expect(r.next()).toEqual({ type: 'command', segments: ['a STARTTLS'] });
    r.discard();
    expect(r.next()).toBeNull();
  });

  test('any split of the input gives the same commands (failure catalogue #88)', () => {
    const input = Buffer.from('a1 CAPABILITY\r\na2 LOGIN {5+}\r\nalice "pw"\r\na3 ID ("name" "x")\r\n');
    const whole = new CommandReader(limits);
    whole.push(input);
    const expected = drain(whole);
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: input.length - 1 }), { maxLength: 8 }), (cuts) => {
        const points = [...new Set(cuts)].sort((a, b) => a - b);
        const r = new CommandReader(limits);
        const got: ReaderEvent[] = [];
        let from = 0;
        for (const p of [...points, input.length]) {
          r.push(input.subarray(from, p));
          got.push(...drain(r));
          from = p;
        }
        expect(got).toEqual(expected);
      }),
    );
  });
});

describe('parseCommand', () => {
  test('atoms, quoted strings with escapes, literals, NIL and nested lists', () => {
    const cmd = parseCommand(['a1 id ("name" "A \\"q\\" \\\\") NIL {3+}', Buffer.from('xyz'), ' atom']);
    expect(cmd.tag).toBe('a1');
    expect(cmd.name).toBe('ID');
    expect(cmd.args).toEqual([
      { kind: 'list', items: [{ kind: 'string', value: Buffer.from('name') }, { kind: 'string', value: Buffer.from('A "q" \\') }] },
      { kind: 'nil' },
      { kind: 'string', value: Buffer.from('xyz') },
      { kind: 'atom', value: 'atom' },
    ]);
  });

  test.each([
    ['a LOGIN "us\0er" p', 'NULs'],
    ['a LOGIN "user p', 'Unterminated'],
    ['a LOGIN us\xffer p', '8bit data in atom'],
    ['a LOGIN u*ser p', 'Invalid characters in atom'],
    ['a LOGIN {1a} p', 'Invalid literal'],
    ['a LOGIN "x\\y" p', 'Invalid escape'],
    ['a LOGIN  two-spaces', 'Missing argument'],
  ])('%j is a syntax error (%s)', (line, message) => {
    expect(() => parseCommand([line])).toThrow(message);
  });

  test('an invalid tag is reported without the tag, so it is never echoed', () => {
    for (const line of ['+x NOOP', '"a" NOOP', 'GET\x01 /', 'x'.repeat(65) + ' NOOP']) {
      let tag: string | null | undefined;
      try {
        parseCommand([line]);
      } catch (err) {
        tag = (err as { tag: string | null }).tag;
      }
      expect(tag).toBeNull();
    }
  });
});

describe('relay helpers', () => {
  const at = (s: string): ReturnType<typeof literalAt> => literalAt(Buffer.from(s), 0, s.length - 1);
  test('literalAt finds {n}, {n+} and ~{n} before the line end only', () => {
    expect(at('* 1 FETCH (BODY[] {42}\r\n')).toEqual({ size: 42, sync: true });
    expect(at('a APPEND INBOX {7+}\r\n')).toEqual({ size: 7, sync: false });
    expect(at('* 1 FETCH (BINARY[] ~{9}\r\n')).toEqual({ size: 9, sync: true });
    expect(at('* OK {5} text\r\n')).toBeNull();
    expect(at('a X {}\r\n')).toBeNull();
    expect(at('a X {12345678901}\r\n')).toBeNull();
  });

  test('filterCapabilities strips COMPRESS, UNAUTHENTICATE and pre-auth-only atoms', () => {
    expect(filterCapabilities(['IMAP4rev1', 'COMPRESS=DEFLATE', 'IDLE', 'UNAUTHENTICATE', 'AUTH=PLAIN', 'SASL-IR', 'STARTTLS', 'MOVE'])).toEqual([
      'IMAP4rev1',
      'IDLE',
      'MOVE',
    ]);
  });
});

describe('PROXY protocol', () => {
  test('v1 TCP4 and TCP6, with the bytes that follow', () => {
    const r = parseProxyHeader(Buffer.from('PROXY TCP4 203.0.113.7 192.0.2.10 51234 993\r\n\x16\x03'));
    expect(r).toEqual({
      state: 'done',
      header: { address: '203.0.113.7', port: 51234, localAddress: '192.0.2.10', localPort: 993 },
      rest: Buffer.from('\x16\x03'),
    });
    const r6 = parseProxyHeader(Buffer.from('PROXY TCP6 2001:db8::1 2001:db8::2 4000 143\r\n'));
    expect(r6.state === 'done' && r6.header.address).toBe('2001:db8::1');
  });

  test('v2 PROXY TCP4 and LOCAL', () => {
    const sig = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
    const body = Buffer.from([203, 0, 113, 7, 192, 0, 2, 10, 0xc8, 0x22, 0x03, 0xe1]);
    const header = Buffer.concat([sig, Buffer.from([0x21, 0x11, 0x00, body.length]), body, Buffer.from('x')]);
    expect(parseProxyHeader(header.subarray(0, 14))).toEqual({ state: 'more' });
    expect(parseProxyHeader(header)).toEqual({
      state: 'done',
      header: { address: '203.0.113.7', localAddress: '192.0.2.10', port: 51234, localPort: 993 },
      rest: Buffer.from('x'),
    });
    const local = Buffer.concat([sig, Buffer.from([0x20, 0x00, 0x00, 0x00])]);
    expect(parseProxyHeader(local)).toEqual({ state: 'done', header: {}, rest: Buffer.alloc(0) });
  });

  test('malformed headers are errors', () => {
    expect(parseProxyHeader(Buffer.from('a1 LOGIN x y\r\n')).state).toBe('error');
    expect(parseProxyHeader(Buffer.from('PROXY TCP4 1.2.3.999 1.2.3.4 1 2\r\n')).state).toBe('error');
    expect(parseProxyHeader(Buffer.from('PROXY TCP4 ' + 'x'.repeat(120))).state).toBe('error');
  });

  test('trusted balancer addresses: exact, CIDR, IPv4-mapped', () => {
    const list = trustedProxies(['10.0.0.5', '192.168.0.0/16']);
    expect(isTrusted(list, '10.0.0.5')).toBe(true);
    expect(isTrusted(list, '::ffff:192.168.3.4')).toBe(true);
    expect(isTrusted(list, '10.0.0.6')).toBe(false);
    expect(isTrusted(null, '10.0.0.5')).toBe(false);
  });
});

describe('CircuitBreaker', () => {
  test('opens after N failures, fails at once, lets one trial through after resetMs', () => {
    let now = 0;
    const b = new CircuitBreaker(2, 1000, () => now);
    b.failure();
    expect(b.allow()).toBe(true);
    b.failure();
    expect(b.open).toBe(true);
    expect(b.allow()).toBe(false);
    now = 1001;
    expect(b.allow()).toBe(true);
    expect(b.allow()).toBe(false);
    b.success();
    expect(b.allow()).toBe(true);
  });
});
