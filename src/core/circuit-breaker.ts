// Fail fast while an upstream address is known to be down: after `limit` consecutive unavailable-class
// failures, refuse at once for `resetMs`, then let one trial through (half-open). Dovecot's login
// proxy does the same after 30 s. One breaker per upstream address (CircuitBreakers), shared by the
// IMAP and SMTP upstream legs, so one dead backend does not refuse logins meant for a live one.

export interface BreakerSettings {
  readonly failures: number;
  readonly resetMs: number;
}

export class CircuitBreaker {
  private failures = 0;
  private openUntil = 0;
  private trialInFlight = false;

  constructor(
    private readonly limit: number,
    private readonly resetMs: number,
    private readonly now: () => number = Date.now,
    /** Called when the breaker trips (true) and when it closes again (false); must not throw. */
    private readonly onChange: (tripped: boolean) => void = () => {},
  ) {}

  /** May a connection try the upstream now? */
  allow(): boolean {
    if (this.failures < this.limit) return true;
    if (this.now() < this.openUntil || this.trialInFlight) return false;
    this.trialInFlight = true;
    return true;
  }

  success(): void {
    const wasTripped = this.tripped;
    this.failures = 0;
    this.trialInFlight = false;
    if (wasTripped) this.onChange(false);
  }

  failure(): void {
    const wasTripped = this.tripped;
    this.failures++;
    this.trialInFlight = false;
    if (this.failures >= this.limit) this.openUntil = this.now() + this.resetMs;
    if (!wasTripped && this.tripped) this.onChange(true);
  }

  get open(): boolean {
    return this.failures >= this.limit && this.now() < this.openUntil;
  }

  /** Reached the failure limit and not yet closed by a success (open or half-open). */
  get tripped(): boolean {
    return this.failures >= this.limit;
  }
}

export interface BreakerChange {
  /** Which leg: 'imap' or 'smtp'. */
  readonly service: string;
  /** The upstream address the breaker guards, `host:port`. */
  readonly upstream: string;
  readonly tripped: boolean;
}

/** The breakers of one process, one per service and upstream address, created on first use. */
export class CircuitBreakers {
  private readonly breakers = new Map<string, CircuitBreaker>();
  private readonly listeners = new Set<(change: BreakerChange) => void>();

  constructor(private readonly now: () => number = Date.now) {}

  /**
   * The breaker for `upstream` (`host:port`) of `service`. Settings apply when it is created; a
   * reload that changes them gets a fresh breaker (the key includes them).
   */
  get(service: string, upstream: string, settings: BreakerSettings): CircuitBreaker {
    const key = `${service} ${upstream} ${settings.failures}/${settings.resetMs}`;
    let breaker = this.breakers.get(key);
    if (!breaker) {
      breaker = new CircuitBreaker(settings.failures, settings.resetMs, this.now, (tripped) => this.emit({ service, upstream, tripped }));
      this.breakers.set(key, breaker);
    }
    return breaker;
  }

  /** Every address used so far, tripped or not; after a reload that changed settings, the newest breaker. */
  states(): BreakerChange[] {
    const byAddress = new Map<string, BreakerChange>();
    for (const [key, breaker] of this.breakers) {
      const [service, upstream] = key.split(' ');
      byAddress.set(`${service} ${upstream}`, { service: service!, upstream: upstream!, tripped: breaker.tripped });
    }
    return [...byAddress.values()];
  }

  /** Told of every trip and close (metrics, alerts). Returns the removal function. */
  onChange(listener: (change: BreakerChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(change: BreakerChange): void {
    for (const listener of this.listeners) {
      try {
        listener(change);
      } catch {
        // A failing metrics or alert hook must not change what the breaker does.
      }
    }
  }
}
