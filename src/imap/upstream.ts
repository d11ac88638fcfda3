// The proxy's client side towards the real IMAP server: connect (plain, implicit TLS or STARTTLS),
// forward the client's address with ID, log in (passthrough or master user), behind a breaker per address.
import dns from 'node:dns/promises';
import net from 'node:net';
import tls from 'node:tls';
import { CircuitBreakers, type CircuitBreaker } from '../core/circuit-breaker';
import type { UpstreamConfig } from '../core/config-types';
import type { Credential, UpstreamLogin } from '../identity/types';
import { quote } from './parser';
import { UpstreamReads } from './read-buffer';
import { upstreamTlsOptions } from '../core/upstream-tls';
import { reportUpstreamAttempt, socketFailureReason, UpstreamError, type UpstreamErrorReason, type UpstreamObserver } from '../core/upstream-failure';

export interface UpstreamSession {
  readonly socket: net.Socket;
  /** Capabilities the upstream announced after login (unfiltered). */
  readonly capabilities: readonly string[];
  /** Bytes the upstream sent after the tagged OK of the login (normally none). */
  readonly leftover: Buffer;
  /** Plain TCP upstreams read into a reusable buffer; the relay takes the chunks from here. */
  readonly reads?: UpstreamReads;
}

export type UpstreamResult =
  | { readonly ok: true; readonly session: UpstreamSession }
  | {
      readonly ok: false;
      /** bad-credentials only in passthrough mode: the upstream said the client's password is wrong. */
      readonly failure: 'unavailable' | 'bad-credentials';
      /** Why, for metrics and logs (bad-credentials: always 'login-refused'). */
      readonly reason: UpstreamErrorReason;
      readonly detail: string;
    };

export interface UpstreamLoginRequest {
  readonly login: UpstreamLogin;
  /** The client's own ID fields (name, version, …): forwarded for the upstream's logs. */
  readonly clientId: Readonly<Record<string, string>>;
  readonly remoteAddress?: string;
  readonly remotePort?: number;
  readonly localAddress?: string;
  readonly localPort?: number;
  readonly sessionId: string;
  readonly secure: boolean;
}

const asUpstreamError = (err: unknown): UpstreamError => (err instanceof UpstreamError ? err : new UpstreamError('protocol', (err as Error).message));

const EMPTY = Buffer.alloc(0);

/** One response line from the upstream (login phase only: no literals expected). */
interface Line {
  readonly tag: string;
  readonly rest: string;
}

/** Reads CRLF lines from a socket during the login phase, bounded. */
class LineChannel {
  private buffer = EMPTY;
  private waiter: { resolve: (l: Line) => void; reject: (e: Error) => void } | null = null;
  private error: Error | null = null;
  private readonly onData = (chunk: Buffer): void => {
    this.buffer = Buffer.concat([this.buffer, chunk]);
    if (this.buffer.length > 65536) this.fail(new UpstreamError('protocol', 'upstream sent an over-long line during login'));
    this.pump();
  };
  private readonly onClose = (): void => this.fail(new UpstreamError('protocol', 'upstream closed the connection during login'));
  private readonly onError = (err: Error): void => this.fail(new UpstreamError('connect', `upstream connection error: ${err.message}`));

  constructor(readonly socket: net.Socket) {
    socket.on('data', this.onData);
    socket.on('close', this.onClose);
    socket.on('error', this.onError);
  }

  next(): Promise<Line> {
    if (this.error) return Promise.reject(this.error);
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
      this.pump();
    });
  }

  /** Stop reading and return the bytes not consumed (the relay takes over). */
  detach(): Buffer {
    this.socket.off('data', this.onData);
    this.socket.off('close', this.onClose);
    this.socket.off('error', this.onError);
    this.socket.pause();
    // A copy: the rest is a view into a pooled slab that would otherwise stay pinned for the session.
    const rest = this.buffer.length > 0 ? Buffer.from(this.buffer) : EMPTY;
    this.buffer = EMPTY;
    return rest;
  }

  fail(err: Error): void {
    if (this.error) return;
    this.error = err;
    const w = this.waiter;
    this.waiter = null;
    w?.reject(err);
  }

  private pump(): void {
    if (!this.waiter) return;
    const lf = this.buffer.indexOf(10);
    if (lf < 0) return;
    const text = this.buffer.toString('utf8', 0, lf).replace(/\r$/, '');
    this.buffer = this.buffer.subarray(lf + 1);
    if (/\{\d+\+?\}$/.test(text)) return this.fail(new UpstreamError('protocol', 'upstream sent a literal during login'));
    const sp = text.indexOf(' ');
    const line = { tag: sp < 0 ? text : text.slice(0, sp), rest: sp < 0 ? '' : text.slice(sp + 1) };
    const w = this.waiter;
    this.waiter = null;
    w.resolve(line);
  }
}

/** `[CAPABILITY a b c]` at the start of response text, or null. */
export function capabilitiesInCode(text: string): string[] | null {
  const m = /^(?:OK|PREAUTH) \[CAPABILITY ([^\]]*)\]/i.exec(text);
  return m ? m[1]!.split(' ').filter(Boolean) : null;
}

function saslPlain(authzid: string, authcid: string, password: string): string {
  return Buffer.from(`${authzid}\0${authcid}\0${password}`, 'utf8').toString('base64');
}

/** Rejects with `message` unless `work` settles within `ms`. */
async function within<T>(ms: number, message: string, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new UpstreamError('timeout', message)), ms);
  });
  try {
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

export class Upstream {
  private readonly breakers: CircuitBreakers;

  constructor(
    private readonly config: UpstreamConfig,
    /** Shared with the rest of the process (metrics, alerts); a private set when absent (tests). */
    breakers?: CircuitBreakers,
    /** Told of every login attempt: its time and, on failure, why (the runtime's metrics). */
    private readonly observer?: UpstreamObserver,
  ) {
    this.breakers = breakers ?? new CircuitBreakers();
  }

  /** The breaker guarding one upstream address (`host:port`). */
  breaker(address: string): CircuitBreaker {
    return this.breakers.get('imap', `${address}:${this.config.port}`, this.config.circuitBreaker);
  }

  /**
   * Connect within `connectTimeoutMs`, then log in within `loginTimeoutMs`; never throws. Only the
   * connect phase (TCP, TLS, greeting, STARTTLS) counts toward the address's circuit breaker: a
   * slow login is Dovecot's auth penalty at work (2 s after a failure, up to 15 s per client
   * address), a sign that the upstream is alive, and must not refuse everyone else.
   */
  async login(request: UpstreamLoginRequest): Promise<UpstreamResult> {
    const started = performance.now();
    const result = await this.attempt(request);
    reportUpstreamAttempt(this.observer, 'imap', started, result.ok ? result : { ok: false, badCredentials: result.failure === 'bad-credentials', reason: result.reason });
    return result;
  }

  private async attempt(request: UpstreamLoginRequest): Promise<UpstreamResult> {
    let target: { address: string; breaker: CircuitBreaker } | null;
    try {
      target = await this.pickAddress();
    } catch (err) {
      return { ok: false, failure: 'unavailable', reason: 'connect', detail: `cannot resolve upstream ${this.config.host}: ${(err as Error).message}` };
    }
    if (!target) return { ok: false, failure: 'unavailable', reason: 'breaker-open', detail: 'upstream circuit breaker open' };
    const { address, breaker } = target;
    let socket: net.Socket | null = null;
    let channel: LineChannel | null = null;
    const cleanUp = (e: UpstreamError): void => {
      channel?.fail(e);
      socket?.destroy();
    };
    let greetingCaps: string[];
    let reads: UpstreamReads | undefined;
    try {
      const connected = (async () => {
        ({ socket, reads } = await this.connect(address));
        channel = new LineChannel(socket);
        const caps = await this.greeting(channel);
        if (this.config.tls === 'starttls') ({ socket, channel } = await this.starttls(channel));
        return caps;
      })();
      greetingCaps = await within(this.config.connectTimeoutMs, `upstream ${address} did not connect and greet within ${this.config.connectTimeoutMs} ms`, connected);
    } catch (err) {
      const e = asUpstreamError(err);
      cleanUp(e);
      breaker.failure();
      return { ok: false, failure: e.badCredentials ? 'bad-credentials' : 'unavailable', reason: e.reason, detail: e.message };
    }
    breaker.success();
    try {
      const open = channel as unknown as LineChannel;
      const caps = await within(
        this.config.loginTimeoutMs,
        `upstream did not answer the login within ${this.config.loginTimeoutMs} ms`,
        this.authenticate(open, greetingCaps, request),
      );
      const leftover = open.detach();
      return { ok: true, session: { socket: open.socket, capabilities: caps, leftover, reads } };
    } catch (err) {
      const e = asUpstreamError(err);
      cleanUp(e);
      return { ok: false, failure: e.badCredentials ? 'bad-credentials' : 'unavailable', reason: e.reason, detail: e.message };
    }
  }

  /** The first address of the upstream host whose breaker lets a connection through, or null. */
  private async pickAddress(): Promise<{ address: string; breaker: CircuitBreaker } | null> {
    const { host } = this.config;
    const addresses = net.isIP(host) ? [host] : (await dns.lookup(host, { all: true })).map((a) => a.address);
    for (const address of addresses) {
      const breaker = this.breaker(address);
      if (breaker.allow()) return { address, breaker };
    }
    return null;
  }

  private connect(address: string): Promise<{ socket: net.Socket; reads?: UpstreamReads }> {
    const { host, port } = this.config;
    return new Promise((resolve, reject) => {
      // Only a plain TCP socket for its whole life reads through `onread` (a TLS layer reads the handle itself).
      const reads = this.config.tls === 'none' ? new UpstreamReads() : undefined;
      const socket =
        this.config.tls === 'implicit'
          ? tls.connect({ ...upstreamTlsOptions(this.config), host: address, port })
          : net.connect({ host: address, port, ...(reads ? { onread: reads.onread } : {}) });
      reads?.attach(socket);
      socket.setNoDelay(true);
      const ready = this.config.tls === 'implicit' ? 'secureConnect' : 'connect';
      const onError = (err: Error): void =>
        reject(new UpstreamError(socketFailureReason(err, this.config.tls === 'implicit'), `cannot connect to upstream ${address}:${port}: ${err.message}`));
      socket.once('error', onError);
      socket.once(ready, () => {
        socket.off('error', onError);
        resolve({ socket, reads });
      });
    });
  }

  /** The greeting must be `* OK`; PREAUTH is never trusted and BYE means unavailable. */
  private async greeting(channel: LineChannel): Promise<string[]> {
    const line = await channel.next();
    if (line.tag !== '*' || !/^OK\b/i.test(line.rest)) {
      throw new UpstreamError('protocol', `upstream greeting is not "* OK": ${line.tag} ${line.rest.slice(0, 80)}`);
    }
    return capabilitiesInCode(line.rest) ?? [];
  }

  private async starttls(channel: LineChannel): Promise<{ socket: net.Socket; channel: LineChannel }> {
    channel.socket.write('S STARTTLS\r\n');
    const line = await this.tagged(channel, 'S');
    if (!/^OK\b/i.test(line.rest)) throw new UpstreamError('tls', `upstream refused STARTTLS: ${line.rest.slice(0, 80)}`);
    // Bytes after the OK and before the handshake would be a response-injection attempt (NO STARTTLS paper).
    const early = channel.detach();
    if (early.length > 0) throw new UpstreamError('tls', 'upstream sent data after its STARTTLS response');
    const secure = await new Promise<tls.TLSSocket>((resolve, reject) => {
      const s = tls.connect({ socket: channel.socket, ...upstreamTlsOptions(this.config) });
      s.once('secureConnect', () => resolve(s));
      s.once('error', (err) => reject(new UpstreamError(socketFailureReason(err, true), `upstream TLS handshake failed: ${err.message}`)));
    });
    return { socket: secure, channel: new LineChannel(secure) };
  }

  private async tagged(channel: LineChannel, tag: string, untagged?: (rest: string) => void): Promise<Line> {
    for (;;) {
      const line = await channel.next();
      if (line.tag === tag) return line;
      if (line.tag === '*') {
        if (/^BYE\b/i.test(line.rest)) throw new UpstreamError('protocol', `upstream said BYE: ${line.rest.slice(0, 80)}`);
        untagged?.(line.rest);
      }
    }
  }

  private async authenticate(channel: LineChannel, greetingCaps: readonly string[], request: UpstreamLoginRequest): Promise<string[]> {
    const hasSaslIr = greetingCaps.some((c) => c.toUpperCase() === 'SASL-IR');
    const [mech, payload] = this.saslFor(request.login);
    // ID first (Dovecot honours x-originating-* from login_trusted_networks), pipelined with the login.
    const id = `I ID ${idList(request)}\r\n`;
    const auth = hasSaslIr ? `L AUTHENTICATE ${mech} ${payload}\r\n` : `L AUTHENTICATE ${mech}\r\n`;
    channel.socket.write(id + auth);
    await this.tagged(channel, 'I');
    let caps: string[] | null = null;
    const onUntagged = (rest: string): void => {
      const m = /^CAPABILITY (.*)$/i.exec(rest);
      if (m) caps = m[1]!.split(' ').filter(Boolean);
    };
    let line: Line;
    for (;;) {
      line = await channel.next();
      if (line.tag === '+' && !hasSaslIr) {
        channel.socket.write(`${payload}\r\n`);
        continue;
      }
      if (line.tag === '+') {
        // A challenge after a complete PLAIN/XOAUTH2 response is an error report: answer empty (XOAUTH2).
        channel.socket.write('\r\n');
        continue;
      }
      if (line.tag === 'L') break;
      if (line.tag === '*') {
        if (/^BYE\b/i.test(line.rest)) throw new UpstreamError('protocol', `upstream said BYE: ${line.rest.slice(0, 80)}`);
        onUntagged(line.rest);
      }
    }
    if (!/^OK\b/i.test(line.rest)) {
      const passthrough = request.login.mode === 'passthrough';
      // Upstream AUTHENTICATIONFAILED is the client's fault only when we replayed the client's secret;
      // with the master user it is our configuration, so the client gets UNAVAILABLE (details in the log).
      if (passthrough && /^NO \[AUTHENTICATIONFAILED\]/i.test(line.rest)) {
        throw new UpstreamError('login-refused', 'upstream rejected the client credentials', { badCredentials: true });
      }
      throw new UpstreamError('login-refused', `upstream refused the login: ${line.rest.slice(0, 120)}`);
    }
    const fromOk = capabilitiesInCode(line.rest);
    if (fromOk) return fromOk;
    if (caps) return caps;
    channel.socket.write('C CAPABILITY\r\n');
    await this.tagged(channel, 'C', onUntagged);
    return caps ?? [];
  }

  private saslFor(login: UpstreamLogin): [string, string] {
    if (login.mode === 'master') {
      const { masterUser, masterPassword } = this.config;
      if (!masterUser || !masterPassword) throw new UpstreamError('login-refused', 'upstream.login is master but masterUser/masterPassword are not set');
      // RFC 4616 authzid = the user, authcid = the master user (Dovecot master passdb).
      return ['PLAIN', saslPlain(login.username, masterUser, masterPassword)];
    }
    return passthroughSasl(login.credential, login.username);
  }
}

function passthroughSasl(credential: Credential, username: string): [string, string] {
  if (credential.kind === 'password') return ['PLAIN', saslPlain('', username, credential.password)];
  const xoauth2 = `user=${username}\x01auth=Bearer ${credential.token}\x01\x01`;
  return ['XOAUTH2', Buffer.from(xoauth2, 'utf8').toString('base64')];
}

/** RFC 2971 limits: ≤ 30 pairs, key ≤ 30 octets, value ≤ 1024 octets. */
function idList(request: UpstreamLoginRequest): string {
  const pairs: [string, string][] = [];
  for (const [k, v] of Object.entries(request.clientId)) {
    if (k.startsWith('x-') || k.length > 30) continue;
    pairs.push([k, v.slice(0, 1024)]);
    if (pairs.length >= 20) break;
  }
  if (request.remoteAddress) pairs.push(['x-originating-ip', request.remoteAddress]);
  if (request.remotePort) pairs.push(['x-originating-port', String(request.remotePort)]);
  if (request.localAddress) pairs.push(['x-connected-ip', request.localAddress]);
  if (request.localPort) pairs.push(['x-connected-port', String(request.localPort)]);
  pairs.push(['x-session-id', request.sessionId]);
  pairs.push(['x-client-transport', request.secure ? 'TLS' : 'insecure']);
  return `(${pairs.map(([k, v]) => `${quote(k)} ${quote(v)}`).join(' ')})`;
}
