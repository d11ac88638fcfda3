// Prometheus metrics for one mailwarden process: its own prom-client Registry, served on the admin
// listener's /metrics. Callers use the small typed methods below and never touch prom-client.
// Naming rules for every metric any part adds: docs/metrics.md#naming-rules (ours start with
// mailwarden_; counters end in _total, gauges never do; unit suffixes _seconds, _bytes; no
// `instance` label, Prometheus sets it per target; states are gauges read at scrape time).
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Protocol } from '../policy/contract';
import type { Decision } from '../policy/decision';
import type { ThrottleScope } from '../admission/login-throttle';
import type { BreakerChange } from '../core/circuit-breaker';
import type { UpstreamErrorReason, UpstreamLoginResult } from '../core/upstream-failure';

/** Every metric of ours starts with this; the default process/Node metrics keep their standard names. */
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
  /** Does the device store answer a ping now? */
  readonly storeUp?: () => Promise<boolean>;
  readonly killSwitch?: () => Promise<boolean>;
  /** Check ids the runtime brake currently holds in report (empty when not tripped). */
  readonly brakeReportOnly?: () => readonly string[];
  /** Version (content hash) of the policy in force. */
  readonly policyVersion?: () => string;
  /** Every upstream address's circuit breaker this process has used, tripped or not. */
  readonly breakers?: () => readonly BreakerChange[];
  /** Audit events waiting in memory for the store (written when it answers again). */
  readonly auditBuffered?: () => number;
}

export interface Metrics {
  /** One decision (a login or a re-evaluation): counts it, its time, and every check's result. */
  onDecision(decision: Decision, seconds: number): void;
  /** A live session opened (+1) or ended (-1). */
  sessionDelta(protocol: Protocol, delta: 1 | -1): void;
  onLogin(protocol: Protocol, result: LoginResult): void;
  /** The login throttle delayed a login by `delayMs`, asked for by the counter of `scope`. */
  onLoginThrottled(scope: ThrottleScope, delayMs: number): void;
  /** A live session was ended because its device is now denied. */
  onRevocation(protocol: Protocol): void;
  onStoreError(): void;
  onStoreCache(result: StoreCacheResult): void;
  /** An audit event was dropped: the store was unreachable and the outage buffer full. */
  onAuditDropped(): void;
  onReload(result: ReloadResult): void;
  onBlastRadiusRefusal(): void;
  onBrakeTrip(): void;
  onUpstreamError(protocol: Protocol, reason: UpstreamErrorReason): void;
  /** An upstream address's circuit breaker tripped (open) or closed again. */
  onBreakerChange(change: BreakerChange): void;
  /** One upstream connect + login attempt, from the first byte to the upstream's answer. */
  onUpstreamLogin(protocol: Protocol, result: UpstreamLoginResult, seconds: number): void;
  onReport(result: ReportResult): void;
  /** A policy became the one in force (at start and after each reload that changed it). */
  onPolicyActivated(version: string): void;
  /** One gateway hook request (nginx auth_http, Dovecot policy or passdb, Postfix policy): outcome and time. */
  onHookRequest(hook: string, outcome: string, seconds: number): void;
  /** Where the scrape-time gauges read their state (the runtime wires the store, brake, breakers). */
  readFrom(sources: MetricSources): void;
  /** The exposition text for GET /metrics. */
  text(): Promise<string>;
  readonly contentType: string;
  /** For tests and for embedding; callers outside src/admin should not need it. */
  readonly registry: Registry;
}

export interface MetricsOptions {
  /** Default process and Node.js metrics (process_cpu_seconds_total, nodejs_eventloop_lag_seconds, ...). Default true. */
  readonly processMetrics?: boolean;
  /** config.instanceName, exposed as the `instance_name` label of mailwarden_info (never on every series). */
  readonly instanceName?: string;
  /** package.json version, on mailwarden_info. */
  readonly version?: string;
}

/** Latency buckets in seconds: a decision is normally well under a millisecond to a few ms. */
const DECISION_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];
/** An upstream login is a TCP (+TLS) connect, greeting and authentication: milliseconds to seconds. */
const UPSTREAM_LOGIN_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** A source the runtime has not wired reads as "cannot say" (NaN), never as a healthy-looking 0. */
function wired<T>(source: T | undefined): T {
  if (source === undefined) throw new Error('metric source not wired');
  return source;
}

export function createMetrics(options: MetricsOptions = {}): Metrics {
  const registry = new Registry();
  if (options.processMetrics ?? true) collectDefaultMetrics({ register: registry });

  const registers = [registry];
  const counter = <L extends string>(name: string, help: string, labelNames: readonly L[] = []) =>
    new Counter<L>({ name: METRIC_PREFIX + name, help, labelNames, registers });
  let sources: MetricSources = {};

  new Gauge<'instance_name' | 'version'>({
    name: `${METRIC_PREFIX}info`,
    help: 'Always 1: this process, with its configured instanceName and version as labels',
    labelNames: ['instance_name', 'version'],
    registers,
  }).set({ instance_name: options.instanceName ?? '', version: options.version ?? '' }, 1);

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
  const throttled = counter('login_throttle_delays_total', 'Logins delayed by the failed-login throttle, by the counter that asked (address, user, device)', ['scope']);
  const throttledSeconds = counter('login_throttle_delay_seconds_total', 'Seconds logins were held by the failed-login throttle, by scope', ['scope']);
  const revocations = counter('revocations_total', 'Live sessions ended because the device is now denied', [
    'protocol',
  ]);
  const storeErrors = counter('store_errors_total', 'Device store calls that failed (unreachable, timed out)');
  const auditDropped = counter('audit_dropped_total', 'Audit events not written: the store was unreachable and the outage buffer (store.auditBufferMax) full');
  const storeCache = counter('store_cache_total', 'In-process device cache lookups by result', ['result']);
  const reloads = counter('reload_total', 'Configuration reloads by result', ['result']);
  const blastRadius = counter('blast_radius_refusals_total', 'Policies not activated by the blast-radius guard');
  const brakeTrips = counter('brake_trips_total', 'Times the runtime brake put enforcing checks in report');
  const hookRequests = counter('hook_requests_total', 'Gateway hook requests by hook and outcome', ['hook', 'outcome']);
  const hookSeconds = new Histogram<'hook'>({
    name: `${METRIC_PREFIX}hook_request_seconds`,
    help: 'Time to answer one gateway hook request (decision included)',
    labelNames: ['hook'],
    buckets: DECISION_BUCKETS,
    registers,
  });
  const upstreamErrors = counter('upstream_errors_total', 'Upstream connection or login failures by protocol and reason', [
    'protocol',
    'reason',
  ]);
  const breakerTrips = counter('upstream_breaker_trips_total', 'Times an upstream address circuit breaker tripped', ['service', 'upstream']);
  const upstreamLoginSeconds = new Histogram<'protocol' | 'result'>({
    name: `${METRIC_PREFIX}upstream_login_seconds`,
    help: 'Time from connecting to the upstream to its answer to the login, by protocol and result',
    labelNames: ['protocol', 'result'],
    buckets: UPSTREAM_LOGIN_BUCKETS,
    registers,
  });
  const reports = counter('reports_total', 'Device reports received on the ingest API, by result', ['result']);
  const lastReport = new Gauge({
    name: `${METRIC_PREFIX}report_last_stored_timestamp_seconds`,
    help: 'Unix time of the last device report this process stored (0: none since start)',
    registers,
  });
  const policyActivated = new Gauge({
    name: `${METRIC_PREFIX}policy_activated_timestamp_seconds`,
    help: 'Unix time the policy in force was activated on this process',
    registers,
  });

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
  stateGauge('store_up', '1 while the device store answers a ping, else 0', [], async (g) => {
    g.set((await wired(sources.storeUp)()) ? 1 : 0);
  });
  stateGauge('audit_buffered', 'Audit events held in memory while the store is unreachable, written when it answers again', [], (g) => {
    g.set(wired(sources.auditBuffered)());
  });
  stateGauge('kill_switch_enabled', '1 while the kill switch puts every check in report on every instance', [], async (g) => {
    g.set((await wired(sources.killSwitch)()) ? 1 : 0);
  });
  stateGauge('brake_tripped', '1 while the runtime brake holds enforcing checks in report on this process', [], (g) => {
    g.set(wired(sources.brakeReportOnly)().length > 0 ? 1 : 0);
  });
  stateGauge('brake_report_only_checks', 'Checks the runtime brake holds in report on this process', [], (g) => {
    g.set(wired(sources.brakeReportOnly)().length);
  });
  // Tripped = open or half-open: logins to that address fail fast until a trial succeeds.
  stateGauge<'service' | 'upstream'>('upstream_breaker_open', 'Upstream circuit breaker per address: 1 while tripped (logins to it fail fast), else 0', ['service', 'upstream'], (g) => {
    for (const b of sources.breakers?.() ?? []) g.set({ service: b.service, upstream: b.upstream }, b.tripped ? 1 : 0);
  });
  stateGauge<'version'>('policy_info', 'Always 1: the policy in force, its version (content hash) as a label', ['version'], (g) => {
    if (sources.policyVersion) g.set({ version: sources.policyVersion() }, 1);
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
    onLoginThrottled(scope, delayMs) {
      throttled.inc({ scope });
      throttledSeconds.inc({ scope }, delayMs / 1000);
    },
    onRevocation: (protocol) => revocations.inc({ protocol }),
    onStoreError: () => storeErrors.inc(),
    onStoreCache: (result) => storeCache.inc({ result }),
    onAuditDropped: () => auditDropped.inc(),
    onReload: (result) => reloads.inc({ result }),
    onBlastRadiusRefusal: () => blastRadius.inc(),
    onBrakeTrip: () => brakeTrips.inc(),
    onUpstreamError: (protocol, reason) => upstreamErrors.inc({ protocol, reason }),
    onBreakerChange({ service, upstream, tripped }) {
      if (tripped) breakerTrips.inc({ service, upstream });
    },
    onUpstreamLogin: (protocol, result, seconds) => upstreamLoginSeconds.observe({ protocol, result }, seconds),
    onReport(result) {
      reports.inc({ result });
      if (result === 'stored') lastReport.set(Date.now() / 1000);
    },
    onPolicyActivated: () => policyActivated.set(Date.now() / 1000),
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
