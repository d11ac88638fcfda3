// Runs the configured connectors inside `mailwarden start`: each on its interval, behind a Redis
// lease so that exactly one instance syncs a connector at a time; every instance reads the shared
// sync status to judge staleness (one connector fault: metric, alert, /readyz detail), and hands the
// policy engine each source's freshness.
import { randomBytes } from 'node:crypto';
import type { ConnectorConfig } from '../core/config-types';
import type { Logger } from '../core/log';
import { errorText } from '../core/errors';
import { createConnector } from '../connectors/factory';
import { sourceName } from '../connectors/diff';
import type { ConnectorStatePort, ConnectorStatus } from '../core/connector-state';
import { SyncEngine, type BlastRadiusLimits, type SyncReport } from '../connectors/sync';
import type { DeviceRecord, StoredFacts } from '../store/device-store';
import { evaluatePolicy, groupsOf, type SourceFreshness } from '../policy/engine';
import type { CompiledPolicy } from '../policy/compile';
import type { MailwardenConfig } from '../core/config-types';
import type { ConnectorMetrics } from '../admin/connector-metrics';
import type { ConnectorOperations } from '../admin/routes/connectors';

export interface ConnectorRunnerOptions {
  readonly connectors: () => readonly ConnectorConfig[];
  readonly state: ConnectorStatePort;
  readonly recordTtlSeconds: () => number;
  readonly blastRadius: () => BlastRadiusLimits;
  readonly isDenied: (record: DeviceRecord | null) => Promise<boolean>;
  readonly log: Logger;
  readonly alert: (kind: 'connector-sync-held' | 'connector-stale', details: Readonly<Record<string, unknown>>) => void;
  readonly metrics?: ConnectorMetrics;
  readonly instance: string;
  /** How often every instance re-reads the shared sync status (staleness). Default 30 s. */
  readonly statusPollMs?: number;
  /** The sync lease's lifetime, renewed every third of it while a sync runs (default 60 s): how soon a dead holder's lease frees. */
  readonly leaseMs?: number;
  /** Delay before the first scheduled sync (default 1–5 s at random, so instances started together do not race). */
  readonly startDelayMs?: () => number;
  /** Tests only: every connector's interval in ms instead of its intervalSeconds (the schema allows no less than 60 s). */
  readonly intervalMs?: number;
  readonly now?: () => number;
}

export interface ConnectorView {
  readonly config: ConnectorConfig;
  readonly status: ConnectorStatus | null;
  readonly stale: boolean;
  readonly held: boolean;
}

export class ConnectorRunner {
  private readonly engines = new Map<string, SyncEngine>();
  private readonly statuses = new Map<string, ConnectorStatus | null>();
  private readonly staleNow = new Set<string>();
  /** The next scheduled sync of each connector (none while its sync runs). */
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private statusPoll: NodeJS.Timeout | null = null;
  /** The configuration each engine was built from: a reload that changes it builds a new one. */
  private readonly builtFrom = new Map<string, string>();
  private readonly stopController = new AbortController();
  private readonly holder: string;
  private readonly now: () => number;
  private stopped = false;
  private readonly inFlight = new Set<Promise<unknown>>();
  /** Connectors this instance is syncing or applying now (the lease cannot tell its own requests apart). */
  private readonly leased = new Set<string>();

  constructor(private readonly options: ConnectorRunnerOptions) {
    this.holder = `${options.instance}:${process.pid}:${randomBytes(4).toString('hex')}`;
    this.now = options.now ?? Date.now;
  }

  private config(name: string): ConnectorConfig {
    const config = this.options.connectors().find((c) => c.name === name);
    if (!config) throw new Error(`no connector named "${name}" (connectors: ${this.options.connectors().map((c) => c.name).join(', ') || 'none configured'})`);
    return config;
  }

  /** The engine for a connector (built on first use; credentials are read then). */
  engine(name: string): SyncEngine {
    const config = this.config(name);
    let engine = this.engines.get(name);
    if (!engine) {
      const metrics = this.options.metrics;
      engine = new SyncEngine({
        connector: createConnector(config, metrics?.observer(name)),
        state: this.options.state,
        settings: () => {
          const c = this.config(name);
          return {
            removeAfterAbsentSyncs: c.removeAfterAbsentSyncs,
            recordTtlSeconds: this.options.recordTtlSeconds(),
            syncTimeoutMs: c.syncTimeoutSeconds * 1000,
            maxRemovedPercent: c.maxRemovedPercent,
            maxInventoryLostPercent: c.maxInventoryLostPercent,
          };
        },
        blastRadius: this.options.blastRadius,
        isDenied: this.options.isDenied,
        log: this.options.log,
        alert: (kind, details) => this.options.alert(kind, details),
        instance: this.options.instance,
      });
      this.engines.set(name, engine);
      this.builtFrom.set(name, JSON.stringify(config));
    }
    return engine;
  }

  /** Reads every connector's status once, then schedules syncs and status polls. */
  async start(): Promise<void> {
    await this.refreshStatuses();
    for (const config of this.options.connectors()) if (config.enabled) this.schedule(config.name, this.startDelay());
    this.statusPoll = setInterval(() => void this.refreshStatuses(), this.options.statusPollMs ?? 30_000);
    this.statusPoll.unref();
  }

  /**
   * After a configuration reload: a new or re-enabled connector is scheduled, a removed or disabled
   * one is no longer, and one whose settings changed gets a new engine (credentials read again) and
   * its next sync soon. A sync running meanwhile finishes with the settings it started with.
   */
  reconfigure(): void {
    if (this.stopped) return;
    const configs = new Map(this.options.connectors().map((c) => [c.name, c]));
    for (const [name, built] of this.builtFrom) {
      if (JSON.stringify(configs.get(name)) === built) continue;
      this.engines.delete(name);
      this.builtFrom.delete(name);
      this.unschedule(name);
    }
    for (const name of [...this.timers.keys()]) if (!configs.get(name)?.enabled) this.unschedule(name);
    for (const config of configs.values()) {
      if (config.enabled && !this.timers.has(config.name) && !this.leased.has(config.name)) this.schedule(config.name, this.startDelay());
    }
    void this.refreshStatuses();
  }

  private startDelay(): number {
    return this.options.startDelayMs?.() ?? 1000 + Math.floor(Math.random() * 4000);
  }

  private intervalMs(config: ConnectorConfig): number {
    return this.options.intervalMs ?? config.intervalSeconds * 1000;
  }

  private unschedule(name: string): void {
    clearTimeout(this.timers.get(name));
    this.timers.delete(name);
  }

  private schedule(name: string, delayMs: number): void {
    if (this.stopped) return;
    this.unschedule(name);
    const timer = setTimeout(() => {
      this.timers.delete(name);
      const run = this.scheduledSync(name)
        .catch((err: unknown) => {
          this.options.log.error('connector run failed', { connector: name, error: errorText(err) });
          return null;
        })
        .then((next) => {
          this.inFlight.delete(run);
          const config = this.options.connectors().find((c) => c.name === name);
          if (config?.enabled && !this.timers.has(name)) this.schedule(name, next ?? this.intervalMs(config));
        });
      this.inFlight.add(run);
    }, delayMs);
    timer.unref();
    this.timers.set(name, timer);
  }

  /**
   * A scheduled sync, once per interval across all instances: under the lease it reads the shared
   * status, and when another instance attempted a sync less than an interval ago it skips and
   * answers when the next one is due (ms) — the lease alone only keeps syncs from overlapping.
   */
  private async scheduledSync(name: string): Promise<number | null> {
    const config = this.config(name);
    const interval = this.intervalMs(config);
    let nextInMs: number | null = null;
    await this.withLease(name, async () => {
      const status = await this.options.state.getStatus(name);
      const sinceLast = status ? this.now() - Date.parse(status.lastAttemptAt) : Infinity;
      // 5% slack: this instance's own timer fires an interval after its last attempt ended.
      if (sinceLast < interval * 0.95) {
        nextInMs = interval - sinceLast + this.jitter(interval);
        return null;
      }
      return this.engine(name).sync({ stop: this.stopController.signal });
    });
    return nextInMs;
  }

  /** Up to 5% of the interval (at most 5 s): instances that skipped do not all fire together. */
  private jitter(interval: number): number {
    return Math.floor(Math.random() * Math.min(5000, interval * 0.05)) + 1;
  }

  /** One sync if this instance gets the lease; null when a sync of it runs here or on another instance. */
  syncWithLease(name: string, opts: { dryRun?: boolean } = {}): Promise<SyncReport | null> {
    return this.withLease(name, () => this.engine(name).sync({ dryRun: opts.dryRun, stop: this.stopController.signal }));
  }

  /** Applies the held diff behind the same lease; null when a sync of it runs here or elsewhere. */
  applyHeld(name: string): Promise<SyncReport | null> {
    return this.withLease(name, () => this.engine(name).applyHeld());
  }

  /** `run` under this connector's lease; null when busy here or elsewhere (or when `run` skips). */
  private async withLease(name: string, run: () => Promise<SyncReport | null>): Promise<SyncReport | null> {
    this.config(name); // an unknown name throws, naming those configured
    // The lease is per instance and re-entrant (a renewal is an acquire), so it cannot tell this
    // instance's running sync from a second request here: without this guard the second one would
    // get the running sync's report (even for a dry run) and release the lease under it.
    if (this.leased.has(name)) return null;
    this.leased.add(name);
    try {
      const leaseMs = this.options.leaseMs ?? 60_000;
      if (!(await this.options.state.acquireLease(name, this.holder, leaseMs))) {
        this.options.log.debug('connector: another instance holds the lease', { connector: name });
        return null;
      }
      // Renewed while the sync runs, so a long sync keeps it and a dead instance loses it.
      const renew = setInterval(() => void this.options.state.acquireLease(name, this.holder, leaseMs).catch(() => undefined), leaseMs / 3);
      renew.unref();
      try {
        const report = await run();
        if (report) {
          this.options.metrics?.onSync(name, report);
          await this.refreshStatus(name);
        }
        return report;
      } finally {
        clearInterval(renew);
        await this.options.state.releaseLease(name, this.holder).catch(() => undefined);
      }
    } finally {
      this.leased.delete(name);
    }
  }

  private async refreshStatuses(): Promise<void> {
    await Promise.all(this.options.connectors().map((c) => this.refreshStatus(c.name)));
  }

  private async refreshStatus(name: string): Promise<void> {
    try {
      this.statuses.set(name, await this.options.state.getStatus(name));
    } catch (err) {
      // Keep the last status read: the store being down is its own fault, not the source's.
      this.options.log.debug('connector status unreadable', { connector: name, error: errorText(err) });
    }
    this.judgeStaleness(name);
  }

  private judgeStaleness(name: string): void {
    const config = this.options.connectors().find((c) => c.name === name);
    if (!config) return;
    const status = this.statuses.get(name);
    const last = status?.lastSuccessAt ? Date.parse(status.lastSuccessAt) : NaN;
    // Never synced: nothing of it is stored, so there is nothing to be stale.
    const stale = !Number.isNaN(last) && this.now() - last > config.staleAfterSeconds * 1000;
    this.options.metrics?.onStatus(name, status ?? null, stale);
    if (stale && !this.staleNow.has(name)) {
      this.staleNow.add(name);
      const details = {
        connector: name,
        lastSuccessAt: status?.lastSuccessAt,
        lastError: status?.error,
        rule: config.onStaleSource,
        effect: config.onStaleSource === 'last-known' ? 'its devices are judged on their last known state' : 'its devices count as stale reports (unknown)',
      };
      this.options.log.warn('connector source is stale: no complete sync within staleAfterSeconds', details);
      this.options.alert('connector-stale', details);
    } else if (!stale && this.staleNow.delete(name)) {
      this.options.log.info('connector source is current again', { connector: name });
    }
  }

  /** For the policy engine: how current a record `source` is, when a configured connector wrote it. */
  freshness(source: string): SourceFreshness | undefined {
    for (const config of this.options.connectors()) {
      if (sourceName(config.name) !== source) continue;
      const status = this.statuses.get(config.name);
      if (!status?.lastSuccessAt) return undefined;
      return { syncedAt: status.lastSuccessAt, stale: this.staleNow.has(config.name), onStale: config.onStaleSource };
    }
    return undefined;
  }

  /** One line per connector for /readyz (details; a stale source does not make the instance unready). */
  readiness(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const config of this.options.connectors()) {
      const status = this.statuses.get(config.name);
      if (!config.enabled) out[config.name] = 'disabled';
      else if (!status) out[config.name] = 'never synced';
      else if (this.staleNow.has(config.name)) out[config.name] = `stale: no complete sync since ${status.lastSuccessAt} (${config.onStaleSource})`;
      else out[config.name] = status.result === 'held' ? 'ok (a sync is held)' : 'ok';
    }
    return out;
  }

  async views(): Promise<ConnectorView[]> {
    await this.refreshStatuses();
    return Promise.all(
      this.options.connectors().map(async (config) => ({
        config,
        status: this.statuses.get(config.name) ?? null,
        stale: this.staleNow.has(config.name),
        held: (await this.options.state.getHeld(config.name).catch(() => null)) !== null,
      })),
    );
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.stopController.abort();
    for (const name of [...this.timers.keys()]) this.unschedule(name);
    if (this.statusPoll) clearInterval(this.statusPoll);
    await Promise.allSettled([...this.inFlight]);
  }
}

/** What the admin API (GET /v1/connectors, sync, apply) and so the CLI reach of the runner. */
export function connectorOperations(runner: ConnectorRunner): ConnectorOperations {
  return {
    async list() {
      return (await runner.views()).map(({ config, status, stale, held }) => ({
        name: config.name,
        type: config.type,
        enabled: config.enabled,
        intervalSeconds: config.intervalSeconds,
        staleAfterSeconds: config.staleAfterSeconds,
        onStaleSource: config.onStaleSource,
        stale,
        held,
        status,
      }));
    },
    sync: (name, { dryRun }) => runner.syncWithLease(name, { dryRun }),
    applyHeld: (name) => runner.applyHeld(name),
  };
}

/**
 * The sync guard's question — would the policy in force deny this device's login? — answered by
 * the engine as `policy simulate` does: an IMAP login with a strong identity, no exemptions.
 */
export function policyJudge(
  policy: () => CompiledPolicy,
  config: () => MailwardenConfig,
  sourceFreshness: (source: string) => SourceFreshness | undefined,
): (record: DeviceRecord | null) => Promise<boolean> {
  return async (record) => {
    const user = record?.user ?? 'nobody';
    const facts: StoredFacts = { device: record ? { state: 'found', record } : { state: 'missing' }, exemptions: [], firstSeen: {}, killSwitch: false };
    const { decision } = await evaluatePolicy(
      policy(),
      { user, deviceId: record?.deviceId ?? 'unknown', protocol: 'imap', identitySource: 'app-password', identityStrength: 'strong', trigger: 'connector' },
      facts,
      { now: new Date(), maxReportAgeHours: config().store.maxReportAgeHours, groups: groupsOf(config().groups, user), brakeReportOnly: new Set(), refId: 'CONNECTOR-SYNC', sourceFreshness },
    );
    return decision.action !== 'allow';
  };
}
