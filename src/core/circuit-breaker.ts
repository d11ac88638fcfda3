// Fail fast while an upstream is known to be down: after `limit` consecutive unavailable-class
// failures, refuse at once for `resetMs`, then let one trial through (half-open). Dovecot's login
// proxy does the same after 30 s. Shared by the IMAP and SMTP upstream legs.

export class CircuitBreaker {
  private failures = 0;
  private openUntil = 0;
  private trialInFlight = false;

  constructor(
    private readonly limit: number,
    private readonly resetMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** May a connection try the upstream now? */
  allow(): boolean {
    if (this.failures < this.limit) return true;
    if (this.now() < this.openUntil || this.trialInFlight) return false;
    this.trialInFlight = true;
    return true;
  }

  success(): void {
    this.failures = 0;
    this.trialInFlight = false;
  }

  failure(): void {
    this.failures++;
    this.trialInFlight = false;
    if (this.failures >= this.limit) this.openUntil = this.now() + this.resetMs;
  }

  get open(): boolean {
    return this.failures >= this.limit && this.now() < this.openUntil;
  }
}
