// Prometheus metrics for one mailwarden process: its own prom-client Registry, served on the admin
// listener's /metrics. Callers use the small typed methods below and never touch prom-client.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Protocol } from '../policy/contract';
import type { Decision } from '../policy/decision';

/** Every metric name starts with this, so dashboards can tell ours from other exporters'. */
export const METRIC_PREFIX = 'mailwarden_';

export type LoginResult = 'allow' | 'deny' | 'tempfail' | 'bad-credentials' | 'upstream-error' | 'quarantine';
export type StoreCacheResult = 'hit' | 'miss' | 'stale' | 'last-known';
export type ReloadResult = 'ok' | 'invalid' | 'blast-radius' | 'forced';
export type ReportResult = 'stored' | 'ignored-older' | 'rejected' | 'store-unavailable';

/**
 * State read when Prometheus scrapes (gauges that describe "now", not events). Each is optional;
 * a source that throws or is missing leaves its gauge out of that scrape rather than guessing.
 */
export interface MetricSources {
  readonly killSwitch?: () => Promise<boolean>;
}

export interface Metrics {
  /** One decision (a login or a re-evaluation): counts it, its time, and every check's result. */
  onDecision(decision: Decision, seconds: number): void;
  /** A live session opened (+1) or ended (-1). */
  sessionDelta(protocol: Protocol, delta: 1 | -1): void;
  onLogin(protocol: Protocol, result: LoginResult): void;
  /** A live session was ended because its device is now denied. */
  onRevocation(protocol: Protocol): void;
  onStoreError(): void;
  onStoreCache(result: StoreCacheResult): void;
  onReload(result: ReloadResult): void;
  onBlastRadiusRefusal(): void;
  onBrakeTrip(): void;
  onUpstreamError(protocol: Protocol): void;
  /** An upstream address's circuit breaker tripped (open) or closed again. */
  onBreakerChange(change: { readonly service: string; readonly upstream: string; readonly tripped: boolean }): void;
  onReport(result: ReportResult): void;
  /** One gateway hook request (nginx auth_http, Dovecot policy or passdb, Postfix policy): outcome and time. */
  onHookRequest(hook: string, outcome: string, seconds: number): void;
  /** Where the scrape-time gauges read their state (the runtime wires the store). */
  readFrom(sources: MetricSources): void;
  /** The exposition text for GET /metrics. */
  text(): Promise<string>;
  readonly contentType: string;
  /** For tests and for embedding; callers outside src/admin should not need it. */
  readonly registry: Registry;
}

export interface MetricsOptions {
  /** Default process metrics (CPU, memory, event loop lag, ...). Default true. */
  readonly processMetrics?: boolean;
  /** Labels added to every series, e.g. { instance: config.instanceName }. */
  readonly defaultLabels?: Record<string, string>;
}

/** Latency buckets in seconds: a decision is normally well under a millisecond to a few ms. */
const DECISION_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];

export function createMetrics(options: MetricsOptions = {}): Metrics {
  const registry = new Registry();
  if (options.defaultLabels) registry.setDefaultLabels(options.defaultLabels);
  if (options.processMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: METRIC_PREFIX });

  const registers = [registry];
  const counter = <L extends string>(name: string, help: string, labelNames: readonly L[] = []) =>
    new Counter<L>({ name: METRIC_PREFIX + name, help, labelNames, registers });

  const decisions = counter('decisions_total', 'Decisions by protocol, action and reason code', [
    'protocol',
    'action',
    'reason',
  ]);
  const decisionSeconds = new Histogram<'protocol'>({
    name: `${METRIC_PREFIX}decision_seconds`,
    help: 'Time to reach one decision (store lookup and checks)',
    labelNames: ['protocol'],
    buckets: DECISION_BUCKETS,
    registers,
  });
  // mode = the effective mode, so results of checks running in `report` are visible before they bite.
  const checkResults = counter('check_results_total', 'Check results by check, outcome and effective mode', [
    'check',
    'outcome',
    'mode',
  ]);
  const sessions = new Gauge<'protocol'>({
    name: `${METRIC_PREFIX}sessions_active`,
    help: 'Live proxied sessions',
    labelNames: ['protocol'],
    registers,
  });
  const logins = counter('logins_total', 'Login attempts by protocol and result', ['protocol', 'result']);
  const revocations = counter('revocations_total', 'Live sessions ended because the device is now denied', [
    'protocol',
  ]);
  const storeErrors = counter('store_errors_total', 'Device store calls that failed (unreachable, timed out)');
  const storeCache = counter('store_cache_total', 'In-process device cache lookups by result', ['result']);
  const reloads = counter('reload_total', 'Configuration reloads by result', ['result']);
  const blastRadius = counter('blast_radius_refusals_total', 'Policies not activated by the blast-radius guard');
  const brakeTrips = counter('brake_trips_total', 'Times the runtime brake put enforcing checks in report');
  const upstreamErrors = counter('upstream_errors_total', 'Upstream connection or login failures', ['protocol']);
  const hookRequests = counter('hook_requests_total', 'Gateway hook requests by hook and outcome', ['hook', 'outcome']);
  const hookSeconds = new Histogram<'hook'>({
    name: `${METRIC_PREFIX}hook_request_seconds`,
    help: 'Time to answer one gateway hook request (decision included)',
    labelNames: ['hook'],
    buckets: DECISION_BUCKETS,
    registers,
  });
  const breakerOpen = new Gauge<'service' | 'upstream'>({
    name: `${METRIC_PREFIX}upstream_breaker_open`,
    help: 'Upstream circuit breaker per address: 1 while tripped (logins to it fail fast), else 0',
    labelNames: ['service', 'upstream'],
    registers,
  });
  const breakerTrips = counter('upstream_breaker_trips_total', 'Times an upstream address circuit breaker tripped', ['service', 'upstream']);
  const reports = counter('reports_total', 'Device reports received on the ingest API, by result', ['result']);

  let sources: MetricSources = {};
  // Scrape-time gauges: each collect() reads its source; a failing source leaves the gauge empty.
  const stateGauge = <L extends string>(name: string, help: string, labelNames: readonly L[], collect: (g: Gauge<L>) => Promise<void> | void) =>
    new Gauge<L>({
      name: METRIC_PREFIX + name,
      help,
      labelNames,
      registers,
      async collect() {
        this.reset();
        try {
          await collect(this);
        } catch {
          // No value is better than a wrong one. prom-client always prints a label-less gauge (0
          // after reset), so "could not read" is NaN: `== 1` and `== 0` are both false on it.
          if (labelNames.length === 0) (this as Gauge).set(Number.NaN);
        }
      },
    });
  stateGauge('kill_switch_enabled', '1 while the kill switch puts every check in report on every instance, else 0', [], async (g) => {
    if (sources.killSwitch) g.set((await sources.killSwitch()) ? 1 : 0);
  });

  return {
    onDecision(decision, seconds) {
      decisions.inc({ protocol: decision.protocol, action: decision.action, reason: decision.reasonCode });
      decisionSeconds.observe({ protocol: decision.protocol }, seconds);
      for (const check of decision.checks) {
        checkResults.inc({ check: check.checkId, outcome: check.outcome, mode: check.effectiveMode });
      }
    },
    sessionDelta: (protocol, delta) => sessions.inc({ protocol }, delta),
    onLogin: (protocol, result) => logins.inc({ protocol, result }),
    onRevocation: (protocol) => revocations.inc({ protocol }),
    onStoreError: () => storeErrors.inc(),
    onStoreCache: (result) => storeCache.inc({ result }),
    onReload: (result) => reloads.inc({ result }),
    onBlastRadiusRefusal: () => blastRadius.inc(),
    onBrakeTrip: () => brakeTrips.inc(),
    onUpstreamError: (protocol) => upstreamErrors.inc({ protocol }),
    onBreakerChange({ service, upstream, tripped }) {
      breakerOpen.set({ service, upstream }, tripped ? 1 : 0);
      if (tripped) breakerTrips.inc({ service, upstream });
    },
    onReport: (result) => reports.inc({ result }),
    onHookRequest(hook, outcome, seconds) {
      hookRequests.inc({ hook, outcome });
      hookSeconds.observe({ hook }, seconds);
    },
    readFrom(next) {
      sources = next;
    },
    text: () => registry.metrics(),
    contentType: registry.contentType,
    registry,
  };
}
