// Test doubles for the connector tests: the device slice of the store as a plain map.
import type { DeviceLookup, DeviceRecord } from '../../src/store/device-store';

/** The device slice of the store: a map, so the test sees exactly what was written. */
export function deviceMap<R extends DeviceRecord = DeviceRecord>() {
  const records = new Map<string, R>();
  return {
    records,
    async getDevices(ids: readonly string[]): Promise<DeviceLookup[]> {
      return ids.map((id) => (records.has(id) ? { state: 'found' as const, record: records.get(id)! } : { state: 'missing' as const }));
    },
    async putDevice(record: DeviceRecord) {
      records.set(record.deviceId, record as R);
      return true;
    },
    async deleteDevice(id: string) {
      records.delete(id);
    },
  };
}
