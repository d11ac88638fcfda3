// The only file that sees smtp-server's callbacks: one SMTP listener (implicit TLS, STARTTLS or
// plaintext) whose events are handed to async handlers; replies and errors go back as callbacks here.
import fs from 'node:fs';
import type net from 'node:net';
import type tls from 'node:tls';
import { SMTPServer, type SMTPServerAddress, type SMTPServerAuthentication, type SMTPServerDataStream, type SMTPServerSession } from 'smtp-server';
import type { ProtocolListener } from '../core/config-types';
import type { Logger } from '../core/log';
import { addressKey } from '../core/client-address';
import { ConnectionLimits } from '../core/connection-limits';
import { LineDeadline } from './deadlines';
import type { Credential } from '../identity/types';
import { Replies, type SmtpReply } from './replies';

declare module 'smtp-server' {
  interface SMTPServerOptions {
    /** Added by patches/smtp-server+*.patch (applied by `npm ci`): ms before the greeting, default 100. */
    greetingDelay?: number;
  }
}

export type AuthOutcome = { readonly ok: true; readonly user: string } | { readonly ok: false; readonly reply: SmtpReply };

/** What the proxy does at each step of a client session; every method resolves, none throws on purpose. */
export interface SmtpHandlers {
  /** After implicit TLS or STARTTLS (the client certificate, if any, is on the socket). */
  secure(socket: tls.TLSSocket, session: SMTPServerSession): void;
  auth(credential: Credential, session: SMTPServerSession): Promise<AuthOutcome>;
  /** null = accepted (smtp-server answers 250). */
  mailFrom(address: SMTPServerAddress, session: SMTPServerSession): Promise<SmtpReply | null>;
  rcptTo(address: SMTPServerAddress, session: SMTPServerSession): Promise<SmtpReply | null>;
  /** Must consume or leave the stream; the reply goes out once the client's final dot arrived. */
  data(stream: SMTPServerDataStream, session: SMTPServerSession): Promise<SmtpReply>;
  close(session: SMTPServerSession): void;
}

export interface ListenerOptions {
  readonly listener: ProtocolListener;
  readonly hostname: string;
  readonly maxMessageBytes: number;
  /** Wait before the 220 greeting (config smtp.greetingDelayMs); absent = 0, greet at once. */
  readonly greetingDelayMs?: number;
  /** Certificate, key and optional client CA; required unless the listener is plaintext. */
  readonly tls?: { readonly cert: Buffer; readonly key: Buffer; readonly ca?: Buffer };
  /** Connection caps and deadlines (smtp.maxConnections, …PerAddress, preAuthTimeoutMs, lineTimeoutMs). */
  readonly limits: {
    readonly maxConnections: number;
    readonly maxConnectionsPerAddress: number;
    readonly preAuthTimeoutMs: number;
    readonly lineTimeoutMs: number;
  };
}

/** What the listener holds per accepted connection until it closes. */
interface Guard {
  readonly release: () => void;
  readonly lines: LineDeadline;
  preAuth: NodeJS.Timeout | null;
}

export interface RunningListener {
  readonly address: { host: string; port: number; tls: ProtocolListener['tls'] };
  /** Stop accepting; after drainMs tell the remaining clients 421 and close them. */
  close(drainMs: number): Promise<void>;
}

/** RFC 5321 §4.5.3.2.7: the server waits at least 5 minutes for the next command. */
const SOCKET_TIMEOUT_MS = 5 * 60_000;
/** Postfix smtpd_recipient_limit; smtp-server answers the excess with 452 (RFC 5321 §4.5.3.1.8). */
const MAX_RECIPIENTS = 1000;

/** The parts of smtp-server's (untyped) connection object this file uses. */
interface SmtpConnection {
  readonly _socket: net.Socket;
  readonly session: SMTPServerSession;
  send(code: number, text: string): void;
  close(): void;
}

function smtpError(reply: SmtpReply): Error & { responseCode: number } {
  return Object.assign(new Error(reply.text), { responseCode: reply.code });
}

/** smtp-server decodes PLAIN, LOGIN and XOAUTH2 itself; this turns its result into our Credential. */
function credentialOf(auth: SMTPServerAuthentication): Credential | null {
  if (auth.method === 'XOAUTH2') return auth.accessToken ? { kind: 'bearer', username: auth.username, token: auth.accessToken } : null;
  if (auth.method !== 'PLAIN' && auth.method !== 'LOGIN') return null;
  // RFC 4616 §2: an authzid different from the authcid asks to act as someone else: not offered.
  if (auth.authzid && auth.authcid && auth.authzid !== auth.authcid) return null;
  return { kind: 'password', username: auth.username ?? '', password: auth.password ?? '' };
}

/**
 * True when patches/smtp-server+<version>.patch is applied (patch-package runs it at `npm ci`);
 * without it smtp-server ignores greetingDelay and waits its hard-coded 100 ms.
 */
export function greetingDelayPatched(): boolean {
  try {
    return fs.readFileSync(require.resolve('smtp-server/lib/smtp-connection.js'), 'utf8').includes('options.greetingDelay');
  } catch {
    return false;
  }
}

export async function startListener(options: ListenerOptions, handlers: SmtpHandlers, log: Logger): Promise<RunningListener> {
  const { listener } = options;
  const greetingDelay = options.greetingDelayMs ?? 0;
  if (greetingDelay !== 100 && !greetingDelayPatched()) {
    log.warn('smtp-server is not patched (run npm ci): the greeting waits 100 ms, not smtp.greetingDelayMs', { event: 'smtp.start', greetingDelayMs: greetingDelay });
  }
  if (listener.tls !== 'none' && !options.tls) throw new Error(`smtp listener ${listener.host}:${listener.port} uses TLS but no tls.cert/tls.key is configured`);
  // Report unexpected handler failures as a temporary local error: the client keeps its message.
  const guard = <T>(work: () => Promise<T>, done: (err: Error | null, value?: T) => void): void => {
    work().then(
      (value) => done(null, value),
      (err: unknown) => {
        log.error('smtp handler failed', { event: 'smtp.error', error: err instanceof Error ? err.stack : String(err) });
        done(smtpError(Replies.localError));
      },
    );
  };
  // RFC 2920 §3.1: while a client has more commands pipelined behind MAIL or RCPT, that command's reply
  // may wait and leave together with the next ones. A pipelining client (MAIL, RCPT, DATA in one
  // segment) then gets 250, 250, 354 in one write instead of three: the proxy is CPU-bound and each
  // socket write is a syscall plus a segment the client must read. Each reply is still the upstream's
  // reply to that same command, and nothing is held once no command of ours is waiting behind it.
  const held = new WeakMap<SMTPServerSession, { readonly socket: () => net.Socket | null; entered: boolean }>();
  const connectionOf = (session: SMTPServerSession): SmtpConnection | undefined => {
    for (const c of server.connections) if (c.session === session) return c;
    return undefined;
  };
  const pipelined = (session: SMTPServerSession): { readonly socket: () => net.Socket | null; entered: boolean } => {
    let state = held.get(session);
    if (!state) {
      const connection = connectionOf(session);
      // The socket is read at each use: STARTTLS replaces it with the TLS socket.
      state = { socket: () => connection?._socket ?? null, entered: false };
      held.set(session, state);
    }
    return state;
  };
  const limits = new ConnectionLimits(options.limits);
  const guards = new Map<string, Guard>();
  /** Say `reply` and close: smtp-server's close() ends the socket and destroys it 5 s later at most. */
  const cut = (session: SMTPServerSession, reply: SmtpReply): void => {
    const connection = connectionOf(session);
    if (!connection) return;
    connection.send(reply.code, reply.text);
    connection.close();
  };
  const endPreAuth = (session: SMTPServerSession): void => {
    const guard = guards.get(session.id);
    if (guard?.preAuth) clearTimeout(guard.preAuth);
    if (guard) guard.preAuth = null;
  };
  /** Hands a MAIL/RCPT reply to smtp-server; holds it while a later MAIL/RCPT of ours is pending. */
  const reply = (session: SMTPServerSession, deliver: () => void): void => {
    const state = pipelined(session);
    const socket = state.socket();
    if (!socket || socket.destroyed) return deliver();
    state.entered = false;
    socket.cork();
    // smtp-server writes the reply, then parses the next pipelined command at once (synchronously).
    deliver();
    // A MAIL/RCPT handler entered meanwhile will answer later and flush then; anything else
    // (DATA's 354, an error smtp-server answers itself, no command at all) flushes now.
    if (!state.entered) while (socket.writableCorked > 0) socket.uncork();
  };
  const server = new SMTPServer({
    secure: listener.tls === 'implicit',
    ...(options.tls && {
      cert: options.tls.cert,
      key: options.tls.key,
      minVersion: 'TLSv1.2',
      // Ask for a device certificate when an MDM CA is configured; onSecure reads whether it chained.
      ...(options.tls.ca && { ca: options.tls.ca, requestCert: true, rejectUnauthorized: false }),
    }),
    name: options.hostname,
    // STARTTLS only on a STARTTLS listener; AUTH in plaintext only where configured (RFC 4954 §4).
    disabledCommands: listener.tls === 'starttls' ? [] : ['STARTTLS'],
    allowInsecureAuth: listener.tls === 'none',
    authMethods: ['PLAIN', 'LOGIN', 'XOAUTH2'],
    authOptional: false,
    authRequiredMessage: Replies.authRequiredText,
    size: options.maxMessageBytes,
    // Keep our own enhanced codes in the text (see replies.ts); smtp-server's would be prefixed twice.
    hideENHANCEDSTATUSCODES: true,
    disableReverseLookup: true,
    // smtp-server hard-codes 100 ms before the greeting; patches/smtp-server+*.patch makes it this option.
    greetingDelay,
    useProxy: listener.proxyProtocolFrom && listener.proxyProtocolFrom.length > 0 ? [...listener.proxyProtocolFrom] : false,
    socketTimeout: SOCKET_TIMEOUT_MS,
    // close() below decides when remaining sessions are ended; smtp-server's own timer stays out of it.
    closeTimeout: 24 * 3600_000,
    maxRecipients: MAX_RECIPIENTS,
    logger: false,
    onConnect(session, callback) {
      const slot = limits.acquire(addressKey(session.remoteAddress) ?? undefined);
      if (!slot.ok) return callback(smtpError(Replies.tooManyConnections(slot.reason === 'address-full')));
      const { preAuthTimeoutMs, lineTimeoutMs } = options.limits;
      const guard: Guard = {
        release: slot.release,
        lines: new LineDeadline(lineTimeoutMs, () => cut(session, Replies.lineTimeout)),
        // Absolute, like Dovecot's pre-login timeout: trickled commands do not extend it.
        preAuth: setTimeout(() => cut(session, Replies.preAuthTimeout), preAuthTimeoutMs),
      };
      guard.preAuth!.unref();
      guards.set(session.id, guard);
      const socket = connectionOf(session)?._socket;
      if (socket) guard.lines.watch(socket);
      // RFC 4954 §3: do not advertise AUTH where it is not permitted (before STARTTLS).
      if (listener.tls === 'starttls') session.disabledCommands = ['AUTH'];
      callback();
    },
    onSecure(socket: net.Socket | tls.TLSSocket, session, callback) {
      guards.get(session.id)?.lines.watch(socket);
      session.disabledCommands = undefined;
      handlers.secure(socket as tls.TLSSocket, session);
      callback();
    },
    onAuth(auth, session, callback) {
      const credential = credentialOf(auth);
      if (!credential) return callback(smtpError(Replies.badCredentials));
      guard(
        () => handlers.auth(credential, session),
        (err, outcome) => {
          if (err || !outcome) return callback(err ?? smtpError(Replies.localError));
          if (outcome.ok) {
            endPreAuth(session);
            return callback(null, { user: outcome.user });
          }
          callback(smtpError(outcome.reply));
        },
      );
    },
    onMailFrom(address, session, callback) {
      pipelined(session).entered = true;
      guard(
        () => handlers.mailFrom(address, session),
        (err, outcome) => reply(session, () => callback(err ?? (outcome ? smtpError(outcome) : null))),
      );
    },
    onRcptTo(address, session, callback) {
      pipelined(session).entered = true;
      guard(
        () => handlers.rcptTo(address, session),
        (err, outcome) => reply(session, () => callback(err ?? (outcome ? smtpError(outcome) : null))),
      );
    },
    onData(stream, session, callback) {
      guard(
        () => handlers.data(stream, session),
        (err, reply) => {
          if (err || !reply) return callback(err ?? smtpError(Replies.localError));
          if (reply.code >= 200 && reply.code < 300) return callback(null, reply.text);
          callback(smtpError(reply));
        },
      );
    },
    onClose(session) {
      const guard = guards.get(session.id);
      if (guard) {
        // Before the delete: endPreAuth finds the timer through `guards`. Left running, it would hold
        // the closed session (and its connection) until the deadline: 60 s of every pre-auth flood.
        endPreAuth(session);
        guards.delete(session.id);
        guard.lines.stop();
        guard.release();
      }
      handlers.close(session);
    },
  });
  // Socket errors (resets, TLS failures) arrive here; without a listener they would crash the process.
  server.on('error', (err) => log.debug('smtp connection error', { event: 'smtp.socket', error: err.message }));

  await new Promise<void>((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(listener.port, listener.host, () => {
      server.server.off('error', reject);
      resolve();
    });
  });
  const bound = server.server.address() as net.AddressInfo;
  return {
    address: { host: listener.host, port: bound.port, tls: listener.tls },
    close: (drainMs) =>
      new Promise<void>((resolve) => {
        // Sessions in the middle of a message get drainMs to finish; then 421 (RFC 5321 §3.8).
        const timer = setTimeout(() => {
          for (const connection of server.connections) {
            connection.send(Replies.shuttingDown.code, Replies.shuttingDown.text);
            connection.close();
          }
        }, drainMs);
        server.close(() => {
          clearTimeout(timer);
          resolve();
        });
      }),
  };
}
