// A small SMTP client for the upstream leg: one command at a time, each reply handed back as it
// came, message data written with backpressure. nodemailer's SMTPConnection.send() runs MAIL, RCPT
// and DATA as one batch, which cannot pass each RCPT reply to the client at its own RCPT, cannot
// re-EHLO after XCLIENT, and cannot stop a message without its final dot — so the relay uses this.
import net from 'node:net';
import tls from 'node:tls';
import { UpstreamError } from '../core/upstream-failure';
import { upstreamTlsOptions } from '../core/upstream-tls';

export interface UpstreamReply {
  readonly code: number;
  /** Text of every line without the code and separator, e.g. ["2.1.0 Ok"]. */
  readonly lines: readonly string[];
}

/** Joined text of a reply, for passing it on in a single line. */
export function replyText(reply: UpstreamReply): string {
  return reply.lines.join(' ');
}

export interface UpstreamClientOptions {
  readonly host: string;
  readonly port: number;
  readonly tls: 'none' | 'implicit' | 'starttls';
  readonly rejectUnauthorized: boolean;
  /** CA bundle and certificate name (config upstream.caFile, upstream.servername); see src/core/upstream-tls.ts. */
  readonly caFile?: string;
  readonly servername?: string;
  /** TCP connect + TLS handshake + greeting. */
  readonly connectTimeoutMs: number;
  /** Name sent with EHLO. */
  readonly ehloName: string;
  /** Per command; RFC 5321 §4.5.3.2 asks for minutes, a proxy answering a waiting client wants less. */
  readonly commandTimeoutMs?: number;
}

/** RFC 5321 §4.5.3.1.5 allows 512-octet lines; a reply longer than this in total is not SMTP. */
const MAX_REPLY_BYTES = 64 * 1024;
const DEFAULT_COMMAND_TIMEOUT_MS = 60_000;

export class UpstreamClient {
  /** EHLO keywords (upper case) → their parameters, from the latest EHLO. */
  extensions: ReadonlyMap<string, string> = new Map();
  private socket: net.Socket;
  private buffer = '';
  private pendingLines: string[] = [];
  private readonly replies: UpstreamReply[] = [];
  private waiter: { resolve: (r: UpstreamReply) => void; reject: (e: Error) => void } | null = null;
  private failure: UpstreamError | null = null;

  private constructor(
    socket: net.Socket,
    private readonly options: UpstreamClientOptions,
  ) {
    this.socket = socket;
    this.attach(socket);
  }

  /** Connects, reads the greeting, says EHLO, and upgrades with STARTTLS when configured. */
  static async connect(options: UpstreamClientOptions): Promise<UpstreamClient> {
    const socket = await openSocket(options);
    const client = new UpstreamClient(socket, options);
    try {
      const greeting = await client.readReply(options.connectTimeoutMs);
      // RFC 5321 §4.2: 220 is the only greeting that opens a session (554 = no service here).
      if (greeting.code !== 220) throw new UpstreamError('protocol', `upstream greeting ${greeting.code} ${replyText(greeting)}`);
      await client.ehlo(options.ehloName);
      if (options.tls === 'starttls') await client.startTls();
      return client;
    } catch (err) {
      client.close();
      throw err;
    }
  }

  get closed(): boolean {
    return this.failure !== null;
  }

  /** Sends one command line and waits for its reply (error messages never contain the command). */
  async command(line: string, timeoutMs = this.options.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS): Promise<UpstreamReply> {
    if (/[\r\n]/.test(line)) throw new UpstreamError('protocol', 'refusing to send a command containing CR or LF');
    // A reply nobody asked for (e.g. an idle-timeout 421) would be taken as this command's answer.
    if (this.replies.length > 0) this.fail(new UpstreamError('protocol', `unexpected upstream reply ${this.replies[0]?.code}`));
    this.writeRaw(Buffer.from(`${line}\r\n`, 'utf8'));
    return this.readReply(timeoutMs);
  }

  async ehlo(name: string): Promise<UpstreamReply> {
    const reply = await this.command(`EHLO ${name}`);
    if (reply.code !== 250) throw new UpstreamError('protocol', `upstream refused EHLO: ${reply.code} ${replyText(reply)}`);
    const extensions = new Map<string, string>();
    for (const line of reply.lines.slice(1)) {
      const [keyword, ...params] = line.trim().split(/\s+/);
      if (keyword) extensions.set(keyword.toUpperCase(), params.join(' '));
    }
    this.extensions = extensions;
    return reply;
  }

  /**
   * Writes message bytes. Resolves at once while the socket buffers, otherwise once it drains; rejects
   * when the connection is gone (the caller then stops without sending the final dot).
   */
  async write(...chunks: Buffer[]): Promise<void> {
    if (this.failure) throw this.failure;
    const socket = this.socket;
    // Several chunks go out as one writev.
    if (chunks.length > 1) socket.cork();
    let flowing = true;
    for (const chunk of chunks) flowing = socket.write(chunk);
    if (chunks.length > 1) socket.uncork();
    if (flowing) return;
    await new Promise<void>((resolve, reject) => {
      const onDrain = (): void => {
        cleanup();
        resolve();
      };
      const onClose = (): void => {
        cleanup();
        reject(this.failure ?? new UpstreamError('connect', 'upstream closed the connection'));
      };
      const cleanup = (): void => {
        socket.off('drain', onDrain);
        socket.off('close', onClose);
      };
      socket.on('drain', onDrain);
      socket.on('close', onClose);
    });
  }

  /** Waits for the next reply (after DATA's final dot, or a greeting). */
  readReply(timeoutMs: number): Promise<UpstreamReply> {
    const queued = this.replies.shift();
    if (queued) return Promise.resolve(queued);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<UpstreamReply>((resolve, reject) => {
      const timer = setTimeout(() => {
        // The conversation is out of step now: nothing sent later could be trusted, so end it.
        this.fail(new UpstreamError('timeout', `no reply from the upstream within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiter = {
        resolve: (r) => {
          clearTimeout(timer);
          resolve(r);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
    });
  }

  /** Sends QUIT and closes without waiting long for the answer. */
  async quit(): Promise<void> {
    if (this.failure) return;
    try {
      await this.command('QUIT', 2000);
    } catch {
      /* closing anyway */
    }
    this.close();
  }

  /** Ends the connection at once (an unfinished DATA is then discarded by the upstream). */
  close(): void {
    this.fail(new UpstreamError('connect', 'upstream connection closed'));
  }

  private writeRaw(bytes: Buffer): void {
    if (this.failure) throw this.failure;
    this.socket.write(bytes);
  }

  private async startTls(): Promise<void> {
    const reply = await this.command('STARTTLS');
    if (reply.code !== 220) throw new UpstreamError('tls', `upstream refused STARTTLS: ${reply.code} ${replyText(reply)}`);
    // Bytes after the 220 and before the handshake would be trusted as if they came over TLS
    // (STARTTLS response injection, "NO STARTTLS" 2021): refuse such an upstream.
    if (this.buffer.length > 0 || this.replies.length > 0) {
      throw new UpstreamError('tls', 'upstream sent data after its STARTTLS reply (response injection)');
    }
    const plain = this.socket;
    plain.removeAllListeners('data');
    plain.removeAllListeners('close');
    plain.removeAllListeners('error');
    const secured = await handshake(
      { socket: plain, ...upstreamTlsOptions(this.options) },
      this.options.connectTimeoutMs,
    );
    this.socket = secured;
    this.attach(secured);
    // RFC 3207 §4.2: forget everything learned before TLS and say EHLO again.
    await this.ehlo(this.options.ehloName);
  }

  private attach(socket: net.Socket): void {
    // One command, then wait for its reply: Nagle + delayed ACK would add ~40 ms to each step.
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => this.fail(new UpstreamError('connect', `upstream connection error: ${err.message}`, { cause: err })));
    socket.on('close', () => this.fail(new UpstreamError('connect', 'upstream closed the connection')));
  }

  private onData(chunk: Buffer): void {
    this.buffer += chunk.toString('latin1');
    if (this.buffer.length > MAX_REPLY_BYTES) {
      this.fail(new UpstreamError('protocol', 'upstream reply too long'));
      return;
    }
    let eol: number;
    while ((eol = this.buffer.indexOf('\n')) >= 0) {
      const line = this.buffer.slice(0, eol).replace(/\r$/, '');
      this.buffer = this.buffer.slice(eol + 1);
      const match = /^(\d{3})([ -]?)(.*)$/.exec(line);
      if (!match) {
        this.fail(new UpstreamError('protocol', `malformed upstream reply line: ${line.slice(0, 80)}`));
        return;
      }
      this.pendingLines.push(Buffer.from(match[3] ?? '', 'latin1').toString('utf8'));
      if (match[2] === '-') continue;
      const reply: UpstreamReply = { code: Number(match[1]), lines: this.pendingLines };
      this.pendingLines = [];
      const waiter = this.waiter;
      this.waiter = null;
      if (waiter) waiter.resolve(reply);
      else this.replies.push(reply);
    }
  }

  private fail(error: UpstreamError): void {
    if (this.failure) return;
    this.failure = error;
    const waiter = this.waiter;
    this.waiter = null;
    waiter?.reject(error);
    this.socket.destroy();
  }
}

function openSocket(options: UpstreamClientOptions): Promise<net.Socket> {
  if (options.tls === 'implicit') {
    return handshake(
      { ...upstreamTlsOptions(options), port: options.port },
      options.connectTimeoutMs,
    );
  }
  const where = `${options.host}:${options.port}`;
  return established(net.connect({ host: options.host, port: options.port }), 'connect', options.connectTimeoutMs, (err) =>
    err ? new UpstreamError('connect', `connect to ${where}: ${err.message}`, { cause: err }) : new UpstreamError('connect', `connect to ${where} timed out`),
  );
}

function handshake(options: tls.ConnectionOptions, timeoutMs: number): Promise<tls.TLSSocket> {
  const kind = options.socket ? 'tls' : 'connect';
  return established(tls.connect(options), 'secureConnect', timeoutMs, (err) =>
    err
      ? new UpstreamError(kind, `upstream TLS: ${err.message}`, { cause: err })
      : new UpstreamError('tls', `TLS handshake with the upstream timed out after ${timeoutMs} ms`),
  );
}

/** Resolves once `socket` emits `ready`; on an error or after timeoutMs destroys it and rejects. */
function established<S extends net.Socket>(socket: S, ready: 'connect' | 'secureConnect', timeoutMs: number, failure: (err?: Error) => UpstreamError): Promise<S> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.destroy();
      reject(failure());
    }, timeoutMs);
    const onError = (err: Error): void => {
      clearTimeout(timer);
      reject(failure(err));
    };
    socket.once('error', onError);
    socket.once(ready, () => {
      clearTimeout(timer);
      socket.off('error', onError);
      resolve(socket);
    });
  });
}
