// Admin alerts: a JSON webhook when the brake trips, a reload is refused, the store is unreachable,
// an upstream breaker opens, the blast-radius guard refuses a policy or a change loosens it, a connector's
// sync is held or its source goes stale. Never throws; rate-limited
// per kind so an outage that fails every login does not flood the ops channel.
import type { AlertsConfig } from '../core/config-types';
import type { Logger } from '../core/log';

export type AlertKind =
  | 'brake-tripped'
  | 'reload-refused'
  | 'store-unreachable'
  | 'blast-radius-refused'
  /** A policy change removed or weakened enforcing checks (details name them). */
  | 'policy-loosened'
  /** An upstream address failed `circuitBreaker.failures` connects in a row: logins to it fail fast. */
  | 'upstream-breaker-open'
  /** A connector's sync tripped a guard: nothing written; details name the reasons and the apply command. */
  | 'connector-sync-held'
  /** A connector had no complete sync within its staleAfterSeconds (one fault for its whole fleet). */
  | 'connector-stale';

export interface Alerter {
  /**
   * Log the alert and, unless one of the same kind went out less than `minIntervalMs` ago, POST it to
   * the webhook. Resolves when the POST finished or failed; never rejects.
   */
  alert(kind: AlertKind, details: Readonly<Record<string, unknown>>): Promise<void>;
}

export interface AlerterOptions {
  /** At most one webhook call per kind in this interval. Default one minute. */
  readonly minIntervalMs?: number;
  /** Sent in every payload so a shared channel shows which instance speaks. */
  readonly instance?: string;
  readonly now?: () => number;
}

/** The webhook body (documented in docs/admin-api.md). */
export interface AlertPayload {
  readonly source: 'mailwarden';
  readonly kind: AlertKind;
  readonly instance?: string;
  readonly at: string;
  /** Alerts of this kind dropped by the rate limit since the previous one was sent. */
  readonly suppressed: number;
  readonly details: Readonly<Record<string, unknown>>;
}

export function createAlerter(config: AlertsConfig, log: Logger, options: AlerterOptions = {}): Alerter {
  const minIntervalMs = options.minIntervalMs ?? 60_000;
  const now = options.now ?? Date.now;
  const lastSent = new Map<AlertKind, number>();
  const suppressed = new Map<AlertKind, number>();
  if (!config.webhookUrl) log.info('admin alerts: no webhook configured (alerts.webhookUrl); alerts are only logged');

  return {
    async alert(kind, details) {
      const at = now();
      const previous = lastSent.get(kind);
      if (previous !== undefined && at - previous < minIntervalMs) {
        suppressed.set(kind, (suppressed.get(kind) ?? 0) + 1);
        log.warn('admin alert (rate-limited, not sent)', { alert: kind, details });
        return;
      }
      lastSent.set(kind, at);
      const payload: AlertPayload = {
        source: 'mailwarden',
        kind,
        ...(options.instance ? { instance: options.instance } : {}),
        at: new Date(at).toISOString(),
        suppressed: suppressed.get(kind) ?? 0,
        details,
      };
      suppressed.delete(kind);
      if (!config.webhookUrl) {
        log.warn('admin alert (no webhook configured)', { alert: kind, details });
        return;
      }
      // The webhook URL is not logged: chat webhooks carry their secret in the URL.
      try {
        const response = await fetch(config.webhookUrl, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(payload),
          signal: AbortSignal.timeout(config.timeoutMs),
        });
        await response.arrayBuffer().catch(() => undefined);
        if (response.ok) log.warn('admin alert sent', { alert: kind, details });
        else log.error('admin alert: webhook refused it', { alert: kind, details, status: response.status });
      } catch (err) {
        const reason = errorName(err) === 'TimeoutError' ? `timed out after ${config.timeoutMs} ms` : describe(err);
        log.error('admin alert: webhook unreachable', { alert: kind, details, error: reason });
      }
    },
  };
}

// Duck-typed, not instanceof: fetch's errors may come from another realm (jest's sandbox, workers).
const errorName = (err: unknown): string | undefined => (err as { name?: string } | null)?.name;

function describe(err: unknown): string {
  const { message, cause } = (err ?? {}) as { message?: string; cause?: { message?: string } };
  if (message === undefined) return String(err);
  return cause?.message ? `${message}: ${cause.message}` : message;
}
