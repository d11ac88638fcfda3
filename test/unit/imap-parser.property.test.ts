// Property-based tests (fast-check) of the IMAP pre-auth reader and tokenizer: any bytes, in any
// split, give the same events and never a throw other than a syntax error; limits hold for every
// input; LOGIN arguments round-trip in each encoding RFC 9051 §4.3 allows (atom, quoted, literal).
import fc from 'fast-check';
import { CommandReader, ImapSyntaxError, isUtf8Token, parseCommand, tokenText, type ReaderEvent } from '../../src/imap/parser';
import { fuzzRuns } from './fuzz-runs';

const limits = { maxLineBytes: 200, maxLiteralBytes: 64 };

function drain(reader: CommandReader): ReaderEvent[] {
  const out: ReaderEvent[] = [];
  for (let e = reader.next(); e; e = reader.next()) out.push(e);
  return out;
}

function readAll(input: Buffer, cuts: number[], readerLimits = limits): ReaderEvent[] {
  const reader = new CommandReader(readerLimits);
  const events: ReaderEvent[] = [];
  let from = 0;
  for (const p of [...new Set(cuts.map((c) => c % (input.length + 1)))].sort((a, b) => a - b).concat(input.length)) {
    reader.push(input.subarray(from, p));
    events.push(...drain(reader));
    from = p;
  }
  return events;
}

/** Bytes that look like IMAP often enough to reach literals, quotes and lists, and plain noise. */
const token = fc.oneof(
  fc.constantFrom('a1', 'LOGIN', 'AUTHENTICATE', 'CAPABILITY', 'ID', 'NIL', '(', ')', '"', '\\', ' ', '{3}', '{2+}', '{99999999999}', '\r\n', '\n', '\0', '*', '+', 'é'),
  fc.string({ maxLength: 12 }),
);
const imapish = fc.array(token, { maxLength: 40 }).map((parts) => Buffer.from(parts.join(''), 'utf8'));
const anyBytes = fc.oneof(imapish, fc.uint8Array({ maxLength: 400 }).map((b) => Buffer.from(b)));
const cuts = fc.array(fc.nat(1000), { maxLength: 6 });

test('any bytes in any split: the same events as read whole, within the limits, never a throw', () => {
  fc.assert(fc.property(anyBytes, cuts, (input, split) => {
    const whole = readAll(input, []);
    expect(readAll(input, split)).toEqual(whole);
    const fatal = whole.findIndex((e) => e.type === 'fatal');
    // Nothing is read after a fatal event (the session answers BYE and closes).
    if (fatal >= 0) expect(fatal).toBe(whole.length - 1);
    for (const e of whole) {
      if (e.type !== 'command') continue;
      const textBytes = e.segments.filter((s) => typeof s === 'string').reduce((n, s) => n + s.length, 0);
      expect(textBytes).toBeLessThanOrEqual(limits.maxLineBytes);
      for (const s of e.segments) if (Buffer.isBuffer(s)) expect(s.length).toBeLessThanOrEqual(limits.maxLiteralBytes);
    }
  }), fuzzRuns(300));
});

test('any command the reader yields parses or raises ImapSyntaxError, and an invalid tag is never echoed', () => {
  fc.assert(fc.property(anyBytes, (input) => {
    for (const e of readAll(input, [])) {
      if (e.type !== 'command') continue;
      try {
        const parsed = parseCommand(e.segments);
        expect(parsed.tag.length).toBeGreaterThan(0);
        expect(parsed.tag).not.toMatch(/[\s(){%*"\\+\x00-\x1f\x7f-\uffff]/);
      } catch (err) {
        expect(err).toBeInstanceOf(ImapSyntaxError);
        const tag = (err as ImapSyntaxError).tag;
        if (tag !== null) expect(tag).not.toMatch(/[\s(){%*"\\+\x00-\x1f\x7f-\uffff]/);
      }
    }
  }), fuzzRuns(300));
});

/** Encode an astring as an atom (when it is one), a quoted string, or a (non-)synchronising literal. */
function encode(value: string, how: 'atom' | 'quoted' | 'literal' | 'literal+'): string {
  const bytes = Buffer.byteLength(value, 'utf8');
  if (how === 'atom' && /^[!#$&'+-[^-z|~]+$/.test(value) && value.toUpperCase() !== 'NIL') return value;
  if (how === 'quoted' || how === 'atom') return `"${value.replace(/[\\"]/g, (m) => `\\${m}`)}"`;
  return `{${bytes}${how === 'literal+' ? '+' : ''}}\r\n${value}`;
}

test('LOGIN user and password round-trip through atom, quoted and literal encodings', () => {
  const text = fc.string({ unit: 'grapheme', minLength: 1, maxLength: 20 }).filter((s) => !/[\0\r\n]/.test(s));
  const how = fc.constantFrom('atom', 'quoted', 'literal', 'literal+') as fc.Arbitrary<'atom' | 'quoted' | 'literal' | 'literal+'>;
  fc.assert(fc.property(text, how, text, how, (user, userHow, pass, passHow) => {
    const wire = Buffer.from(`t7 LOGIN ${encode(user, userHow)} ${encode(pass, passHow)}\r\n`, 'utf8');
    const commands = readAll(wire, [], { maxLineBytes: 8192, maxLiteralBytes: 8192 }).filter((e) => e.type === 'command');
    expect(commands).toHaveLength(1);
    const parsed = parseCommand((commands[0] as Extract<ReaderEvent, { type: 'command' }>).segments);
    expect(parsed.name).toBe('LOGIN');
    expect(parsed.args.every((a) => isUtf8Token(a))).toBe(true);
    expect(parsed.args.map(tokenText)).toEqual([user, pass]);
  }), fuzzRuns(300));
});

test('a string argument is valid UTF-8 exactly when Node decodes it without replacement', () => {
  fc.assert(fc.property(fc.uint8Array({ minLength: 1, maxLength: 30 }).filter((b) => !b.includes(0) && !b.includes(10) && !b.includes(13)), (bytes) => {
    const lit = Buffer.from(bytes);
    const parsed = parseCommand([`t LOGIN {${lit.length}}`, lit, ' pw']);
    const roundTrips = Buffer.from(lit.toString('utf8'), 'utf8').equals(lit);
    expect(isUtf8Token(parsed.args[0])).toBe(roundTrips);
  }), fuzzRuns(300));
});
