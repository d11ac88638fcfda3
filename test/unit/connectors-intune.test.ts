// The Intune connector against a fake Graph: paging, throttling with and without Retry-After, a
// token that expires mid-sync, a 5xx on page 3, malformed items, and what personal devices show.
import { HttpClient } from '../../src/connectors/http';
import { intuneConnector } from '../../src/connectors/intune';
import { clientCredentialsToken } from '../../src/connectors/tokens';
import { SourceError } from '../../src/connectors/contract';
import { graphDevice, startFakeIntune, type FakeIntune } from '../fakes/intune';
import { on } from '../fakes/fake-http';

const TIKTOK = { id: '1780bc94f880b8c29a4a0e36f5000190b10447d62d67d9b11ccb9494b096186f', displayName: 'TikTok', platform: 'ios' };

let fake: FakeIntune;
let waits: number[];

function connector(deviceId: 'mdm' | 'entra' | 'serial' = 'mdm', sleepReally = false) {
  waits = [];
  const http = new HttpClient({
    requestTimeoutMs: 2000,
    random: () => 0.5,
    sleep: async (ms) => {
      waits.push(ms);
      if (sleepReally) await new Promise((r) => setTimeout(r, ms));
    },
  });
  const token = clientCredentialsToken(http, { tokenUrl: fake.tokenUrl, clientId: fake.clientId, clientSecret: fake.clientSecret, scope: 'https://graph.microsoft.com/.default' });
  return intuneConnector({ name: 'intune', http, token, graphUrl: fake.graphUrl, deviceId, userField: 'upn' });
}

const list = (c = connector()) => c.listDevices({ signal: new AbortController().signal });

beforeEach(async () => {
  fake = await startFakeIntune({
    pageSize: 2,
    devices: [
      graphDevice('iphone-1'),
      graphDevice('macbook-1', { operatingSystem: 'macOS', osVersion: '14.5', model: 'MacBook Pro' }),
      graphDevice('ipad-1', { operatingSystem: 'iOS', model: 'iPad Pro (12.9-inch)' }),
      graphDevice('pixel-1', { operatingSystem: 'Android', osVersion: '14', model: 'Pixel 8', userPrincipalName: 'bob@example.com' }),
      graphDevice('byod-1', { managedDeviceOwnerType: 'personal', userPrincipalName: 'carol@example.com' }),
      graphDevice('win-1', { operatingSystem: 'Windows', osVersion: '10.0.22631.3880', azureADDeviceId: '00000000-0000-0000-0000-000000000000' }),
      graphDevice('eas-1', { managementAgent: 'eas', managedDeviceOwnerType: 'unknown' }),
    ],
    apps: [
      { ...TIKTOK, deviceIds: ['iphone-1', 'byod-1'] },
      { id: 'a2', displayName: 'Outlook', deviceIds: ['iphone-1', 'macbook-1', 'pixel-1'] },
      { id: 'a3', displayName: 'Slack', deviceIds: [] },
    ],
  });
});
afterEach(() => fake.stop());

test('follows every nextLink and maps platform, user, ownership and apps by display name', async () => {
  const inventory = await list();
  expect(inventory.skipped).toEqual([]);
  const byId = new Map(inventory.devices.map((d) => [d.deviceId, d]));
  expect([...byId.keys()].sort()).toEqual(['byod-1', 'eas-1', 'ipad-1', 'iphone-1', 'macbook-1', 'pixel-1', 'win-1']);
  expect(byId.get('iphone-1')).toEqual({
    deviceId: 'iphone-1',
    user: 'alice@example.com',
    platform: 'ios',
    osVersion: '17.5.1',
    managed: true,
    ownership: 'company',
    apps: [],
    appNames: ['Outlook', 'TikTok'],
    lastSeenAt: '2026-11-30T08:12:44.000Z',
  });
  expect(byId.get('ipad-1')?.platform).toBe('ipados');
  expect(byId.get('macbook-1')).toMatchObject({ platform: 'macos', appNames: ['Outlook'] });
  expect(byId.get('pixel-1')).toMatchObject({ platform: 'android', user: 'bob@example.com' });
  expect(byId.get('win-1')?.platform).toBe('windows');
  expect(byId.get('eas-1')).toMatchObject({ managed: false, ownership: 'unknown' });
  // 7 devices in pages of 2 = 4 pages; 3 apps = 2 pages; per app its device pages (1 + 2 + 1).
  expect(fake.server.count(/\/managedDevices$/)).toBe(4 + 4);
  expect(fake.server.count(/\/detectedApps$/)).toBe(2);
});

test('equal app lists are held once for the fleet, not once per device', async () => {
  const byId = new Map((await list()).devices.map((d) => [d.deviceId, d]));
  const macbook = byId.get('macbook-1')!;
  const pixel = byId.get('pixel-1')!;
  expect(macbook.appNames).toEqual(['Outlook']);
  expect(macbook.appNames).toBe(pixel.appNames);
  expect(macbook.apps).toBe(pixel.apps);
  expect(byId.get('iphone-1')!.appNames).not.toBe(macbook.appNames);
});

test('a managedDevice Graph lists twice gets its apps both times, never an empty (clean) list the second time', async () => {
  // The same Intune device on two pages, its serial changed in between: with deviceId: serial these
  // are two login ids, and both carry what Graph detected on that Intune id.
  fake.devices.push(graphDevice('iphone-1', { serialNumber: 'SN-replaced-board' }));
  const byId = new Map((await list(connector('serial'))).devices.map((d) => [d.deviceId, d]));
  expect(byId.get('SNiphone-1')?.appNames).toEqual(['Outlook', 'TikTok']);
  expect(byId.get('SN-replaced-board')?.appNames).toEqual(['Outlook', 'TikTok']);
});

test('a personal device has no visible inventory (unknown), even though Graph lists TikTok on it', async () => {
  const byod = (await list()).devices.find((d) => d.deviceId === 'byod-1')!;
  expect(byod.ownership).toBe('personal');
  expect(byod.apps).toBeUndefined();
  expect(byod.appNames).toBeUndefined();
});

test('a company device with an empty app list is visible and clean; an unknown-owner one is not visible', async () => {
  fake.apps = [];
  const devices = (await list()).devices;
  expect(devices.find((d) => d.deviceId === 'iphone-1')).toMatchObject({ apps: [], appNames: [] });
  expect(devices.find((d) => d.deviceId === 'eas-1')?.apps).toBeUndefined();
});

test('device id from Entra: a device without a registered Entra id is skipped, not guessed', async () => {
  const inventory = await list(connector('entra'));
  expect(inventory.devices.find((d) => d.deviceId === 'entra-iphone-1')).toBeDefined();
  expect(inventory.skipped).toEqual([{ sourceId: 'win-1', platform: 'windows', reason: 'no usable device id (entra)' }]);
});

test('429 with Retry-After waits exactly that long; without it backs off with jitter', async () => {
  fake.server.fail(on(/managedDevices$/), { status: 429, headers: { 'retry-after': '3' }, body: { error: { code: 'TooManyRequests', message: 'throttled' } } });
  fake.server.fail(on(/detectedApps$/), { status: 429, body: { error: { code: 'TooManyRequests', message: 'throttled' } } }, 2);
  const inventory = await list();
  expect(inventory.devices).toHaveLength(7);
  // detectedApps is read first: random() = 0.5 gives half of 500 ms, then half of 1000 ms; then the
  // first managedDevices request (an app's device list) waits its Retry-After.
  expect(waits).toEqual([250, 500, 3000]);
});

test('a token that expires mid-sync is refreshed before it is used expired', async () => {
  fake.server.tokenLifetimeSeconds = 1;
  fake.server.latencyMs = 120; // 14 requests × 120 ms outlive a 1 s token
  const inventory = await list();
  expect(inventory.devices).toHaveLength(7);
  expect(fake.server.tokensIssued).toBeGreaterThanOrEqual(2);
  expect(fake.server.rejectedTokens).toBe(0);
});

test('a token revoked mid-sync: one 401, a fresh token, and the sync goes on', async () => {
  fake.server.once((r) => r.path.endsWith('/managedDevices') && r.query.has('$skiptoken'), () => fake.server.revokeTokens());
  const inventory = await list();
  expect(inventory.devices).toHaveLength(7);
  expect(fake.server.rejectedTokens).toBe(1);
  expect(fake.server.tokensIssued).toBe(2);
});

test('a 5xx on page 3 that persists fails the listing; a passing one is retried', async () => {
  const page3 = (r: { path: string; query: URLSearchParams }) => r.path.endsWith('/deviceManagement/managedDevices') && fake.server.count(/\/deviceManagement\/managedDevices$/) >= 3;
  fake.server.fail(page3, { status: 503, body: { error: { code: 'ServiceUnavailable', message: 'try later' } } }, 1);
  expect((await list()).devices).toHaveLength(7);

  fake.server.requests.length = 0;
  fake.server.fail(page3, { status: 500, body: { error: { code: 'InternalServerError', message: 'boom' } } }, 100);
  await expect(list()).rejects.toThrow(SourceError);
  await expect(list()).rejects.toThrow(/managedDevices: HTTP 500: boom \(after 6 tries\)/);
});

test('malformed items are skipped and counted, never mapped', async () => {
  fake.devices.push({ id: 'no-os', osVersion: '1', userPrincipalName: 'dan@example.com' } as never, { id: '', operatingSystem: 'iOS' } as never, graphDevice('no-user', { userPrincipalName: '' }));
  const inventory = await list();
  expect(inventory.devices).toHaveLength(7);
  expect(inventory.skipped.map((s) => s.reason).sort()).toEqual(['managedDevice without an id', 'no platform', 'no usable user']);
});

test('a nextLink to another host is refused (the token is not sent elsewhere)', async () => {
  fake.server.fail(on(/\/deviceManagement\/managedDevices$/), { status: 200, body: { value: [], '@odata.nextLink': 'http://127.0.0.2:1/v1.0/x' } });
  await expect(list()).rejects.toThrow(/nextLink points outside/);
});

test('a listing shorter than its @odata.count fails instead of looking complete', async () => {
  fake.server.fail(on(/\/deviceManagement\/managedDevices$/), { status: 200, body: { '@odata.count': 7, value: [graphDevice('x')] } });
  await expect(list()).rejects.toThrow(/announced 7 items but listed 1/);
});

test('the per-sync signal stops a sync that sleeps through throttling', async () => {
  fake.server.fail(on(/managedDevices$/), { status: 429, headers: { 'retry-after': '30' } }, 10);
  const http = new HttpClient({ requestTimeoutMs: 2000 });
  const token = clientCredentialsToken(http, { tokenUrl: fake.tokenUrl, clientId: fake.clientId, clientSecret: fake.clientSecret, scope: 'https://graph.microsoft.com/.default' });
  const c = intuneConnector({ name: 'intune', http, token, graphUrl: fake.graphUrl, deviceId: 'mdm', userField: 'upn' });
  const started = Date.now();
  await expect(c.listDevices({ signal: AbortSignal.timeout(300) })).rejects.toThrow(/timed out or was stopped/);
  expect(Date.now() - started).toBeLessThan(2000);
});

test('a wrong client secret fails with the identity platform’s sentence, and the secret is not in it', async () => {
  const http = new HttpClient({ requestTimeoutMs: 2000, retry: { maxAttempts: 1, baseMs: 1, maxMs: 1, maxRetryAfterMs: 1 } });
  const token = clientCredentialsToken(http, { tokenUrl: fake.tokenUrl, clientId: fake.clientId, clientSecret: 'wrong-secret', scope: 'https://graph.microsoft.com/.default' });
  const c = intuneConnector({ name: 'intune', http, token, graphUrl: fake.graphUrl, deviceId: 'mdm', userField: 'upn' });
  const error = await c.listDevices({ signal: new AbortController().signal }).catch((e: Error) => e);
  expect(String(error)).toMatch(/HTTP 401: AADSTS7000215/);
  expect(String(error)).not.toMatch(/wrong-secret/);
});
