// The upstream leg: connect (TLS as configured), forward the client's address with XCLIENT, log in
// (the client's own credentials or the proxy credential), then replay MAIL and each RCPT one at a
// time and stream DATA. The client hears 250 for a message only after the upstream said 250.
import { Readable } from 'node:stream';
import { CircuitBreaker } from '../core/circuit-breaker';
import type { Logger } from '../core/log';
import type { SmtpConfig } from '../core/config-types';
import type { UpstreamLogin } from '../identity/types';
import { DataEncoder, DataRefusal } from './data-encoder';
import { passUpstream, Replies, type SmtpReply } from './replies';
import { replyText, UpstreamClient, UpstreamError, type UpstreamReply } from './upstream-client';

export type UpstreamSettings = SmtpConfig['upstream'];

/** What the upstream learns about the real client through XCLIENT. */
export interface ClientFacts {
  readonly remoteAddress?: string;
  readonly remotePort?: number;
  /** The name the client gave with EHLO/HELO. */
  readonly helo?: string;
}

export type OpenResult =
  | { readonly ok: true; readonly session: UpstreamSession }
  /** auth-rejected: the upstream refused the client's own credentials (passthrough) → 535 to the client. */
  | { readonly ok: false; readonly failure: 'auth-rejected' | 'unavailable'; readonly detail: string };

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
/** Postfix XCLIENT_README: at most 512 characters per XCLIENT command. */
const MAX_XCLIENT_LENGTH = 512;

/** RFC 3461 §4 xtext, as XCLIENT values use it. */
export function xtext(value: string): string {
  let out = '';
  for (const byte of Buffer.from(value, 'utf8')) {
    out += byte < 33 || byte > 126 || byte === 0x2b || byte === 0x3d ? `+${byte.toString(16).toUpperCase().padStart(2, '0')}` : String.fromCharCode(byte);
  }
  return out;
}

/** RFC 5321 §4.1.1.1 domain or address literal; anything else is not repeated to the upstream. */
const SAFE_HELO = /^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$|^\[[0-9A-Fa-f:.]{2,60}\]$|^\[IPv6:[0-9A-Fa-f:.]{2,60}\]$/;

export class Upstream {
  private readonly breakers = new Map<string, CircuitBreaker>();

  constructor(
    private readonly log: Logger,
    /** Read per connection, so a reload applies to new sessions. */
    private readonly settings: () => { readonly upstream: UpstreamSettings; readonly hostname: string },
  ) {}

  /** Opens an upstream session ready for MAIL FROM. Never throws. */
  async open(login: UpstreamLogin, client: ClientFacts): Promise<OpenResult> {
    const { upstream, hostname } = this.settings();
    const breaker = this.breaker(upstream);
    if (!breaker.allow()) return { ok: false, failure: 'unavailable', detail: 'circuit open: upstream failed recently' };
    let connection: UpstreamClient;
    try {
      connection = await UpstreamClient.connect({
        host: upstream.host,
        port: upstream.port,
        tls: upstream.tls,
        rejectUnauthorized: upstream.rejectUnauthorized,
        connectTimeoutMs: upstream.connectTimeoutMs,
        ehloName: hostname,
      });
    } catch (err) {
      breaker.failure();
      return { ok: false, failure: 'unavailable', detail: (err as Error).message };
    }
    breaker.success();
    try {
      const refused = (await this.forwardClient(connection, upstream, login, client)) ?? (await this.logIn(connection, upstream, login));
      if (refused) {
        connection.close();
        return refused;
      }
      return { ok: true, session: new UpstreamSession(connection) };
    } catch (err) {
      connection.close();
      return { ok: false, failure: 'unavailable', detail: (err as Error).message };
    }
  }

  /** One message end to end (the user notification): open, MAIL, RCPT, DATA, QUIT. */
  async deliver(login: UpstreamLogin, from: string, to: string, message: Buffer): Promise<SmtpReply> {
    const opened = await this.open(login, {});
    if (!opened.ok) return Replies.upstreamUnavailable;
    const session = opened.session;
    try {
      const refused = (await session.mailFrom(from, {})) ?? (await session.rcptTo(to));
      if (refused) return refused;
      return (await session.data(Readable.from([message]), { maxBytes: Number.MAX_SAFE_INTEGER })).reply;
    } finally {
      await session.quit();
    }
  }

  private breaker(upstream: UpstreamSettings): CircuitBreaker {
    const key = `${upstream.host}:${upstream.port}`;
    let breaker = this.breakers.get(key);
    if (!breaker) {
      breaker = new CircuitBreaker(upstream.circuitBreaker.failures, upstream.circuitBreaker.resetMs);
      this.breakers.set(key, breaker);
    }
    return breaker;
  }

  /**
   * XCLIENT (postfix.org/XCLIENT_README.html): the upstream logs and checks the real client address,
   * and in master mode LOGIN= makes it treat the session as authenticated as that user.
   */
  private async forwardClient(
    connection: UpstreamClient,
    upstream: UpstreamSettings,
    login: UpstreamLogin,
    client: ClientFacts,
  ): Promise<OpenResult | null> {
    if (!upstream.xclient) return null;
    const offered = connection.extensions.get('XCLIENT');
    if (offered === undefined) {
      if (login.mode === 'passthrough') {
        this.log.warn('upstream does not offer XCLIENT to mailwarden (smtpd_authorized_xclient_hosts?); client address not forwarded', {
          event: 'smtp.xclient',
        });
        return null;
      }
      return { ok: false, failure: 'unavailable', detail: 'upstream does not offer XCLIENT (check smtpd_authorized_xclient_hosts)' };
    }
    const names = new Set(offered.toUpperCase().split(/\s+/));
    const attributes: [string, string][] = [];
    if (client.remoteAddress) {
      const ip = client.remoteAddress.replace(/^::ffff:(?=\d+\.)/, '');
      attributes.push(['ADDR', ip.includes(':') ? `IPV6:${ip}` : ip], ['NAME', '[UNAVAILABLE]']);
    }
    if (client.remotePort) attributes.push(['PORT', String(client.remotePort)]);
    attributes.push(['PROTO', 'ESMTP']);
    if (client.helo && SAFE_HELO.test(client.helo)) attributes.push(['HELO', client.helo]);
    if (login.mode === 'master') attributes.push(['LOGIN', login.username]);
    const line = `XCLIENT ${attributes
      .filter(([name]) => names.has(name))
      .map(([name, value]) => `${name}=${xtext(value)}`)
      .join(' ')}`;
    if (line.length > MAX_XCLIENT_LENGTH) return { ok: false, failure: 'unavailable', detail: 'XCLIENT command too long' };
    const reply = await connection.command(line);
    // Postfix answers a successful XCLIENT with a new 220 greeting; the session starts over with EHLO.
    if (reply.code !== 220 && reply.code !== 250) {
      return { ok: false, failure: 'unavailable', detail: `upstream refused XCLIENT: ${reply.code} ${replyText(reply)}` };
    }
    await connection.ehlo(client.helo && SAFE_HELO.test(client.helo) ? client.helo : this.settings().hostname);
    return null;
  }

  private async logIn(connection: UpstreamClient, upstream: UpstreamSettings, login: UpstreamLogin): Promise<OpenResult | null> {
    let initial: string;
    let mechanism: 'PLAIN' | 'XOAUTH2';
    if (login.mode === 'passthrough') {
      if (login.credential.kind === 'password') {
        mechanism = 'PLAIN';
        initial = Buffer.from(`\0${login.username}\0${login.credential.password}`, 'utf8').toString('base64');
      } else {
        mechanism = 'XOAUTH2';
        initial = Buffer.from(`user=${login.username}\x01auth=Bearer ${login.credential.token}\x01\x01`, 'utf8').toString('base64');
      }
    } else if (upstream.xclient) {
      return null; // XCLIENT LOGIN= already made the session the user's.
    } else if (upstream.masterUser && upstream.masterPassword) {
      // RFC 4616: authzid = the user to act as, authcid/password = the proxy credential.
      mechanism = 'PLAIN';
      initial = Buffer.from(`${login.username}\0${upstream.masterUser}\0${upstream.masterPassword}`, 'utf8').toString('base64');
    } else {
      return null; // Trusted by address alone (the upstream must not make that an open relay).
    }
    let reply = await connection.command(`AUTH ${mechanism} ${initial}`);
    // XOAUTH2 failure: a 334 with a JSON error, answered by an empty line, then the real reply.
    if (reply.code === 334) reply = await connection.command('');
    // RFC 4954 names 235; like Postfix's own SMTP client (smtp_sasl_glue.c: `resp->code / 100 != 2`
    // fails), any 2xx ends a successful exchange: Postfix's smtp-sink answers AUTH with 250.
    if (reply.code >= 200 && reply.code < 300) return null;
    const detail = `upstream AUTH ${mechanism} for ${login.username}: ${reply.code} ${replyText(reply)}`;
    // RFC 4954 §6: 535 = the credentials are wrong. With passthrough they are the client's own.
    if (reply.code === 535 && login.mode === 'passthrough') return { ok: false, failure: 'auth-rejected', detail };
    if (login.mode === 'master') this.log.error('upstream refused the proxy credential', { event: 'smtp.upstream-auth', detail });
    return { ok: false, failure: 'unavailable', detail };
  }
}

/** One upstream SMTP session, used for any number of transactions of one client session. */
export class UpstreamSession {
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
