// One client connection: the pre-authentication state machine mailwarden answers itself
// (CAPABILITY, NOOP, LOGOUT, ID, STARTTLS, LOGIN, AUTHENTICATE), then the upstream login and relay.
import { randomBytes } from 'node:crypto';
import type net from 'node:net';
import tls from 'node:tls';
import type { ImapConfig, ProtocolListener } from '../core/config-types';
import { plainAddress } from '../core/client-address';
import { connectionLogger, withUser, type ConnectionFields, type Logger } from '../core/log';
import type { Gate } from '../app/gate';
import {
  decodeOauthbearer,
  decodePlain,
  decodeSaslText,
  decodeXoauth2,
  oauthbearerErrorChallenge,
  xoauth2ErrorChallenge,
  type SaslDecodeResult,
} from '../identity/sasl';
import type { Credential } from '../identity/types';
import type { Decision } from '../policy/decision';
import { CommandReader, hasControlChars, isUtf8Token, parseCommand, ImapSyntaxError, tokenText, type Segment, type Token } from './parser';
import { startQuarantine } from './quarantine';
import { filterCapabilities } from './framing';
import { Relay } from './relay';
import { serverTls } from './tls';
import * as replies from './replies';
import type { Upstream } from './upstream';

/** Shared by every connection of one listener. */
export interface ConnectionContext {
  readonly gate: Gate;
  readonly config: ImapConfig;
  readonly listener: ProtocolListener;
  /** Present when the listener can speak TLS (implicit or STARTTLS). */
  readonly secureContext: tls.SecureContext | null;
  /** Ask for a client certificate (device identity from the MDM's CA). */
  readonly requestCert: boolean;
  readonly upstream: Upstream;
  /** The service's set of open connections (graceful shutdown); returns the removal function. */
  readonly track: (connection: ImapConnection) => () => void;
}

export interface Peer {
  readonly address?: string;
  readonly port?: number;
  readonly localAddress?: string;
  readonly localPort?: number;
}

/** RFC 2971 §3.3 limits for ID. */
const ID_MAX_PAIRS = 30;
const ID_MAX_KEY = 30;
const ID_MAX_VALUE = 1024;

/** SASL mechanisms mailwarden verifies itself (OAuth ones only with an oauth identity source). */
const MECHANISMS = ['PLAIN', 'LOGIN', 'XOAUTH2', 'OAUTHBEARER'] as const;
type Mechanism = (typeof MECHANISMS)[number];

/**
 * Where one client connection is, in the spirit of nginx's ngx_imap_state_e. Only
 * `not-authenticated` reads commands (RFC 9051 §3.1); `authenticating` reads only the SASL lines of
 * the login in progress; in `tls-handshake` nothing is read; once `relaying` or `quarantined` the
 * relay or the quarantine mailbox owns the socket.
 */
export type ConnectionState = 'not-authenticated' | 'authenticating' | 'tls-handshake' | 'relaying' | 'quarantined' | 'closed';

type CommandHandler = (connection: ImapConnection, tag: string, args: readonly Token[]) => void;

export class ImapConnection {
  /** The commands each state answers; any other command, or a state with no table, gets BAD. */
  private static readonly COMMANDS: Readonly<Partial<Record<ConnectionState, Readonly<Record<string, CommandHandler>>>>> = {
    'not-authenticated': {
      CAPABILITY: (c, tag) => c.send(`* CAPABILITY ${c.capabilities().join(' ')}`, `${tag} OK CAPABILITY completed`),
      NOOP: (c, tag) => c.send(`${tag} OK NOOP completed`),
      LOGOUT: (c, tag) => c.finish(`* BYE Logging out\r\n${tag} OK LOGOUT completed\r\n`),
      ID: (c, tag, args) => c.idCommand(tag, args),
      STARTTLS: (c, tag, args) => c.starttls(tag, args),
      LOGIN: (c, tag, args) => c.run(() => c.loginCommand(tag, args)),
      AUTHENTICATE: (c, tag, args) => c.run(() => c.authenticate(tag, args)),
    },
  };

  readonly id = randomBytes(8).toString('hex');
  private reader: CommandReader;
  /** Carries protocol, sessionId, remoteAddress; user and deviceId once the login named them. */
  private log: Logger;
  private tlsActive: boolean;
  /** The one value that says where the connection is; see ConnectionState for what each reads. */
  private state: ConnectionState = 'not-authenticated';
  private badCommands = 0;
  private commands = 0;
  private failedLogins = 0;
  private hints: Record<string, string> = {};
  private lineWaiter: ((line: string | null) => void) | null = null;
  private preAuthTimer: NodeJS.Timeout | null = null;
  private relay: Relay | null = null;
  private quarantine: { end(text: string): void } | null = null;
  private untrack: () => void = () => {};
  private readonly onData = (chunk: Buffer): void => {
    this.reader.push(chunk);
    this.pump();
  };

  constructor(
    private readonly ctx: ConnectionContext,
    private socket: net.Socket,
    private readonly peer: Peer,
  ) {
    this.tlsActive = socket instanceof tls.TLSSocket;
    this.reader = this.newReader();
    this.log = connectionLogger(ctx.gate.log, this.logFields());
  }

  private logFields(): ConnectionFields {
    return { protocol: 'imap', sessionId: this.id, remoteAddress: plainAddress(this.peer.address) };
  }

  start(): void {
    this.untrack = this.ctx.track(this);
    this.socket.setNoDelay(true);
    this.socket.on('data', this.onData);
    this.socket.on('error', () => this.destroy());
    this.socket.on('close', () => this.destroy());
    // Absolute pre-auth deadline (Dovecot style): trickling bytes do not extend it.
    this.preAuthTimer = setTimeout(() => this.bye(replies.TEXT.timeout), this.ctx.config.preAuthTimeoutMs);
    this.preAuthTimer.unref();
    this.send(`* OK [CAPABILITY ${this.capabilities().join(' ')}] IMAP proxy ready.`);
  }

  /** Graceful shutdown: BYE now before login, at a response boundary after it. */
  shutdown(): void {
    const text = replies.bye(replies.TEXT.shutdown);
    if (this.relay) this.relay.end(text);
    else if (this.quarantine) this.quarantine.end(text);
    else this.bye(replies.TEXT.shutdown);
  }

  /** Last resort after the drain time. */
  destroy(): void {
    this.finish(null);
  }

  /**
   * End the connection once: with `last` (already CRLF-terminated) flushed first and the socket cut
   * a second later if the client does not close; at once when `last` is null; or only the
   * bookkeeping when the relay already closed the socket.
   */
  private finish(last: string | null | 'relay-closed'): void {
    if (this.closed) return;
    this.state = 'closed';
    if (this.preAuthTimer) clearTimeout(this.preAuthTimer);
    this.lineWaiter?.(null);
    this.lineWaiter = null;
    // The relay or quarantine mailbox closed the socket itself (after flushing its BYE).
    if (last === null) this.socket.destroy();
    else if (last !== 'relay-closed') {
      this.socket.end(last);
      setTimeout(() => this.socket.destroy(), 1000).unref();
    }
    this.untrack();
  }

  private get closed(): boolean {
    return this.state === 'closed';
  }

  private get loginAllowed(): boolean {
    return this.tlsActive || this.ctx.listener.tls === 'none';
  }

  private capabilities(): string[] {
    const caps = ['IMAP4rev1', 'SASL-IR', 'LITERAL+', 'ID'];
    if (!this.loginAllowed) return [...caps, 'STARTTLS', 'LOGINDISABLED'];
    const oauth = this.ctx.gate.config().identity.sources.some((s) => s.type === 'oauth');
    return [...caps, 'AUTH=PLAIN', 'AUTH=LOGIN', ...(oauth ? ['AUTH=OAUTHBEARER', 'AUTH=XOAUTH2'] : [])];
  }

  private newReader(): CommandReader {
    const { maxLineBytes, maxLiteralBytes } = this.ctx.config;
    return new CommandReader({ maxLineBytes, maxLiteralBytes });
  }

  private send(...lines: string[]): void {
    if (!this.closed) this.socket.write(replies.wire(lines));
  }

  private bye(text: string): void {
    this.finish(replies.bye(text));
  }

  private pump(): void {
    for (;;) {
      // Commands are read while not authenticated; while a login runs, only its SASL lines.
      if (this.state === 'authenticating' && !this.lineWaiter) return void this.socket.pause();
      if (this.state !== 'not-authenticated' && this.state !== 'authenticating') return;
      const event = this.reader.next();
      if (!event) return;
      if (event.type === 'fatal') {
        this.bye(event.reason === 'line-too-long' ? 'Line too long.' : 'Literal too large.');
        return;
      }
      if (event.type === 'continue') {
        this.send('+ Ready for literal data');
        continue;
      }
      if (this.lineWaiter) {
        const waiter = this.lineWaiter;
        this.lineWaiter = null;
        // A SASL response is one plain line; anything with a literal is malformed.
        waiter(event.segments.length === 1 ? (event.segments[0] as string) : '\0');
        continue;
      }
      this.dispatch(event.segments);
    }
  }

  /** Next raw line from the client (SASL responses), or null when the connection closed. */
  private readLine(): Promise<string | null> {
    return new Promise((resolve) => {
      this.lineWaiter = resolve;
      this.socket.resume();
      this.pump();
    });
  }

  private dispatch(segments: readonly Segment[]): void {
    if (this.commands++ === 0 && typeof segments[0] === 'string' && /^PROXY (TCP4|TCP6|UNKNOWN)\b/.test(segments[0])) {
      // A PROXY header from an address not configured for it: the client address cannot be trusted.
      this.bye('PROXY protocol not accepted from this address.');
      return;
    }
    let command;
    try {
      command = parseCommand(segments);
    } catch (err) {
      const e = err as ImapSyntaxError;
      this.bad(e.tag, e.message);
      return;
    }
    const { tag, name, args } = command;
    // Names are upper-case (parseCommand), so no Object.prototype member can match.
    const handler = ImapConnection.COMMANDS[this.state]?.[name];
    if (!handler) return this.bad(tag, replies.TEXT.notBeforeLogin);
    handler(this, tag, args);
  }

  /** LOGIN and AUTHENTICATE: authenticating until the login ends, back to not-authenticated unless it moved on. */
  private run(login: () => Promise<void>): void {
    this.state = 'authenticating';
    login()
      .catch((err: unknown) => this.log.error('imap: login failed unexpectedly', { error: String(err) }))
      .finally(() => {
        if (this.state !== 'authenticating') return;
        this.state = 'not-authenticated';
        this.socket.resume();
        this.pump();
      });
  }

  /** `tag BAD`; an invalid tag is not echoed (ALPACA: Dovecot imap-login does the same). */
  private bad(tag: string | null, message: string): void {
    this.send(`${tag ?? '*'} BAD ${message}`);
    if (++this.badCommands >= this.ctx.config.maxBadCommands) this.bye(replies.TEXT.tooManyBad);
  }

  private idCommand(tag: string, args: readonly Token[]): void {
    const list = args[0];
    if (args.length !== 1 || !list || (list.kind !== 'list' && list.kind !== 'nil')) return this.bad(tag, 'ID expects a list or NIL');
    if (list.kind === 'list') {
      const items = list.items;
      if (items.length % 2 !== 0 || items.length / 2 > ID_MAX_PAIRS) return this.bad(tag, 'Invalid ID list');
      const hints: Record<string, string> = {};
      for (let i = 0; i < items.length; i += 2) {
        const key = tokenText(items[i]);
        const value = items[i + 1]?.kind === 'nil' ? '' : tokenText(items[i + 1]);
        if (key === null || value === null || Buffer.byteLength(key) > ID_MAX_KEY || Buffer.byteLength(value) > ID_MAX_VALUE) {
          return this.bad(tag, 'Invalid ID field');
        }
        // Hints only (RFC 2971 §3.4: no operational decisions on ID alone); control characters dropped.
        hints[key.toLowerCase().replace(/[^\x21-\x7e]/g, '')] = value.replace(/[\u0000-\u001f\u007f]/g, '');
      }
      this.hints = hints;
    }
    this.send('* ID ("name" "mailwarden")', `${tag} OK ID completed`);
  }

  private starttls(tag: string, args: readonly Token[]): void {
    if (args.length > 0) return this.bad(tag, 'STARTTLS takes no arguments');
    if (this.tlsActive) return this.bad(tag, 'TLS is already active');
    const context = this.ctx.secureContext;
    if (!context || this.ctx.listener.tls !== 'starttls') return this.bad(tag, 'STARTTLS is not available here');
    // Stop reading and throw away everything the client sent after the command: those bytes came
    // in plaintext and must never run inside TLS (CVE-2011-0411, RFC 2595 §3.1).
    this.socket.off('data', this.onData);
    this.reader.discard();
    this.socket.write(`${tag} OK Begin TLS negotiation now\r\n`);
    this.state = 'tls-handshake';
    const secure = serverTls(this.socket, context, this.ctx.requestCert, () => {
      // Everything learnt before TLS is forgotten (RFC 3207 §4.2 spirit; RFC 9051 §6.2.1).
      this.tlsActive = true;
      this.reader = this.newReader();
      this.hints = {};
      this.badCommands = 0;
      this.failedLogins = 0;
      if (this.state === 'tls-handshake') this.state = 'not-authenticated';
      secure.on('data', this.onData);
    });
    this.socket = secure;
    secure.on('error', () => this.destroy());
    secure.on('close', () => this.destroy());
  }

  private async loginCommand(tag: string, args: readonly Token[]): Promise<void> {
    if (!this.loginAllowed) return void this.send(replies.privacyRequired(tag));
    const username = tokenText(args[0]);
    const password = tokenText(args[1]);
    if (args.length !== 2 || username === null || password === null) return this.bad(tag, 'LOGIN expects a user name and a password');
    if (!isUtf8Token(args[0]) || !isUtf8Token(args[1])) return this.bad(tag, 'LOGIN user name and password must be valid UTF-8');
    // CR, LF or NUL in a name (e.g. from a literal) never reaches the identity layer or an upstream command.
    if (hasControlChars(username) || /[\0\r\n]/.test(password)) return this.bad(tag, 'Control characters are not allowed in LOGIN');
    await this.login(tag, { kind: 'password', username, password }, null);
  }

  private async authenticate(tag: string, args: readonly Token[]): Promise<void> {
    const mechName = tokenText(args[0])?.toUpperCase();
    if (!mechName || args.length > 2) return this.bad(tag, 'AUTHENTICATE expects a mechanism');
    if (!this.loginAllowed) return void this.send(replies.privacyRequired(tag));
    const mech = MECHANISMS.find((m) => m === mechName);
    if (!mech || (!this.capabilities().includes(`AUTH=${mech}`))) {
      return void this.send(`${tag} NO Unsupported authentication mechanism`);
    }
    const initial = args[1] ? tokenText(args[1]) : null;
    // SASL-IR (RFC 4959): "=" is an empty initial response.
    const first = initial === null ? null : initial === '=' ? '' : initial;
    const decoded = await this.saslExchange(tag, mech, first);
    if (decoded === null) return;
    if (!decoded.ok) {
      if (decoded.error === 'bad-base64') return this.bad(tag, 'Invalid base64 data');
      if (decoded.error === 'authzid-mismatch') return this.loginFailed(tag, replies.authorizationFailed(tag));
      if (mech === 'XOAUTH2' || mech === 'OAUTHBEARER') return this.oauthFailure(tag, mech);
      return this.loginFailed(tag, replies.authenticationFailed(tag));
    }
    await this.login(tag, decoded.credential, mech);
  }

  /** The continuation dialogue; null when the client aborted (`*`, answered BAD) or left. */
  private async saslExchange(tag: string, mech: Mechanism, initial: string | null): Promise<SaslDecodeResult | null> {
    const ask = async (challenge: string): Promise<string | null> => {
      this.send(`+ ${challenge}`);
      const line = await this.readLine();
      if (line === null) return null;
      if (line === '*') {
        // RFC 9051 §6.2.2: the client aborted; the server answers BAD.
        this.bad(tag, 'Authentication aborted by client');
        return null;
      }
      return line;
    };
    if (mech === 'LOGIN') {
      const user = initial ?? (await ask('VXNlcm5hbWU6'));
      if (user === null) return null;
      const pass = await ask('UGFzc3dvcmQ6');
      if (pass === null) return null;
      const u = decodeSaslText(user);
      if (!u.ok) return u;
      const p = decodeSaslText(pass);
      if (!p.ok) return p;
      return { ok: true, credential: { kind: 'password', username: u.text, password: p.text } };
    }
    const response = initial ?? (await ask(''));
    if (response === null) return null;
    if (mech === 'PLAIN') return decodePlain(response);
    return mech === 'XOAUTH2' ? decodeXoauth2(response) : decodeOauthbearer(response);
  }

  /** RFC 7628 §3.2.2 / Google XOAUTH2: an error challenge, the client's dummy answer, then NO. */
  private async oauthFailure(tag: string, mech: 'XOAUTH2' | 'OAUTHBEARER'): Promise<void> {
    this.send(`+ ${mech === 'XOAUTH2' ? xoauth2ErrorChallenge() : oauthbearerErrorChallenge()}`);
    const line = await this.readLine();
    if (line === null) return;
    this.loginFailed(tag, replies.authenticationFailed(tag));
  }

  private loginFailed(tag: string, line: string): void {
    this.send(line);
    if (++this.failedLogins >= this.ctx.config.maxBadCommands) this.bye(replies.TEXT.tooManyFailures);
  }

  private peerCertificate(): tls.PeerCertificate | undefined {
    const s = this.socket;
    if (!(s instanceof tls.TLSSocket) || !s.authorized) return undefined;
    const cert = s.getPeerCertificate();
    return cert && Object.keys(cert).length > 0 ? cert : undefined;
  }

  /** The admission step, its outcome as replies, and on allow the upstream login and relay. */
  private async login(tag: string, credential: Credential, mech: Mechanism | null): Promise<void> {
    const { gate } = this.ctx;
    const remoteAddress = plainAddress(this.peer.address);
    const mechanism = mech ?? 'LOGIN-command';
    const admission = await gate.admit({
      protocol: 'imap',
      frontEnd: 'imap',
      sessionId: this.id,
      credential,
      peerCertificate: this.peerCertificate(),
      remoteAddress,
      hints: { ...this.hints },
      upstreamLogin: this.ctx.config.upstream.login,
      live: { revoke: (decision) => this.revoke(decision) },
    });
    if (this.closed) {
      if (admission.kind === 'allow') admission.session?.end();
      return;
    }
    if (admission.kind === 'bad-credentials') {
      this.log.info('imap: login refused by identity', { mechanism, failure: 'bad-credentials', detail: admission.detail });
      gate.metrics?.onLogin('imap', 'bad-credentials');
      if (credential.kind === 'bearer' && (mech === 'XOAUTH2' || mech === 'OAUTHBEARER')) return this.oauthFailure(tag, mech);
      return this.loginFailed(tag, replies.authenticationFailed(tag));
    }
    if (admission.kind === 'unavailable') {
      if (!admission.decision) this.log.info('imap: login refused by identity', { mechanism, failure: 'unavailable', detail: admission.detail });
      gate.metrics?.onLogin('imap', 'tempfail');
      return void this.send(replies.unavailable(tag, admission.decision?.message));
    }
    this.log = withUser(this.ctx.gate.log, this.logFields(), admission.identity.user, admission.identity.deviceId);
    if (admission.kind === 'refuse') {
      const refused = replies.refusal(tag, admission.decision, this.ctx.config.blockStyle);
      if (refused.kind === 'refuse') {
        gate.metrics?.onLogin('imap', refused.result);
        return void this.send(...refused.lines);
      }
      gate.metrics?.onLogin('imap', 'quarantine');
      this.log.info('imap: quarantined', { mechanism, refId: admission.decision.refId });
      this.enterAuthenticated('quarantined');
      this.quarantine = startQuarantine({
        socket: this.socket,
        tag,
        user: admission.identity.user,
        sentence: refused.sentence,
        pipelined: this.reader.takeRemaining(),
        onClose: () => this.finish('relay-closed'),
      });
      return;
    }

    // The admission step registered the live session before this upstream login, so a revocation
    // in that window is not lost: confirm() below reports it.
    const { decision } = admission;
    const live = admission.session!;
    const result = await this.ctx.upstream.login({
      login: admission.upstream,
      clientId: this.hints,
      remoteAddress,
      remotePort: this.peer.port,
      localAddress: plainAddress(this.peer.localAddress),
      localPort: this.peer.localPort,
      sessionId: this.id,
      secure: this.tlsActive,
    });
    // A passthrough password is judged by the upstream: the login throttle counts its verdict.
    if (result.ok || result.failure === 'bad-credentials') admission.upstreamChecked?.(result.ok);
    if (!result.ok) {
      live.end();
      this.log.warn('imap: upstream login failed', { mechanism, failure: result.failure, reason: result.reason, detail: result.detail });
      gate.metrics?.onLogin('imap', result.failure === 'bad-credentials' ? 'bad-credentials' : 'upstream-error');
      if (result.failure === 'bad-credentials') return this.loginFailed(tag, replies.authenticationFailed(tag));
      return void this.send(replies.unavailable(tag));
    }
    const upstreamSocket = result.session.socket;
    const now = this.closed ? null : await live.confirm();
    if (this.closed || !now || now.action !== 'allow') {
      live.end();
      upstreamSocket.destroy();
      if (now && now.action !== 'allow') this.send(...replies.refusedLines(tag, now));
      return;
    }
    // winston formats an entry before its transports drop it by level: skip the work when info is off.
    if (this.log.isInfoEnabled()) this.log.info('imap: logged in', { mechanism, refId: decision.refId });
    this.enterAuthenticated('relaying');
    this.send(...replies.warnings(decision), replies.loggedIn(tag, filterCapabilities(result.session.capabilities)));
    gate.metrics?.onLogin('imap', 'allow');
    gate.metrics?.sessionDelta('imap', 1);
    this.relay = new Relay({
      client: this.socket,
      upstream: upstreamSocket,
      clientBytes: this.reader.takeRemaining(),
      upstreamBytes: result.session.leftover,
      upstreamReads: result.session.reads,
      onClose: () => {
        live.end();
        gate.metrics?.sessionDelta('imap', -1);
        this.finish('relay-closed');
      },
    });
    // RFC 9051 §5.4 autologout: no traffic either way for idleTimeoutMs (≥ 30 min; clients re-IDLE every 29).
    this.socket.setTimeout(this.ctx.config.idleTimeoutMs, () => this.relay?.end(replies.bye(replies.TEXT.autologout)));
  }

  /** A live re-evaluation now refuses this session: BYE at a response boundary once relaying. */
  private revoke(decision: Decision): void {
    this.log.info('imap: session revoked', { refId: decision.refId });
    this.relay?.end(replies.revoked(decision));
  }

  private enterAuthenticated(next: 'relaying' | 'quarantined'): void {
    this.state = next;
    if (this.preAuthTimer) clearTimeout(this.preAuthTimer);
    this.preAuthTimer = null;
    this.socket.off('data', this.onData);
    this.lineWaiter = null;
  }
}
