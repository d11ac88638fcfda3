// One connector's sync: list the whole inventory (within the per-sync timeout), compute the diff,
// judge it against the guards (newly denied within the policy's blast radius, removals and lost
// inventories within their shares), then apply it as one diff — or hold it, alert, and write nothing.
import type { Logger } from '../core/log';
import { errorText } from '../core/errors';
import { eachWithConcurrency } from '../core/concurrency';
import type { DeviceRecord } from '../core/device-record';
import type { Connector, FetchObserver } from './contract';
import { computeDiff, diffFromJson, diffToJson, type SyncDiff } from './diff';
import type { ConnectorStatePort, ConnectorStatus } from '../core/connector-state';

export interface SyncSettings {
  readonly removeAfterAbsentSyncs: number;
  readonly recordTtlSeconds: number;
  readonly syncTimeoutMs: number;
  /** Hold a sync that would remove more than this share of the devices the connector owns. */
  readonly maxRemovedPercent: number;
  /** Hold a sync in which more than this share of the owned devices lose a non-empty app inventory. */
  readonly maxInventoryLostPercent: number;
}

export interface BlastRadiusLimits {
  readonly maxNewlyDeniedPercent: number;
  readonly maxNewlyDeniedCount: number;
}

export interface SyncEngineOptions {
  readonly connector: Connector;
  readonly state: ConnectorStatePort;
  readonly settings: () => SyncSettings;
  /** The policy in force's blast-radius limits. */
  readonly blastRadius: () => BlastRadiusLimits;
  /** Would the policy in force deny a login of this device (null = no record)? */
  readonly isDenied: (record: DeviceRecord | null) => Promise<boolean>;
  readonly log: Logger;
  readonly alert?: (kind: 'connector-sync-held', details: Readonly<Record<string, unknown>>) => void;
  readonly observer?: FetchObserver;
  readonly instance?: string;
  readonly now?: () => Date;
}

/** One row of the diff table. */
export interface PlatformRow {
  readonly platform: string;
  readonly seen: number;
  readonly created: number;
  readonly changed: number;
  readonly newlyDenied: number;
  readonly removed: number;
  readonly skipped: number;
}

export interface SyncReport {
  readonly connector: string;
  readonly result: ConnectorStatus['result'];
  readonly error?: string;
  /** Why a sync was held (one sentence per guard that tripped). */
  readonly heldBecause: readonly string[];
  readonly rows: readonly PlatformRow[];
  readonly total: PlatformRow;
  readonly newlyDenied: readonly { deviceId: string; user: string; platform: string }[];
  readonly durationSeconds: number;
}

const CHUNK = 1000;
/** Device writes in flight at once (each one Redis round trip). */
const WRITE_CONCURRENCY = 64;

export class SyncEngine {
  private readonly now: () => Date;
  private running: Promise<SyncReport> | null = null;

  constructor(private readonly options: SyncEngineOptions) {
    this.now = options.now ?? (() => new Date());
  }

  get name(): string {
    return this.options.connector.name;
  }

  /** Runs one sync (a second call while one runs waits for the first and returns its report). */
  sync(opts: { dryRun?: boolean; stop?: AbortSignal } = {}): Promise<SyncReport> {
    this.running ??= this.runOnce(opts.dryRun ?? false, opts.stop).finally(() => {
      this.running = null;
    });
    return this.running;
  }

  /** Applies the held diff as it was computed (`connector apply NAME --force`). */
  async applyHeld(): Promise<SyncReport> {
    const started = Date.now();
    const name = this.name;
    const text = await this.options.state.getHeld(name);
    if (text === null) throw new Error(`connector ${name} has no held sync to apply`);
    const diff = diffFromJson(text);
    const judged = await this.judge(diff);
    const failure = await this.applyOrFailure(started, diff);
    // The held diff stays: `apply --force` can be run again once the store is back.
    if (failure) return failure;
    await this.options.state.putHeld(name, null);
    this.options.log.warn('connector: held sync applied by force', { connector: name, newlyDenied: judged.newlyDenied.length, removed: diff.removed.length });
    return this.finish(started, 'applied', diff, judged, []);
  }

  private async runOnce(dryRun: boolean, stop?: AbortSignal): Promise<SyncReport> {
    const started = Date.now();
    const { connector, state, log } = this.options;
    const settings = this.options.settings();
    const signal = AbortSignal.any([AbortSignal.timeout(settings.syncTimeoutMs), ...(stop ? [stop] : [])]);
    let diff: SyncDiff;
    try {
      diff = await this.computeFromSource(signal, settings);
    } catch (err) {
      // Failed or partial: nothing is written but the status.
      const error = errorText(err);
      log.error('connector sync failed; nothing written', { connector: connector.name, error });
      if (!dryRun) await this.writeStatus(started, 'failed', null, error);
      return { ...emptyReport(connector.name, (Date.now() - started) / 1000), result: 'failed', error };
    }

    const judged = await this.judge(diff);
    const heldBecause = this.guard(diff, judged);
    if (dryRun) return this.finish(started, 'dry-run', diff, judged, heldBecause);
    if (heldBecause.length > 0) {
      await state.putHeld(connector.name, diffToJson(diff));
      const details = { connector: connector.name, reasons: heldBecause, command: `mailwarden connector apply ${connector.name} --force` };
      log.error('connector sync held by its guard; nothing written', details);
      this.options.alert?.('connector-sync-held', details);
      await this.writeStatus(started, 'held', diff, heldBecause.join('; '));
      return this.finish(started, 'held', diff, judged, heldBecause);
    }
    const failure = await this.applyOrFailure(started, diff);
    if (failure) return failure;
    await state.putHeld(connector.name, null);
    await this.writeStatus(started, 'applied', diff);
    log.info('connector sync applied', {
      connector: connector.name,
      created: diff.created.length,
      changed: diff.changed.length,
      removed: diff.removed.length,
      skipped: diff.skipped.length,
      newlyDenied: judged.newlyDenied.length,
    });
    return this.finish(started, 'applied', diff, judged, []);
  }

  /**
   * The whole listing, then its diff against what the connector owns. Its own method so that the
   * inventory (every mapped device) is garbage once the diff exists: only the diff is kept.
   */
  private async computeFromSource(signal: AbortSignal, settings: SyncSettings): Promise<SyncDiff> {
    const { connector, state } = this.options;
    const inventory = await connector.listDevices({ signal, observer: this.options.observer });
    if (signal.aborted) throw new Error(`sync took longer than ${settings.syncTimeoutMs} ms`);
    const owned = await state.loadOwned(connector.name);
    return computeDiff(inventory, owned, {
      connector: connector.name,
      now: this.now(),
      removeAfterAbsentSyncs: settings.removeAfterAbsentSyncs,
      recordTtlSeconds: settings.recordTtlSeconds,
    });
  }

  /**
   * Before/after under the policy in force, for every device the diff touches: their stored records
   * are read CHUNK at a time and judged chunk by chunk, so no more than CHUNK old records are held.
   */
  private async judge(diff: SyncDiff): Promise<Judged> {
    const newlyDenied: Judged['newlyDenied'] = [];
    let inventoryLost = 0;
    const removedPlatforms = new Map<string, string>();
    // "No record" is judged once per sync: it carries nothing that differs from device to device.
    let deniedWithoutRecord: Promise<boolean> | null = null;
    const isDenied = (record: DeviceRecord | null) => (record ? this.options.isDenied(record) : (deniedWithoutRecord ??= this.options.isDenied(null)));
    const check = async (deviceId: string, old: DeviceRecord | null, after: DeviceRecord | null) => {
      if (after === null && old) removedPlatforms.set(deviceId, old.platform);
      if (hasInventory(old) && !hasInventory(after)) inventoryLost++;
      if (!(await isDenied(old)) && (await isDenied(after))) {
        const shown = after ?? old!;
        newlyDenied.push({ deviceId, user: shown.user, platform: shown.platform });
      }
    };
    const lists: readonly (readonly DeviceRecord[] | readonly string[])[] = [diff.created, diff.changed, diff.removed];
    for (const list of lists) {
      for (let i = 0; i < list.length; i += CHUNK) {
        const chunk = list.slice(i, i + CHUNK);
        const ids = chunk.map((item) => (typeof item === 'string' ? item : item.deviceId));
        const lookups = await this.options.state.getDevices(ids);
        for (let j = 0; j < chunk.length; j++) {
          const lookup = lookups[j]!;
          const item = chunk[j]!;
          await check(ids[j]!, lookup.state === 'found' ? lookup.record : null, typeof item === 'string' ? null : item);
        }
      }
    }
    return { newlyDenied, inventoryLost, removedPlatforms };
  }

  private guard(diff: SyncDiff, judged: Judged): string[] {
    const settings = this.options.settings();
    const limits = this.options.blastRadius();
    const reasons: string[] = [];
    const owned = diff.ownedBefore;
    const fleet = owned + diff.created.length;
    const pct = (n: number, of: number) => (of === 0 ? 0 : (n / of) * 100);
    const denied = judged.newlyDenied.length;
    if (denied > 0 && (denied > limits.maxNewlyDeniedCount || pct(denied, fleet) > limits.maxNewlyDeniedPercent)) {
      reasons.push(
        `it would newly deny ${denied} of ${fleet} devices (${pct(denied, fleet).toFixed(1)}%); the policy's blast-radius limit is ` +
          `${limits.maxNewlyDeniedPercent}% or ${limits.maxNewlyDeniedCount} devices`,
      );
    }
    const removed = diff.removed.length;
    if (removed > 0 && pct(removed, owned) > settings.maxRemovedPercent) {
      reasons.push(`it would remove ${removed} of ${owned} devices (${pct(removed, owned).toFixed(1)}%); the limit is ${settings.maxRemovedPercent}%`);
    }
    const lost = judged.inventoryLost;
    if (lost > 0 && pct(lost, owned) > settings.maxInventoryLostPercent) {
      reasons.push(
        `${lost} of ${owned} devices (${pct(lost, owned).toFixed(1)}%) would lose their whole app inventory at once — ` +
          `an API change looks likelier than ${lost} uninstalls; the limit is ${settings.maxInventoryLostPercent}%`,
      );
    }
    return reasons;
  }

  /**
   * Applies the diff; a write that fails (the store went away mid-apply) ends it as a failed sync
   * with its status, not an exception. Some records may be written by then; the bookkeeping is not,
   * so the next sync sees the same changes and writes them again.
   */
  private async applyOrFailure(started: number, diff: SyncDiff): Promise<SyncReport | null> {
    try {
      await this.apply(diff);
      return null;
    } catch (err) {
      const error = `writing the diff failed: ${errorText(err)} (records written before the failure stay; the next sync writes the rest)`;
      this.options.log.error('connector sync failed while writing', { connector: this.name, error });
      await this.writeStatus(started, 'failed', diff, error);
      return { ...emptyReport(this.name, (Date.now() - started) / 1000), result: 'failed', error };
    }
  }

  private async apply(diff: SyncDiff): Promise<void> {
    const { state } = this.options;
    const ttl = this.options.settings().recordTtlSeconds;
    await eachWithConcurrency(diff.removed, WRITE_CONCURRENCY, (id) => state.deleteDevice(id));
    await eachWithConcurrency(diff.created, WRITE_CONCURRENCY, (record) => state.putDevice(record, ttl));
    await eachWithConcurrency(diff.changed, WRITE_CONCURRENCY, (record) => state.putDevice(record, ttl));
    for (let i = 0; i < diff.refreshTtl.length; i += CHUNK) await state.refreshDeviceTtl(diff.refreshTtl.slice(i, i + CHUNK), ttl);
    // Bookkeeping last: if a write above failed, the next sync sees the same changes and writes them again.
    await state.saveOwned(diff.connector, diff.owned, diff.removed);
  }

  private async writeStatus(started: number, result: ConnectorStatus['result'], diff: SyncDiff | null, error?: string): Promise<void> {
    const name = this.name;
    try {
      const previous = await this.options.state.getStatus(name);
      const now = this.now().toISOString();
      // A held sync read the source completely: the source is not stale, only its changes wait.
      const success = result === 'applied' || result === 'held';
      await this.options.state.putStatus({
        connector: name,
        ...(success ? { lastSuccessAt: now } : previous?.lastSuccessAt ? { lastSuccessAt: previous.lastSuccessAt } : {}),
        lastAttemptAt: now,
        result,
        ...(error ? { error } : {}),
        durationSeconds: (Date.now() - started) / 1000,
        devicesSeen: diff ? Object.values(diff.seenByPlatform).reduce((a, b) => a + b, 0) : (previous?.devicesSeen ?? 0),
        skipped: diff?.skipped.length ?? 0,
        ...(this.options.instance ? { instance: this.options.instance } : {}),
      });
    } catch (err) {
      this.options.log.error('connector: the sync status could not be stored', { connector: name, error: errorText(err) });
    }
  }

  private finish(started: number, result: SyncReport['result'], diff: SyncDiff, judged: Judged, heldBecause: string[]): SyncReport {
    const rows = new Map<string, { seen: number; created: number; changed: number; newlyDenied: number; removed: number; skipped: number }>();
    const row = (platform: string) => rows.get(platform) ?? rows.set(platform, { seen: 0, created: 0, changed: 0, newlyDenied: 0, removed: 0, skipped: 0 }).get(platform)!;
    for (const [platform, n] of Object.entries(diff.seenByPlatform)) row(platform).seen += n;
    for (const r of diff.created) row(r.platform).created++;
    for (const r of diff.changed) row(r.platform).changed++;
    for (const d of judged.newlyDenied) row(d.platform).newlyDenied++;
    for (const id of diff.removed) row(judged.removedPlatforms.get(id) ?? 'unknown').removed++;
    for (const s of diff.skipped) row(s.platform ?? 'unknown').skipped++;
    const list = [...rows].map(([platform, c]) => ({ platform, ...c })).sort((a, b) => a.platform.localeCompare(b.platform));
    const total = list.reduce(
      (t, r) => ({ ...t, seen: t.seen + r.seen, created: t.created + r.created, changed: t.changed + r.changed, newlyDenied: t.newlyDenied + r.newlyDenied, removed: t.removed + r.removed, skipped: t.skipped + r.skipped }),
      { platform: 'all', seen: 0, created: 0, changed: 0, newlyDenied: 0, removed: 0, skipped: 0 },
    );
    return { connector: this.name, result, heldBecause, rows: list, total, newlyDenied: judged.newlyDenied, durationSeconds: (Date.now() - started) / 1000 };
  }
}

interface Judged {
  readonly newlyDenied: { deviceId: string; user: string; platform: string }[];
  readonly inventoryLost: number;
  readonly removedPlatforms: ReadonlyMap<string, string>;
}

function hasInventory(record: DeviceRecord | null): boolean {
  return (record?.apps?.length ?? 0) > 0 || (record?.appNames?.length ?? 0) > 0;
}

function emptyReport(connector: string, durationSeconds: number): Omit<SyncReport, 'result'> {
  const total = { platform: 'all', seen: 0, created: 0, changed: 0, newlyDenied: 0, removed: 0, skipped: 0 };
  return { connector, heldBecause: [], rows: [], total, newlyDenied: [], durationSeconds };
}

/** The diff table `connector sync` prints: one row per platform and a total. */
export function formatSyncReport(report: SyncReport): string {
  const head =
    report.result === 'failed'
      ? `connector ${report.connector}: sync failed, nothing written: ${report.error}`
      : `connector ${report.connector}: ${report.result === 'dry-run' ? 'dry run, nothing written' : report.result === 'held' ? 'sync HELD, nothing written' : 'sync applied'} (${report.durationSeconds.toFixed(1)} s)`;
  if (report.result === 'failed') return head;
  const headers = ['platform', 'seen', 'created', 'changed', 'newly denied', 'removed', 'skipped'];
  const cells = [...report.rows, report.total].map((r) => [r.platform, ...[r.seen, r.created, r.changed, r.newlyDenied, r.removed, r.skipped].map(String)]);
  const all = [headers, ...cells];
  const widths = headers.map((_, i) => Math.max(...all.map((r) => r[i]!.length)));
  const lines = all.map((r) => r.map((v, i) => (i === 0 ? v.padEnd(widths[i]!) : v.padStart(widths[i]!))).join('  '));
  const out = [head, '', ...lines];
  if (report.heldBecause.length > 0) {
    out.push('', 'Held because:', ...report.heldBecause.map((r) => `  - ${r}`), '', `Apply it anyway with: mailwarden connector apply ${report.connector} --force`);
  } else if (report.result === 'dry-run') out.push('', 'The guards would let this sync through.');
  return out.join('\n');
}
