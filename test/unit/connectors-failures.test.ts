// Google Workspace, Fleet and Jamf Pro when their APIs misbehave (issue 11, "Tests"): a 429 with and
// without Retry-After, a 5xx on page 3 (the sync fails and writes nothing), a token that expires or
// is revoked mid-sync (Google re-mints its JWT, Jamf fetches a new token, Fleet's fixed API token
// fails with a sentence that says so), and malformed items counted, skipped and never written.
import { HttpClient } from '../../src/connectors/http';
import { googleConnector, googleThrottled, GOOGLE_MOBILE_SCOPE } from '../../src/connectors/google';
import { fleetConnector } from '../../src/connectors/fleet';
import { jamfConnector } from '../../src/connectors/jamf';
import { clientCredentialsToken, googleServiceAccountToken, staticToken } from '../../src/connectors/tokens';
import type { Connector } from '../../src/connectors/contract';
import { SyncEngine } from '../../src/connectors/sync';
import { MemoryConnectorState } from '../../src/store/memory-connector-state';
import { silentLogger } from '../../src/core/log';
import { deviceMap } from './connector-fakes';
import { startFakeGoogle, googleAndroid, googleIos, type FakeGoogle } from '../fakes/google';
import { startFakeFleet, fleetHost, type FakeFleet } from '../fakes/fleet';
import { startFakeJamf, jamfMobileDevice, type FakeJamf } from '../fakes/jamf';
import { on, type FakeRequest } from '../fakes/fake-http';

const signal = () => new AbortController().signal;
let waits: number[] = [];
/** random() = 0.5, so a backoff without Retry-After is half its cap: 250 ms, then 500 ms, ... */
const http = (isThrottled?: (s: number, b: string) => boolean, maxAttempts = 6) => {
  waits = [];
  return new HttpClient({ requestTimeoutMs: 2000, random: () => 0.5, sleep: async (ms) => void waits.push(ms), isThrottled, retry: { maxAttempts, baseMs: 500, maxMs: 30_000, maxRetryAfterMs: 60_000 } });
};

/** A sync engine over plain maps, so a test sees exactly what was written. */
function syncer(connector: Connector) {
  const devices = deviceMap();
  const state = new MemoryConnectorState(devices);
  const engine = new SyncEngine({
    connector,
    state,
    settings: () => ({ removeAfterAbsentSyncs: 3, recordTtlSeconds: 86400, syncTimeoutMs: 10_000, maxRemovedPercent: 50, maxInventoryLostPercent: 50 }),
    blastRadius: () => ({ maxNewlyDeniedPercent: 100, maxNewlyDeniedCount: 1000 }),
    isDenied: async (record) => record === null,
    log: silentLogger(),
  });
  return { devices, state, engine };
}

/** The nth request (1-based) for a listing path: "page 3" whatever the source's paging looks like. */
const nthListing = (count: () => number, n: number) => () => count() >= n;

describe('Google Workspace', () => {
  let fake: FakeGoogle;
  const PAGE = 2;
  beforeEach(async () => {
    fake = await startFakeGoogle({
      pageSize: PAGE,
      devices: [
        googleAndroid('a1', { apps: [{ packageName: 'com.zhiliaoapp.musically', displayName: 'TikTok' }] }),
        googleAndroid('a2', { user: 'carol@example.com' }),
        googleIos('i1'),
        googleIos('i2', { user: 'dan@example.com' }),
        googleAndroid('a3', { user: 'erin@example.com' }),
        googleAndroid('a4', { user: 'frank@example.com' }),
      ],
    });
  });
  afterEach(() => fake.stop());

  const connector = (client = http(googleThrottled)) => {
    const account = JSON.parse(fake.serviceAccountJson) as { client_email: string; private_key: string; token_uri: string };
    const token = googleServiceAccountToken(client, account, { subject: fake.adminSubject, scope: GOOGLE_MOBILE_SCOPE });
    return googleConnector({ name: 'google', http: client, token, directoryUrl: fake.directoryUrl, customerId: 'my_customer', deviceId: 'udid' });
  };
  const listings = () => fake.server.count(/devices\/mobile$/);
  const tokenRequests = () => fake.server.requests.filter((r) => r.method === 'POST' && r.path === '/token');

  test('429 with Retry-After waits exactly that long; without it backs off with jitter', async () => {
    fake.server.fail(on(/devices\/mobile$/), { status: 429, headers: { 'retry-after': '4' }, body: { error: { code: 429, message: 'Too many requests' } } });
    const inventory = await connector().listDevices({ signal: signal() });
    expect(inventory.devices).toHaveLength(6);
    expect(waits).toEqual([4000]);

    fake.server.fail(on(/devices\/mobile$/), { status: 429, body: { error: { code: 429, message: 'Too many requests' } } }, 2);
    expect((await connector().listDevices({ signal: signal() })).devices).toHaveLength(6);
    expect(waits).toEqual([250, 500]);
  });

  test('a 5xx on page 3 that persists fails the sync and writes nothing; one that passes is retried', async () => {
    const { devices, engine, state } = syncer(connector(http(googleThrottled, 3)));
    const page3 = (r: FakeRequest) => r.path.endsWith('/devices/mobile') && nthListing(listings, 3)();
    // Three tries, all refused (the fake has no "forever": the fault is used up by exactly the three).
    fake.server.fail(page3, { status: 500, body: { error: { code: 500, message: 'Backend Error' } } }, 3);
    const report = await engine.sync();
    expect(report.result).toBe('failed');
    expect(report.error).toMatch(/devices\/mobile: HTTP 500: Backend Error \(after 3 tries\)/);
    expect(devices.records.size).toBe(0);
    expect(state.writes).toEqual({ put: 0, delete: 0, ttl: 0, owned: 0 });
    // Pages 1 and 2 were read: the failure was on a later page, not on the first request.
    expect(fake.server.requests.filter((r) => r.path.endsWith('/devices/mobile') && r.query.get('pageToken')).length).toBeGreaterThanOrEqual(2);

    fake.server.requests.length = 0;
    fake.server.fail(page3, { status: 503, body: { error: { code: 503, message: 'Service unavailable' } } }, 1);
    expect((await engine.sync()).result).toBe('applied');
    expect(devices.records.size).toBe(6);
  });

  test('a token that expires mid-sync: the service-account JWT is re-minted before the old token is sent expired', async () => {
    // A 2 s token is used for 1.6 s (refreshed with a fifth of its life left); one page per request at
    // 200 ms each, two listings of 6 pages: 2.4 s, so the second listing needs a new token.
    fake.server.tokenLifetimeSeconds = 2;
    fake.server.latencyMs = 200;
    fake.pageSize = 1;
    const c = connector();
    expect((await c.listDevices({ signal: signal() })).devices).toHaveLength(6);
    expect((await c.listDevices({ signal: signal() })).devices).toHaveLength(6);
    expect(fake.server.rejectedTokens).toBe(0);
    expect(fake.server.tokensIssued).toBeGreaterThanOrEqual(2);
    // Every token came from a fresh, valid JWT bearer grant (the fake verifies its signature, sub and scope).
    expect(tokenRequests().length).toBe(fake.server.tokensIssued);
  });

  test('a token revoked mid-sync: one 401, a new JWT grant, and the listing goes on to the end', async () => {
    fake.server.once((r) => r.path.endsWith('/devices/mobile') && r.query.has('pageToken'), () => fake.server.revokeTokens());
    const inventory = await connector().listDevices({ signal: signal() });
    expect(inventory.devices).toHaveLength(6);
    expect(fake.server.rejectedTokens).toBe(1);
    expect(tokenRequests()).toHaveLength(2);
  });

  test('malformed items are counted and skipped, never written; a device that turns malformed loses its record', async () => {
    const { devices, engine } = syncer(connector());
    expect((await engine.sync()).total).toMatchObject({ created: 6, skipped: 0 });
    fake.devices.push(
      'not an object' as never,
      { ...googleAndroid('no-user'), email: [] },
      { ...googleAndroid('no-os'), os: undefined },
      { ...googleAndroid('bad-type'), type: 'BLACKBERRY', os: 'BlackBerry 10' },
    );
    // a3 loses its OS version string: listed, but no longer describable.
    fake.devices[4] = { ...fake.devices[4]!, os: 'Android' };
    const report = await engine.sync();
    expect(report.result).toBe('applied');
    expect(report.total).toMatchObject({ skipped: 5, created: 0, removed: 1 });
    expect([...devices.records.keys()].sort()).toEqual(['a1', 'a2', 'a4', 'i1', 'i2']);
  });
});

describe('Fleet', () => {
  let fake: FakeFleet;
  const PAGE = 2;
  beforeEach(async () => {
    fake = await startFakeFleet({
      hosts: Array.from({ length: 7 }, (_, i) => fleetHost(i + 1, { user: `user${i + 1}@example.com` })),
    });
  });
  afterEach(() => fake.stop());

  const connector = (client = http()) => fleetConnector({ name: 'fleet', http: client, token: staticToken(fake.token), baseUrl: fake.url, deviceId: 'udid', pageSize: PAGE });
  const listings = () => fake.server.count(/hosts$/);

  test('429 with Retry-After waits exactly that long; without it backs off with jitter', async () => {
    fake.server.fail(on(/hosts$/), { status: 429, headers: { 'retry-after': '7' }, body: { message: 'Too many requests' } });
    expect((await connector().listDevices({ signal: signal() })).devices).toHaveLength(7);
    expect(waits).toEqual([7000]);

    fake.server.fail(on(/hosts$/), { status: 429, body: { message: 'Too many requests' } }, 3);
    expect((await connector().listDevices({ signal: signal() })).devices).toHaveLength(7);
    expect(waits).toEqual([250, 500, 1000]);
  });

  test('a 5xx on page 3 that persists fails the sync and writes nothing; one that passes is retried', async () => {
    const { devices, engine, state } = syncer(connector(http(undefined, 3)));
    const page3 = (r: FakeRequest) => r.path.endsWith('/hosts') && r.query.get('page') === '2';
    fake.server.fail(page3, { status: 502, body: 'Bad Gateway' }, 3);
    const report = await engine.sync();
    expect(report.result).toBe('failed');
    expect(report.error).toMatch(/fleet\/hosts: HTTP 502 \(after 3 tries\)/);
    expect(devices.records.size).toBe(0);
    expect(state.writes).toEqual({ put: 0, delete: 0, ttl: 0, owned: 0 });
    expect(fake.server.requests.some((r) => r.query.get('page') === '1')).toBe(true);

    fake.server.requests.length = 0;
    fake.server.fail(page3, { status: 500, body: { message: 'internal error' } }, 1);
    expect((await engine.sync()).result).toBe('applied');
    expect(devices.records.size).toBe(7);
    expect(listings()).toBe(5); // pages 0..3 plus the retried page 2
  });

  test('an API token revoked mid-sync fails the sync with a sentence that names the token, and writes nothing', async () => {
    const { devices, engine } = syncer(connector());
    expect((await engine.sync()).result).toBe('applied');
    const before = new Map(devices.records);
    fake.server.requests.length = 0;
    fake.hosts[0] = fleetHost(1, { user: 'user1@example.com', software: [{ name: 'TikTok', bundle_identifier: 'com.zhiliaoapp.musically' }] });
    fake.server.once((r) => r.query.get('page') === '1', () => (fake.token = 'a-new-token-the-connector-does-not-have'));
    const report = await engine.sync();
    expect(report.result).toBe('failed');
    expect(report.error).toMatch(/HTTP 401: Authentication required/);
    expect(report.error).toMatch(/the configured API token was refused/);
    expect(devices.records).toEqual(before);
    // A fixed token cannot be refreshed: the refused request is not sent again with the same token.
    expect(fake.server.requests.filter((r) => r.query.get('page') === '1')).toHaveLength(1);
  });

  test('malformed hosts are counted and skipped, never written; a host that turns malformed loses its record', async () => {
    const { devices, engine } = syncer(connector());
    expect((await engine.sync()).total).toMatchObject({ created: 7, skipped: 0 });
    fake.hosts.push(
      42 as never,
      { ...fleetHost(20), device_mapping: null },
      { ...fleetHost(21, { user: 'x@example.com' }), os_version: 'unknown' },
      { ...fleetHost(22, { user: 'y@example.com' }), uuid: '' },
    );
    fake.hosts[2] = { ...fake.hosts[2]!, platform: undefined };
    const report = await engine.sync();
    expect(report.result).toBe('applied');
    expect(report.total).toMatchObject({ skipped: 5, created: 0, removed: 1 });
    expect(devices.records.has('uuid-3')).toBe(false);
    expect([...devices.records.keys()].sort()).toEqual(['uuid-1', 'uuid-2', 'uuid-4', 'uuid-5', 'uuid-6', 'uuid-7']);
  });
});

describe('Jamf Pro', () => {
  let fake: FakeJamf;
  beforeEach(async () => {
    fake = await startFakeJamf({ mobileDevices: Array.from({ length: 5 }, (_, i) => jamfMobileDevice(String(i + 1), { apps: [] })) });
  });
  afterEach(() => fake.stop());

  const connector = (client = http()) => {
    const token = clientCredentialsToken(client, { tokenUrl: `${fake.url}/api/oauth/token`, clientId: fake.clientId, clientSecret: fake.clientSecret });
    return jamfConnector({ name: 'jamf', http: client, token, baseUrl: fake.url, deviceId: 'serial', computersPath: '/api/v1/computers-inventory', pageSize: 2 });
  };

  test('a token that expires mid-sync is replaced before it is sent expired', async () => {
    // A 2 s token is used for 1.6 s; 4 listing requests at 200 ms, twice: 1.6 s after the token came.
    fake.server.tokenLifetimeSeconds = 2;
    fake.server.latencyMs = 250;
    const c = connector();
    expect((await c.listDevices({ signal: signal() })).devices).toHaveLength(5);
    expect((await c.listDevices({ signal: signal() })).devices).toHaveLength(5);
    expect(fake.server.rejectedTokens).toBe(0);
    expect(fake.server.tokensIssued).toBeGreaterThanOrEqual(2);
  });

  test('a token revoked mid-sync: one 401, a new token, and the listing goes on', async () => {
    fake.server.once((r) => r.path.endsWith('/detail') && r.query.get('page') === '1', () => fake.server.revokeTokens());
    expect((await connector().listDevices({ signal: signal() })).devices).toHaveLength(5);
    expect(fake.server.rejectedTokens).toBe(1);
    expect(fake.server.tokensIssued).toBe(2);
  });
});
