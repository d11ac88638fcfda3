// Literal-aware IMAP framing of a relayed byte stream, one direction at a time: which bytes start a
// command or response, where literals run, so that capability lines can be filtered, COMPRESS and
// UNAUTHENTICATE refused, and text injected only at a response boundary (RFC 9051 §4.3, §7.5).

/** Bytes needed at the start of a line to tell whether it must be inspected whole. */
const PREFIX = 64;
/** Bytes of a passed-through line kept back, so a literal marker `~{4294967295+}\r` split across reads is seen. */
const TAIL = 24;
/** Longest line held whole for inspection; longer ones pass through untouched. */
const MAX_INSPECT = 65536;

/**
 * Capabilities that must not reach the client after login (docs/imap.md): COMPRESS (RFC 4978) would
 * change the bytes the relay frames, UNAUTHENTICATE (RFC 8437) would end the login behind the
 * proxy's back, and the rest describe the upstream's pre-login state, not the client's session.
 */
const STRIPPED_CAPS = /^(COMPRESS=.*|UNAUTHENTICATE|STARTTLS|LOGINDISABLED|AUTH=.*|SASL-IR|LOGIN-REFERRALS)$/i;

export function filterCapabilities(caps: readonly string[]): string[] {
  return caps.filter((c) => !STRIPPED_CAPS.test(c));
}

/** `{n}`, `{n+}` or `~{n}` right before the line end (end = index of LF); null if none. */
export function literalAt(buf: Buffer, start: number, end: number): { size: number; sync: boolean } | null {
  let i = end - 1;
  if (i >= start && buf[i] === 0x0d) i--;
  if (i < start || buf[i] !== 0x7d) return null;
  i--;
  const sync = buf[i] !== 0x2b;
  if (!sync) i--;
  const last = i;
  while (i >= start && buf[i]! >= 0x30 && buf[i]! <= 0x39) i--;
  const digits = last - i;
  if (digits === 0 || digits > 10 || i < start || buf[i] !== 0x7b) return null;
  return { size: Number(buf.toString('latin1', i + 1, last + 1)), sync };
}

/**
 * A literal-aware scanner for one direction. It forwards bytes as they come and only holds back
 * the start of a message until it knows whether that message needs inspecting, plus a short tail.
 */
abstract class Framer {
  private literalLeft = 0;
  /** The current line starts a message (command or response), not the text after a literal. */
  private lineStartsMessage = true;
  /** Some of the current line was already forwarded. */
  private lineForwarded = false;
  private held: Buffer | null = null;
  /** Client side only: size of a synchronising literal waiting for the server's `+` or tagged refusal. */
  private awaitingContinuation: number | null = null;
  protected stopped = false;

  constructor(protected readonly out: (data: Buffer) => void) {}

  /** Everything forwarded so far ends exactly at a message boundary. */
  get atBoundary(): boolean {
    return this.literalLeft === 0 && this.lineStartsMessage && !this.lineForwarded;
  }

  stop(): void {
    this.stopped = true;
    this.held = null;
  }

  push(chunk: Buffer): void {
    if (this.stopped) return;
    if (this.awaitingContinuation !== null) {
      // A copy: the chunk's memory may be reused once push() returns (UpstreamReads).
      this.held = Buffer.concat(this.held ? [this.held, chunk] : [chunk]);
      return;
    }
    const data = this.held ? Buffer.concat([this.held, chunk]) : chunk;
    this.held = null;
    let pos = 0;
    let from = 0;
    const flush = (to: number): void => {
      if (to > from) this.out(data.subarray(from, to));
      from = to;
    };
    while (pos < data.length) {
      if (this.literalLeft > 0) {
        const take = Math.min(this.literalLeft, data.length - pos);
        pos += take;
        this.literalLeft -= take;
        continue;
      }
      const lf = data.indexOf(10, pos);
      const fresh = this.lineStartsMessage && !this.lineForwarded;
      if (lf < 0) {
        const partial = data.length - pos;
        const prefix = data.subarray(pos, pos + Math.min(partial, PREFIX));
        if (fresh && (partial < PREFIX || (partial < MAX_INSPECT && this.inspects(prefix)))) {
          flush(pos);
          this.held = Buffer.from(data.subarray(pos));
          return;
        }
        const keep = Math.min(TAIL, partial);
        flush(data.length - keep);
        if (data.length - keep > pos) this.lineForwarded = true;
        this.held = Buffer.from(data.subarray(data.length - keep));
        return;
      }
      const literal = literalAt(data, pos, lf);
      if (fresh) {
        const line = data.subarray(pos, lf + 1);
        const verdict = this.onMessageStart(line, literal);
        if (verdict !== 'forward') {
          flush(pos);
          if (verdict !== 'drop') this.out(verdict);
          from = lf + 1;
          this.afterReplaced();
        }
        if (this.stopped) return;
      }
      this.lineForwarded = false;
      pos = lf + 1;
      if (literal) {
        this.lineStartsMessage = false;
        this.literalLeft = literal.size;
        if (literal.sync && this.onSyncLiteral()) {
          // Hold everything after the announcement until the other side accepts or refuses it.
          flush(pos);
          this.literalLeft = 0;
          this.awaitingContinuation = literal.size;
          if (pos < data.length) this.held = Buffer.from(data.subarray(pos));
          return;
        }
      } else {
        this.lineStartsMessage = true;
        if (this.wantsBoundary()) {
          flush(pos);
          this.atMessageBoundary();
          if (this.stopped) return;
        }
      }
    }
    flush(pos);
  }

  /** The server answered the pending synchronising literal: `+` (accepted) or a tagged result (refused). */
  resolveContinuation(accepted: boolean): void {
    const size = this.awaitingContinuation;
    if (size === null) return;
    this.awaitingContinuation = null;
    if (accepted) this.literalLeft = size;
    else this.lineStartsMessage = true;
    const rest = this.held;
    this.held = null;
    if (rest) this.push(rest);
  }

  get waiting(): boolean {
    return this.awaitingContinuation !== null;
  }

  /** Should a message whose first bytes are `prefix` be held whole until its line ends? */
  protected abstract inspects(prefix: Buffer): boolean;
  /** First line of a message: forward it, replace it, or drop it. */
  protected abstract onMessageStart(line: Buffer, literal: { size: number; sync: boolean } | null): 'forward' | 'drop' | Buffer;
  /** Called after a replaced or dropped line, once everything before it was forwarded. */
  protected afterReplaced(): void {}
  /** Does the subclass want to act at the next message boundary? */
  protected wantsBoundary(): boolean {
    return false;
  }
  /** Called at a message boundary (everything before it already forwarded); may stop the framer. */
  protected atMessageBoundary(): void {}
  /** A synchronising literal was announced; return true to wait for the other side. */
  protected onSyncLiteral(): boolean {
    return false;
  }
}

const CAPABILITY_LINE = /^\* CAPABILITY /i;
const CAPABILITY_CODE = /\[CAPABILITY /i;

/** upstream → client: filters capability lines, reports continuations and tagged results, injects at boundaries. */
export class ResponseFramer extends Framer {
  private pending: Buffer[] = [];
  private cutAfter = false;

  constructor(
    out: (data: Buffer) => void,
    private readonly onResponse: (kind: 'continuation' | 'tagged', tag: string) => void,
    private readonly onCut: () => void,
  ) {
    super(out);
  }

  /** Send `data` to the client at the next response boundary; `close` ends the session after it. */
  inject(data: Buffer, close: boolean): void {
    this.pending.push(data);
    if (close) this.cutAfter = true;
    if (this.atBoundary) this.drain();
  }

  protected inspects(prefix: Buffer): boolean {
    const text = prefix.toString('latin1');
    return CAPABILITY_LINE.test(text) || CAPABILITY_CODE.test(text);
  }

  protected onMessageStart(line: Buffer): 'forward' | Buffer {
    const first = line[0];
    if (first === 0x2b) this.onResponse('continuation', '');
    else if (first !== 0x2a) {
      const sp = line.indexOf(0x20);
      if (sp > 0) this.onResponse('tagged', line.toString('latin1', 0, sp));
    }
    if (line.length > MAX_INSPECT || !this.inspects(line.subarray(0, PREFIX))) return 'forward';
    const text = line.toString('latin1');
    if (CAPABILITY_LINE.test(text)) {
      return Buffer.from(`* CAPABILITY ${filterCapabilities(text.slice(13).trim().split(' ')).join(' ')}\r\n`, 'latin1');
    }
    const code = /^(.*?\[CAPABILITY )([^\]]*)(\].*)$/is.exec(text);
    if (code) return Buffer.from(`${code[1]}${filterCapabilities(code[2]!.split(' ')).join(' ')}${code[3]}`, 'latin1');
    return 'forward';
  }

  protected override wantsBoundary(): boolean {
    return this.pending.length > 0;
  }

  protected override atMessageBoundary(): void {
    this.drain();
  }

  private drain(): void {
    if (this.stopped || !this.atBoundary) return;
    const pending = this.pending;
    this.pending = [];
    for (const p of pending) this.out(p);
    if (this.cutAfter) {
      this.stop();
      this.onCut();
    }
  }
}

/** client → upstream: refuses COMPRESS and UNAUTHENTICATE, follows synchronising literals. */
export class CommandFramer extends Framer {
  /** Tag of the last command started (to match a tagged refusal of its synchronising literal). */
  tag: string | null = null;
  private refusal: { reply: Buffer; close: boolean } | null = null;

  constructor(
    out: (data: Buffer) => void,
    private readonly refuse: (reply: Buffer, close: boolean) => void,
    private readonly onWait: (waiting: boolean) => void,
  ) {
    super(out);
  }

  protected inspects(): boolean {
    return true;
  }

  protected onMessageStart(line: Buffer, literal: { size: number; sync: boolean } | null): 'forward' | 'drop' {
    const m = /^(\S+) ([A-Za-z]+)/.exec(line.toString('latin1', 0, Math.min(line.length, PREFIX)));
    this.tag = m ? m[1]! : null;
    const name = m?.[2]?.toUpperCase();
    if (m && (name === 'COMPRESS' || name === 'UNAUTHENTICATE')) {
      // RFC 4978 would turn the stream into raw DEFLATE; RFC 8437 would let the client switch users
      // behind the policy's back. Neither is offered, so refuse locally; a literal here cannot be skipped safely.
      this.refusal = {
        reply: Buffer.from(`${m[1]} NO [CANNOT] ${name} is not available through this proxy\r\n`, 'latin1'),
        close: literal !== null,
      };
      return 'drop';
    }
    return 'forward';
  }

  protected override afterReplaced(): void {
    const refusal = this.refusal;
    this.refusal = null;
    if (!refusal) return;
    // A literal after a refused command must not reach the upstream as commands: read no more.
    if (refusal.close) this.stop();
    this.refuse(refusal.reply, refusal.close);
  }

  protected override onSyncLiteral(): boolean {
    this.onWait(true);
    return true;
  }

  override resolveContinuation(accepted: boolean): void {
    if (!this.waiting) return;
    this.onWait(false);
    super.resolveContinuation(accepted);
  }
}
