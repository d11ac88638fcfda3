// What the sync engine needs from the store: the device records it writes (a slice of the device
// store port) and its own bookkeeping per connector — the devices it owns with a content hash and
// absence count, the held diff, the last sync's status, and the lease that lets one instance sync.
import type { DeviceLookup, DeviceRecord } from '../core/device-record';

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

/** An in-process implementation over a device store (tests, and `store.type: memory`). */
export class MemoryConnectorState implements ConnectorStatePort {
  private readonly owned = new Map<string, Map<string, OwnedDevice>>();
  private readonly held = new Map<string, string>();
  private readonly statuses = new Map<string, ConnectorStatus>();
  private readonly leases = new Map<string, { holder: string; untilMs: number }>();
  /** Counts every write the engine asks for (the benchmark's "writes per changed device"). */
  readonly writes = { put: 0, delete: 0, ttl: 0, owned: 0 };

  constructor(
    private readonly devices: Pick<ConnectorStatePort, 'getDevices' | 'putDevice' | 'deleteDevice'> & {
      refreshDeviceTtl?: ConnectorStatePort['refreshDeviceTtl'];
    },
    private readonly now: () => number = Date.now,
  ) {}

  getDevices(ids: readonly string[]) {
    return this.devices.getDevices(ids);
  }
  putDevice(record: DeviceRecord, ttlSeconds: number) {
    this.writes.put++;
    return this.devices.putDevice(record, ttlSeconds);
  }
  deleteDevice(id: string) {
    this.writes.delete++;
    return this.devices.deleteDevice(id);
  }
  async refreshDeviceTtl(ids: readonly string[], ttlSeconds: number) {
    this.writes.ttl += ids.length;
    await this.devices.refreshDeviceTtl?.(ids, ttlSeconds);
  }
  async loadOwned(connector: string) {
    return new Map(this.owned.get(connector) ?? []);
  }
  async saveOwned(connector: string, set: ReadonlyMap<string, OwnedDevice>, remove: readonly string[]) {
    this.writes.owned += set.size + remove.length;
    const map = this.owned.get(connector) ?? new Map<string, OwnedDevice>();
    for (const [id, entry] of set) map.set(id, entry);
    for (const id of remove) map.delete(id);
    this.owned.set(connector, map);
  }
  async getHeld(connector: string) {
    return this.held.get(connector) ?? null;
  }
  async putHeld(connector: string, diffJson: string | null) {
    if (diffJson === null) this.held.delete(connector);
    else this.held.set(connector, diffJson);
  }
  async getStatus(connector: string) {
    return this.statuses.get(connector) ?? null;
  }
  async putStatus(status: ConnectorStatus) {
    this.statuses.set(status.connector, status);
  }
  async acquireLease(connector: string, holder: string, ttlMs: number) {
    const lease = this.leases.get(connector);
    if (lease && lease.holder !== holder && lease.untilMs > this.now()) return false;
    this.leases.set(connector, { holder, untilMs: this.now() + ttlMs });
    return true;
  }
  async releaseLease(connector: string, holder: string) {
    if (this.leases.get(connector)?.holder === holder) this.leases.delete(connector);
  }
}
