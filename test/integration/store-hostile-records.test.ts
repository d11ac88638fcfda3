// Records an MDM (or an attacker with Redis access) writes into the documented layout, and reports
// dated in the future, against a real redis-server: none of them may let a TikTok iPhone log in
// (issue 8 items 3 and 4).
import fs from 'node:fs';
import { Redis } from 'ioredis';
import { cleanupRedis, startRedis, type RedisServer } from '../harness/redis';
import { policyYaml, startRig, TIKTOK, type Rig } from './policy-rig';

const PREFIX = 'hostile:';
let redis: RedisServer;
let raw: Redis;
let rig: Rig;

beforeAll(async () => {
  redis = await startRedis();
  raw = new Redis({ host: redis.host, port: redis.port, maxRetriesPerRequest: 1 });
  rig = await startRig(redis, PREFIX, policyYaml());
});

afterAll(async () => {
  await rig?.stop();
  await raw?.quit();
  await cleanupRedis(redis);
  if (rig) fs.rmSync(rig.dir, { recursive: true, force: true });
});

/** A record as docs/redis-layout.md documents it, written straight into Redis. */
async function writeDirect(deviceId: string, overrides: Record<string, unknown>): Promise<void> {
  const now = new Date().toISOString();
  const record = {
    deviceId,
    user: 'alice@example.com',
    platform: 'ios',
    osVersion: '17.5',
    managed: true,
    apps: ['com.apple.mobilemail'],
    reportedAt: now,
    source: 'intune',
    receivedAt: now,
    ...overrides,
  };
  await raw.set(`${PREFIX}device:{${deviceId}}`, JSON.stringify(record), 'EX', 3600);
}

describe('records written directly to Redis are validated by value (item 4)', () => {
  test('controls: a well-formed TikTok record is denied, a clean one allowed', async () => {
    await writeDirect('ok-tiktok', { apps: [TIKTOK] });
    await writeDirect('ok-clean', {});
    expect(await rig.decide('ok-tiktok')).toMatchObject({ action: 'deny', reasonCode: 'BANNED_APP' });
    expect((await rig.decide('ok-clean')).action).toBe('allow');
  });

  test.each([
    ['platform with a trailing space', { platform: 'ios ', apps: [TIKTOK] }],
    ['platform outside the closed set', { platform: 'iphoneos', apps: [TIKTOK] }],
    ['platform in upper case', { platform: 'IOS', apps: [TIKTOK] }],
    ['app id with a trailing space', { apps: [`${TIKTOK} `] }],
    ['app id with a NUL', { apps: [`${TIKTOK}\u0000`] }],
    ['app id with a zero-width space', { apps: [`${TIKTOK}\u200b`] }],
    ['a user with CR/LF', { user: 'alice@example.com\r\nx', apps: [TIKTOK] }],
  ])('%s: malformed, so unknown, never allowed', async (_name, overrides) => {
    const id = `bad-${Math.random().toString(36).slice(2, 8)}`;
    await writeDirect(id, overrides);
    expect(await rig.runtime.store.getDevice(id)).toMatchObject({ state: 'malformed' });
    const decision = await rig.decide(id);
    expect(decision.action).not.toBe('allow');
  });
});

describe('future-dated reports and records (item 3)', () => {
  test('a compliant report dated now + 290 s does not make the next real TikTok report "older"', async () => {
    const ahead = new Date(Date.now() + 290_000);
    expect(await rig.report({ deviceId: 'iphone-skew', apps: [], reportedAt: ahead })).toMatchObject({ ok: true, stored: true });
    expect((await rig.decide('iphone-skew')).action).toBe('allow');
    await new Promise((r) => setTimeout(r, 20));
    expect(await rig.report({ deviceId: 'iphone-skew', apps: [TIKTOK] })).toMatchObject({ ok: true, stored: true });
    expect(await rig.decide('iphone-skew')).toMatchObject({ action: 'deny', reasonCode: 'BANNED_APP' });
  });

  test.each([
    ['reportedAt in 2099', { reportedAt: '2099-01-01T00:00:00Z' }],
    ['reportedAt and receivedAt in 2099', { reportedAt: '2099-01-01T00:00:00Z', receivedAt: '2099-01-01T00:00:01Z' }],
  ])('a record written with %s is malformed and does not pin the device', async (_name, dates) => {
    const id = `pinned-${Math.random().toString(36).slice(2, 8)}`;
    await writeDirect(id, dates);
    expect(await rig.runtime.store.getDevice(id)).toMatchObject({ state: 'malformed' });
    expect((await rig.decide(id)).action).not.toBe('allow');
    expect(await rig.report({ deviceId: id, apps: [TIKTOK] })).toMatchObject({ ok: true, stored: true });
    expect(await rig.decide(id)).toMatchObject({ action: 'deny', reasonCode: 'BANNED_APP' });
  });
});
