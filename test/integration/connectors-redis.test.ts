// The connectors' Redis bookkeeping against a real redis-server: the lease lets one holder at a
// time, owned-device entries survive a round trip through HSCAN, status and held diff are shared.
import { Redis } from 'ioredis';
import { RedisDeviceStore } from '../../src/store/redis/store';
import { RedisConnectorState } from '../../src/store/redis/connector-state';
import type { RedisConfig } from '../../src/core/config-types';
import { startRedis, cleanupRedis, type RedisServer } from '../harness/redis';

let redis: RedisServer;
let config: RedisConfig;
let store: RedisDeviceStore;
let a: RedisConnectorState;
let b: RedisConnectorState;

beforeAll(async () => {
  redis = await startRedis();
  config = { mode: 'standalone', host: redis.host, port: redis.port, keyPrefix: 'mwc:', commandTimeoutMs: 1000, connectTimeoutMs: 1000 };
  store = new RedisDeviceStore({ redis: config, auditMaxLen: 100 });
  await store.waitReady(2000);
  a = new RedisConnectorState(config, store);
  b = new RedisConnectorState(config, store);
});
afterAll(async () => {
  await Promise.all([a.close(), b.close(), store.close()]);
  await cleanupRedis(redis);
});

test('one lease holder at a time; it renews its own lease and releases only its own', async () => {
  expect(await a.acquireLease('intune', 'instance-a', 2000)).toBe(true);
  expect(await b.acquireLease('intune', 'instance-b', 2000)).toBe(false);
  expect(await a.acquireLease('intune', 'instance-a', 2000)).toBe(true);
  await b.releaseLease('intune', 'instance-b');
  expect(await b.acquireLease('intune', 'instance-b', 2000)).toBe(false);
  await a.releaseLease('intune', 'instance-a');
  expect(await b.acquireLease('intune', 'instance-b', 100)).toBe(true);
  await new Promise((r) => setTimeout(r, 150));
  // An expired lease (a dead instance) is free again.
  expect(await a.acquireLease('intune', 'instance-a', 2000)).toBe(true);
});

test('owned devices: 2,500 entries through HSCAN, updates and removals', async () => {
  const set = new Map(Array.from({ length: 2500 }, (_, i) => [`dev-${i}`, { hash: `h${i}`, absent: i % 3, writtenAtMs: 1700000000000 + i }] as const));
  await a.saveOwned('jamf', set, []);
  const loaded = await b.loadOwned('jamf');
  expect(loaded.size).toBe(2500);
  expect(loaded.get('dev-42')).toEqual({ hash: 'h42', absent: 0, writtenAtMs: 1700000000042 });
  await a.saveOwned('jamf', new Map([['dev-1', { hash: 'new', absent: 0, writtenAtMs: 1 }]]), ['dev-2', 'dev-3']);
  const after = await b.loadOwned('jamf');
  expect(after.size).toBe(2498);
  expect(after.get('dev-1')?.hash).toBe('new');
  expect(after.has('dev-2')).toBe(false);
});

test('status and held diff are shared between instances', async () => {
  expect(await b.getStatus('fleet')).toBeNull();
  await a.putStatus({ connector: 'fleet', lastAttemptAt: '2026-12-03T08:00:00Z', lastSuccessAt: '2026-12-03T08:00:00Z', result: 'applied', durationSeconds: 1.5, devicesSeen: 3, skipped: 0 });
  expect(await b.getStatus('fleet')).toMatchObject({ result: 'applied', devicesSeen: 3 });
  await a.putHeld('fleet', '{"diff":1}');
  expect(await b.getHeld('fleet')).toBe('{"diff":1}');
  await b.putHeld('fleet', null);
  expect(await a.getHeld('fleet')).toBeNull();
});

test('refreshing TTLs extends records without rewriting them', async () => {
  const now = new Date().toISOString();
  await store.putDevice({ deviceId: 'ttl-1', user: 'alice@example.com', platform: 'ios', osVersion: '17.5', managed: true, apps: [], reportedAt: now, receivedAt: now, source: 'connector:intune' }, 10);
  await a.refreshDeviceTtl(['ttl-1'], 3600);
  const raw = new Redis({ host: redis.host, port: redis.port });
  const ttl = await raw.ttl('mwc:device:{ttl-1}');
  raw.disconnect();
  expect(ttl).toBeGreaterThan(3000);
});
