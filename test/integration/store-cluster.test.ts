// Smoke test of RedisDeviceStore in Cluster mode against a real 3-master Redis Cluster: device
// writes, the one-round-trip loadFacts across slots, SCAN over every master, and change events.
import { KILL_SWITCH_FLAG, type ChangeEvent } from '../../src/store/device-store';
import { Redis } from 'ioredis';
import { RedisDeviceStore } from '../../src/store/redis/store';
import { startRedisCluster, type RedisCluster } from '../harness/redis-cluster';
import { record, subscribed, waitUntil } from './store-contract';

let cluster: RedisCluster;
let store: RedisDeviceStore;

beforeAll(async () => {
  cluster = await startRedisCluster();
  store = new RedisDeviceStore({
    redis: { mode: 'cluster', nodes: cluster.nodes, keyPrefix: 'mw:', commandTimeoutMs: 500, connectTimeoutMs: 2000 },
    auditMaxLen: 100,
  });
  expect(await store.waitReady(10000)).toBe(true);
});

afterAll(async () => {
  await store?.close();
  await cluster?.stop();
});

test('putDevice, loadFacts and listDevices work across the slots of a 3-master cluster', async () => {
  const ids = Array.from({ length: 30 }, (_, i) => `dev-${i}`);
  for (const id of ids) expect(await store.putDevice(record(id, { user: `user-${id}@example.com` }), 600)).toBe(true);
  expect(await store.putDevice(record('dev-0', { user: 'user-dev-0@example.com', reportedAt: '2026-01-01T00:00:00Z' }), 600)).toBe(false);

  await store.markFirstSeenNoncompliant('dev-7', 'banned-apps', 777);
  await store.setFlag(KILL_SWITCH_FLAG, '1');
  const until = new Date(Date.now() + 60_000).toISOString();
  const ex = { scope: 'user' as const, subject: 'user-dev-7@example.com', expiresAt: until, note: '', createdBy: 'ops', createdAt: new Date().toISOString() };
  await store.putExemption(ex);

  // Record, device exemption and first-seen (device slot), user exemption (user slot), flag (its own slot).
  const facts = await store.loadFacts('dev-7', 'user-dev-7@example.com', ['banned-apps']);
  expect(facts).toEqual({
    device: { state: 'found', record: record('dev-7', { user: 'user-dev-7@example.com' }) },
    exemptions: [ex],
    firstSeen: { 'banned-apps': 777 },
    killSwitch: true,
  });

  // The keys really are spread over the masters, and SCAN visits every one of them.
  const perMaster = await recordsPerMaster();
  expect(perMaster.every((n) => n > 0)).toBe(true);
  expect(perMaster.reduce((a, b) => a + b, 0)).toBe(ids.length);
  expect((await store.listDevices()).map((r) => r.deviceId).sort()).toEqual([...ids].sort());
  expect(await store.listUserDevices('user-dev-3@example.com')).toEqual(['dev-3']);
  expect(await store.listExemptions()).toEqual([ex]);
});

test('app passwords and change events work in cluster mode', async () => {
  const events: ChangeEvent[] = [];
  await store.subscribe((e) => events.push(e));
  await subscribed(store);
  await store.putDevice(record('dev-ev', { reportedAt: new Date().toISOString() }), 600);
  await waitUntil(() => events.some((e) => e.kind === 'device' && e.deviceId === 'dev-ev'));

  await store.putAppPassword({ credentialId: 'k1', user: 'u', deviceId: 'dev-ev', hash: 'aa', createdAt: '2026-01-01T00:00:00Z' });
  await store.putAppPassword({ credentialId: 'k2', user: 'u', deviceId: 'dev-ev', hash: 'bb', createdAt: '2026-01-01T00:00:00Z' });
  expect((await store.getAppPassword('k2'))?.hash).toBe('bb');
  expect(await store.removeAppPasswords('dev-ev')).toBe(2);
  expect(await store.getAppPassword('k1')).toBeNull();
});

/** How many device records each master holds (a plain connection to every node). */
async function recordsPerMaster(): Promise<number[]> {
  return Promise.all(
    cluster.nodes.map(async ({ host, port }) => {
      const node = new Redis({ host, port });
      try {
        return (await node.keys('mw:device:*')).length;
      } finally {
        node.disconnect();
      }
    }),
  );
}
