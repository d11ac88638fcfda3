// The connector bookkeeping port, in the ground so connectors and stores can both name it: the
// device records the sync engine writes (a slice of the device store port) and its own state per
// connector — owned devices with a content hash and absence count, the held diff, the last sync's
// status, and the lease that lets one instance sync.
import type { DeviceLookup, DeviceRecord } from './device-record';

/** What a connector remembers about each device it wrote. */
export interface OwnedDevice {
  /** Hash of the mapped content (not the times): equal = unchanged, nothing to write. */
  readonly hash: string;
  /** Complete syncs in a row the source did not list it. */
  readonly absent: number;
  /** When its record was last written (ms epoch): the TTL is refreshed before it runs out. */
  readonly writtenAtMs: number;
}

/** The outcome of the last sync attempt, shared by every instance (staleness, `connector status`). */
export interface ConnectorStatus {
  readonly connector: string;
  /** ISO time of the last sync that completed (applied, or nothing to apply). */
  readonly lastSuccessAt?: string;
  readonly lastAttemptAt: string;
  readonly result: 'applied' | 'held' | 'failed' | 'dry-run';
  readonly error?: string;
  readonly durationSeconds: number;
  readonly devicesSeen: number;
  readonly skipped: number;
  readonly instance?: string;
}

export interface ConnectorStatePort {
  getDevices(deviceIds: readonly string[]): Promise<DeviceLookup[]>;
  /** Atomic per device: record with TTL, user index, change event (so live sessions are re-evaluated). */
  putDevice(record: DeviceRecord, ttlSeconds: number): Promise<boolean>;
  deleteDevice(deviceId: string): Promise<void>;
  /** Extends the TTL of records that did not change (no content write, no change event). */
  refreshDeviceTtl(deviceIds: readonly string[], ttlSeconds: number): Promise<void>;

  loadOwned(connector: string): Promise<Map<string, OwnedDevice>>;
  /** Sets the given entries and deletes the listed ids, in one round trip. */
  saveOwned(connector: string, set: ReadonlyMap<string, OwnedDevice>, remove: readonly string[]): Promise<void>;

  getHeld(connector: string): Promise<string | null>;
  /** null clears it. The held diff is stored as the JSON text the sync engine wrote. */
  putHeld(connector: string, diffJson: string | null): Promise<void>;

  getStatus(connector: string): Promise<ConnectorStatus | null>;
  putStatus(status: ConnectorStatus): Promise<void>;

  /** Take or extend the lease when free or already ours; false when another holder has it. */
  acquireLease(connector: string, holder: string, ttlMs: number): Promise<boolean>;
  releaseLease(connector: string, holder: string): Promise<void>;
}
