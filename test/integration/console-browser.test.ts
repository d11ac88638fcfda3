// The web console in a real headless Chromium (Debian's) against the running mailwarden (real
// redis-server, real Dovecot): the helpdesk answers a reference id and exempts the device, the
// policy owner sees a candidate's newly denied laptops, the blocked user sees only their own device,
// a viewer cannot exempt, a cross-site post is refused, an app named <script> renders as text.
// Screenshots of the main pages go to test-artifacts/screenshots/ (gitignored).
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Page } from 'playwright-core';
import { hashToken } from '../../src/admin/roles';
import { screenshotPath, startBrowser, type Browser } from '../harness/browser';
import { ALICE, TIKTOK, seedMailbox, startRig, type Rig } from './imap-rig';
import { RawClient } from '../unit/imap-fakes';

const TOKENS = { viewer: 'viewer-console-token-5f1c2a', helpdesk: 'helpdesk-console-token-9b3e7d', admin: 'admin-console-token-2c8d4f' };
const SCRIPT_APP = '<script>window.__pwned=1</script>';

let rig: Rig;
let browser: Browser;
let page: Page;
let dialogs = 0;

beforeAll(async () => {
  rig = await startRig({
    admin: {
      accessTokens: Object.entries(TOKENS).map(([role, token]) => ({ name: `${role}-person`, role, sha256: hashToken(token) })),
      console: { enabled: true },
    },
  });
  seedMailbox(rig.dovecot, 1);
  browser = await startBrowser();
  page = await browser.context.newPage();
  page.on('dialog', (d) => {
    dialogs++;
    void d.dismiss();
  });
  await rig.report('tiktok-iphone', 'ios', [TIKTOK, 'com.apple.mobilemail']);
  await rig.report('alice-macbook', 'macos', [TIKTOK]);
  await rig.report('bob-macbook', 'macos', [TIKTOK], 'bob@example.com');
  await rig.report('script-iphone', 'ios', [TIKTOK], 'bob@example.com');
});
afterAll(async () => {
  await browser?.close();
  await rig?.stop();
});

async function imapLogin(deviceId: string): Promise<string> {
  const raw = await RawClient.connect(rig.ports.plain);
  await raw.waitFor(/^\* OK/);
  raw.write(`a1 LOGIN ${ALICE.user}+${deviceId} ${ALICE.password}\r\n`);
  await raw.waitFor(/a1 (OK|NO)/);
  raw.close();
  return raw.data;
}

async function signIn(role: keyof typeof TOKENS): Promise<void> {
  await browser.context.clearCookies();
  await page.goto(`${rig.adminUrl}/console/login`);
  await page.fill('input[name=token]', TOKENS[role]);
  await Promise.all([page.waitForURL(/\/console\/overview/), page.click('button[type=submit]')]);
  expect(await page.textContent('header')).toContain(`${role}-person (${role})`);
}

test('the helpdesk finds the TikTok iPhone by its reference id, exempts it for an hour, and the next IMAP login succeeds', async () => {
  const refused = await imapLogin('tiktok-iphone');
  expect(refused).toMatch(/a1 NO \[CONTACTADMIN\]/);
  const refId = /Ref (MW-[0-9A-Z]{8})/.exec(refused)![1]!;

  await signIn('helpdesk');
  // The first overview does not wait long for the device records: it may say they are being counted.
  for (let tries = 0; tries < 20 && (await page.locator('#sources').count()) === 0; tries++) {
    await new Promise((r) => setTimeout(r, 250));
    await page.goto(`${rig.adminUrl}/console/overview`);
  }
  await page.screenshot({ path: screenshotPath('overview'), fullPage: true });
  expect(await page.locator('svg[role=img]').count()).toBeGreaterThan(0);
  expect(await page.textContent('#sources')).toContain('mdm-1');

  await page.goto(`${rig.adminUrl}/console/search`);
  await page.fill('input[name=q]', refId.toLowerCase());
  await Promise.all([page.waitForURL(/\/console\/decisions\//), page.click('button[type=submit]')]);
  const decision = await page.textContent('main');
  expect(decision).toContain('TikTok');
  expect(decision).toContain('no-tiktok-on-mobiles');
  expect(await page.textContent('tr[data-check="no-tiktok-on-mobiles"]')).toContain('fail');
  await page.screenshot({ path: screenshotPath('decision'), fullPage: true });

  await Promise.all([page.waitForURL(/\/console\/devices\/tiktok-iphone$/), page.click('text=What this device would get now')]);
  await page.fill('form.exempt input[name=hours]', '1');
  await page.fill('form.exempt input[name=note]', 'user called, removing TikTok tonight');
  await Promise.all([page.waitForURL(/done=exempted/), page.click('form.exempt button')]);
  expect(await page.textContent('.notice')).toContain('exempted');
  expect(await page.textContent('main')).toContain('helpdesk-person');
  await page.screenshot({ path: screenshotPath('device'), fullPage: true });

  expect(await imapLogin('tiktok-iphone')).toMatch(/a1 OK /);
  const audit = (await rig.runtime.store.readAudit('0', 10000)).map((e) => e.event as Record<string, unknown>);
  expect(audit).toContainEqual(expect.objectContaining({ msg: 'admin', operation: 'exemption-set', by: 'helpdesk-person', role: 'helpdesk', via: 'console', deviceId: 'tiktok-iphone' }));
});

test('the helpdesk sees a live IDLE session with its instance name and ends it from the device page', async () => {
  const raw = await RawClient.connect(rig.ports.plain);
  await raw.waitFor(/^\* OK/);
  raw.write(`a1 LOGIN ${ALICE.user}+tiktok-iphone ${ALICE.password}\r\na2 SELECT INBOX\r\na3 IDLE\r\n`);
  await raw.waitFor(/\+ idling/);
  await signIn('helpdesk');
  await page.goto(`${rig.adminUrl}/console/devices/tiktok-iphone`);
  expect(await page.textContent('table.sessions tr[data-instance="imap-it"]')).toContain('alice@example.com');
  expect(await page.textContent('p.answered')).toContain('imap-it');
  await Promise.all([page.waitForURL(/\/end-sessions$/), page.click('form.end-sessions button')]);
  expect(await page.textContent('.notice')).toContain('1 live session was ended');
  await raw.waitClosed(2000);
  expect(raw.data).toMatch(/\* BYE This mail session was ended by/);
});

test('the audit page filters by device and shows a new decision live', async () => {
  await signIn('viewer');
  await page.goto(`${rig.adminUrl}/console/audit?device=alice-macbook`);
  const before = await page.locator('#audit tbody tr').count();
  await imapLogin('alice-macbook');
  // A function, not a string: the console's CSP forbids eval (no 'unsafe-eval').
  type Dom = { document: { querySelectorAll(selector: string): { length: number } } };
  await page.waitForFunction((n) => (globalThis as unknown as Dom).document.querySelectorAll('#audit tbody tr').length > n, before, { timeout: 10_000 });
  expect(await page.textContent('#audit tbody tr:first-child')).toContain('alice-macbook');
  await page.screenshot({ path: screenshotPath('audit'), fullPage: true });
  await page.goto(`${rig.adminUrl}/console/audit?since=yesterday`);
  expect(await page.textContent('.problem')).toContain('"since" must be an ISO time');
});

test('the policy owner uploads a candidate that bans TikTok on laptops and sees the newly denied laptops; nothing is activated', async () => {
  await signIn('admin');
  await page.goto(`${rig.adminUrl}/console/policy`);
  await page.screenshot({ path: screenshotPath('policy'), fullPage: true });
  const active = rig.runtime.policy().version;
  const candidate = JSON.parse(fs.readFileSync(rig.policyFile, 'utf8')) as { checks: Record<string, unknown>[] };
  candidate.checks.push({
    id: 'no-tiktok-on-laptops',
    plugin: 'banned-apps',
    mode: 'enforce',
    action: 'deny',
    scope: { platforms: ['macos', 'windows'] },
    options: { apps: { macos: [TIKTOK], windows: [TIKTOK] }, names: { [TIKTOK]: 'TikTok' } },
    message: 'Remove {app} from this laptop. Ref {refId}.',
  });
  await page.fill('textarea[name=text]', JSON.stringify(candidate, null, 2));
  await Promise.all([page.waitForURL(/\/console\/policy\/candidate/), page.click('form[action="/console/policy/candidate"] button')]);
  const denied = await page.textContent('#newly-denied');
  expect(denied).toContain('alice-macbook');
  expect(denied).toContain('bob-macbook');
  expect(denied).not.toContain('iphone');
  expect(await page.textContent('main')).toContain('Nothing has been activated');
  await page.screenshot({ path: screenshotPath('candidate'), fullPage: true });
  expect(rig.runtime.policy().version).toBe(active);

  await page.goto(`${rig.adminUrl}/console/policy`);
  await page.fill('textarea[name=text]', 'checks:\n  - id: x\n    plugin: banned-apps\n    mode: enforced\n');
  await page.click('form[action="/console/policy/candidate"] button');
  await page.waitForSelector('pre.errors');
  expect(await page.textContent('pre.errors')).toMatch(/\(candidate policy\):\d+: /);
});

test('the blocked user signs in with the real Dovecot password and sees only their own devices', async () => {
  await browser.context.clearCookies();
  await page.goto(`${rig.adminUrl}/my/login`);
  await page.fill('input[name=user]', ALICE.user);
  await page.fill('input[name=password]', 'not-the-password');
  await page.click('button[type=submit]');
  expect(await page.textContent('.problem')).toContain('not right');
  await page.fill('input[name=user]', ALICE.user);
  await page.fill('input[name=password]', ALICE.password);
  await Promise.all([page.waitForURL(/\/my\/$/), page.click('button[type=submit]')]);
  const ids = await page.locator('section.my-device').evaluateAll((els) => els.map((e) => e.getAttribute('data-device')));
  expect(ids.sort()).toEqual(['alice-macbook', 'tiktok-iphone']);
  expect(await page.textContent('main')).not.toContain('bob');
  await page.screenshot({ path: screenshotPath('my'), fullPage: true });
  // The /my/ session opens no staff page.
  await page.goto(`${rig.adminUrl}/console/devices/bob-macbook`);
  expect(page.url()).toContain('/console/login');
});

test('a viewer token cannot exempt, not even with a hand-made form post', async () => {
  await signIn('viewer');
  await page.goto(`${rig.adminUrl}/console/devices/alice-macbook`);
  expect(await page.textContent('main')).toContain('Your role may not exempt devices');
  expect(await page.locator('form.exempt').count()).toBe(0);
  const csrf = await page.getAttribute('header input[name=_csrf]', 'value');
  const status = await page.evaluate(async (token) => {
    const res = await fetch('/console/devices/alice-macbook/exempt', { method: 'POST', body: new URLSearchParams({ _csrf: token!, hours: '1', note: 'sneaky' }) });
    return res.status;
  }, csrf);
  expect(status).toBe(403);
  expect(await rig.runtime.store.getExemptions('alice-macbook', ALICE.user)).toHaveLength(0);
});

test('a form posted from another site is refused', async () => {
  await signIn('helpdesk');
  // Another origin on the same loopback address: same-site, so only the Fetch Metadata / Origin check and the CSRF token stand in the way.
  const evil = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end(`<form id="f" method="post" action="${rig.adminUrl}/console/devices/alice-macbook/exempt"><input name="hours" value="100"><input name="note" value="evil"></form><script>document.getElementById('f').submit()</script>`);
  });
  await new Promise<void>((resolve) => evil.listen(0, '127.0.0.1', resolve));
  try {
    await page.goto(`http://127.0.0.1:${(evil.address() as AddressInfo).port}/`);
    await page.waitForURL(/\/console\/devices\/alice-macbook\/exempt/);
    expect(await page.textContent('.problem')).toContain('not sent from the console');
  } finally {
    evil.close();
  }
  expect(await rig.runtime.store.getExemptions('alice-macbook', ALICE.user)).toHaveLength(0);
});

test('an app named <script> renders as text', async () => {
  // App ids are validated at report time; the policy's display name is the owner's free text.
  await rig.setTiktok({ options: { apps: { ios: [TIKTOK], ipados: [TIKTOK], android: [TIKTOK] }, names: { [TIKTOK]: SCRIPT_APP } } });
  await signIn('viewer');
  await page.goto(`${rig.adminUrl}/console/devices/script-iphone`);
  expect(await page.textContent('p.sentence')).toContain(SCRIPT_APP);
  expect(await page.evaluate('window.__pwned')).toBeUndefined();
  expect(dialogs).toBe(0);
  await page.goto(`${rig.adminUrl}/console/devices/no-such-device`);
  expect(await page.textContent('.problem')).toContain('no report is stored for device no-such-device');
});
