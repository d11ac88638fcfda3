// Why an upstream (Dovecot, Postfix) connection or login failed, in the few words both legs report:
// the `reason` label of mailwarden_upstream_errors_total and the result of the upstream-login
// latency histogram (docs/metrics.md), and what each leg tells about its attempts.

/**
 * connect: refused, unreachable, reset or closed; timeout: no connect, greeting or answer in time;
 * tls: handshake or certificate, STARTTLS refused; protocol: an answer the proxy cannot use (bad
 * greeting, BYE, XCLIENT missing or refused); login-refused: the upstream refused the proxy's own
 * credential (master user, XCLIENT LOGIN=); breaker-open: not tried, the address failed recently.
 */
export type UpstreamErrorReason = 'connect' | 'timeout' | 'tls' | 'protocol' | 'login-refused' | 'breaker-open';

/**
 * An upstream connection or login that failed, on either leg: why (the reason above) and whether it
 * was the client's own credential the upstream refused (passthrough: a wrong password, not an outage).
 */
export class UpstreamError extends Error {
  readonly badCredentials: boolean;

  constructor(
    readonly reason: UpstreamErrorReason,
    message: string,
    options?: { readonly cause?: unknown; readonly badCredentials?: boolean },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'UpstreamError';
    this.badCredentials = options?.badCredentials ?? false;
  }
}

/** ok; bad-credentials: the client's own password, replayed (passthrough), upstream healthy; error. */
export type UpstreamLoginResult = 'ok' | 'bad-credentials' | 'error';

/** Told of every upstream login attempt (the runtime passes its Prometheus metrics). */
export interface UpstreamObserver {
  /** One connect + login attempt, from the start of the connect to the upstream's answer. */
  onUpstreamLogin(protocol: 'imap' | 'smtp', result: UpstreamLoginResult, seconds: number): void;
  onUpstreamError(protocol: 'imap' | 'smtp', reason: UpstreamErrorReason): void;
}

/** Socket-level codes: the TCP connection itself failed, whatever layer was on top of it. */
const CONNECT_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'EADDRNOTAVAIL', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN']);

/** An error while opening a socket: `connect` for TCP failures, else `tls` when TLS was being set up. */
export function socketFailureReason(err: unknown, tlsLayer: boolean): UpstreamErrorReason {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && CONNECT_CODES.has(code)) return 'connect';
  return tlsLayer ? 'tls' : 'connect';
}

/** Reports one finished attempt to the observer, timed from `startedMs` (performance.now()). */
export function reportUpstreamAttempt(
  observer: UpstreamObserver | undefined,
  protocol: 'imap' | 'smtp',
  startedMs: number,
  outcome: { readonly ok: true } | { readonly ok: false; readonly badCredentials: boolean; readonly reason: UpstreamErrorReason },
): void {
  if (!observer) return;
  // A breaker refusal made no attempt: an error, but no time to measure.
  if (!outcome.ok && outcome.reason === 'breaker-open') return observer.onUpstreamError(protocol, outcome.reason);
  const seconds = (performance.now() - startedMs) / 1000;
  if (outcome.ok) return observer.onUpstreamLogin(protocol, 'ok', seconds);
  if (outcome.badCredentials) return observer.onUpstreamLogin(protocol, 'bad-credentials', seconds);
  observer.onUpstreamLogin(protocol, 'error', seconds);
  observer.onUpstreamError(protocol, outcome.reason);
}
