// A capturing SMTP upstream built on smtp-server for tests that must see exact bytes: records each
// envelope and message, can refuse a recipient, fail or drop the connection mid-DATA for the next N
// messages, require AUTH, and accept XCLIENT from loopback (as Postfix does for a trusted proxy).
import type net from 'node:net';
import { SMTPServer, type SMTPServerSession } from 'smtp-server';
import { freePort } from './ports';

export interface SinkMessage {
  readonly sessionId: string;
  readonly mailFrom: string;
  /** Parameters of MAIL FROM as the sink received them (upper-case keys). */
  readonly mailArgs: Readonly<Record<string, string | true>>;
  readonly rcptTo: readonly string[];
  /** The message exactly as received (dot-unstuffed, final CRLF kept, terminator removed). */
  readonly raw: Buffer;
  /** Who logged in: the SASL user, or the XCLIENT LOGIN. */
  readonly login?: { readonly method: string; readonly user: string; readonly authzid?: string };
  readonly xclient: Readonly<Record<string, string>>;
}

export type SinkFault =
  /** Drop the connection after the first chunk of message data (upstream dies mid-DATA). */
  | { readonly kind: 'close-mid-data' }
  /** Read the whole message, then drop the connection without a reply (smtp-sink -q .). */
  | { readonly kind: 'close-after-data' }
  /** Read the whole message, then refuse it with this reply. */
  | { readonly kind: 'reply'; readonly code: number; readonly text: string };

export interface SmtpSinkOptions {
  /** Require AUTH with these user → password pairs (PLAIN/LOGIN) and user → token pairs (XOAUTH2). */
  readonly auth?: { readonly users?: Readonly<Record<string, string>>; readonly tokens?: Readonly<Record<string, string>> };
  /** Offer XCLIENT to loopback clients (Postfix smtpd_authorized_xclient_hosts). */
  readonly xclient?: boolean;
  readonly size?: number;
}

export interface SmtpSink {
  readonly host: string;
  readonly port: number;
  readonly messages: SinkMessage[];
  /** MAIL FROM commands accepted (transactions started), delivered or not. */
  readonly transactions: number;
  /** DATA streams that ended without the final dot (connection dropped). */
  readonly abortedData: number;
  /** SMTP sessions opened so far. */
  readonly connections: number;
  /** Refuse RCPT TO for this address with the given reply (default 550 5.1.1). */
  rejectRecipient(address: string, code?: number, text?: string): void;
  /** Hold the greeting of later connections for `ms` (a slow upstream: its login takes that long (under the rig's 1 s connect timeout)). */
  delayGreeting(ms: number): void;
  /** Apply `fault` to the next `count` messages. */
  failNext(count: number, fault: SinkFault): void;
  /** Resolves once at least `count` messages were accepted. */
  waitForMessages(count: number, timeoutMs?: number): Promise<SinkMessage[]>;
  stop(): Promise<void>;
}

function error(code: number, text: string): Error & { responseCode: number } {
  return Object.assign(new Error(text), { responseCode: code });
}

export async function startSmtpSink(options: SmtpSinkOptions = {}): Promise<SmtpSink> {
  const port = await freePort();
  const messages: SinkMessage[] = [];
  const rejected = new Map<string, { code: number; text: string }>();
  const faults: SinkFault[] = [];
  const logins = new Map<string, { method: string; user: string; authzid?: string }>();
  const waiters: (() => void)[] = [];
  let transactions = 0;
  let abortedData = 0;
  let connections = 0;
  let greetingDelayMs = 0;

  const socketOf = (session: SMTPServerSession): net.Socket | undefined =>
    [...server.connections].find((c) => c.session.id === session.id)?._socket;

  const server: SMTPServer = new SMTPServer({
    authOptional: !options.auth,
    allowInsecureAuth: true,
    authMethods: ['PLAIN', 'LOGIN', 'XOAUTH2'],
    disabledCommands: ['STARTTLS', ...(options.auth ? [] : ['AUTH'])],
    useXClient: options.xclient ? ['127.0.0.1', '::1', '::ffff:127.0.0.1'] : false,
    hideENHANCEDSTATUSCODES: true,
    disableReverseLookup: true,
    size: options.size,
    logger: false,
    onConnect(_session, callback) {
      connections += 1;
      if (greetingDelayMs > 0) setTimeout(callback, greetingDelayMs);
      else callback();
    },
    onAuth(auth, session, callback) {
      const users = options.auth?.users ?? {};
      const tokens = options.auth?.tokens ?? {};
      const user = auth.username ?? '';
      const ok =
        auth.method === 'XCLIENT' ||
        (auth.method === 'XOAUTH2' ? tokens[user] === auth.accessToken : users[user] !== undefined && users[user] === auth.password);
      if (!ok) return callback(error(535, '5.7.8 Error: authentication failed'));
      logins.set(session.id, { method: auth.method, user, ...(auth.authzid && auth.authzid !== user ? { authzid: auth.authzid } : {}) });
      callback(null, { user });
    },
    onMailFrom(_address, _session, callback) {
      transactions += 1;
      callback();
    },
    onRcptTo(address, _session, callback) {
      const refusal = rejected.get(address.address.toLowerCase());
      callback(refusal ? error(refusal.code, refusal.text) : null);
    },
    onData(stream, session, callback) {
      const fault = faults.shift();
      const chunks: Buffer[] = [];
      let ended = false;
      stream.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        if (fault?.kind === 'close-mid-data') socketOf(session)?.destroy();
      });
      stream.on('close', () => {
        if (!ended) abortedData += 1;
      });
      stream.on('error', () => undefined);
      stream.on('end', () => {
        ended = true;
        if (fault?.kind === 'close-after-data') {
          socketOf(session)?.destroy();
          return;
        }
        if (fault?.kind === 'reply') return callback(error(fault.code, fault.text));
        const xclient: Record<string, string> = {};
        for (const [key, value] of session.xClient) if (value !== false) xclient[key] = String(value);
        const login = logins.get(session.id) ?? (session.xClient.get('LOGIN') ? { method: 'XCLIENT', user: String(session.xClient.get('LOGIN')) } : undefined);
        messages.push({
          sessionId: session.id,
          mailFrom: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          mailArgs: (session.envelope.mailFrom && session.envelope.mailFrom.args) || {},
          rcptTo: session.envelope.rcptTo.map((r) => r.address),
          raw: Buffer.concat(chunks),
          ...(login ? { login } : {}),
          xclient,
        });
        for (const wake of waiters.splice(0)) wake();
        callback(null, `2.0.0 Ok: queued as SINK${messages.length}`);
      });
    },
  });
  server.on('error', () => undefined);
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));

  return {
    host: '127.0.0.1',
    port,
    messages,
    get transactions() {
      return transactions;
    },
    get abortedData() {
      return abortedData;
    },
    get connections() {
      return connections;
    },
    rejectRecipient(address, code = 550, text = `5.1.1 <${address}>: Recipient address rejected: User unknown`) {
      rejected.set(address.toLowerCase(), { code, text });
    },
    delayGreeting(ms) {
      greetingDelayMs = ms;
    },
    failNext(count, fault) {
      for (let i = 0; i < count; i++) faults.push(fault);
    },
    async waitForMessages(count, timeoutMs = 10000) {
      const deadline = Date.now() + timeoutMs;
      while (messages.length < count) {
        if (Date.now() > deadline) throw new Error(`sink got ${messages.length} messages, expected ${count}`);
        await new Promise<void>((resolve) => {
          waiters.push(resolve);
          setTimeout(resolve, 100);
        });
      }
      return messages;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        for (const c of server.connections) c._socket.destroy();
        server.close(() => resolve());
      }),
  };
}
