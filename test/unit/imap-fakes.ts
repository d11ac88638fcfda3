// In-process fakes for the IMAP unit tests: a Gate with stubbed identity and decisions, a tiny
// scripted upstream IMAP server, and a raw line-oriented test client.
import net from 'node:net';
import type { ImapConfig, MailwardenConfig, ProtocolListener } from '../../src/core/config-types';
import type { Gate } from '../../src/app/gate';
import { silentLogger } from '../../src/core/log';
import { SessionRegistry } from '../../src/app/sessions';
import { createAdmit } from '../../src/admission/admit';
import type { CredentialContext, IdentityResult } from '../../src/identity/types';
import type { PolicyConfig } from '../../src/core/config-types';
import type { Action, Decision, DecisionRequest } from '../../src/policy/decision';

/** Reason codes of the faults the decider marks `fault: 'system'` (store, check and internal failures). */
const SYSTEM_FAULT_CODES = new Set(['STORE_UNAVAILABLE', 'CHECK_ERROR', 'CHECK_TIMEOUT', 'INTERNAL_ERROR']);

export function decision(action: Action, extra: Partial<Decision> = {}): Decision {
  const reasonCode = extra.reasonCode ?? (action === 'allow' ? 'OK' : 'BANNED_APP');
  return {
    action,
    reasonCode,
    fault: action === 'tempfail' && SYSTEM_FAULT_CODES.has(reasonCode) ? 'system' : 'policy',
    refId: 'REF123',
    warnings: [],
    checks: [],
    user: 'alice@example.com',
    deviceId: 'dev-1',
    identitySource: 'asserted',
    identityStrength: 'weak',
    protocol: 'imap',
    policyVersion: 'v1',
    at: new Date(0).toISOString(),
    ...extra,
  };
}

export interface FakeGate extends Gate {
  /** Every metrics call, as "onLogin:allow", "sessionDelta:1", ... */
  readonly counted: string[];
  readonly requests: DecisionRequest[];
  readonly contexts: CredentialContext[];
  decideWith: (req: DecisionRequest) => Decision | Promise<Decision>;
  resolveWith: (ctx: CredentialContext) => IdentityResult | Promise<IdentityResult>;
}

/** Passwords `<user>-pw` are good; `user+device` names carry the device id (asserted style). */
export function defaultResolve(ctx: CredentialContext): IdentityResult {
  const c = ctx.credential;
  if (c.kind === 'bearer') {
    if (c.token !== 'good-token') return bad();
    // A verified token: the proxy logs in upstream as the master user on the user's behalf.
    const user = c.username ?? 'alice@example.com';
    return { ok: true, user, deviceId: 'dev-oauth', source: 'oauth', strength: 'strong', upstream: { mode: 'master', username: user } };
  }
  const [user, device] = c.username.split('+') as [string, string | undefined];
  if (c.password !== `${user.split('@')[0]}-pw`) return bad();
  return ok(user, device ?? null, c);
}

function ok(user: string, deviceId: string | null, credential: CredentialContext['credential']): IdentityResult {
  return { ok: true, user, deviceId, source: 'asserted', strength: 'weak', upstream: { mode: 'passthrough', credential, username: user } };
}
function bad(): IdentityResult {
  return { ok: false, failure: 'bad-credentials', detail: 'wrong password' };
}

export function fakeGate(options: { oauth?: boolean } = {}): FakeGate {
  const requests: DecisionRequest[] = [];
  const contexts: CredentialContext[] = [];
  const config = {
    configFile: '/nonexistent/mailwarden.yaml',
    identity: { sources: options.oauth ? [{ type: 'oauth' }] : [{ type: 'asserted', separator: '+' }] },
  } as unknown as MailwardenConfig;
  const counted: string[] = [];
  const sessions = new SessionRegistry();
  const gate: FakeGate = {
    counted,
    // The real admission step over the stubbed identity and decisions below.
    admit: (request) =>
      createAdmit({ identity: gate.identity, decide: (r) => gate.decide(r), sessions, policyVersion: () => 'v1', log: gate.log })(request),
    metrics: {
      onLogin: (_p, result) => void counted.push(`onLogin:${result}`),
      sessionDelta: (_p, delta) => void counted.push(`sessionDelta:${delta}`),
      onUpstreamError: (_p, reason) => void counted.push(`onUpstreamError:${reason}`),
      onUpstreamLogin: (_p, result) => void counted.push(`onUpstreamLogin:${result}`),
    },
    log: silentLogger(),
    sessions,
    requests,
    contexts,
    decideWith: () => decision('allow'),
    resolveWith: defaultResolve,
    identity: {
      resolve: async (ctx) => {
        contexts.push(ctx);
        return gate.resolveWith(ctx);
      },
    },
    decide: async (req) => {
      requests.push(req);
      return gate.decideWith(req);
    },
    config: () => config,
    policy: () => ({}) as PolicyConfig,
  };
  return gate;
}

export function imapConfig(upstreamPort: number, overrides: Partial<ImapConfig> = {}, listener: Partial<ProtocolListener> = {}): ImapConfig {
  return {
    listeners: [{ host: '127.0.0.1', port: 0, tls: 'none', ...listener }],
    upstream: {
      host: '127.0.0.1',
      port: upstreamPort,
      tls: 'none',
      rejectUnauthorized: true,
      connectTimeoutMs: 1000,
      loginTimeoutMs: 5000,
      login: 'passthrough',
      masterUser: 'master',
      masterPassword: 'master-secret',
      circuitBreaker: { failures: 3, resetMs: 60000 },
    },
    blockStyle: 'refuse',
    maxLineBytes: 8192,
    maxLiteralBytes: 1024,
    maxBadCommands: 3,
    idleTimeoutMs: 31 * 60_000,
    maxConnections: 4000,
    maxConnectionsPerAddress: 100,
    preAuthTimeoutMs: 5000,
    drainMs: 500,
    ...overrides,
  };
}

/** A scripted upstream: Dovecot-like greeting and login, then per-command handlers a test can extend. */
export interface FakeUpstream {
  readonly port: number;
  /** Every line received after login, for assertions. */
  readonly received: string[];
  readonly sockets: Set<net.Socket>;
  /** Extra post-login handlers: return true when handled. */
  handlers: ((tag: string, command: string, line: string, socket: net.Socket) => boolean)[];
  close(): Promise<void>;
}

export async function startFakeUpstream(): Promise<FakeUpstream> {
  const received: string[] = [];
  const sockets = new Set<net.Socket>();
  const upstream: FakeUpstream = {
    port: 0,
    received,
    sockets,
    handlers: [],
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
  const server = net.createServer({ noDelay: true }, (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    socket.write('* OK [CAPABILITY IMAP4rev1 SASL-IR ID LITERAL+ AUTH=PLAIN] fake ready\r\n');
    let loggedIn = false;
    let buf = '';
    let literal = 0;
    socket.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      for (;;) {
        if (literal > 0) {
          const take = Math.min(literal, buf.length);
          received.push(`<literal ${take}>`);
          buf = buf.slice(take);
          literal -= take;
          if (literal > 0) return;
        }
        const lf = buf.indexOf('\n');
        if (lf < 0) return;
        const line = buf.slice(0, lf).replace(/\r$/, '');
        buf = buf.slice(lf + 1);
        const [tag = '', command = ''] = line.split(' ');
        const lit = /\{(\d+)(\+?)\}$/.exec(line);
        if (!loggedIn) {
          if (command === 'ID') socket.write(`* ID ("name" "fake")\r\n${tag} OK ID completed\r\n`);
          else if (command === 'AUTHENTICATE') {
            const payload = Buffer.from(line.split(' ')[3] ?? '', 'base64').toString('utf8').split('\0');
            if (payload[2]?.endsWith('-pw') || payload[1] === 'master') {
              loggedIn = true;
              socket.write(`${tag} OK [CAPABILITY IMAP4rev1 IDLE COMPRESS=DEFLATE UNAUTHENTICATE LITERAL+ MOVE] Logged in\r\n`);
            } else socket.write(`${tag} NO [AUTHENTICATIONFAILED] Authentication failed.\r\n`);
          } else socket.write(`${tag} BAD unexpected\r\n`);
          continue;
        }
        received.push(line);
        // A handler that answers a command refuses its synchronising literal: no "+", no literal follows.
        if (upstream.handlers.some((h) => h(tag, command.toUpperCase(), line, socket))) continue;
        if (lit) {
          literal = Number(lit[1]);
          if (lit[2] !== '+') socket.write('+ OK\r\n');
        }
        switch (command.toUpperCase()) {
          case 'CAPABILITY':
            socket.write(`* CAPABILITY IMAP4rev1 IDLE COMPRESS=DEFLATE UNAUTHENTICATE MOVE\r\n${tag} OK done\r\n`);
            break;
          case 'IDLE':
            socket.write('+ idling\r\n');
            break;
          case 'DONE':
            break;
          case 'LOGOUT':
            socket.end(`* BYE bye\r\n${tag} OK done\r\n`);
            break;
          default:
            if (!lit) socket.write(`${tag} OK done\r\n`);
        }
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  (upstream as { port: number }).port = (server.address() as net.AddressInfo).port;
  return upstream;
}

/** A raw IMAP test client: write bytes, wait for a line matching a pattern, see everything received. */
export class RawClient {
  readonly socket: net.Socket;
  data = '';
  closed = false;
  private waiters: (() => void)[] = [];

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (d: Buffer) => {
      this.data += d.toString('latin1');
      this.notify();
    });
    socket.on('close', () => {
      this.closed = true;
      this.notify();
    });
    socket.on('error', () => undefined);
  }

  /** `localAddress` (e.g. 127.0.0.2) makes the client a different address on loopback. */
  static connect(port: number, host = '127.0.0.1', localAddress?: string): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ port, host, localAddress }, () => resolve(new RawClient(s)));
      s.once('error', reject);
    });
  }

  private notify(): void {
    const w = this.waiters;
    this.waiters = [];
    w.forEach((f) => f());
  }

  write(text: string | Buffer): void {
    this.socket.write(text);
  }

  /** Resolves once the received text matches; rejects after timeoutMs with what arrived. */
  async waitFor(pattern: RegExp, timeoutMs = 3000): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = this.data.match(pattern);
      if (m) return m;
      if (this.closed) throw new Error(`connection closed before ${pattern}; got:\n${this.data}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${pattern}; got:\n${this.data}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  async waitClosed(timeoutMs = 3000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed) {
      if (Date.now() > deadline) throw new Error(`connection still open; got:\n${this.data}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 50);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  close(): void {
    this.socket.destroy();
  }
}
