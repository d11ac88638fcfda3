// The HTTP client every connector uses: a per-request timeout, retries on throttling (429, and what
// the source calls throttling) and on 5xx/network errors — honouring Retry-After, else exponential
// backoff with full jitter — and a bearer token refreshed before it expires and once on a 401.
import { SourceError, type FetchObserver } from './contract';

export interface RetryPolicy {
  /** Tries per request, the first included. */
  readonly maxAttempts: number;
  /** Backoff without Retry-After: a random wait in [0, min(maxMs, baseMs·2^retry)] ("full jitter"). */
  readonly baseMs: number;
  readonly maxMs: number;
  /** A Retry-After longer than this fails the sync instead of sleeping through it. */
  readonly maxRetryAfterMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { maxAttempts: 6, baseMs: 500, maxMs: 30_000, maxRetryAfterMs: 300_000 };

/** Supplies the Authorization header value; `invalidate` after a 401 forces a fresh token. */
export interface TokenSource {
  authorization(signal: AbortSignal): Promise<string>;
  invalidate(): void;
  /** Set for a fixed token, which no refresh can renew: a 401 fails at once, with this sentence. */
  readonly refusedHint?: string;
}

export interface HttpClientOptions {
  readonly requestTimeoutMs: number;
  readonly retry?: RetryPolicy;
  readonly observer?: FetchObserver;
  /** Besides 429: a response the source uses for throttling (Google: 403 rateLimitExceeded). */
  readonly isThrottled?: (status: number, body: string) => boolean;
  /** For tests: sleeping and randomness. */
  readonly sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  readonly random?: () => number;
}

export interface RequestOptions {
  readonly method?: 'GET' | 'POST';
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: string;
  readonly auth?: TokenSource;
  /** The per-sync signal: aborts sleeping and the request in flight. */
  readonly signal: AbortSignal;
}

const RETRYABLE = new Set([500, 502, 503, 504]);

export class HttpClient {
  private readonly retry: RetryPolicy;
  private readonly sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  private readonly random: () => number;

  constructor(private readonly options: HttpClientOptions) {
    this.retry = options.retry ?? DEFAULT_RETRY;
    this.sleep = options.sleep ?? abortableSleep;
    this.random = options.random ?? Math.random;
  }

  /** GET/POST returning parsed JSON; throws SourceError when the source does not answer usefully. */
  async json(url: string, request: RequestOptions): Promise<unknown> {
    const text = await this.text(url, request);
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw new SourceError(`${describeUrl(url)}: the response is not JSON`);
    }
  }

  async text(url: string, request: RequestOptions): Promise<string> {
    let refreshedAfter401 = false;
    for (let attempt = 1; ; attempt++) {
      if (request.signal.aborted) throw new SourceError(`${describeUrl(url)}: sync timed out or was stopped`);
      const outcome = await this.once(url, request);
      if (outcome.kind === 'ok') return outcome.body;
      if (outcome.kind === 'unauthorized' && request.auth?.refusedHint) {
        throw new SourceError(`${describeUrl(url)}: ${outcome.detail} — ${request.auth.refusedHint}`);
      }
      if (outcome.kind === 'unauthorized' && request.auth && !refreshedAfter401) {
        // A token can expire early (revoked, clock skew): fetch a new one once, then give up.
        refreshedAfter401 = true;
        request.auth.invalidate();
        attempt--;
        continue;
      }
      if (outcome.kind === 'fatal' || outcome.kind === 'unauthorized' || attempt >= this.retry.maxAttempts) {
        throw new SourceError(`${describeUrl(url)}: ${outcome.detail}${attempt > 1 ? ` (after ${attempt} tries)` : ''}`);
      }
      let waitMs = this.backoffMs(attempt);
      if (outcome.kind === 'throttled') {
        if (outcome.retryAfterMs !== null) {
          if (outcome.retryAfterMs > this.retry.maxRetryAfterMs) {
            throw new SourceError(`${describeUrl(url)}: throttled with Retry-After ${Math.ceil(outcome.retryAfterMs / 1000)} s, longer than the sync may wait`);
          }
          waitMs = outcome.retryAfterMs;
        }
        this.options.observer?.onThrottleWait(waitMs / 1000);
      }
      await this.sleep(waitMs, request.signal).catch(() => {
        throw new SourceError(`${describeUrl(url)}: sync timed out or was stopped while waiting to retry`);
      });
    }
  }

  private backoffMs(attempt: number): number {
    const cap = Math.min(this.retry.maxMs, this.retry.baseMs * 2 ** (attempt - 1));
    return Math.floor(this.random() * cap);
  }

  private async once(url: string, request: RequestOptions): Promise<Outcome> {
    const observer = this.options.observer;
    const timeout = AbortSignal.timeout(this.options.requestTimeoutMs);
    const signal = AbortSignal.any([timeout, request.signal]);
    try {
      const headers: Record<string, string> = { accept: 'application/json', ...request.headers };
      if (request.auth) headers.authorization = await request.auth.authorization(request.signal);
      const response = await fetch(url, { method: request.method ?? 'GET', headers, body: request.body, signal, redirect: 'error' });
      const body = await response.text();
      if (response.ok) return { kind: 'ok', body };
      observer?.onApiError(response.status);
      const detail = `HTTP ${response.status}${errorSummary(body)}`;
      if (response.status === 429 || this.options.isThrottled?.(response.status, body)) {
        return { kind: 'throttled', retryAfterMs: parseRetryAfter(response.headers.get('retry-after')), detail };
      }
      if (response.status === 401) return { kind: 'unauthorized', detail };
      return RETRYABLE.has(response.status) ? { kind: 'retry', detail } : { kind: 'fatal', detail };
    } catch (err) {
      if (err instanceof SourceError) throw err;
      if (request.signal.aborted) throw new SourceError(`${describeUrl(url)}: sync timed out or was stopped`);
      const timedOut = timeout.aborted;
      observer?.onApiError(timedOut ? 'timeout' : 'network');
      const cause = (err as { cause?: { message?: string } }).cause?.message;
      return {
        kind: 'retry',
        detail: timedOut ? `no answer within ${this.options.requestTimeoutMs} ms` : `${(err as Error).message}${cause ? `: ${cause}` : ''}`,
      };
    }
  }
}

type Outcome =
  | { readonly kind: 'ok'; readonly body: string }
  | { readonly kind: 'throttled'; readonly retryAfterMs: number | null; readonly detail: string }
  | { readonly kind: 'unauthorized' | 'retry' | 'fatal'; readonly detail: string };

/** Retry-After is delay-seconds or an HTTP-date (RFC 9110 §10.2.3); null when absent or unreadable. */
export function parseRetryAfter(value: string | null, nowMs = Date.now()): number | null {
  if (value === null) return null;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const at = Date.parse(trimmed);
  return Number.isNaN(at) ? null : Math.max(0, at - nowMs);
}

/** The URL without its query (skip tokens and filters are long and may identify people). */
export function describeUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.origin}${u.pathname}`;
  } catch {
    return 'the source';
  }
}

/** A short error text from a JSON error body (Graph `error.message`, Google `error.message`, Fleet `message`). */
function errorSummary(body: string): string {
  try {
    const parsed = JSON.parse(body) as { error?: { message?: unknown } | string; message?: unknown; error_description?: unknown };
    const text =
      typeof parsed.error === 'object' && typeof parsed.error?.message === 'string'
        ? parsed.error.message
        : typeof parsed.error_description === 'string'
          ? parsed.error_description
          : typeof parsed.message === 'string'
            ? parsed.message
            : typeof parsed.error === 'string'
              ? parsed.error
              : '';
    return text ? `: ${text.slice(0, 200)}` : '';
  } catch {
    return '';
  }
}

function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(new Error('aborted'));
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(new Error('aborted'));
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
