// The upstream leg until it is logged in: connect (TLS as configured), forward the client's address
// with XCLIENT, log in (the client's own credentials or the proxy credential); then a Relay (relay.ts).
import { Readable } from 'node:stream';
import { CircuitBreakers, type CircuitBreaker } from '../core/circuit-breaker';
import { reportUpstreamAttempt, UpstreamError, type UpstreamErrorReason, type UpstreamObserver } from '../core/upstream-failure';
import type { Logger } from '../core/log';
import type { SmtpConfig } from '../core/config-types';
import type { UpstreamLogin } from '../identity/types';
import { Relay } from './relay';
import { Replies, type SmtpReply } from './replies';
import { replyText, UpstreamClient } from './upstream-client';

export type UpstreamSettings = SmtpConfig['upstream'];

/** What the upstream learns about the real client through XCLIENT. */
export interface ClientFacts {
  readonly remoteAddress?: string;
  readonly remotePort?: number;
  /** The name the client gave with EHLO/HELO. */
  readonly helo?: string;
}

export type OpenResult =
  | { readonly ok: true; readonly session: Relay }
  /** auth-rejected: the upstream refused the client's own credentials (passthrough) → 535 to the client. */
  | { readonly ok: false; readonly failure: 'auth-rejected' | 'unavailable'; readonly reason: UpstreamErrorReason; readonly detail: string };

const reasonOf = (err: unknown): UpstreamErrorReason => (err instanceof UpstreamError ? err.reason : 'protocol');

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
  private readonly breakers: CircuitBreakers;

  constructor(
    private readonly log: Logger,
    /** Read per connection, so a reload applies to new sessions. */
    private readonly settings: () => { readonly upstream: UpstreamSettings; readonly hostname: string },
    /** Shared with the IMAP leg and the runtime (metrics, alerts); a private set when absent (tests). */
    breakers?: CircuitBreakers,
    /** Told of every login attempt: its time and, on failure, why (the runtime's metrics). */
    private readonly observer?: UpstreamObserver,
  ) {
    this.breakers = breakers ?? new CircuitBreakers();
  }

  /** Opens an upstream session ready for MAIL FROM. Never throws. */
  async open(login: UpstreamLogin, client: ClientFacts): Promise<OpenResult> {
    const started = performance.now();
    const result = await this.attempt(login, client);
    reportUpstreamAttempt(this.observer, 'smtp', started, result.ok ? result : { ok: false, badCredentials: result.failure === 'auth-rejected', reason: result.reason });
    return result;
  }

  private async attempt(login: UpstreamLogin, client: ClientFacts): Promise<OpenResult> {
    const { upstream, hostname } = this.settings();
    const breaker = this.breaker(upstream);
    if (!breaker.allow()) return { ok: false, failure: 'unavailable', reason: 'breaker-open', detail: 'circuit open: upstream failed recently' };
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
      return { ok: false, failure: 'unavailable', reason: reasonOf(err), detail: (err as Error).message };
    }
    breaker.success();
    try {
      const refused = (await this.forwardClient(connection, upstream, login, client)) ?? (await this.logIn(connection, upstream, login));
      if (refused) {
        connection.close();
        return refused;
      }
      return { ok: true, session: new Relay(connection) };
    } catch (err) {
      connection.close();
      return { ok: false, failure: 'unavailable', reason: reasonOf(err), detail: (err as Error).message };
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
    return this.breakers.get('smtp', `${upstream.host}:${upstream.port}`, upstream.circuitBreaker);
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
      return { ok: false, failure: 'unavailable', reason: 'protocol', detail: 'upstream does not offer XCLIENT (check smtpd_authorized_xclient_hosts)' };
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
    if (line.length > MAX_XCLIENT_LENGTH) return { ok: false, failure: 'unavailable', reason: 'protocol', detail: 'XCLIENT command too long' };
    const reply = await connection.command(line);
    // Postfix answers a successful XCLIENT with a new 220 greeting; the session starts over with EHLO.
    if (reply.code !== 220 && reply.code !== 250) {
      // With LOGIN= the refusal is of the proxy's own authority to act as the user.
      const reason = login.mode === 'master' ? 'login-refused' : 'protocol';
      return { ok: false, failure: 'unavailable', reason, detail: `upstream refused XCLIENT: ${reply.code} ${replyText(reply)}` };
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
    if (reply.code === 535 && login.mode === 'passthrough') return { ok: false, failure: 'auth-rejected', reason: 'login-refused', detail };
    if (login.mode === 'master') this.log.error('upstream refused the proxy credential', { event: 'smtp.upstream-auth', detail });
    return { ok: false, failure: 'unavailable', reason: 'login-refused', detail };
  }
}
