// The cache in front of a real Redis shared by two store instances (as two proxy instances would
// share it), createStore's start-up behaviour, and last-known state during a real Redis outage.
import winston from 'winston';
import Transport from 'winston-transport';
import type { StoreConfig } from '../../src/core/config-types';
import { createLogger } from '../../src/core/log';
import { CachedDeviceStore } from '../../src/store/cached-store';
import { createStore } from '../../src/store/create-store';
import { StoreUnavailableError } from '../../src/store/device-store';
import { RedisDeviceStore } from '../../src/store/redis/store';
import { freePort } from '../harness/ports';
import { cleanupRedis, startRedis, type RedisServer } from '../harness/redis';
import { nextEvent, record, subscribed, waitUntil } from './store-contract';

let server: RedisServer;
beforeAll(async () => {
  server = await startRedis();
});
afterAll(async () => {
  await cleanupRedis(server);
});

/** A logger whose entries the test can read. */
function capturingLogger(): { log: winston.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  class Capture extends Transport {
    override log(info: Record<string, unknown>, next: () => void): void {
      lines.push(info);
      next();
    }
  }
  return { log: createLogger({ silent: true, transports: [new Capture()] }), lines };
}

function storeConfig(keyPrefix: string, port = server.port): StoreConfig {
  return {
    type: 'redis',
    redis: { mode: 'standalone', host: '127.0.0.1', port, keyPrefix, commandTimeoutMs: 200, connectTimeoutMs: 500, password: 'not-logged-secret' },
    recordTtlHours: 1,
    maxReportAgeHours: 24,
    auditMaxLen: 100,
    cache: { maxEntries: 100, maxAgeMs: 60_000 },
    outageLastKnownMaxSeconds: 300,
    auditBufferMax: 10000,
  };
}

test('a change written by a second instance invalidates the first instance cache', async () => {
  // The password in the config is refused by a server without one, so connect without it here.
  const config = { ...storeConfig('shared:'), redis: { ...storeConfig('shared:').redis!, password: undefined } };
  const { log } = capturingLogger();
  const first = await createStore(config, log);
  const second = new RedisDeviceStore({ redis: config.redis!, auditMaxLen: 100 });
  expect(await second.waitReady(5000)).toBe(true);
  await subscribed(first);

  const delivered = nextEvent(first, (e) => e.kind === 'device');
  await second.putDevice(record('dev-1'), 600);
  await delivered; // the cache's own listener (subscribed earlier) has run by now
  let facts = await first.loadFacts('dev-1', 'alice@example.com', []);
  expect(facts.device?.state === 'found' && facts.device.record.apps).toContain('com.zhiliaoapp.musically');
  await first.loadFacts('dev-1', 'alice@example.com', []);
  expect(first.stats().hits).toBe(1);

  // Instance two: the device removed the banned app. Instance one's cache (maxAge 60 s) must not keep it.
  await second.putDevice(record('dev-1', { apps: ['com.apple.mobilemail'], reportedAt: '2026-01-10T11:00:00Z' }), 600);
  await waitUntil(() => first.stats().entries === 0);
  facts = await first.loadFacts('dev-1', 'alice@example.com', []);
  expect(facts.device?.state === 'found' && facts.device.record.apps).toEqual(['com.apple.mobilemail']);

  // A user exemption written by instance two reaches instance one the same way.
  await first.loadFacts('dev-1', 'alice@example.com', []);
  const until = new Date(Date.now() + 60_000).toISOString();
  await second.putExemption({ scope: 'user', subject: 'alice@example.com', expiresAt: until, note: '', createdBy: 'ops', createdAt: new Date().toISOString() });
  await waitUntil(() => first.stats().entries === 0);
  expect((await first.loadFacts('dev-1', 'alice@example.com', [])).exemptions).toHaveLength(1);
  await second.close();
  await first.close();
});

test('Redis outage: last-known facts within the bound (marked), refused after it; reconnect clears the cache', async () => {
  let now = Date.now();
  const inner = new RedisDeviceStore({ redis: { ...storeConfig('outage:').redis!, password: undefined }, auditMaxLen: 100 });
  expect(await inner.waitReady(5000)).toBe(true);
  const cache = new CachedDeviceStore(inner, { maxEntries: 10, maxAgeMs: 1000, outageLastKnownMaxSeconds: 30, now: () => now });
  await cache.start();
  await subscribed(cache);
  const delivered = nextEvent(cache, (e) => e.kind === 'device');
  await inner.putDevice(record('dev-1'), 600);
  await delivered;
  const live = await cache.loadFacts('dev-1', 'alice@example.com', ['banned-apps']);
  expect(live.device?.state).toBe('found');

  await server.stop();
  now += 29_000;
  const started = performance.now();
  expect(await cache.loadFacts('dev-1', 'alice@example.com', ['banned-apps'])).toEqual({ ...live, fromLastKnown: true });
  expect(performance.now() - started).toBeLessThan(250);
  await expect(cache.loadFacts('dev-2', 'alice@example.com', ['banned-apps'])).rejects.toBeInstanceOf(StoreUnavailableError);
  now += 1_000;
  await expect(cache.loadFacts('dev-1', 'alice@example.com', ['banned-apps'])).rejects.toBeInstanceOf(StoreUnavailableError);

  await server.start();
  await waitUntil(() => cache.stats().entries === 0, 10_000);
  // Back: the restarted (empty) Redis is the truth; the old record is not resurrected.
  expect((await cache.loadFacts('dev-1', 'alice@example.com', ['banned-apps'])).device).toEqual({ state: 'missing' });
  await cache.close();
});

test('createStore with Redis down starts anyway within the bound, logs it (without the password), and tempfails', async () => {
  const { log, lines } = capturingLogger();
  const nobody = await freePort();
  const started = Date.now();
  const store = await createStore(storeConfig('down:', nobody), log);
  expect(Date.now() - started).toBeLessThan(3000);
  await expect(store.loadFacts('dev-1', 'u', [])).rejects.toBeInstanceOf(StoreUnavailableError);
  await expect(store.ping()).rejects.toBeInstanceOf(StoreUnavailableError);
  expect(lines.some((l) => l.level === 'error' && /not reachable at start/.test(String(l.message)))).toBe(true);
  expect(JSON.stringify(lines)).not.toContain('not-logged-secret');
  await store.close();
});

test('createStore with the memory type warns loudly and works', async () => {
  const { log, lines } = capturingLogger();
  const store = await createStore({ ...storeConfig('x:'), type: 'memory', redis: undefined }, log);
  expect(store.kind).toBe('memory');
  expect(lines.some((l) => l.level === 'warn' && /embedded in-memory store: single instance/.test(String(l.message)))).toBe(true);
  await store.putDevice(record('dev-1'), 60);
  expect((await store.loadFacts('dev-1', 'alice@example.com', [])).device?.state).toBe('found');
  await store.close();
});
