// The authenticated leg to the upstream: replay MAIL and each RCPT one at a time and stream DATA.
// The client hears 250 for a message only after the upstream said 250.
import { Readable } from 'node:stream';
import { DataEncoder, DataRefusal } from './data-encoder';
import { passUpstream, Replies, type SmtpReply } from './replies';
import { UpstreamError } from '../core/upstream-failure';
import { replyText, type UpstreamClient, type UpstreamReply } from './upstream-client';

/** ESMTP parameters of the client's MAIL FROM that are passed on (RFC 6152, RFC 6531, RFC 1870). */
export interface MailParams {
  readonly body?: '7BIT' | '8BITMIME';
  readonly smtpUtf8?: boolean;
  readonly size?: number;
}

export interface DataOptions {
  readonly maxBytes: number;
  readonly onHeaderBlock?: (block: Buffer | null) => void;
  /** Asked just before the final dot; a reply here stops the message (e.g. the session was revoked). */
  readonly beforeCommit?: () => SmtpReply | null;
}

export interface DataOutcome {
  readonly reply: SmtpReply;
  /** True only when the upstream answered 2xx to the final dot. */
  readonly delivered: boolean;
  readonly bytes: number;
  /** Why the message was stopped before the final dot, if it was. */
  readonly aborted?: 'bare-line-ending' | 'too-big' | 'upstream-lost' | 'client-gone' | 'vetoed';
}

/** RFC 5321 §4.5.3.2.6: a client waits at least 10 minutes for the reply to the final dot. */
const DATA_FINAL_TIMEOUT_MS = 10 * 60_000;
const FINAL_DOT = Buffer.from('.\r\n');

/** One upstream SMTP session after login, used for any number of transactions of one client session. */
export class Relay {
  private inTransaction = false;
  private busy = false;

  constructor(private readonly connection: UpstreamClient) {}

  /** False once the upstream connection is gone; the client session then opens a new one. */
  get usable(): boolean {
    return !this.connection.closed;
  }

  /** Nothing in flight: the connection can be closed without losing anything. */
  get idle(): boolean {
    return !this.inTransaction && !this.busy;
  }

  /** null = accepted; otherwise the reply for the client (the upstream's own refusal, passed on). */
  async mailFrom(address: string, params: MailParams): Promise<SmtpReply | null> {
    return this.exchange(async () => {
      const ext = this.connection.extensions;
      // RFC 6531 §3.4: SMTPUTF8 can only be relayed to a server that offers it.
      if (params.smtpUtf8 && !ext.has('SMTPUTF8')) {
        return { code: 553, text: '5.6.7 The upstream server does not accept internationalized addresses' };
      }
      if (this.inTransaction) {
        // The client reset its transaction (RSET) or the last one ended with an error: start clean.
        const reset = await this.connection.command('RSET');
        if (reset.code !== 250) throw new UpstreamError('protocol', `upstream refused RSET: ${reset.code}`);
        this.inTransaction = false;
      }
      const extras = [
        params.body && ext.has('8BITMIME') ? `BODY=${params.body}` : '',
        params.smtpUtf8 ? 'SMTPUTF8' : '',
        params.size !== undefined && ext.has('SIZE') ? `SIZE=${params.size}` : '',
      ].filter(Boolean);
      const reply = await this.connection.command([`MAIL FROM:<${address}>`, ...extras].join(' '));
      if (reply.code !== 250) return passUpstream(reply.code, replyText(reply));
      this.inTransaction = true;
      return null;
    });
  }

  /** Each recipient goes to the upstream at the client's own RCPT, so a refusal reaches the client there. */
  async rcptTo(address: string): Promise<SmtpReply | null> {
    return this.exchange(async () => {
      const reply = await this.connection.command(`RCPT TO:<${address}>`);
      return reply.code === 250 || reply.code === 251 ? null : passUpstream(reply.code, replyText(reply));
    });
  }

  /**
   * Streams the message: bytes are checked and dot-stuffed on the way (DataEncoder) and written to the
   * upstream with backpressure. On a bare CR/LF, an oversized message, a revoked session or a client
   * that went away, the upstream connection is closed before the final dot, so the upstream discards
   * what it got and never sees anything that could end the data early — no second message.
   */
  async data(source: Readable, options: DataOptions): Promise<DataOutcome> {
    this.busy = true;
    const encoder = new DataEncoder({ maxBytes: options.maxBytes, onHeaderBlock: options.onHeaderBlock });
    try {
      let start: UpstreamReply;
      try {
        start = await this.connection.command('DATA');
      } catch {
        await drain(source);
        return { reply: Replies.upstreamLost, delivered: false, bytes: 0, aborted: 'upstream-lost' };
      }
      if (start.code !== 354) {
        this.inTransaction = false;
        await drain(source);
        return { reply: passUpstream(start.code, replyText(start)), delivered: false, bytes: 0 };
      }
      const { stopped, tail } = await this.stream(source, encoder);
      if (stopped) {
        this.abort();
        await drain(source);
        const reply =
          stopped === 'too-big' ? Replies.messageTooBig(options.maxBytes) : stopped === 'bare-line-ending' ? Replies.bareLineEnding : Replies.upstreamLost;
        return { reply, delivered: false, bytes: encoder.bytesIn, aborted: stopped };
      }
      const veto = options.beforeCommit?.();
      if (veto) {
        this.abort();
        return { reply: veto, delivered: false, bytes: encoder.bytesIn, aborted: 'vetoed' };
      }
      let final: UpstreamReply;
      try {
        // The last chunk and the final dot leave in one write (one segment, no extra syscall).
        await this.connection.write(...(tail ? [tail, FINAL_DOT] : [FINAL_DOT]));
        final = await this.connection.readReply(DATA_FINAL_TIMEOUT_MS);
      } catch {
        // The upstream may or may not have queued it; only a 250 counts, so the client retries.
        return { reply: Replies.upstreamLost, delivered: false, bytes: encoder.bytesIn, aborted: 'upstream-lost' };
      }
      this.inTransaction = false;
      if (final.code >= 200 && final.code < 300) return { reply: { code: 250, text: replyText(final) }, delivered: true, bytes: encoder.bytesIn };
      return { reply: passUpstream(final.code, replyText(final)), delivered: false, bytes: encoder.bytesIn };
    } finally {
      this.busy = false;
    }
  }

  /** QUIT when idle; with a command or DATA in flight, close instead (QUIT would land inside it). */
  async quit(): Promise<void> {
    if (this.busy) return this.abort();
    await this.connection.quit();
  }

  /** Closes at once; an unfinished DATA is discarded by the upstream. */
  abort(): void {
    this.inTransaction = false;
    this.connection.close();
  }

  private async exchange(step: () => Promise<SmtpReply | null>): Promise<SmtpReply | null> {
    this.busy = true;
    try {
      return await step();
    } catch (err) {
      if (!(err instanceof UpstreamError)) throw err;
      this.abort();
      return Replies.upstreamLost;
    } finally {
      this.busy = false;
    }
  }

  /**
   * Pipes source → encoder → upstream, holding back the newest chunk (the caller sends it together
   * with the final dot). Resolves with why it stopped, or with that last chunk.
   */
  private async stream(source: Readable, encoder: DataEncoder): Promise<{ stopped: DataOutcome['aborted'] | null; tail: Buffer | null }> {
    const clientGone = (): void => {
      encoder.destroy(new ClientGone());
    };
    const onClose = (): void => {
      if (!source.readableEnded) clientGone();
    };
    source.once('close', onClose);
    source.on('error', clientGone);
    source.pipe(encoder);
    let held: Buffer | null = null;
    try {
      for await (const chunk of encoder) {
        if (held) await this.connection.write(held);
        held = chunk as Buffer;
      }
      return { stopped: null, tail: held };
    } catch (err) {
      if (err instanceof DataRefusal) return { stopped: err.reason, tail: null };
      return { stopped: err instanceof ClientGone ? 'client-gone' : 'upstream-lost', tail: null };
    } finally {
      source.off('close', onClose);
      source.off('error', clientGone);
      source.unpipe(encoder);
    }
  }
}

class ClientGone extends Error {
  constructor() {
    super('the client went away in the middle of DATA');
  }
}

/**
 * Reads the rest of a message nobody wants, so smtp-server sees its end and sends our reply after the
 * client's final dot (a reply before it would desynchronise the client).
 */
async function drain(source: Readable): Promise<void> {
  if (source.readableEnded || source.destroyed) return;
  await new Promise<void>((resolve) => {
    source.once('end', resolve);
    source.once('close', resolve);
    source.resume();
  });
}
