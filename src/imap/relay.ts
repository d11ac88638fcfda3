// The authenticated relay: bytes both ways with little overhead, through the literal-aware framers
// of framing.ts, with backpressure, and `* BYE` injected only at a response boundary (also in IDLE).
import type net from 'node:net';
import { CommandFramer, ResponseFramer } from './framing';
import type { UpstreamReads } from './read-buffer';

/** Unsent bytes one direction may hold before its source is paused (a slow reader must not grow memory without bound). */
const MAX_BUFFERED = 256 * 1024;
/** How long a revocation waits for a response boundary before both sockets are cut hard. */
const CUT_WAIT_MS = 2000;

export interface RelayOptions {
  readonly client: net.Socket;
  readonly upstream: net.Socket;
  /** Client bytes pipelined after its LOGIN/AUTHENTICATE line (forwarded after the upstream login). */
  readonly clientBytes: Buffer;
  readonly upstreamBytes: Buffer;
  /** Set when the upstream socket reads through `onread` (plain TCP upstreams). */
  readonly upstreamReads?: UpstreamReads;
  readonly onClose: () => void;
}

/** Both legs of one proxied session. */
export class Relay {
  private readonly responses: ResponseFramer;
  private readonly commands: CommandFramer;
  private closed = false;
  private cutTimer: NodeJS.Timeout | null = null;
  private waitingForContinuation = false;
  // Only what the session's life needs: an idle session is held for hours, so the options (and the
  // pipelined bytes they carry) are not kept.
  private readonly client: net.Socket;
  private readonly upstream: net.Socket;
  private readonly onClose: () => void;

  constructor(options: RelayOptions) {
    const { client, upstream } = options;
    this.client = client;
    this.upstream = upstream;
    this.onClose = options.onClose;
    this.responses = new ResponseFramer(
      (data) => this.write(client, upstream, data),
      (kind, tag) => {
        if (!this.commands.waiting) return;
        if (kind === 'continuation') this.commands.resolveContinuation(true);
        else if (tag === this.commands.tag) this.commands.resolveContinuation(false);
      },
      () => this.close(),
    );
    this.commands = new CommandFramer(
      (data) => this.write(upstream, client, data),
      (reply, close) => this.responses.inject(reply, close),
      (waiting) => {
        this.waitingForContinuation = waiting;
        if (waiting) client.pause();
        else client.resume();
      },
    );
    client.on('data', (chunk: Buffer) => this.commands.push(chunk));
    const reads = options.upstreamReads;
    if (reads) {
      reads.take((chunk) => {
        this.responses.push(chunk);
        // An unfinished write still points into the read buffer: the next read needs a new one.
        if (client.writableLength > 0) reads.retain();
      });
    } else upstream.on('data', (chunk: Buffer) => this.responses.push(chunk));
    client.on('drain', () => upstream.resume());
    upstream.on('drain', () => {
      if (!this.waitingForContinuation) client.resume();
    });
    const close = (): void => this.close();
    for (const s of [client, upstream]) {
      s.setKeepAlive(true, 60000);
      s.on('error', close);
      s.on('close', close);
      s.on('end', close);
    }
    if (options.upstreamBytes.length > 0) this.responses.push(options.upstreamBytes);
    if (options.clientBytes.length > 0) this.commands.push(options.clientBytes);
    client.resume();
    upstream.resume();
  }

  /**
   * Backpressure: a destination holding more than MAX_BUFFERED unsent bytes pauses the source until
   * it drains. Node's 16 KiB socket high-water mark is below one 64 KiB read, so pausing on every
   * `false` from write() would stall a bulk FETCH after each read.
   */
  private write(dest: net.Socket, source: net.Socket, data: Buffer): void {
    if (this.closed) return;
    dest.write(data);
    if (dest.writableLength > MAX_BUFFERED) source.pause();
  }

  /**
   * End the session with `text` (already CRLF-terminated lines) at the next response boundary.
   * If a long literal is streaming, both legs are cut hard after a bounded wait.
   */
  end(text: string): void {
    if (this.closed || this.cutTimer) return;
    this.client.pause();
    this.responses.inject(Buffer.from(text, 'utf8'), true);
    if (!this.closed) {
      this.cutTimer = setTimeout(() => this.close(true), CUT_WAIT_MS);
      this.cutTimer.unref();
    }
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private close(hard = false): void {
    if (this.closed) return;
    this.closed = true;
    if (this.cutTimer) clearTimeout(this.cutTimer);
    this.responses.stop();
    this.commands.stop();
    const { client, upstream } = this;
    upstream.destroy();
    if (hard) client.destroy();
    else {
      client.end();
      // A client that never reads its last bytes must not hold the socket open.
      setTimeout(() => client.destroy(), 1000).unref();
    }
    this.onClose();
  }
}
