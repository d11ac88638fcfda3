// The connector bookkeeping port kept in process memory (tests, and `store.type: memory`).
import type { DeviceLookup, DeviceRecord } from '../core/device-record';
import type { ConnectorStatePort, ConnectorStatus, OwnedDevice } from '../core/connector-state';

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
