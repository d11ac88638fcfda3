// The Intune connector end to end (issue 11's Tests paragraph): a real redis-server and a real
// Dovecot behind the proxy, the fake Intune from test/fakes. Alice's corporate iPhone has TikTok →
// after one sync its IMAP LOGIN (Python imaplib) is refused with the sentence and her MacBook's is
// allowed; TikTok removed → after the next sync the phone logs in; the phone's live IDLE session
// is ended by the sync that finds TikTok on it again.
import { ADMIN_TOKEN, ALICE, imapClient, seedMailbox, startRig, type Rig } from './imap-rig';
import { PY_IMAP_LOGIN, python } from './hooks-rig';
import { graphDevice, startFakeIntune, type FakeIntune } from '../fakes/intune';
import type { SyncReport } from '../../src/connectors/sync';

const SECRET_ENV = 'MW_E2E_INTUNE_CLIENT_SECRET';
const SENTENCE = /Company mail is blocked on this iOS device because TikTok is installed\. Remove TikTok; mail resumes within a minute\. Ref MW-[0-9A-Z]{8}\./;

let fake: FakeIntune;
let rig: Rig;
const passwords: Record<string, string> = {};

const tiktok = () => ({ id: 'app-tiktok', displayName: 'TikTok', version: '37.1', platform: 'ios', deviceIds: ['alice-iphone'] });

async function admin(method: string, route: string, body?: unknown): Promise<{ status: number; body: { report?: SyncReport; password?: string } }> {
  const response = await fetch(`${rig.adminUrl}${route}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: response.status, body: (await response.json()) as { report?: SyncReport; password?: string } };
}

/** One sync through the admin API, as `mailwarden connector sync intune` does (waits out the scheduled one). */
async function syncNow(): Promise<SyncReport> {
  for (let i = 0; i < 100; i++) {
    const { status, body } = await admin('POST', '/v1/connectors/intune/sync', {});
    if (status === 200) return body.report!;
    if (status !== 409) throw new Error(`sync answered ${status}: ${JSON.stringify(body)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('the connector stayed busy');
}

/** Python imaplib LOGIN + SELECT through the plaintext listener: `OK <n>` or `ERR <server text>`. */
const pyLogin = (password: string) => python(PY_IMAP_LOGIN, ['127.0.0.1', String(rig.ports.plain), ALICE.user, password, 'plain']).then((s) => s.trim());

beforeAll(async () => {
  fake = await startFakeIntune({
    pageSize: 1,
    devices: [
      graphDevice('alice-iphone', { userPrincipalName: ALICE.user, operatingSystem: 'iOS', model: 'iPhone 15', managedDeviceOwnerType: 'company' }),
      graphDevice('alice-mac', { userPrincipalName: ALICE.user, operatingSystem: 'macOS', osVersion: '14.5', model: 'MacBook Air' }),
      graphDevice('bob-pixel', { userPrincipalName: 'bob@example.com', operatingSystem: 'Android', osVersion: '14', model: 'Pixel 8' }),
    ],
    apps: [tiktok(), { id: 'app-outlook', displayName: 'Microsoft Outlook', platform: 'ios', deviceIds: ['alice-iphone', 'alice-mac', 'bob-pixel'] }],
  });
  process.env[SECRET_ENV] = fake.clientSecret;
  rig = await startRig({
    extraConfig: {
      connectors: [
        {
          type: 'intune',
          name: 'intune',
          tenantId: fake.tenantId,
          clientId: fake.clientId,
          clientSecret: { env: SECRET_ENV },
          tokenUrl: fake.tokenUrl,
          graphUrl: fake.graphUrl,
        },
      ],
    },
  });
  seedMailbox(rig.dovecot);
});

afterAll(async () => {
  await rig?.stop();
  await fake?.stop();
  delete process.env[SECRET_ENV];
});

test('after one sync the iPhone with TikTok is refused with the sentence (imaplib) and the MacBook logs in', async () => {
  const report = await syncNow();
  expect(report.result).toBe('applied');
  expect(report.total).toMatchObject({ seen: 3, skipped: 0 });
  // App passwords bound to the devices the sync wrote (the owner must match the record's user).
  for (const device of ['alice-iphone', 'alice-mac']) {
    const issued = await admin('POST', `/v1/devices/${device}/app-passwords`, { user: ALICE.user });
    expect(issued.status).toBeLessThan(300);
    passwords[device] = issued.body.password!;
  }
  const phone = await pyLogin(passwords['alice-iphone']!);
  expect(phone).toMatch(/^ERR \[CONTACTADMIN\] /);
  expect(phone).toMatch(SENTENCE);
  expect(await pyLogin(passwords['alice-mac']!)).toBe('OK 3');
  const record = await rig.runtime.store.getDevice('alice-iphone');
  expect(record).toMatchObject({ state: 'found', record: { source: 'connector:intune', platform: 'ios', ownership: 'company' } });
});

test('TikTok removed → after the next sync the phone logs in', async () => {
  fake.apps = fake.apps.filter((a) => a.id !== 'app-tiktok');
  expect(await pyLogin(passwords['alice-iphone']!)).toMatch(/^ERR /);
  const report = await syncNow();
  expect(report).toMatchObject({ result: 'applied', total: { changed: 1, newlyDenied: 0 } });
  expect(await pyLogin(passwords['alice-iphone']!)).toBe('OK 3');
});

test('the phone gains TikTok while IDLE: the sync ends its live session and its next login is refused', async () => {
  const client = imapClient(rig.ports.plain, { user: ALICE.user, pass: passwords['alice-iphone']! });
  await client.connect();
  await client.mailboxOpen('INBOX');
  const closed = new Promise<void>((resolve) => client.on('close', () => resolve()));
  const idling = client.idle();
  expect(rig.runtime.gate.sessions.byDevice('alice-iphone')).toHaveLength(1);
  fake.apps.push(tiktok());
  const report = await syncNow();
  expect(report.newlyDenied).toEqual([{ deviceId: 'alice-iphone', user: ALICE.user, platform: 'ios' }]);
  await closed;
  await idling.catch(() => undefined);
  expect(rig.runtime.gate.sessions.byDevice('alice-iphone')).toHaveLength(0);
  expect(await pyLogin(passwords['alice-iphone']!)).toMatch(SENTENCE);
  // The MacBook was never touched.
  expect(await pyLogin(passwords['alice-mac']!)).toBe('OK 3');
});
