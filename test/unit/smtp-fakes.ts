// Helpers for the SMTP unit tests: a config for a proxy in front of the capturing sink, a raw
// line-oriented SMTP test client (for byte sequences no real client would send), a flag store, and a
// hand-scripted upstream.
import net from 'node:net';
import tls from 'node:tls';
import type { SmtpConfig } from '../../src/core/config-types';

export function smtpConfig(upstreamPort: number, overrides: Partial<SmtpConfig> = {}, upstream: Partial<SmtpConfig['upstream']> = {}): SmtpConfig {
  return {
    listeners: [{ host: '127.0.0.1', port: 0, tls: 'none' }],
    upstream: {
      host: '127.0.0.1',
      port: upstreamPort,
      tls: 'none',
      rejectUnauthorized: true,
      connectTimeoutMs: 1000,
      loginTimeoutMs: 5000,
      login: 'passthrough',
      circuitBreaker: { failures: 3, resetMs: 60000 },
      xclient: false,
      ...upstream,
    },
    maxMessageBytes: 1024 * 1024,
    hostname: 'mailwarden.test',
    maxConnections: 1000,
    maxConnectionsPerAddress: 50,
    preAuthTimeoutMs: 60_000,
    lineTimeoutMs: 60_000,
    greetingDelayMs: 0,
    ...overrides,
  };
}

/** A raw SMTP client: write exact bytes, read whole replies. */
export class RawClient {
  private buffer = '';
  private readonly waiting: ((line: string) => void)[] = [];
  private readonly replies: string[] = [];

  private constructor(public socket: net.Socket) {
    this.attach(socket);
  }

  private attach(socket: net.Socket): void {
    socket.on('data', (chunk: Buffer) => {
      this.buffer += chunk.toString('latin1');
      let eol: number;
      while ((eol = this.buffer.indexOf('\r\n')) >= 0) {
        const line = this.buffer.slice(0, eol);
        this.buffer = this.buffer.slice(eol + 2);
        this.pending.push(line);
        if (/^\d{3}( |$)/.test(line)) {
          const reply = this.pending.join('\n');
          this.pending = [];
          const waiter = this.waiting.shift();
          if (waiter) waiter(reply);
          else this.replies.push(reply);
        }
      }
    });
  }

  /** TLS handshake over the current connection (after a 220 to STARTTLS). */
  async startTls(): Promise<void> {
    this.socket.removeAllListeners('data');
    const secured = tls.connect({ socket: this.socket, rejectUnauthorized: false });
    await new Promise<void>((resolve, reject) => {
      secured.once('secureConnect', resolve);
      secured.once('error', reject);
    });
    this.socket = secured;
    this.attach(secured);
  }

  /** Plaintext or implicit TLS. */
  static async connect(port: number, options: { tls?: boolean } = {}): Promise<RawClient> {
    const socket = options.tls ? tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false }) : net.connect(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => {
      socket.once(options.tls ? 'secureConnect' : 'connect', resolve);
      socket.once('error', reject);
    });
    const client = new RawClient(socket);
    await client.reply(); // greeting
    return client;
  }

  private pending: string[] = [];

  /** The next complete reply (multi-line replies joined with \n). */
  reply(timeoutMs = 5000): Promise<string> {
    const queued = this.replies.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no reply')), timeoutMs);
      this.waiting.push((r) => {
        clearTimeout(timer);
        resolve(r);
      });
    });
  }

  write(bytes: string | Buffer): void {
    this.socket.write(typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes);
  }

  async command(line: string): Promise<string> {
    this.write(`${line}\r\n`);
    return this.reply();
  }

  /** MAIL FROM, RCPT TO and DATA; throws unless they get 250, 250 and 354. */
  async startData(from = 'alice@example.com', to = 'bob@example.com'): Promise<void> {
    for (const [line, code] of [[`MAIL FROM:<${from}>`, '250'], [`RCPT TO:<${to}>`, '250'], ['DATA', '354']] as const) {
      const reply = await this.command(line);
      if (!reply.startsWith(code)) throw new Error(`${line}: expected ${code}, got ${reply}`);
    }
  }

  /** EHLO + AUTH PLAIN; returns the AUTH reply. */
  async login(user: string, password: string): Promise<string> {
    await this.command('EHLO client.test');
    return this.command(`AUTH PLAIN ${Buffer.from(`\0${user}\0${password}`).toString('base64')}`);
  }

  close(): void {
    this.socket.destroy();
  }
}

/** The two store methods the notifier uses, in memory. */
export function flagStore(): { flags: Map<string, string>; getFlag(name: string): Promise<string | null>; setFlag(name: string, value: string | null): Promise<void> } {
  const flags = new Map<string, string>();
  return {
    flags,
    getFlag: async (name) => flags.get(name) ?? null,
    setFlag: async (name, value) => {
      if (value === null) flags.delete(name);
      else flags.set(name, value);
    },
  };
}

/** A hand-scripted upstream: `script` answers each line the client sends. */
export async function scripted(greeting: string | null, script: (line: string, socket: net.Socket) => void = () => undefined): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    if (greeting !== null) socket.write(greeting);
    let buffer = '';
    socket.on('data', (d: Buffer) => {
      buffer += d.toString('latin1');
      let eol: number;
      while ((eol = buffer.indexOf('\r\n')) >= 0) {
        const line = buffer.slice(0, eol);
        buffer = buffer.slice(eol + 2);
        script(line, socket);
      }
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
