// Jamf Pro, Google Workspace and Fleet connectors against their fakes: every page, each source's
// token flow, mapping (bundle ids vs display names, what each source can see), throttling, 5xx.
import { HttpClient } from '../../src/connectors/http';
import { jamfConnector } from '../../src/connectors/jamf';
import { googleConnector, googleThrottled, GOOGLE_MOBILE_SCOPE } from '../../src/connectors/google';
import { fleetConnector } from '../../src/connectors/fleet';
import { clientCredentialsToken, googleServiceAccountToken, jamfBasicToken, staticToken } from '../../src/connectors/tokens';
import { startFakeJamf, jamfMobileDevice, jamfComputer, type FakeJamf } from '../fakes/jamf';
import { startFakeGoogle, googleAndroid, googleIos, type FakeGoogle } from '../fakes/google';
import { startFakeFleet, fleetHost, type FakeFleet } from '../fakes/fleet';
import { on } from '../fakes/fake-http';

const TIKTOK = { identifier: 'com.zhiliaoapp.musically', name: 'TikTok' };
const signal = () => new AbortController().signal;
let waits: number[] = [];
const http = (isThrottled?: (s: number, b: string) => boolean) => {
  waits = [];
  return new HttpClient({ requestTimeoutMs: 2000, random: () => 0.5, sleep: async (ms) => void waits.push(ms), isThrottled });
};

describe('Jamf Pro', () => {
  let fake: FakeJamf;
  beforeEach(async () => {
    fake = await startFakeJamf({
      mobileDevices: [
        jamfMobileDevice('1', { apps: [TIKTOK, { identifier: 'com.apple.mobilemail', name: 'Mail' }] }),
        jamfMobileDevice('2', { model: 'iPad Air', apps: [] }),
        jamfMobileDevice('3', { ownership: 'UserEnrollment', apps: [], user: 'carol@example.com' }),
        jamfMobileDevice('4', { apps: null }),
        { mobileDeviceId: '5', deviceType: 'iOS', general: {}, hardware: {} },
      ],
      computers: [jamfComputer('101'), jamfComputer('102', { apps: [{ bundleId: 'com.zhiliaoapp.musically', name: 'TikTok.app' }] })],
    });
  });
  afterEach(() => fake.stop());

  const connector = (client = http(), pageSize = 2) => {
    const token = clientCredentialsToken(client, { tokenUrl: `${fake.url}/api/oauth/token`, clientId: fake.clientId, clientSecret: fake.clientSecret });
    return jamfConnector({ name: 'jamf', http: client, token, baseUrl: fake.url, deviceId: 'serial', computersPath: '/api/v1/computers-inventory', pageSize });
  };

  test('mobile devices and computers, every page; bundle ids from `identifier` and `bundleId`', async () => {
    const inventory = await connector().listDevices({ signal: signal() });
    const byId = new Map(inventory.devices.map((d) => [d.deviceId, d]));
    expect(byId.get('SN1')).toMatchObject({ platform: 'ios', user: 'alice@example.com', ownership: 'company', apps: ['com.apple.mobilemail', 'com.zhiliaoapp.musically'], appNames: ['Mail', 'TikTok'] });
    expect(byId.get('SN2')).toMatchObject({ platform: 'ipados', apps: [] });
    expect(byId.get('MSN102')).toMatchObject({ platform: 'macos', osVersion: '14.5', apps: ['com.zhiliaoapp.musically'], appNames: ['TikTok.app'] });
    // 5 mobile devices in pages of 2 = 3 pages; 2 computers = 1 page.
    expect(fake.server.count(/mobile-devices\/detail$/)).toBe(3);
    expect(fake.server.count(/computers-inventory$/)).toBe(1);
    expect(inventory.skipped).toEqual([{ sourceId: '5', platform: 'ios', reason: 'no usable device id (serial)' }]);
  });

  test('User Enrollment and a device without the APPLICATIONS section: inventory not visible', async () => {
    const byId = new Map((await connector().listDevices({ signal: signal() })).devices.map((d) => [d.deviceId, d]));
    expect(byId.get('SN3')).toMatchObject({ ownership: 'personal' });
    expect(byId.get('SN3')?.apps).toBeUndefined();
    expect(byId.get('SN4')?.apps).toBeUndefined();
  });

  test('Basic → bearer token flow', async () => {
    const client = http();
    const token = jamfBasicToken(client, fake.url, fake.username, fake.password);
    const c = jamfConnector({ name: 'jamf', http: client, token, baseUrl: fake.url, deviceId: 'mdm', computersPath: '/api/v1/computers-inventory' });
    expect((await c.listDevices({ signal: signal() })).devices.map((d) => d.deviceId).sort()).toEqual(['1', '101', '102', '2', '3', '4']); // 5 has no user
  });

  test('429 with and without Retry-After, then a 5xx on page 3 that persists', async () => {
    fake.server.fail(on(/mobile-devices/), { status: 429, headers: { 'retry-after': '2' } });
    fake.server.fail(on(/computers-inventory/), { status: 429 });
    expect((await connector().listDevices({ signal: signal() })).devices).toHaveLength(6);
    expect(waits).toEqual([2000, 250]);
    fake.server.fail((r) => r.path.endsWith('/detail') && r.query.get('page') === '2', { status: 502, body: 'Bad Gateway' }, 100);
    await expect(connector().listDevices({ signal: signal() })).rejects.toThrow(/mobile-devices\/detail: HTTP 502/);
  });

  test('a listing that ends short of totalCount fails', async () => {
    fake.server.fail((r) => r.query.get('page') === '1', { status: 200, body: { totalCount: 5, results: [] } });
    await expect(connector().listDevices({ signal: signal() })).rejects.toThrow(/announced 5 devices but listed 2/);
  });
});

describe('Google Workspace', () => {
  let fake: FakeGoogle;
  beforeEach(async () => {
    fake = await startFakeGoogle({
      pageSize: 2,
      devices: [
        googleAndroid('a1', { apps: [{ packageName: 'com.zhiliaoapp.musically', displayName: 'TikTok' }] }),
        googleAndroid('a2'),
        googleIos('i1'),
        googleIos('i2', { model: 'iPad13,1' }),
        { kind: 'admin#directory#mobiledevice', resourceId: 'res-bad', type: 'ANDROID', os: 'Android 9' },
      ],
    });
  });
  afterEach(() => fake.stop());

  const connector = (subject = fake.adminSubject, client = http(googleThrottled)) => {
    const account = JSON.parse(fake.serviceAccountJson) as { client_email: string; private_key: string; token_uri: string };
    const token = googleServiceAccountToken(client, account, { subject, scope: GOOGLE_MOBILE_SCOPE });
    return googleConnector({ name: 'google', http: client, token, directoryUrl: fake.directoryUrl, customerId: 'my_customer', deviceId: 'udid' });
  };

  test('service-account JWT with domain-wide delegation, projection=FULL, every nextPageToken', async () => {
    const inventory = await connector().listDevices({ signal: signal() });
    const byId = new Map(inventory.devices.map((d) => [d.deviceId, d]));
    expect(byId.get('a1')).toMatchObject({ platform: 'android', osVersion: '14', user: 'bob@example.com', apps: ['com.zhiliaoapp.musically'], appNames: ['TikTok'] });
    // Android without `applications`: Google lists none (visible, empty). iOS: Google cannot see apps.
    expect(byId.get('a2')).toMatchObject({ apps: [], appNames: [] });
    expect(byId.get('i1')).toMatchObject({ platform: 'ios', osVersion: '17.4.1' });
    expect(byId.get('i1')?.apps).toBeUndefined();
    expect(byId.get('i2')?.platform).toBe('ipados');
    expect(inventory.skipped).toEqual([{ sourceId: 'res-bad', platform: 'android', reason: 'no usable device id (udid)' }]);
    expect(fake.server.requests.filter((r) => r.path.endsWith('/mobile')).every((r) => r.query.get('projection') === 'FULL')).toBe(true);
    expect(fake.server.count(/devices\/mobile$/)).toBe(3);
  });

  test('a service account without delegation for the subject fails with Google’s sentence', async () => {
    await expect(connector('someone@example.com').listDevices({ signal: signal() })).rejects.toThrow(/unauthorized to retrieve access tokens/);
  });

  test('403 rateLimitExceeded is throttling: retried with backoff', async () => {
    fake.server.fail(on(/devices\/mobile$/), { status: 403, body: { error: { code: 403, message: 'Quota exceeded', errors: [{ reason: 'rateLimitExceeded' }] } } });
    fake.server.fail(on(/devices\/mobile$/), { status: 429, headers: { 'retry-after': '1' } });
    expect((await connector().listDevices({ signal: signal() })).devices).toHaveLength(4);
    expect(waits).toEqual([250, 1000]);
  });
});

describe('Fleet', () => {
  let fake: FakeFleet;
  beforeEach(async () => {
    fake = await startFakeFleet({
      hosts: [
        fleetHost(1, { software: [{ name: 'TikTok', bundle_identifier: 'com.zhiliaoapp.musically' }, { name: 'Safari.app', bundle_identifier: 'com.apple.Safari' }] }),
        fleetHost(2, { platform: 'ios', os: 'iOS 17.5.1', software: [] }),
        fleetHost(3, { platform: 'ipados', os: 'iPadOS 17.5', enrollment: 'On (personal)', software: [] }),
        fleetHost(4, { platform: 'ubuntu', os: 'Ubuntu 22.04.4 LTS', enrollment: 'Off', software: [{ name: 'curl' }] }),
        fleetHost(5, { platform: 'windows', os: 'Microsoft Windows 11 Pro 23H2 10.0.22631.3880', software: null }),
      ],
    });
  });
  afterEach(() => fake.stop());

  const connector = (token = fake.token) => fleetConnector({ name: 'fleet', http: http(), token: staticToken(token), baseUrl: fake.url, deviceId: 'udid', pageSize: 2 });

  test('hosts and software, paged until a short page; bundle ids where Fleet has them, else names', async () => {
    const inventory = await connector().listDevices({ signal: signal() });
    const byId = new Map(inventory.devices.map((d) => [d.deviceId, d]));
    expect(byId.get('uuid-1')).toMatchObject({ platform: 'macos', osVersion: '14.5', managed: true, ownership: 'company', apps: ['com.apple.safari', 'com.zhiliaoapp.musically'], appNames: ['Safari.app', 'TikTok'] });
    expect(byId.get('uuid-2')).toMatchObject({ platform: 'ios', apps: [] });
    expect(byId.get('uuid-3')).toMatchObject({ platform: 'ipados', ownership: 'personal' });
    expect(byId.get('uuid-3')?.apps).toBeUndefined();
    expect(byId.get('uuid-4')).toMatchObject({ platform: 'linux', managed: false, apps: [], appNames: ['curl'] });
    expect(byId.get('uuid-5')).toMatchObject({ platform: 'windows', osVersion: '11' });
    expect(byId.get('uuid-5')?.apps).toBeUndefined();
    // 5 hosts in pages of 2: 2, 2, 1 (short page ends it).
    expect(fake.server.count(/hosts$/)).toBe(3);
  });

  test('a wrong token fails with Fleet’s message', async () => {
    await expect(connector('nope').listDevices({ signal: signal() })).rejects.toThrow(/HTTP 401: Authentication required/);
  });
});
