// The composition root: loads and validates the configuration, builds the store, identity resolver,
// decider, revoker, admin API and protocol listeners, and owns reload (validate everything, check the
// blast radius, swap atomically, re-evaluate live sessions) and graceful shutdown.
import path from 'node:path';
import { loadAll, loadPolicyText } from '../core/config';
import type { MailwardenConfig } from '../core/config-types';
import { ConfigError, errorText } from '../core/errors';
import { watchConfig, onSighup, type ConfigWatcher } from '../core/config-watcher';
import { createLogger, type Logger } from '../core/log';
import { SessionRegistry } from './sessions';
import { SessionDirectory } from './session-directory';
import type { Gate, ProtocolService } from './gate';
import { createStore } from '../store/create-store';
import type { CachedDeviceStore } from '../store/cached-store';
import { compilePolicy, type CompiledPolicy } from '../policy/compile';
import { Decider } from '../policy/decider';
import { Revoker } from '../policy/revoker';
import { checkBlastRadius, type BlastRadiusResult } from '../policy/blast-radius';
import { PolicyActivation, type ActivationVerdict } from '../policy/activation';
import { simulate } from '../policy/simulate';
import { Brake, readKillSwitch } from '../policy/brake';
import type { WorkerLink } from './workers';
import { createIdentityResolver } from '../identity/resolver';
import { createReportVerifier, type ReportVerifier } from '../admin/reports';
import { startAdminServer, type AdminServer } from '../admin/server';
import { createAdminServices, simulationContext } from '../admin/services';
import { createConsole, type WebConsole } from '../console/console';
import { consoleServices, consoleSimulate } from './console-services';
import { createMetrics, type Metrics } from '../admin/metrics';
import { createAlerter, type Alerter } from '../admin/alerts';
import { startImapService } from '../imap/service';
import { startSmtpService } from '../smtp/service';
import { createAdmit } from '../admission/admit';
import { LoginThrottle } from '../admission/login-throttle';
import { hookListenerShape, hooksDepsFromGate, startHooks, type HooksService } from '../hooks/service';
import { appPasswordKeyFor, appPasswordOwner } from '../identity/app-password';
import { CircuitBreakers } from '../core/circuit-breaker';
import { VERSION } from '../core/version';
import { logReloadScope } from './reload-scope';
import { ConnectorRunner, connectorOperations, policyJudge } from './connectors';
import { createConnectorMetrics } from '../admin/connector-metrics';
import type { ConnectorStatePort } from '../core/connector-state';
import { RedisConnectorState } from '../store/redis/connector-state';
import { MemoryConnectorState } from '../store/memory-connector-state';

/** How often the store is pinged, so an outage and its end are noticed without logins. */
const STORE_PROBE_MS = 2000;

export interface RuntimeOptions {
  readonly configFile: string;
  /** Defaults to a winston logger configured by `logging` in the config file. */
  readonly logger?: Logger;
  /** Activate the policy even when the blast-radius guard refuses it. */
  readonly forcePolicy?: boolean;
  /** Watch the config files and handle SIGHUP (default true). */
  readonly watch?: boolean;
  /** Start the IMAP / SMTP listeners and the gateway hooks the config defines (default true). */
  readonly listeners?: boolean;
  /** Serve the admin API and console the config defines (default true; with workers, the first only). */
  readonly admin?: boolean;
  /** Set in a node:cluster worker (src/app/workers.ts): brake trips are shared with the other workers. */
  readonly workers?: WorkerLink | null;
  /** Tests only: the connector runner's timing (lease lifetime, first delay, interval in ms). */
  readonly connectorTiming?: { readonly leaseMs?: number; readonly startDelayMs?: number; readonly intervalMs?: number; readonly statusPollMs?: number };
}

export type ReloadOutcome =
  | { readonly result: 'ok'; readonly version: string; readonly unchanged: boolean }
  | { readonly result: 'invalid'; readonly error: string }
  | { readonly result: 'blast-radius'; readonly error: string };

export interface Runtime {
  readonly gate: Gate;
  readonly store: CachedDeviceStore;
  readonly decider: Decider;
  readonly revoker: Revoker;
  readonly metrics: Metrics;
  readonly log: Logger;
  readonly admin: AdminServer | null;
  readonly imap: ProtocolService | null;
  readonly smtp: ProtocolService | null;
  /** The gateway hooks listening now (null: none enabled); a reload that moves them restarts them. */
  hooks(): HooksService | null;
  /** The inventory connectors' runner (null: none configured at start). */
  readonly connectors: ConnectorRunner | null;
  config(): MailwardenConfig;
  policy(): CompiledPolicy;
  /** Re-read both files; on any error the configuration in force stays. */
  reload(options?: { force?: boolean }): Promise<ReloadOutcome>;
  /** Stop accepting, drain sessions for up to `drainMs` (default imap.drainMs), close everything. */
  stop(drainMs?: number): Promise<void>;
}

interface Loaded {
  readonly config: MailwardenConfig;
  readonly policy: CompiledPolicy;
}

async function loadAndCompile(configFile: string): Promise<Loaded> {
  const { config, policy, policySource } = await loadAll(configFile);
  const compiled = await compilePolicy(policy, policySource, { pluginDirs: config.pluginDirs });
  return { config, policy: compiled };
}

export async function startRuntime(options: RuntimeOptions): Promise<Runtime> {
  const configFile = path.resolve(options.configFile);
  let current = await loadAndCompile(configFile);
  const configDir = path.dirname(configFile);
  const log = options.logger ?? createLogger({ level: current.config.logging.level, format: current.config.logging.format, file: current.config.logging.file });
  const metrics = createMetrics({ instanceName: current.config.instanceName, version: VERSION });
  const alerter: Alerter = createAlerter(current.config.alerts, log);
  const store = await createStore(current.config.store, log, { onCacheResult: (r) => metrics.onStoreCache(r), onAuditDropped: () => metrics.onAuditDropped() });
  // The documented store-unreachable alert, on the first call that finds the store gone; the probe
  // notices an outage (and its end, which writes the buffered audit) without waiting for a login.
  store.onAvailabilityChange((available) => {
    if (available) {
      log.info('device store reachable again; audit events kept during the outage are being written', { ...store.auditBacklog() });
      return;
    }
    log.error('device store unreachable: logins use last-known state, then tempfail; audit events are kept in memory', { store: store.kind });
    void alerter.alert('store-unreachable', { store: store.kind, outageLastKnownMaxSeconds: current.config.store.outageLastKnownMaxSeconds });
  });
  const storeProbe = setInterval(() => void store.ping().catch(() => undefined), STORE_PROBE_MS);
  storeProbe.unref();
  const sessions = new SessionRegistry();
  let identity = await createIdentityResolver(current.config.identity.sources, { store, log, configDir });
  // The Dovecot hook's passdb introspection verifies app passwords with the identity source's key.
  let appPasswordKey = await appPasswordKeyFor(current.config.identity.sources, configDir);
  let reportVerifier: ReportVerifier = await createReportVerifier(current.config.reports, configDir, log);

  // With workers, each counts its share of the decisions and a trip in one is relayed to the others.
  const link = options.workers ?? null;
  const brake = new Brake({
    log,
    alert: (kind, details) => alerter.alert(kind, details),
    onTrip: (trip) => {
      metrics.onBrakeTrip();
      link?.sendBrakeTrip(trip);
    },
    shareOfDecisions: link ? 1 / link.workers : 1,
  });
  link?.onBrakeTrip((trip) => brake.adopt(trip));
  // Built below when connectors are configured; the decider asks it how current their records are.
  let connectors: ConnectorRunner | null = null;
  const sourceFreshness = (source: string) => connectors?.freshness(source);
  const decider = new Decider({
    store,
    log,
    getPolicy: () => current.policy,
    getConfig: () => current.config,
    metrics,
    brake,
    sourceFreshness,
  });
  const revoker = new Revoker({ store, sessions, decider, log, metrics });
  // One breaker per upstream address for the whole process: IMAP and SMTP legs share them.
  const breakers = new CircuitBreakers();
  breakers.onChange((change) => {
    metrics.onBreakerChange(change);
    if (change.tripped) void alerter.alert('upstream-breaker-open', { service: change.service, upstream: change.upstream });
  });
  metrics.readFrom({
    storeUp: () => store.ping().then(() => true, () => false),
    killSwitch: async () => (await readKillSwitch(store)).on,
    brakeReportOnly: () => [...decider.brake.reportOnly()],
    policyVersion: () => current.policy.version,
    breakers: () => breakers.states(),
    auditBuffered: () => store.auditBacklog().buffered,
  });

  // Failures count in the store's backend (Redis: shared by every instance); the window is fixed at
  // start, the delays follow reloads.
  const throttle = new LoginThrottle(store.loginFailureCounters(current.config.loginThrottle.windowSeconds), () => current.config.loginThrottle);
  const admit = createAdmit({
    // Delegates, so a reload that changes identity sources swaps the resolver for new logins.
    identity: { resolve: (context) => identity.resolve(context) },
    decide: (request) => decider.decide(request),
    sessions,
    policyVersion: () => current.policy.version,
    log,
    throttle,
    onThrottled({ scope, delayMs, request }) {
      if (scope === null) return;
      metrics.onLoginThrottled(scope, delayMs);
      const event = {
        msg: 'login-throttled',
        at: new Date().toISOString(),
        protocol: request.protocol,
        frontEnd: request.frontEnd,
        sessionId: request.sessionId,
        user: request.credential.username ?? null,
        remoteAddress: request.remoteAddress ?? null,
        scope,
        delayMs,
      };
      log.info('login delayed after failed logins', event);
      store.appendAudit(event).catch((err: unknown) => log.warn('audit event not written', { event: event.msg, error: errorText(err) }));
    },
  });
  const gate: Gate = {
    log,
    admit,
    // Delegates, so a reload that changes identity sources swaps the resolver for new logins.
    identity: { resolve: (context) => identity.resolve(context) },
    decide: (request) => decider.decide(request),
    sessions,
    metrics,
    breakers,
    config: () => current.config,
    policy: () => current.policy.config,
  };

  /** Blast-radius guard: how many known devices `candidate` would newly deny compared with `baseline`. */
  async function guard(baseline: CompiledPolicy, candidate: CompiledPolicy): Promise<BlastRadiusResult> {
    const devices = await store.listDevices();
    const sim = await simulate(baseline, candidate, devices, simulationContext(current.config, store));
    return checkBlastRadius(sim, candidate.config.blastRadius);
  }

  // The policies in force lately (shared store): the guard never blocks a return to one of them,
  // the baseline at start is the last one that stayed in force for the window, and the brake does
  // not watch the checks a return restores.
  const activation = new PolicyActivation({
    store,
    log,
    guard,
    alert: (kind, details) => alerter.alert(kind, details),
    async compile(text) {
      const { policy, source } = await loadPolicyText(text, '(policy in force earlier)');
      return compilePolicy(policy, source, { pluginDirs: current.config.pluginDirs });
    },
  });

  // Blast-radius guard at start: against the policies in force lately.
  const verdict = await activation.check(null, current.policy).catch((err: unknown) => {
    // At start an unreachable store must not keep the proxy down (logins tempfail meanwhile); say so.
    log.warn('blast-radius guard skipped at start: the store or the device population could not be read', { error: errorText(err) });
    return { ok: true as const };
  });
  if (!verdict.ok) {
    if (!options.forcePolicy) {
      metrics.onBlastRadiusRefusal();
      void alerter.alert('blast-radius-refused', { policy: current.policy.config.file, error: verdict.message });
      await store.close();
      throw new ConfigError([{ file: current.policy.config.file, line: null, keyPath: 'checks', message: `${verdict.message} (start with --force-policy to activate it anyway)` }]);
    }
    log.warn('policy activated despite the blast-radius guard (--force-policy)', { error: verdict.message });
  }
  decider.policyChanged(null, current.policy, await activation.activated(null, current.policy));
  metrics.onPolicyActivated(current.policy.version);
  await revoker.start();
  // The console's "live sessions on every instance": answered by every instance, asked by the console.
  const directory = new SessionDirectory({
    feed: store,
    sessions,
    log,
    instanceName: () => current.config.instanceName,
    policy: () => ({ version: current.policy.version, helpdesk: current.policy.config.helpdesk }),
    // The embedded store is one process's: there is no other instance to wait for.
    ...(store.kind === 'memory' ? { answerWindowMs: 0 } : {}),
  });
  await directory.start();

  // Inventory connectors (docs/connectors.md): each on its interval behind a Redis lease, so one
  // instance syncs it at a time; every instance reads the shared status to judge staleness.
  let closeConnectorState: () => Promise<void> = async () => undefined;
  if (current.config.connectors.length > 0) {
    const redisConfig = current.config.store.type === 'redis' ? current.config.store.redis : undefined;
    let connectorState: ConnectorStatePort = new MemoryConnectorState(store);
    if (redisConfig) {
      const redisState = new RedisConnectorState(redisConfig, store);
      connectorState = redisState;
      closeConnectorState = () => redisState.close();
    }
    const timing = options.connectorTiming ?? {};
    connectors = new ConnectorRunner({
      connectors: () => current.config.connectors,
      state: connectorState,
      recordTtlSeconds: () => current.config.store.recordTtlHours * 3600,
      blastRadius: () => current.policy.config.blastRadius,
      isDenied: policyJudge(() => current.policy, () => current.config, sourceFreshness),
      log,
      alert: (kind, details) => void alerter.alert(kind, details),
      metrics: createConnectorMetrics(metrics.registry),
      instance: current.config.instanceName,
      ...(timing.leaseMs !== undefined ? { leaseMs: timing.leaseMs } : {}),
      ...(timing.startDelayMs !== undefined ? { startDelayMs: () => timing.startDelayMs! } : {}),
      ...(timing.intervalMs !== undefined ? { intervalMs: timing.intervalMs } : {}),
      ...(timing.statusPollMs !== undefined ? { statusPollMs: timing.statusPollMs } : {}),
    });
    await connectors.start();
  }

  let reloading: Promise<ReloadOutcome> | null = null;
  async function reloadOnce(force: boolean): Promise<ReloadOutcome> {
    let next: Loaded;
    try {
      next = await loadAndCompile(configFile);
    } catch (err) {
      const error = errorText(err);
      log.error('configuration reload refused; the configuration in force stays', { error });
      metrics.onReload('invalid');
      void alerter.alert('reload-refused', { error });
      return { result: 'invalid', error };
    }
    const previous = current;
    if (next.policy.version !== previous.policy.version) {
      const verdict: ActivationVerdict = await activation.check(previous.policy, next.policy).catch((err: unknown) => {
        // Without the device population the guard cannot count: refuse rather than guess.
        return { ok: false as const, newlyDenied: 0, devices: 0, message: `blast radius could not be computed: ${errorText(err)}` };
      });
      if (verdict.ok && verdict.returningTo) {
        log.info('policy change returns to a policy in force lately: the blast-radius guard does not block it', { policyVersion: next.policy.version, returningTo: verdict.returningTo });
      }
      if (!verdict.ok) {
        if (!force) {
          log.error('policy reload refused by the blast-radius guard; the policy in force stays', { error: verdict.message });
          metrics.onBlastRadiusRefusal();
          metrics.onReload('blast-radius');
          void alerter.alert('blast-radius-refused', { policy: next.policy.config.file, error: verdict.message });
          return { result: 'blast-radius', error: verdict.message };
        }
        log.warn('policy activated despite the blast-radius guard (forced)', { error: verdict.message });
      }
    }
    logReloadScope(previous.config, next.config, log);
    let nextIdentity = identity;
    let nextAppPasswordKey = appPasswordKey;
    if (JSON.stringify(next.config.identity) !== JSON.stringify(previous.config.identity)) {
      try {
        nextIdentity = await createIdentityResolver(next.config.identity.sources, { store, log, configDir });
        nextAppPasswordKey = await appPasswordKeyFor(next.config.identity.sources, configDir);
      } catch (err) {
        const error = `identity sources: ${errorText(err)}`;
        log.error('configuration reload refused; the configuration in force stays', { error });
        metrics.onReload('invalid');
        void alerter.alert('reload-refused', { error });
        return { result: 'invalid', error };
      }
    }
    // The atomic swap: every later login and decision sees the new configuration, policy and identity.
    current = next;
    identity = nextIdentity;
    appPasswordKey = nextAppPasswordKey;
    await restartHooksIfMoved(previous.config, next.config);
    if (connectors) connectors.reconfigure();
    else if (next.config.connectors.length > 0) log.warn('connectors added by a reload run after the next restart (none were configured at start)', { connectors: next.config.connectors.map((c) => c.name) });
    reportVerifier = await createReportVerifier(next.config.reports, configDir, log).catch((err: unknown) => {
      log.error('reporter keys could not be reloaded; the previous keys stay', { error: errorText(err) });
      return reportVerifier;
    });
    const unchanged = next.policy.version === previous.policy.version;
    metrics.onReload(force ? 'forced' : 'ok');
    log.info('configuration reloaded', { policyVersion: next.policy.version, unchanged });
    if (!unchanged) {
      decider.policyChanged(previous.policy, next.policy, await activation.activated(previous.policy, next.policy));
      metrics.onPolicyActivated(next.policy.version);
      void revoker.revalidate(sessions.all(), 'policy');
    }
    return { result: 'ok', version: next.policy.version, unchanged };
  }

  function reload(opts: { force?: boolean } = {}): Promise<ReloadOutcome> {
    // Serialise: a file change and a SIGHUP arriving together give one reload after another.
    const run = (reloading ?? Promise.resolve()).then(() => reloadOnce(opts.force ?? false));
    reloading = run.finally(() => {
      if (reloading === run) reloading = null;
    }) as Promise<ReloadOutcome>;
    return run;
  }

  let admin: AdminServer | null = null;
  let webConsole: WebConsole | null = null;
  if (current.config.admin && (options.admin ?? true)) {
    const adminServices = createAdminServices({
      store,
      log,
      metrics,
      configDir,
      config: () => current.config,
      policy: () => current.policy,
      reportVerifier: () => reportVerifier,
      dryRun: (request) => decider.dryRun(request),
      ...(connectors ? { connectors: { ...connectorOperations(connectors), readiness: () => connectors!.readiness() } } : {}),
    });
    // The console is mounted at start (admin.console.enabled); a reload that turns it off makes
    // its pages answer 404 until the next restart unmounts it.
    if (current.config.admin.console.enabled) {
      webConsole = createConsole(
        consoleServices({
          store,
          log,
          decider,
          directory,
          connectors: () => connectors,
          throttle,
          config: () => current.config,
          policy: () => current.policy,
          simulate: consoleSimulate(adminServices),
          setKillSwitch: (on, by) => adminServices.setKillSwitch(on, { by }),
        }),
      );
    }
    const pages = webConsole;
    admin = await startAdminServer(current.config.admin.listen, adminServices, pages ? (req, res, url) => pages.handle(req, res, url) : undefined);
  }

  const startListeners = options.listeners ?? true;
  const imap = startListeners && current.config.imap ? await startImapService(gate, current.config.imap) : null;
  const smtp = startListeners && current.config.smtp ? await startSmtpService(gate, current.config.smtp, { store }) : null;

  const hooksDeps = hooksDepsFromGate(
    gate,
    async (password) => (appPasswordKey ? appPasswordOwner(store, appPasswordKey, password) : null),
    metrics,
  );
  let hooks: HooksService | null = startListeners ? await startHooks(hooksDeps) : null;

  /** Hooks enabled, disabled or moved by a reload: stop the old listeners, start the new ones. */
  async function restartHooksIfMoved(previous: MailwardenConfig, next: MailwardenConfig): Promise<void> {
    if (!startListeners || hookListenerShape(previous.hooks) === hookListenerShape(next.hooks)) return;
    await hooks?.close();
    hooks = null;
    try {
      hooks = await startHooks(hooksDeps);
      log.info('gateway hooks restarted by the reload', { hooks: hooks?.addresses ?? {} });
    } catch (err) {
      // The rest of the reload stands; the hooks stay down until the next reload or restart.
      log.error('gateway hooks could not be started after the reload', { error: errorText(err) });
      void alerter.alert('reload-refused', { error: `gateway hooks: ${errorText(err)}` });
    }
  }

  let watcher: ConfigWatcher | null = null;
  let stopSighup: (() => void) | null = null;
  if (options.watch ?? true) {
    const trigger = () => void reload();
    watcher = watchConfig([configFile, current.config.policyFile], trigger);
    stopSighup = onSighup(trigger);
  }

  log.info('mailwarden started', {
    instance: current.config.instanceName,
    store: store.kind,
    policyVersion: current.policy.version,
    checks: current.policy.checks.map((c) => `${c.id}:${c.config.mode}`),
    imap: imap?.addresses ?? [],
    smtp: smtp?.addresses ?? [],
    hooks: hooks?.addresses ?? {},
  });

  let stopping: Promise<void> | null = null;
  async function stop(drainMs?: number): Promise<void> {
    stopping ??= (async () => {
      watcher?.close();
      stopSighup?.();
      clearInterval(storeProbe);
      const drain = drainMs ?? current.config.imap?.drainMs ?? 10000;
      await Promise.all([imap?.shutdown(drain), smtp?.shutdown(drain), hooks?.close()]);
      await webConsole?.close();
      await admin?.close();
      await connectors?.stop();
      await closeConnectorState();
      await directory.stop();
      await revoker.stop();
      await decider.idle();
      await store.close();
      log.info('mailwarden stopped');
    })();
    return stopping;
  }

  return {
    gate,
    store,
    decider,
    revoker,
    metrics,
    log,
    admin,
    imap,
    smtp,
    hooks: () => hooks,
    connectors,
    config: () => current.config,
    policy: () => current.policy,
    reload,
    stop,
  };
}
