// The web console against fake services over real HTTP: sign-in by role token, role limits, CSRF and
// same-origin checks, escaping of hostile names, clear pages for bad input, the /my/ page.
import { ConsoleClient, TIKTOK, device, startConsoleRig, tokenOf, type ConsoleRig } from './console-fakes';

let rig: ConsoleRig;
beforeEach(async () => {
  rig = await startConsoleRig();
  await rig.store.putDevice(device(), 3600);
});
afterEach(async () => {
  await rig.stop();
});

test('pages need a sign-in; the session cookie is HttpOnly and SameSite=Strict', async () => {
  const anon = new ConsoleClient(rig.url);
  const res = await anon.request('/console/devices/iphone-1');
  expect(res.status).toBe(303);
  expect(res.location).toBe('/console/login?next=%2Fconsole%2Fdevices%2Fiphone-1');
  const csrf = await anon.csrf('/console/login');
  const raw = await fetch(`${rig.url}/console/login`, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: `mw_pre=${(await preCookie(rig.url))}` },
    body: new URLSearchParams({ _csrf: csrf, token: tokenOf('viewer') }).toString(),
  });
  // The CSRF token belongs to the other pre-session: refused.
  expect(raw.status).toBe(403);
  const client = new ConsoleClient(rig.url);
  const c = await client.csrf('/console/login');
  const ok = await fetch(`${rig.url}/console/login`, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: `mw_pre=${client['cookies'].get('mw_pre')}` },
    body: new URLSearchParams({ _csrf: c, token: tokenOf('helpdesk') }).toString(),
  });
  expect(ok.status).toBe(303);
  const cookie = ok.headers.getSetCookie().find((h) => h.startsWith('mw_console='))!;
  expect(cookie).toMatch(/HttpOnly/);
  expect(cookie).toMatch(/SameSite=Strict/);
  expect(cookie).toMatch(/Max-Age=3\d{3}/);
  expect(cookie).not.toMatch(/Secure/);
});

async function preCookie(url: string): Promise<string> {
  const res = await fetch(`${url}/console/login`);
  return res.headers.getSetCookie()[0]!.split(';')[0]!.split('=')[1]!;
}

test('reporter and metrics tokens have no console; an unknown token is refused', async () => {
  for (const role of ['reporter', 'metrics'] as const) {
    const client = new ConsoleClient(rig.url);
    const csrf = await client.csrf('/console/login');
    const res = await client.request('/console/login', { form: { _csrf: csrf, token: tokenOf(role) } });
    expect(res.status).toBe(401);
    expect(res.text).toContain('has no console access');
  }
});

test('the device page shows the record, the check and the sentence; a viewer cannot exempt', async () => {
  const viewer = new ConsoleClient(rig.url);
  await viewer.signIn('viewer');
  const page = await viewer.request('/console/devices/iphone-1');
  expect(page.status).toBe(200);
  expect(page.text).toContain(TIKTOK);
  expect(page.text).toContain('no-tiktok');
  expect(page.text).toContain('Remove TikTok. Ref MW-00000000.');
  expect(page.text).toContain('Your role may not exempt devices.');
  const csrf = /name="_csrf" value="([^"]+)"/.exec(page.text)![1]!;
  const res = await viewer.request('/console/devices/iphone-1/exempt', { form: { _csrf: csrf, hours: '1', note: 'x' } });
  expect(res.status).toBe(403);
  expect(await rig.store.getExemptions('iphone-1', 'alice@example.com')).toEqual([]);
});

test('helpdesk exempts with a note; the audit names who', async () => {
  const helpdesk = new ConsoleClient(rig.url);
  await helpdesk.signIn('helpdesk');
  const csrf = await helpdesk.csrf('/console/devices/iphone-1');
  const res = await helpdesk.request('/console/devices/iphone-1/exempt', { form: { _csrf: csrf, hours: '1', note: 'ticket 42' } });
  expect(res).toMatchObject({ status: 303, location: '/console/devices/iphone-1?done=exempted' });
  const [exemption] = await rig.store.getExemptions('iphone-1', 'alice@example.com');
  expect(exemption).toMatchObject({ scope: 'device', subject: 'iphone-1', note: 'ticket 42', createdBy: 'helpdesk-holder' });
  expect(Date.parse(exemption!.expiresAt) - Date.now()).toBeGreaterThan(3_500_000);
  const events = (await rig.store.readAudit('0', 100)).map((e) => e.event);
  expect(events).toContainEqual(expect.objectContaining({ operation: 'exemption-set', by: 'helpdesk-holder', role: 'helpdesk', via: 'console' }));
});

test('a state-changing form without the CSRF token, or from another origin, is refused', async () => {
  const helpdesk = new ConsoleClient(rig.url);
  await helpdesk.signIn('helpdesk');
  const csrf = await helpdesk.csrf('/console/devices/iphone-1');
  const noToken = await helpdesk.request('/console/devices/iphone-1/exempt', { form: { hours: '1', note: 'x' } });
  expect(noToken.status).toBe(403);
  const crossSite = await helpdesk.request('/console/devices/iphone-1/exempt', {
    form: { _csrf: csrf, hours: '1', note: 'x' },
    headers: { origin: 'http://evil.example', 'sec-fetch-site': 'cross-site' },
  });
  expect(crossSite.status).toBe(403);
  expect(await rig.store.getExemptions('iphone-1', 'alice@example.com')).toEqual([]);
});

test('names carrying HTML render as text', async () => {
  // Device ids and user names may hold markup characters (src/core/identifiers.ts allows them).
  await rig.store.putDevice(device({ deviceId: '<script>alert(1)</script>', user: '<b>mallory</b>@example.com' }), 3600);
  const viewer = new ConsoleClient(rig.url);
  await viewer.signIn('viewer');
  const page = await viewer.request(`/console/devices/${encodeURIComponent('<script>alert(1)</script>')}`);
  expect(page.status).toBe(200);
  expect(page.text).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
  expect(page.text).toContain('&lt;b&gt;mallory&lt;/b&gt;');
  expect(page.text).not.toContain('<script>alert');
});

test('bad input gets a clear page, never a stack trace', async () => {
  const viewer = new ConsoleClient(rig.url);
  await viewer.signIn('viewer');
  const cases: [string, number, string][] = [
    ['/console/devices/nope', 404, 'no report is stored for device nope'],
    ['/console/devices/%E0%A4%A', 400, 'not valid percent-encoding'],
    ['/console/audit?since=yesterday-ish', 400, '"since" must be an ISO time'],
    ['/console/audit?action=maybe', 400, 'action must be allow, deny, tempfail or admin'],
    ['/console/decisions/MW-ZZZZZZZZ', 404, 'no decision with reference MW-ZZZZZZZZ'],
    ['/console/decisions/<x>', 400, 'is not a reference id'],
    ['/console/nothing-here', 404, 'there is no console page'],
  ];
  for (const [path, status, text] of cases) {
    const res = await viewer.request(path);
    expect([path, res.status]).toEqual([path, status]);
    expect(res.text).toContain(text.replace(/"/g, '&quot;'));
    expect(res.text).not.toMatch(/at .*\.ts:\d+/);
  }
});

test('an oversized upload is refused with a page', async () => {
  const admin = new ConsoleClient(rig.url);
  await admin.signIn('admin');
  const csrf = await admin.csrf('/console/policy');
  const res = await admin.request('/console/policy/candidate', { form: { _csrf: csrf, text: 'x'.repeat(2 * 1024 * 1024) } });
  expect(res.status).toBe(413);
  expect(res.text).toContain('larger than');
});

test('candidate policy: the simulation with the newly denied devices, or the config-check errors', async () => {
  const owner = new ConsoleClient(rig.url);
  await owner.signIn('admin');
  const csrf = await owner.csrf('/console/policy');
  const ok = await owner.request('/console/policy/candidate', { form: { _csrf: csrf, text: 'checks: []' } });
  expect(ok.status).toBe(200);
  expect(ok.text).toContain('mac-1');
  expect(ok.text).toContain('Newly denied devices (1)');
  const bad = await owner.request('/console/policy/candidate', { form: { _csrf: csrf, text: 'broken' } });
  expect(bad.status).toBe(400);
  expect(bad.text).toContain('candidate.yaml:3: checks[0].mode: must be one of off, report, warn, enforce (got &quot;enforced&quot;)');
});

test('the kill switch needs a confirmation step and an admin', async () => {
  const helpdesk = new ConsoleClient(rig.url);
  await helpdesk.signIn('helpdesk');
  const hcsrf = await helpdesk.csrf('/console/devices/iphone-1');
  expect((await helpdesk.request('/console/policy/kill-switch', { form: { _csrf: hcsrf, on: 'on', confirm: 'yes' } })).status).toBe(403);
  const admin = new ConsoleClient(rig.url);
  await admin.signIn('admin');
  const csrf = await admin.csrf('/console/policy');
  const ask = await admin.request('/console/policy/kill-switch', { form: { _csrf: csrf, on: 'on' } });
  expect(ask.text).toContain('Yes, turn it on');
  expect(rig.calls.killSwitch).toEqual([]);
  const done = await admin.request('/console/policy/kill-switch', { form: { _csrf: csrf, on: 'on', confirm: 'yes' } });
  expect(done.status).toBe(303);
  expect(rig.calls.killSwitch).toEqual([true]);
});

test('search: a reference id opens its decision; a user lists their devices', async () => {
  await rig.store.appendAudit({ msg: 'decision', refId: 'MW-7Q2KABCD', user: 'alice@example.com', deviceId: 'iphone-1', action: 'deny', reasonCode: 'BANNED_APP', decidedBy: 'no-tiktok', checks: [{ checkId: 'no-tiktok', outcome: 'fail', mode: 'enforce', effectiveMode: 'enforce', reason: 'TikTok installed' }], at: new Date().toISOString() });
  const viewer = new ConsoleClient(rig.url);
  await viewer.signIn('viewer');
  const found = await viewer.request('/console/search?q=mw-7q2kabcd');
  expect(found.location).toBe('/console/decisions/MW-7Q2KABCD');
  const decision = await viewer.request(found.location!);
  expect(decision.text).toContain('TikTok installed');
  expect(decision.text).toContain('no-tiktok');
  const user = await viewer.request('/console/search?q=alice%40example.com');
  expect(user.text).toContain('/console/devices/iphone-1');
  const audit = await viewer.request('/console/audit?check=no-tiktok');
  expect(audit.text).toContain('MW-7Q2KABCD');
  const overview = await viewer.request('/console/overview');
  expect(overview.text).toContain('<svg');
  expect(overview.text).toContain('mdm-1');
});

test('/my/: own credentials, own devices only', async () => {
  await rig.store.putDevice(device({ deviceId: 'bob-phone', user: 'bob@example.com' }), 3600);
  const person = new ConsoleClient(rig.url);
  expect((await person.request('/my/')).location).toBe('/my/login');
  const csrf = await person.csrf('/my/login');
  const wrong = await person.request('/my/login', { form: { _csrf: csrf, user: 'alice@example.com', password: 'nope' } });
  expect(wrong.status).toBe(401);
  const ok = await person.request('/my/login', { form: { _csrf: csrf, user: 'alice@example.com', password: 'alice-pw' } });
  expect(ok.location).toBe('/my/');
  const mine = await person.request('/my/');
  expect(mine.text).toContain('iphone-1');
  expect(mine.text).toContain('Remove TikTok');
  expect(mine.text).not.toContain('bob-phone');
  // The self-service session opens no staff page.
  expect((await person.request('/console/devices/bob-phone')).status).toBe(303);
});

test('the overview lists the inventory connectors with their last complete sync, stale ones marked, names escaped', async () => {
  const viewer = new ConsoleClient(rig.url);
  await viewer.signIn('viewer');
  const page = await viewer.request('/console/overview');
  expect(page.status).toBe(200);
  expect(page.text).toContain('<tr data-connector="intune"><td>intune</td><td>intune</td><td>2026-12-07T08:00:00.000Z</td><td>2026-12-07T08:15:00.000Z (failed)</td><td class="deny">stale</td></tr>');
  expect(page.text).toContain('<td>&lt;b&gt;jamf&lt;/b&gt;</td><td>jamf</td><td>never</td><td></td><td class="">never synced</td>');
  expect(page.text).not.toContain('<b>jamf</b>');
});

test('a reference id older than the entries kept in memory is still found in the stream; an unknown one is a clear 404', async () => {
  // auditScanEntries is 1000 in the rig: the decision is followed by 2,000 newer entries.
  await rig.store.appendAudit({ msg: 'decision', refId: 'MW-01DDEC1S', user: 'alice@example.com', deviceId: 'iphone-1', action: 'deny', reasonCode: 'BANNED_APP', decidedBy: 'no-tiktok', checks: [], at: new Date().toISOString() });
  for (let i = 0; i < 2000; i++) await rig.store.appendAudit({ msg: 'decision', refId: `MW-N${String(i).padStart(7, '0')}`, user: 'bob@example.com', action: 'allow', checks: [], at: new Date().toISOString() });
  await rig.console.feed.refresh();
  expect(rig.console.feed.newest().some((e) => e.event.refId === 'MW-01DDEC1S')).toBe(false);
  const viewer = new ConsoleClient(rig.url);
  await viewer.signIn('viewer');
  const old = await viewer.request('/console/decisions/MW-01DDEC1S');
  expect(old.status).toBe(200);
  expect(old.text).toContain('MW-01DDEC1S');
  expect(old.text).toContain('iphone-1');
  const unknown = await viewer.request('/console/decisions/MW-ZZZZZZZZ');
  expect(unknown.status).toBe(404);
  expect(unknown.text).toContain('no decision with reference MW-ZZZZZZZZ in the audit stream');
});

test('signing out needs the CSRF token, clears the cookie, refuses a kept copy of it and is audited', async () => {
  const helpdesk = new ConsoleClient(rig.url);
  await helpdesk.signIn('helpdesk');
  const csrf = await helpdesk.csrf('/console/overview');
  const kept = (helpdesk as unknown as { cookies: Map<string, string> }).cookies.get('mw_console')!;
  expect((await helpdesk.request('/console/logout', { form: { _csrf: 'forged' } })).status).toBe(403);
  const out = await helpdesk.request('/console/logout', { form: { _csrf: csrf } });
  expect(out.status).toBe(303);
  expect(out.location).toBe('/console/login');
  expect((await helpdesk.request('/console/overview')).location).toMatch(/^\/console\/login/);
  // A copy of the cookie taken before signing out opens nothing either.
  const replay = await fetch(`${rig.url}/console/overview`, { headers: { cookie: `mw_console=${kept}` }, redirect: 'manual' });
  expect(replay.status).toBe(303);
  const audit = (await rig.store.readAudit('0', 100)).map((e) => e.event);
  expect(audit).toContainEqual(expect.objectContaining({ msg: 'admin', operation: 'console-sign-out', by: 'helpdesk-holder', role: 'helpdesk', via: 'console' }));
});

test('helpdesk re-evaluates a device: every instance is asked (a device change is published), the audit names who; a viewer may not', async () => {
  const asked: [string, string][] = [];
  const own = await startConsoleRig({}, { reevaluate: async (deviceId, user) => void asked.push([deviceId, user]) });
  try {
    await own.store.putDevice(device(), 3600);
    const viewer = new ConsoleClient(own.url);
    await viewer.signIn('viewer');
    const viewerCsrf = await viewer.csrf('/console/devices/iphone-1');
    expect((await viewer.request('/console/devices/iphone-1/reevaluate', { form: { _csrf: viewerCsrf } })).status).toBe(403);
    expect(asked).toEqual([]);
    const helpdesk = new ConsoleClient(own.url);
    await helpdesk.signIn('helpdesk');
    const csrf = await helpdesk.csrf('/console/devices/iphone-1');
    const res = await helpdesk.request('/console/devices/iphone-1/reevaluate', { form: { _csrf: csrf } });
    expect(res).toMatchObject({ status: 303, location: '/console/devices/iphone-1?done=reevaluated' });
    expect(asked).toEqual([['iphone-1', 'alice@example.com']]);
    const page = await helpdesk.request(res.location!);
    expect(page.text).toContain('Every instance is re-evaluating the live sessions of this device.');
    const events = (await own.store.readAudit('0', 100)).map((e) => e.event);
    expect(events).toContainEqual(expect.objectContaining({ operation: 're-evaluate', by: 'helpdesk-holder', role: 'helpdesk', via: 'console', deviceId: 'iphone-1' }));
  } finally {
    await own.stop();
  }
});
