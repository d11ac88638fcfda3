// The DeviceStore contract against the embedded in-memory store (a fake clock makes TTLs instant).
import { MemoryDeviceStore } from '../../src/store/memory-store';
import { describeStoreContract, record } from '../integration/store-contract';

let clock = Date.parse('2026-01-10T12:00:00Z');

describeStoreContract('memory', {
  open: async () => new MemoryDeviceStore({ auditMaxLen: 20, now: () => clock }),
  now: () => clock,
  advance: async (ms) => {
    clock += ms;
  },
  auditMaxLen: 20,
  auditSlack: 0,
  shortTtlSeconds: 60,
});

describe('MemoryDeviceStore specifics', () => {
  test('first-seen times live as long as the device record, and a fallback without one', async () => {
    let now = 1_000_000;
    const store = new MemoryDeviceStore({ now: () => now, firstSeenTtlSeconds: 100 });
    await store.putDevice(record('dev-1'), 10);
    await store.markFirstSeenNoncompliant('dev-1', 'banned-apps', 5);
    await store.markFirstSeenNoncompliant('dev-none', 'require-device', 6);
    now += 11_000;
    expect(await store.getFirstSeenNoncompliant('dev-1', 'banned-apps')).toBeNull();
    expect(await store.getFirstSeenNoncompliant('dev-none', 'require-device')).toBe(6);
    now += 100_000;
    expect(await store.getFirstSeenNoncompliant('dev-none', 'require-device')).toBeNull();
  });

  test('a stored record cannot be changed through the object that was passed in or returned', async () => {
    const store = new MemoryDeviceStore();
    const apps = ['a'];
    await store.putDevice({ ...record('dev-1'), apps }, 60);
    apps.push('b');
    const got = await store.getDevice('dev-1');
    expect(got.state === 'found' && got.record.apps).toEqual(['a']);
  });
});
