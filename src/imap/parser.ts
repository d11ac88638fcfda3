// Pre-authentication IMAP input: a bounded reader of command lines with literals, and a strict
// tokenizer for the few commands mailwarden answers itself (RFC 9051 §4 and §9 grammar).
import { isUtf8 } from 'node:buffer';

/** What the reader found in the bytes received so far. */
export type ReaderEvent =
  /** A complete command: text segments, each followed by a literal except the last. */
  | { readonly type: 'command'; readonly segments: readonly Segment[] }
  /** A synchronising literal was announced and fits: the server sends `+ ` (RFC 9051 §7.5). */
  | { readonly type: 'continue' }
  /**
   * The input cannot be parsed safely any more: the caller sends `* BYE` and closes. Nothing of the
   * offending literal is ever read or allocated (RFC 7888 §4 and Dovecot's LITERAL_TOO_BIG).
   */
  | { readonly type: 'fatal'; readonly reason: 'line-too-long' | 'literal-too-big' | 'too-many-literals' };

/** Text of a command line (latin1, one char per octet) or the octets of a literal. */
export type Segment = string | Buffer;

export interface ReaderLimits {
  /** Longest command line in octets, literals not counted (RFC 7162 §4 recommends ≥ 8192). */
  readonly maxLineBytes: number;
  /** Largest literal; a bigger one is refused before any of it is read. */
  readonly maxLiteralBytes: number;
}

/** Shared by every reader with nothing buffered (an idle session keeps no buffer of its own). */
const EMPTY = Buffer.alloc(0);
/** At most this many literals in one pre-auth command (LOGIN needs two). */
const MAX_LITERALS = 4;
/** Literal sizes are capped by digit count before conversion: more than 10 digits is never valid here. */
const MAX_LITERAL_DIGITS = 10;
const LITERAL_AT_END = /\{(\d+)(\+?)\}$/;

export class CommandReader {
  private buffer: Buffer = EMPTY;
  private segments: Segment[] = [];
  private lineBytes = 0;
  private literalLeft: number | null = null;
  private failed = false;

  constructor(private readonly limits: ReaderLimits) {}

  push(chunk: Buffer): void {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
  }

  /** Hand over (and forget) every byte not consumed yet: used when the relay takes over. */
  takeRemaining(): Buffer {
    const rest = this.buffer;
    this.buffer = EMPTY;
    return rest;
  }

  /** Throw away every buffered byte and any half-read command (STARTTLS: RFC 2595 §3.1, CVE-2011-0411). */
  discard(): void {
    this.buffer = EMPTY;
    this.segments = [];
    this.lineBytes = 0;
    this.literalLeft = null;
  }

  /** The next event, or null when more input is needed. */
  next(): ReaderEvent | null {
    if (this.failed) return null;
    for (;;) {
      if (this.literalLeft !== null) {
        if (this.buffer.length < this.literalLeft) return null;
        this.segments.push(Buffer.from(this.buffer.subarray(0, this.literalLeft)));
        this.buffer = this.buffer.subarray(this.literalLeft);
        this.literalLeft = null;
      }
      const lf = this.buffer.indexOf(10);
      if (lf < 0) {
        if (this.lineBytes + this.buffer.length > this.limits.maxLineBytes) return this.fail('line-too-long');
        return null;
      }
      const end = lf > 0 && this.buffer[lf - 1] === 13 ? lf - 1 : lf;
      this.lineBytes += end;
      if (this.lineBytes > this.limits.maxLineBytes) return this.fail('line-too-long');
      const text = this.buffer.toString('latin1', 0, end);
      this.buffer = this.buffer.subarray(lf + 1);
      this.segments.push(text);
      const literal = LITERAL_AT_END.exec(text);
      if (!literal) {
        const segments = this.segments;
        this.segments = [];
        this.lineBytes = 0;
        return { type: 'command', segments };
      }
      const digits = literal[1] ?? '';
      if (digits.length > MAX_LITERAL_DIGITS || Number(digits) > this.limits.maxLiteralBytes) return this.fail('literal-too-big');
      if (this.segments.length > 2 * MAX_LITERALS - 1) return this.fail('too-many-literals');
      this.literalLeft = Number(digits);
      if (literal[2] !== '+') return { type: 'continue' };
    }
  }

  private fail(reason: 'line-too-long' | 'literal-too-big' | 'too-many-literals'): ReaderEvent {
    this.failed = true;
    this.discard();
    return { type: 'fatal', reason };
  }
}

// ---- tokenizer ---------------------------------------------------------------------------------

export type Token =
  | { readonly kind: 'atom'; readonly value: string }
  /** A quoted string or a literal: raw octets (UTF-8 for IMAP4rev2 / UTF8=ACCEPT clients). */
  | { readonly kind: 'string'; readonly value: Buffer }
  | { readonly kind: 'nil' }
  | { readonly kind: 'list'; readonly items: readonly Token[] };

export interface ParsedCommand {
  readonly tag: string;
  /** Upper-cased command name. */
  readonly name: string;
  readonly args: readonly Token[];
}

export class ImapSyntaxError extends Error {
  /** The tag, when it was valid (an invalid tag is never echoed back: ALPACA, RFC 9051 §2.2.1). */
  constructor(message: string, readonly tag: string | null) {
    super(message);
    this.name = 'ImapSyntaxError';
  }
}

/** Longest tag we echo back (Dovecot: 126; nginx: 32). */
const MAX_TAG = 64;
const MAX_LIST_DEPTH = 4;

/** ATOM-CHAR: any CHAR except atom-specials (RFC 9051 §9): ( ) { SP CTL % * " \ ]. */
function isAtomChar(c: number): boolean {
  if (c <= 0x20 || c >= 0x7f) return false;
  return !(c === 0x28 || c === 0x29 || c === 0x7b || c === 0x25 || c === 0x2a || c === 0x22 || c === 0x5c || c === 0x5d);
}

/** tag = 1*<any ASTRING-CHAR except "+">; ASTRING-CHAR adds "]". */
export function isValidTag(tag: string): boolean {
  if (tag.length === 0 || tag.length > MAX_TAG) return false;
  for (let i = 0; i < tag.length; i++) {
    const c = tag.charCodeAt(i);
    if (c === 0x2b || !(isAtomChar(c) || c === 0x5d)) return false;
  }
  return true;
}

class Cursor {
  private seg = 0;
  private pos = 0;
  constructor(private readonly segments: readonly Segment[]) {}

  private get text(): string {
    const s = this.segments[this.seg];
    return typeof s === 'string' ? s : '';
  }
  peek(): number {
    return this.pos < this.text.length ? this.text.charCodeAt(this.pos) : -1;
  }
  atEnd(): boolean {
    return this.seg === this.segments.length - 1 && this.pos >= this.text.length;
  }
  take(): number {
    return this.text.charCodeAt(this.pos++);
  }
  /** The literal that follows the `{n}` marker the cursor is on; the cursor moves past it. */
  literal(): Buffer | null {
    const rest = this.text.slice(this.pos);
    if (!/^\{\d+\+?\}$/.test(rest)) return null;
    const lit = this.segments[this.seg + 1];
    if (!Buffer.isBuffer(lit)) return null;
    this.seg += 2;
    this.pos = 0;
    return lit;
  }
}

/**
 * Parses one command. Throws ImapSyntaxError (the caller answers BAD). `wildcards` also accepts `*` and
 * `%` in atoms (sequence sets and LIST patterns), which pre-auth commands never need.
 */
export function parseCommand(segments: readonly Segment[], wildcards = false): ParsedCommand {
  const first = typeof segments[0] === 'string' ? segments[0] : '';
  const sp = first.indexOf(' ');
  const tag = sp < 0 ? first : first.slice(0, sp);
  if (!isValidTag(tag)) throw new ImapSyntaxError('Invalid tag', null);
  if (sp < 0) throw new ImapSyntaxError('Missing command', tag);
  const cur = new Cursor(segments);
  for (let i = 0; i <= sp; i++) cur.take();
  const name = readAtom(cur, tag, false);
  if (!name) throw new ImapSyntaxError('Missing command', tag);
  const args: Token[] = [];
  while (!cur.atEnd()) {
    if (cur.take() !== 0x20) throw new ImapSyntaxError('Expected a space between arguments', tag);
    args.push(readToken(cur, tag, 0, wildcards));
  }
  return { tag, name: name.toUpperCase(), args };
}

function readAtom(cur: Cursor, tag: string, wildcards: boolean): string {
  let out = '';
  for (let c = cur.peek(); c !== -1 && c !== 0x20 && c !== 0x29; c = cur.peek()) {
    // "]" is allowed in astrings (RFC 9051 ASTRING-CHAR), which is where atoms appear here.
    if (!isAtomChar(c) && c !== 0x5d && !(wildcards && (c === 0x2a || c === 0x25))) {
      throw new ImapSyntaxError(c >= 0x80 ? '8bit data in atom' : 'Invalid characters in atom', tag);
    }
    out += String.fromCharCode(cur.take());
  }
  return out;
}

function readToken(cur: Cursor, tag: string, depth: number, wildcards: boolean): Token {
  const c = cur.peek();
  if (c === 0x22) return { kind: 'string', value: readQuoted(cur, tag) };
  if (c === 0x7b) {
    const lit = cur.literal();
    if (!lit) throw new ImapSyntaxError('Invalid literal', tag);
    return { kind: 'string', value: lit };
  }
  if (c === 0x28) {
    if (depth >= MAX_LIST_DEPTH) throw new ImapSyntaxError('Lists nested too deep', tag);
    cur.take();
    const items: Token[] = [];
    while (cur.peek() !== 0x29) {
      if (cur.peek() === -1) throw new ImapSyntaxError('Unterminated list', tag);
      if (items.length > 0 && cur.take() !== 0x20) throw new ImapSyntaxError('Expected a space in list', tag);
      items.push(readToken(cur, tag, depth + 1, wildcards));
    }
    cur.take();
    return { kind: 'list', items };
  }
  const atom = readAtom(cur, tag, wildcards);
  if (!atom) throw new ImapSyntaxError('Missing argument', tag);
  return atom.toUpperCase() === 'NIL' ? { kind: 'nil' } : { kind: 'atom', value: atom };
}

function readQuoted(cur: Cursor, tag: string): Buffer {
  cur.take();
  const bytes: number[] = [];
  for (;;) {
    const c = cur.peek();
    if (c === -1) throw new ImapSyntaxError('Unterminated quoted string', tag);
    cur.take();
    if (c === 0x22) return Buffer.from(bytes);
    if (c === 0x5c) {
      const e = cur.peek();
      if (e !== 0x22 && e !== 0x5c) throw new ImapSyntaxError('Invalid escape in quoted string', tag);
      bytes.push(cur.take());
      continue;
    }
    // QUOTED-CHAR excludes CR and LF; NUL is never allowed in strings (RFC 9051 §4.3).
    if (c === 0 || c === 0x0d || c === 0x0a) throw new ImapSyntaxError('NULs and line breaks not allowed in strings', tag);
    bytes.push(c);
  }
}

/** The value of an astring / string argument, or null for NIL or a list. */
export function tokenText(token: Token | undefined): string | null {
  if (!token) return null;
  if (token.kind === 'atom') return token.value;
  if (token.kind === 'string') return token.value.toString('utf8');
  return null;
}

/**
 * False when a string argument's octets are not UTF-8 (RFC 3629). Decoding them would replace each
 * bad sequence with U+FFFD, so two different wire names could reach the identity layer as one.
 */
export function isUtf8Token(token: Token | undefined): boolean {
  return token?.kind !== 'string' || isUtf8(token.value);
}

/** True when the text holds a control character (C0, DEL) that must never reach an upstream command. */
export function hasControlChars(text: string): boolean {
  return /[\u0000-\u001f\u007f]/.test(text);
}

/** Quote a value for an IMAP command or response (RFC 9051 quoted); control characters are dropped. */
export function quote(value: string): string {
  return `"${value.replace(/[\u0000-\u001f\u007f]/g, '').replace(/[\\"]/g, (m) => `\\${m}`)}"`;
}
