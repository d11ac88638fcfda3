// Audit events that could not be written because the store is unreachable wait here, in order and
// bounded, and are written once it answers again; what does not fit is counted, never lost silently.
import { StoreUnavailableError, type AuditLog } from './device-store';

/** Events sent together while flushing. */
const FLUSH_CHUNK = 100;

export interface AuditBufferOptions {
  /** Events kept while the store is unreachable; 0 = none (each is dropped and counted). */
  readonly maxEvents: number;
  /** One event did not fit in the buffer (metrics; the decision is still in the log file). */
  readonly onDrop?: (event: Record<string, unknown>) => void;
}

export interface AuditBacklog {
  /** Events waiting to be written now. */
  readonly buffered: number;
  /** Events dropped because the buffer was full, since start. */
  readonly dropped: number;
}

/** Wraps the store's appendAudit: an unavailable store buffers the event instead of losing it. */
export class AuditBuffer {
  private readonly waiting: Record<string, unknown>[] = [];
  private dropped = 0;
  private flushing: Promise<void> | null = null;

  constructor(
    private readonly inner: Pick<AuditLog, 'appendAudit'>,
    private readonly options: AuditBufferOptions,
  ) {}

  /**
   * Written at once while nothing waits; during a flush, after it (so the stream keeps the order);
   * while events wait for the store, behind them. Resolves with the entry id, or '' when the event
   * was buffered or dropped. Rejects only for errors other than the store being unavailable.
   */
  async append(event: Record<string, unknown>): Promise<string> {
    if (this.flushing) await this.flushing;
    if (this.waiting.length === 0) {
      try {
        return await this.inner.appendAudit(event);
      } catch (err) {
        if (!(err instanceof StoreUnavailableError)) throw err;
      }
    }
    this.keep(event);
    return '';
  }

  /**
   * Write what waits, oldest first; stops where the store is unreachable again (the rest waits for
   * the next flush). An event the store refuses for another reason is dropped and counted, so one
   * bad event cannot hold up the audit for good.
   */
  flush(): Promise<void> {
    this.flushing ??= (async () => {
      try {
        while (this.waiting.length > 0) {
          // Marked: a write that timed out against a frozen Redis may still have landed, so a
          // replayed event can be there twice (same refId and time); readers can tell. Sent in
          // chunks, in order, on the store's one connection.
          const chunk = this.waiting.slice(0, FLUSH_CHUNK);
          const results = await Promise.allSettled(chunk.map((event) => this.inner.appendAudit({ ...event, replayed: true })));
          const unavailable = results.findIndex((r) => r.status === 'rejected' && r.reason instanceof StoreUnavailableError);
          const done = unavailable === -1 ? chunk.length : unavailable;
          results.slice(0, done).forEach((r, i) => r.status === 'rejected' && this.discard(chunk[i]!));
          this.waiting.splice(0, done);
          if (unavailable !== -1) return;
        }
      } finally {
        this.flushing = null;
      }
    })();
    return this.flushing;
  }

  backlog(): AuditBacklog {
    return { buffered: this.waiting.length, dropped: this.dropped };
  }

  private keep(event: Record<string, unknown>): void {
    if (this.waiting.length >= this.options.maxEvents) this.discard(event);
    else this.waiting.push(event);
  }

  private discard(event: Record<string, unknown>): void {
    this.dropped += 1;
    this.options.onDrop?.(event);
  }
}
