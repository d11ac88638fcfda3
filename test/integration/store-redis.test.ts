// The DeviceStore contract, the documented raw layout and the fail-fast outage behaviour against a
// real redis-server (started on a free loopback port by test/harness/redis.ts).
import { execFileSync } from 'node:child_process';
import { Redis } from 'ioredis';
import type { RedisConfig } from '../../src/core/config-types';
import { StoreUnavailableError, type DeviceStore } from '../../src/store/device-store';
import { RedisDeviceStore } from '../../src/store/redis/store';
import { redisKeys } from '../../src/store/redis/layout';
import { cleanupRedis, startRedis, type RedisServer } from '../harness/redis';
import { findProgram } from '../harness/ports';
import { describeStoreContract, nextEvent, record, subscribed, waitUntil } from './store-contract';

let server: RedisServer;
let raw: Redis;
let prefixSeq = 0;

beforeAll(async () => {
  server = await startRedis();
  raw = new Redis({ host: server.host, port: server.port, maxRetriesPerRequest: 1 });
});

afterAll(async () => {
  // The outage tests restart the server; let this client reconnect first so QUIT closes it cleanly.
  await raw.ping().catch(() => undefined);
  await raw.quit().catch(() => undefined);
  await cleanupRedis(server);
});

function redisConfig(keyPrefix: string, overrides: Partial<RedisConfig> = {}): RedisConfig {
  return { mode: 'standalone', host: server.host, port: server.port, keyPrefix, commandTimeoutMs: 200, connectTimeoutMs: 1000, ...overrides };
}

async function openStore(keyPrefix = `t${++prefixSeq}:`, overrides: Partial<RedisConfig> = {}): Promise<RedisDeviceStore> {
  const store = new RedisDeviceStore({ redis: redisConfig(keyPrefix, overrides), auditMaxLen: 10 });
  expect(await store.waitReady(5000)).toBe(true);
  return store;
}

const prefixOf = new WeakMap<DeviceStore, string>();

describeStoreContract('redis', {
  open: async () => {
    const prefix = `c${++prefixSeq}:`;
    const store = await openStore(prefix);
    prefixOf.set(store, prefix);
    return store;
  },
  now: () => Date.now(),
  advance: (ms) => new Promise((r) => setTimeout(r, ms)),
  auditMaxLen: 10,
  // MAXLEN ~ trims whole stream nodes only (stream-node-max-entries, 100 by default).
  auditSlack: 100,
  shortTtlSeconds: 1,
  writeRawRecord: async (store, deviceId, text) => {
    await raw.set(redisKeys(prefixOf.get(store)!).device(deviceId), text);
  },
});

describe('RedisDeviceStore: the documented layout', () => {
  let store: RedisDeviceStore;
  const prefix = 'layout:';
  const k = redisKeys(prefix);
  beforeAll(async () => {
    store = await openStore(prefix);
  });
  afterAll(() => store.close());

  test('putDevice writes the keys docs/redis-layout.md names, with TTLs', async () => {
    await store.putDevice(record('dev-1'), 100);
    await store.markFirstSeenNoncompliant('dev-1', 'banned-apps', 1234);
    expect(await raw.type(k.device('dev-1'))).toBe('string');
    expect(JSON.parse((await raw.get('layout:device:{dev-1}'))!)).toEqual(record('dev-1'));
    const ttl = await raw.pttl('layout:device:{dev-1}');
    expect(ttl).toBeGreaterThan(98_000);
    expect(ttl).toBeLessThanOrEqual(100_000);
    expect(await raw.smembers('layout:user:{alice@example.com}:devices')).toEqual(['dev-1']);
    expect(await raw.pttl('layout:user:{alice@example.com}:devices')).toBeGreaterThan(98_000);
    expect(await raw.hgetall('layout:firstseen:{dev-1}')).toEqual({ 'banned-apps': '1234' });
    // First-seen times follow the record's TTL, so they never outlive the device.
    expect(await raw.pttl('layout:firstseen:{dev-1}')).toBeGreaterThan(98_000);
  });

  test('a record an MDM writes directly (SET ... EX) is read like one the ingest API stored', async () => {
    const mdm = { ...record('dev-mdm'), reportedAt: '2026-02-01T09:00:00+01:00', receivedAt: '2026-02-01T08:00:02Z', apps: undefined };
    await raw.set('layout:device:{dev-mdm}', JSON.stringify(mdm), 'EX', 600);
    await raw.sadd('layout:user:{alice@example.com}:devices', 'dev-mdm');
    const got = await store.getDevice('dev-mdm');
    expect(got).toEqual({ state: 'found', record: mdm });
    expect(got.state === 'found' && 'apps' in got.record).toBe(false); // absent = inventory not visible
    expect(await store.listUserDevices('alice@example.com')).toContain('dev-mdm');
    // The Lua script compares the MDM's zone-offset time by instant: 07:30Z is older than 09:00+01:00.
    expect(await store.putDevice(record('dev-mdm', { reportedAt: '2026-02-01T07:30:00Z' }), 60)).toBe(false);
    expect(await store.putDevice(record('dev-mdm', { reportedAt: '2026-02-01T08:00:00Z' }), 60)).toBe(true);
  });

  test('exemptions, flags, app passwords, audit and the change channel use the documented names', async () => {
    const until = new Date(Date.now() + 60_000).toISOString();
    const ex = { scope: 'user' as const, subject: 'bob@example.com', expiresAt: until, note: 'n', createdBy: 'ops', createdAt: new Date().toISOString() };
    const published = new Promise<string>((resolve) => {
      const sub = raw.duplicate();
      void sub.subscribe('layout:changes').then(async () => {
        await store.putExemption(ex);
      });
      sub.on('message', (_channel: string, message: string) => {
        sub.disconnect();
        resolve(message);
      });
    });
    expect(JSON.parse(await published)).toEqual({ kind: 'exemption', scope: 'user', subject: 'bob@example.com' });
    expect(JSON.parse((await raw.get('layout:exemption:user:{bob@example.com}'))!)).toEqual(ex);
    const exTtl = await raw.pttl('layout:exemption:user:{bob@example.com}');
    expect(exTtl).toBeGreaterThan(55_000);
    expect(exTtl).toBeLessThanOrEqual(60_000);

    await store.setFlag('kill-switch', '1');
    expect(await raw.get('layout:flag:kill-switch')).toBe('1');

    await store.putAppPassword({ credentialId: 'cred1', user: 'u', deviceId: 'dev-1', hash: 'ff', createdAt: '2026-01-01T00:00:00Z' });
    expect(JSON.parse((await raw.get('layout:apppw:cred1'))!).hash).toBe('ff');
    expect(await raw.smembers('layout:apppws:{dev-1}')).toEqual(['cred1']);

    const id = await store.appendAudit({ action: 'deny', reasonCode: 'BANNED_APP' });
    const entries = await raw.xrange('layout:audit', id, id);
    expect(entries).toEqual([[id, ['event', JSON.stringify({ action: 'deny', reasonCode: 'BANNED_APP' })]]]);
  });

  test('audit events ride along with the next device lookup (one pipeline), or leave on their own within 10 ms', async () => {
    const batch = jest.spyOn((store as unknown as { connection: { batch: (op: string, cmds: unknown[]) => Promise<unknown> } }).connection, 'batch');
    try {
      const first = store.appendAudit({ ride: 1 });
      const second = store.appendAudit({ ride: 2 });
      await store.loadFacts('dev-ride', 'alice@example.com', []);
      const ids = await Promise.all([first, second]);
      expect(batch.mock.calls.map(([op, cmds]) => [op, cmds.length])).toEqual([['loadFacts', 6]]);
      const entries = await raw.xrange('layout:audit', ids[0]!, ids[1]!);
      expect(entries.map(([, fields]) => JSON.parse(fields[1]!).ride)).toEqual([1, 2]);

      batch.mockClear();
      const started = performance.now();
      const alone = await store.appendAudit({ ride: 3 });
      expect(performance.now() - started).toBeLessThan(200);
      expect(batch.mock.calls.map(([op, cmds]) => [op, cmds.length])).toEqual([['appendAudit', 1]]);
      expect(await raw.xrange('layout:audit', alone, alone)).toHaveLength(1);
    } finally {
      batch.mockRestore();
    }
  });

  test('audit events appended concurrently (batched while one batch is in flight) keep call order and each get their own id', async () => {
    const ids = await Promise.all(Array.from({ length: 300 }, (_, n) => store.appendAudit({ n })));
    expect(new Set(ids).size).toBe(300);
    const order = (id: string): [number, number] => id.split('-').map(Number) as [number, number];
    for (let i = 1; i < ids.length; i++) {
      const [[ms0, seq0], [ms1, seq1]] = [order(ids[i - 1]!), order(ids[i]!)];
      expect(ms1 > ms0 || (ms1 === ms0 && seq1 > seq0)).toBe(true);
    }
    // The stream is capped (MAXLEN ~ 10 here): at least the newest 10 are there, in call order.
    const entries = await raw.xrevrange('layout:audit', '+', '-', 'COUNT', 10);
    expect(entries.map(([id]) => id).reverse()).toEqual(ids.slice(-10));
    expect(entries.map(([, fields]) => JSON.parse(fields[1]!).n).reverse()).toEqual(Array.from({ length: 10 }, (_, n) => 290 + n));
  });

  test('bad data at documented keys: ignored exemption, wrong Redis type, garbled first-seen and kill switch', async () => {
    await raw.set('layout:exemption:device:{dev-bad}', '{"scope":"device"');
    const elsewhere = { scope: 'user', subject: 'someone-else', expiresAt: new Date(Date.now() + 60_000).toISOString(), createdBy: 'mdm', createdAt: new Date().toISOString() };
    await raw.set('layout:exemption:user:{nobody}', JSON.stringify(elsewhere));
    await raw.hset('layout:device:{dev-hash}', 'deviceId', 'dev-hash');
    await raw.set('layout:firstseen:{dev-hash}', 'not a hash');
    await raw.hset('layout:firstseen:{dev-bad}', 'banned-apps', 'yesterday');
    await raw.set('layout:flag:kill-switch', 'maybe');
    const facts = await store.loadFacts('dev-bad', 'nobody', ['banned-apps']);
    expect(facts).toEqual({ device: { state: 'missing' }, exemptions: [], firstSeen: { 'banned-apps': 0 }, killSwitch: false });
    const hashed = await store.loadFacts('dev-hash', 'nobody', ['banned-apps']);
    expect(hashed.device?.state).toBe('malformed');
    expect(hashed.firstSeen).toEqual({ 'banned-apps': 0 });
    // An audit entry someone else wrote without an `event` field is returned as its raw fields.
    await raw.xadd('layout:audit', '*', 'note', 'hand-written', '__proto__', 'x');
    const last = await store.readAuditLast(1);
    expect(last[0]!.event).toEqual(Object.fromEntries([['note', 'hand-written'], ['__proto__', 'x']]));
    expect(Object.getPrototypeOf(last[0]!.event)).toBe(Object.prototype);
    // Unreadable change-channel messages are dropped, the next good one still arrives.
    const got = nextEvent(store, (e) => e.kind === 'policy' && e.version === 'after-garbage');
    await subscribed(store);
    await raw.publish('layout:changes', '{"kind":"device"}');
    await raw.publish('layout:changes', 'not json');
    await store.publish({ kind: 'policy', version: 'after-garbage' });
    await got;
  });

  test('a key prefix with a hash-tag brace is refused at construction', () => {
    expect(() => new RedisDeviceStore({ redis: redisConfig('a{b}:'), auditMaxLen: 10 })).toThrow(/keyPrefix/);
  });
});

/** Every DeviceStore call, each made to fail and timed. */
function everyCall(store: DeviceStore): [string, () => Promise<unknown>][] {
  const ex = { scope: 'device' as const, subject: 'd', expiresAt: new Date(Date.now() + 60_000).toISOString(), note: '', createdBy: 'o', createdAt: new Date().toISOString() };
  return [
    ['loadFacts', () => store.loadFacts('dev-1', 'alice@example.com', ['banned-apps'])],
    ['getDevice', () => store.getDevice('dev-1')],
    ['getDevices', () => store.getDevices(['dev-1', 'dev-2'])],
    ['putDevice', () => store.putDevice(record('dev-1', { reportedAt: new Date().toISOString() }), 60)],
    ['deleteDevice', () => store.deleteDevice('dev-9')],
    ['listUserDevices', () => store.listUserDevices('alice@example.com')],
    ['listDevices', () => store.listDevices()],
    ['getExemptions', () => store.getExemptions('dev-1', 'alice@example.com')],
    ['putExemption', () => store.putExemption(ex)],
    ['removeExemption', () => store.removeExemption('device', 'd')],
    ['listExemptions', () => store.listExemptions()],
    ['getFirstSeen', () => store.getFirstSeenNoncompliant('dev-1', 'c')],
    ['markFirstSeen', () => store.markFirstSeenNoncompliant('dev-1', 'c', 1)],
    ['clearFirstSeen', () => store.clearFirstSeenNoncompliant('dev-1', 'c')],
    ['putAppPassword', () => store.putAppPassword({ credentialId: 'c', user: 'u', deviceId: 'd', hash: 'h', createdAt: '2026-01-01T00:00:00Z' })],
    ['getAppPassword', () => store.getAppPassword('c')],
    ['removeAppPasswords', () => store.removeAppPasswords('d')],
    ['appendAudit', () => store.appendAudit({ a: 1 })],
    ['readAudit', () => store.readAudit('0', 10)],
    ['readAuditLast', () => store.readAuditLast!(10)],
    ['publish', () => store.publish({ kind: 'policy', version: 'x' })],
    ['getFlag', () => store.getFlag('kill-switch')],
    ['setFlag', () => store.setFlag('x', '1')],
    ['ping', () => store.ping()],
  ];
}

/** Asserts every call rejects with StoreUnavailableError well within the 250 ms login budget. */
async function expectAllUnavailable(store: DeviceStore): Promise<void> {
  for (const [name, call] of everyCall(store)) {
    const started = performance.now();
    const err = await call().then(
      () => null,
      (e: unknown) => e,
    );
    const ms = performance.now() - started;
    expect({ name, error: err instanceof StoreUnavailableError ? 'StoreUnavailableError' : String(err) }).toEqual({ name, error: 'StoreUnavailableError' });
    expect({ name, fast: ms < 250 }).toEqual({ name, fast: true });
  }
}

describe('RedisDeviceStore: Redis outages fail fast', () => {
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown): void => {
    unhandled.push(reason);
  };
  beforeAll(() => process.on('unhandledRejection', onUnhandled));
  afterAll(() => process.off('unhandledRejection', onUnhandled));

  test('Redis stopped: every call rejects with StoreUnavailableError in < 250 ms; restarted: calls work and onReconnect fires', async () => {
    const store = await openStore();
    const reconnects: number[] = [];
    store.onReconnect(() => reconnects.push(Date.now()));
    const events: string[] = [];
    await store.subscribe((e) => events.push(e.kind === 'policy' ? e.version : e.kind));
    await subscribed(store);
    await store.putDevice(record('dev-1'), 600);

    await server.stop();
    await expectAllUnavailable(store);
    await expectAllUnavailable(store); // still fast on the second round (no queue building up)
    expect(reconnects).toEqual([]);

    await server.start();
    await waitUntil(() => reconnects.length > 0, 10_000);
    await store.ping();
    // The server restarted empty (no persistence in the harness): the record is gone, not invented.
    expect(await store.getDevice('dev-1')).toEqual({ state: 'missing' });
    expect(await store.putDevice(record('dev-1'), 600)).toBe(true);
    await store.publish({ kind: 'policy', version: 'after-restart' });
    await waitUntil(() => events.includes('after-restart'));
    await store.close();
    await new Promise((r) => setTimeout(r, 50));
    expect(unhandled).toEqual([]);
  });

  test('Redis hung (SIGSTOP): calls time out with StoreUnavailableError in < 250 ms; SIGCONT: calls work again', async () => {
    const store = await openStore(undefined, { commandTimeoutMs: 150 });
    await store.putDevice(record('dev-1'), 600);
    const cli = findProgram('redis-cli');
    if (!cli) throw new Error('redis-cli not found');
    // The pid of the redis-server this test file started (the harness does not expose it).
    const pid = Number(/process_id:(\d+)/.exec(execFileSync(cli, ['-p', String(server.port), 'info', 'server']).toString())![1]);
    process.kill(pid, 'SIGSTOP');
    try {
      for (const [name, call] of everyCall(store).slice(0, 3)) {
        const started = performance.now();
        await expect(call()).rejects.toBeInstanceOf(StoreUnavailableError);
        expect({ name, fast: performance.now() - started < 250 }).toEqual({ name, fast: true });
      }
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    await waitUntil(() => true);
    let found = false;
    for (let i = 0; i < 100 && !found; i++) {
      found = await store.getDevice('dev-1').then(
        (l) => l.state === 'found',
        () => false,
      );
      if (!found) await new Promise((r) => setTimeout(r, 50));
    }
    expect(found).toBe(true);
    await store.close();
  });

  test('Redis down from the start: waitReady gives up in time, calls fail fast, and the store connects later', async () => {
    await server.stop();
    const store = new RedisDeviceStore({ redis: redisConfig(`t${++prefixSeq}:`), auditMaxLen: 10 });
    const reconnects: number[] = [];
    store.onReconnect(() => reconnects.push(1));
    const started = Date.now();
    expect(await store.waitReady(300)).toBe(false);
    await store.subscribe(() => undefined); // resolves after connectTimeoutMs even though Redis is down
    expect(Date.now() - started).toBeLessThan(2500);
    await expect(store.loadFacts('dev-1', 'u', [])).rejects.toBeInstanceOf(StoreUnavailableError);
    await server.start();
    expect(await store.waitReady(10_000)).toBe(true);
    await waitUntil(() => reconnects.length === 1, 10_000); // events published while down were lost
    expect((await store.loadFacts('dev-1', 'u', [])).device).toEqual({ state: 'missing' });
    await store.close();
  });
});
