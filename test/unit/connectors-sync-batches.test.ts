// The sync engine over more devices than one batch: stored records are read for the guard in
// bounded batches (never one giant read), every device across the batch edges is judged, and writes
// run with a bounded number in flight — and a failed write stops the apply before the bookkeeping
// and is reported as a failed sync, not thrown at the caller.
import type { Connector, Inventory, SourceDevice } from '../../src/connectors/contract';
import { SyncEngine } from '../../src/connectors/sync';
import { MemoryConnectorState } from '../../src/store/memory-connector-state';
import type { DeviceRecord } from '../../src/store/device-store';
import { silentLogger } from '../../src/core/log';
import { deviceMap } from './connector-fakes';

const FLEET = 2_500;

function phone(i: number, apps: string[] = ['Outlook']): SourceDevice {
  return { deviceId: `d${i}`, user: `user${i}@example.com`, platform: 'ios', osVersion: '17.5.1', managed: true, ownership: 'company', apps: [], appNames: apps };
}

/** A source that lists whatever the test put in `devices` (no HTTP: this is about the engine). */
function source(devices: SourceDevice[]): Connector {
  return { name: 'mdm', type: 'intune', listDevices: async (): Promise<Inventory> => ({ devices: [...devices], skipped: [] }) };
}

function setup(devices: SourceDevice[]) {
  const records = deviceMap();
  const reads: number[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  let failAt: string | null = null;
  const store = {
    ...records,
    async getDevices(ids: readonly string[]) {
      reads.push(ids.length);
      return records.getDevices(ids);
    },
    async putDevice(record: DeviceRecord) {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      await new Promise((r) => setImmediate(r));
      inFlight--;
      if (record.deviceId === failAt) throw new Error('store down');
      return records.putDevice(record);
    },
  };
  const state = new MemoryConnectorState(store);
  const engine = new SyncEngine({
    connector: source(devices),
    state,
    settings: () => ({ removeAfterAbsentSyncs: 3, recordTtlSeconds: 86400, syncTimeoutMs: 10_000, maxRemovedPercent: 10, maxInventoryLostPercent: 10 }),
    blastRadius: () => ({ maxNewlyDeniedPercent: 50, maxNewlyDeniedCount: 100 }),
    isDenied: async (record) => record === null || (record.appNames ?? []).includes('TikTok'),
    log: silentLogger(),
  });
  return { records, state, engine, reads, maxInFlight: () => maxInFlight, failOn: (id: string) => (failAt = id) };
}

test('2,500 devices: reads of stored records in batches of at most 1,000; writes 64 at a time, not one by one', async () => {
  const devices = Array.from({ length: FLEET }, (_, i) => phone(i));
  const { records, engine, reads, maxInFlight } = setup(devices);
  const report = await engine.sync();
  expect(report.result).toBe('applied');
  expect(report.total).toMatchObject({ seen: FLEET, created: FLEET });
  expect(records.records.size).toBe(FLEET);
  expect(reads).toEqual([1000, 1000, 500]);
  expect(maxInFlight()).toBe(64);
});

test('devices that gain TikTok on both sides of a batch edge are all judged newly denied', async () => {
  const devices = Array.from({ length: FLEET }, (_, i) => phone(i));
  const { engine } = setup(devices);
  await engine.sync();
  for (const i of [0, 999, 1000, 1999, 2000, 2499]) devices[i] = phone(i, ['Outlook', 'TikTok']);
  const report = await engine.sync();
  expect(report.result).toBe('applied');
  expect(report.total).toMatchObject({ changed: 6, newlyDenied: 6 });
  expect(report.newlyDenied.map((d) => d.deviceId)).toEqual(['d0', 'd999', 'd1000', 'd1999', 'd2000', 'd2499']);
});

test('a write that fails stops the apply: a failed sync with its status, the bookkeeping not saved, so the next sync writes again', async () => {
  const devices = Array.from({ length: FLEET }, (_, i) => phone(i));
  const { engine, state, failOn } = setup(devices);
  failOn('d1500');
  const report = await engine.sync();
  expect(report.result).toBe('failed');
  expect(report.error).toMatch(/writing the diff failed: store down/);
  expect(await state.getStatus('mdm')).toMatchObject({ result: 'failed', error: expect.stringMatching(/store down/) });
  expect((await state.loadOwned('mdm')).size).toBe(0);
  failOn('none');
  const again = await engine.sync();
  expect(again.total.created).toBe(FLEET);
});
