// The login throttle's counters in a real redis-server: two instances see each other's failures,
// keys carry the configured prefix, and with Redis stopped counting goes on in memory (no throw).
import Redis from 'ioredis';
import { LoginThrottle, type LoginThrottleSettings } from '../../src/admission/login-throttle';
import { createFailureCounters } from '../../src/store/failure-counters';
import { startRedis, cleanupRedis, type RedisServer } from '../harness/redis';

const SETTINGS: LoginThrottleSettings = { enabled: true, baseDelayMs: 2000, maxDelayMs: 15000, windowSeconds: 900, knownAddressDays: 30 };
let redis: RedisServer;
const clients: Redis[] = [];

function instance(): LoginThrottle {
  // Fail fast like the store's lookup client (src/store/redis/connection.ts).
  const client = new Redis({ host: redis.host, port: redis.port, enableOfflineQueue: false, maxRetriesPerRequest: 1, commandTimeout: 200, retryStrategy: () => 50 });
  client.on('error', () => undefined);
  clients.push(client);
  return new LoginThrottle(createFailureCounters({ windowSeconds: 900, redis: { client, keyPrefix: 'mwthr:' } }), () => SETTINGS, async () => undefined);
}

beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  for (const c of clients) c.disconnect();
  await cleanupRedis(redis);
});

test('failures counted by one instance delay the next login at another', async () => {
  const [a, b] = [instance(), instance()];
  await new Promise((r) => setTimeout(r, 200));
  const attacker = { remoteAddress: '192.0.2.77', username: 'carol@example.com' };
  await a.failed(attacker);
  await a.failed(attacker);
  expect(await b.verdict(attacker)).toEqual({ delayMs: 4000, scope: 'address' });
  expect(await b.verdict({ remoteAddress: '192.0.2.78', username: 'dave@example.com' })).toEqual({ delayMs: 0, scope: null });
  const keys = await clients[0]!.keys('mwthr:*');
  expect(keys.sort()).toEqual(['mwthr:login-failures:a:192.0.2.77', 'mwthr:login-failures:u:carol@example.com']);
});

test('with Redis stopped the throttle answers from memory, and Redis counts again once it is back', async () => {
  const t = instance();
  await new Promise((r) => setTimeout(r, 200));
  const subject = { remoteAddress: '192.0.2.90', username: 'erin@example.com' };
  await redis.stop();
  try {
    await t.failed(subject);
    expect(await t.verdict(subject)).toEqual({ delayMs: 2000, scope: 'address' });
  } finally {
    await redis.start();
  }
  await new Promise((r) => setTimeout(r, 500));
  await t.failed({ remoteAddress: '192.0.2.91', username: 'frank@example.com' });
  expect(await clients[0]!.exists('mwthr:login-failures:a:192.0.2.91')).toBe(1);
});
