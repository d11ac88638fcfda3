// Minimum progress of an SMTP client: a line, once begun, must end within a deadline (Postfix's
// smtpd_per_request_deadline does the same), so a client trickling a byte every few seconds cannot
// hold a connection: the idle timeout alone is reset by every byte.

/** Watches the bytes of one connection (the plain socket, then its TLS socket after STARTTLS). */
export class LineDeadline {
  private timer: NodeJS.Timeout | null = null;
  private readonly watched = new WeakSet<NodeJS.EventEmitter>();
  private stopped = false;

  constructor(
    private readonly timeoutMs: number,
    private readonly onExpired: () => void,
  ) {}

  watch(socket: NodeJS.EventEmitter): void {
    if (this.stopped || this.watched.has(socket)) return;
    this.watched.add(socket);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private onData(chunk: Buffer): void {
    if (this.stopped || chunk.length === 0) return;
    if (chunk[chunk.length - 1] === 0x0a) {
      // Ends at a line boundary: nothing is pending.
      if (this.timer) clearTimeout(this.timer);
      this.timer = null;
    } else if (this.timer === null) {
      this.timer = setTimeout(() => this.expire(), this.timeoutMs);
      this.timer.unref();
    } else if (chunk.includes(0x0a)) {
      // A line ended inside the chunk and the next one began: its deadline starts now.
      this.timer.refresh();
    }
  }

  private expire(): void {
    this.timer = null;
    if (!this.stopped) this.onExpired();
  }
}
