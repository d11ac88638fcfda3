// The diff of one sync, computed in full before anything is written: which devices are created,
// changed, withdrawn (listed but unusable) or removed (absent from enough complete syncs in a row),
// and the bookkeeping that goes with it. Pure: inventory + what the connector owns → diff.
import { createHash } from 'node:crypto';
import type { DeviceRecord } from '../core/device-record';
import type { Inventory, SkippedItem, SourceDevice } from './contract';
import type { OwnedDevice } from '../core/connector-state';

export interface SyncDiff {
  readonly connector: string;
  /** ISO time of the sync: reportedAt of every record it writes. */
  readonly at: string;
  readonly created: readonly DeviceRecord[];
  readonly changed: readonly DeviceRecord[];
  /** Absent from `removeAfterAbsentSyncs` complete syncs, or listed but malformed now. */
  readonly removed: readonly string[];
  /** Bookkeeping written with the diff (hash, absence counts, write times). */
  readonly owned: ReadonlyMap<string, OwnedDevice>;
  /** Unchanged records whose TTL is refreshed (written more than half a TTL ago). */
  readonly refreshTtl: readonly string[];
  readonly skipped: readonly SkippedItem[];
  /** Devices the source listed (mapped), per platform. */
  readonly seenByPlatform: Readonly<Record<string, number>>;
  /** Devices absent this time but not yet removed. */
  readonly absentNotRemoved: number;
  /** Devices the connector owned before this sync. */
  readonly ownedBefore: number;
}

export interface DiffOptions {
  readonly connector: string;
  readonly now: Date;
  readonly removeAfterAbsentSyncs: number;
  readonly recordTtlSeconds: number;
}

/**
 * The content that decides "changed": everything mapped except the times. The JSON is built in a
 * fixed key order (the order earlier versions hashed: a different order would make every device
 * look changed once after an upgrade); undefined lists are left out by JSON.stringify.
 */
export function contentHash(device: SourceDevice): string {
  const { deviceId, user, platform, osVersion, managed, ownership, apps, appNames } = device;
  const content = JSON.stringify({ deviceId, user, platform, osVersion, managed, ownership, apps, appNames });
  return createHash('sha256').update(content).digest('base64url').slice(0, 22);
}

export function sourceName(connector: string): string {
  return `connector:${connector}`;
}

/** The stored record: one complete object literal per shape (see mapping.ts sourceDevice: size). */
export function toRecord(device: SourceDevice, source: string, at: string): DeviceRecord {
  const { deviceId, user, platform, osVersion, managed, ownership, apps, appNames } = device;
  return apps === undefined
    ? { deviceId, user, platform, osVersion, managed, ownership, reportedAt: at, receivedAt: at, source }
    : { deviceId, user, platform, osVersion, managed, ownership, apps, appNames, reportedAt: at, receivedAt: at, source };
}

export function computeDiff(inventory: Inventory, owned: ReadonlyMap<string, OwnedDevice>, options: DiffOptions): SyncDiff {
  const at = options.now.toISOString();
  const nowMs = options.now.getTime();
  const refreshAfterMs = (options.recordTtlSeconds * 1000) / 2;
  const created: DeviceRecord[] = [];
  const changed: DeviceRecord[] = [];
  const removed: string[] = [];
  const refreshTtl: string[] = [];
  const nextOwned = new Map<string, OwnedDevice>();
  const seenByPlatform: Record<string, number> = {};
  const listed = new Set<string>();
  const source = sourceName(options.connector);

  for (const device of inventory.devices) {
    listed.add(device.deviceId);
    seenByPlatform[device.platform] = (seenByPlatform[device.platform] ?? 0) + 1;
    const hash = contentHash(device);
    const before = owned.get(device.deviceId);
    if (!before) created.push(toRecord(device, source, at));
    else if (before.hash !== hash) changed.push(toRecord(device, source, at));
    else {
      if (nowMs - before.writtenAtMs > refreshAfterMs) {
        refreshTtl.push(device.deviceId);
        nextOwned.set(device.deviceId, { ...before, absent: 0, writtenAtMs: nowMs });
      } else if (before.absent !== 0) nextOwned.set(device.deviceId, { ...before, absent: 0 });
      continue;
    }
    nextOwned.set(device.deviceId, { hash, absent: 0, writtenAtMs: nowMs });
  }

  // A device the source lists but cannot describe counts as unknown at once: its record goes.
  const withdrawn = new Set(inventory.skipped.map((s) => s.deviceId).filter((id): id is string => id !== undefined && !listed.has(id)));
  let absentNotRemoved = 0;
  for (const [deviceId, entry] of owned) {
    if (listed.has(deviceId)) continue;
    const absent = entry.absent + 1;
    if (withdrawn.has(deviceId) || absent >= options.removeAfterAbsentSyncs) removed.push(deviceId);
    else {
      absentNotRemoved++;
      nextOwned.set(deviceId, { ...entry, absent });
    }
  }

  return {
    connector: options.connector,
    at,
    created,
    changed,
    removed,
    owned: nextOwned,
    refreshTtl,
    skipped: inventory.skipped,
    seenByPlatform,
    absentNotRemoved,
    ownedBefore: owned.size,
  };
}

/** The diff as JSON (a held diff is stored so that `connector apply --force` applies exactly it). */
export function diffToJson(diff: SyncDiff): string {
  return JSON.stringify({ ...diff, owned: [...diff.owned] });
}

export function diffFromJson(text: string): SyncDiff {
  const parsed = JSON.parse(text) as Omit<SyncDiff, 'owned'> & { owned: [string, OwnedDevice][] };
  return { ...parsed, owned: new Map(parsed.owned) };
}
