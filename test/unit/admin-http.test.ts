// The admin HTTP listener against fake services and the in-memory store: auth, every route's
// success and error shapes, and that a rejected report writes nothing.
import crypto from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { AdminError } from '../../src/admin/errors';
import { StoreUnavailableError, type AuditEntry, type ChangeEvent } from '../../src/store/device-store';
import { principalFor } from '../../src/admin/roles';
import { ROLE_TOKENS, TIKTOK, TOKEN, fakeJws, record, report, startFakeAdmin } from './admin-fakes';

type Admin = Awaited<ReturnType<typeof startFakeAdmin>>;
let admin: Admin;

beforeEach(async () => {
  admin = await startFakeAdmin();
});
afterEach(async () => {
  await admin.server.close();
  jest.restoreAllMocks();
});

interface Answer {
  status: number;
  headers: Headers;
  body: any; // JSON of many shapes
  text: string;
}

async function call(method: string, path: string, init: { body?: string; type?: string; token?: string | null } = {}): Promise<Answer> {
  const headers: Record<string, string> = {};
  const token = init.token === undefined ? TOKEN : init.token;
  if (token !== null) headers.authorization = `Bearer ${token}`;
  if (init.type) headers['content-type'] = init.type;
  const res = await fetch(admin.url + path, { method, headers, body: init.body });
  const text = await res.text();
  let body: unknown = null;
  try {
    body = JSON.parse(text);
  } catch {
    // text endpoints (/metrics)
  }
  return { status: res.status, headers: res.headers, body, text };
}
const json = (method: string, path: string, value: unknown) =>
  call(method, path, { body: JSON.stringify(value), type: 'application/json' });
const postReport = (jws: string) => call('POST', '/v1/reports', { body: jws, type: 'application/jose' });

function expectError(answer: Answer, status: number, code: string): void {
  expect(answer.status).toBe(status);
  expect(answer.body).toEqual({ error: { code, message: expect.any(String) } });
}

describe('probes and auth', () => {
  test('healthz and readyz need no token', async () => {
    expect(await call('GET', '/healthz', { token: null })).toMatchObject({ status: 200, body: { status: 'ok' } });
    const ready = await call('GET', '/readyz', { token: null });
    expect(ready).toMatchObject({ status: 200, body: { status: 'ready', checks: { store: 'ok' } } });
  });

  test('readyz is 503 with the checks when not ready, and when the check itself fails', async () => {
    admin.services.ready = async () => ({ ready: false, checks: { config: 'ok', store: 'connection refused' } });
    expect(await call('GET', '/readyz')).toMatchObject({ status: 503, body: { status: 'not ready', checks: { store: 'connection refused' } } });
    admin.services.ready = async () => {
      throw new Error('boom');
    };
    expect((await call('GET', '/readyz')).status).toBe(503);
  });

  test('every other endpoint needs a bearer token: 401 with WWW-Authenticate', async () => {
    for (const [method, path] of [
      ['GET', '/metrics'],
      ['GET', '/v1/devices'],
      ['POST', '/v1/reports'],
      ['PUT', '/v1/kill-switch'],
      ['GET', '/v1/kill-switch'],
      ['GET', '/v1/audit'],
    ]) {
      const missing = await call(method, path, { token: null });
      expectError(missing, 401, 'UNAUTHORIZED');
      expect(missing.headers.get('www-authenticate')).toMatch(/^Bearer /);
      const wrong = await call(method, path, { token: `${TOKEN}x` });
      expectError(wrong, 401, 'UNAUTHORIZED');
      expect(wrong.headers.get('www-authenticate')).toContain('error="invalid_token"');
    }
    expect(admin.calls.killSwitch).toEqual([]);
  });

  test('any configured token works; the tokens are read per request (reload)', async () => {
    expect((await call('GET', '/v1/devices', { token: 'second-token' })).status).toBe(200);
    admin.services.principalFor = (t) => principalFor(t, [], ['rotated']);
    expect((await call('GET', '/v1/devices')).status).toBe(401);
    expect((await call('GET', '/v1/devices', { token: 'rotated' })).status).toBe(200);
  });

  test('no configured tokens (or only empty ones) refuses everything', async () => {
    admin.services.principalFor = (t) => principalFor(t, [], ['']);
    expect((await call('GET', '/v1/devices', { token: '' })).status).toBe(401);
    admin.services.principalFor = (t) => principalFor(t, [], []);
    expect((await call('GET', '/v1/devices')).status).toBe(401);
  });

  test('the token is compared in constant time against every configured token, even after a match', async () => {
    const spy = jest.spyOn(crypto, 'timingSafeEqual');
    expect((await call('GET', '/v1/exemptions')).status).toBe(200); // TOKEN is the first plain token
    expect(spy).toHaveBeenCalledTimes(ROLE_TOKENS.length + 2); // the hashed role tokens and the two plain ones
    for (const [a, b] of spy.mock.calls) expect((a as Buffer).length).toBe((b as Buffer).length);
  });

  test('unknown route 404, wrong method 405 with Allow, all with the error shape', async () => {
    expectError(await call('GET', '/v1/nothing'), 404, 'NOT_FOUND');
    const wrongMethod = await call('DELETE', '/v1/devices');
    expectError(wrongMethod, 405, 'METHOD_NOT_ALLOWED');
    expect(wrongMethod.headers.get('allow')).toBe('GET');
    const exemption = await call('POST', '/v1/exemptions/device/d1');
    expect(exemption.headers.get('allow')).toBe('PUT, DELETE');
    expectError(await call('GET', '/v1/devices/%E0%A4%A'), 400, 'BAD_REQUEST');
  });
});

describe('POST /v1/reports', () => {
  test('a good report is stored (202) with its TTL, and counted', async () => {
    const answer = await postReport(fakeJws(report({ apps: [TIKTOK] })));
    expect(answer).toMatchObject({ status: 202, body: { stored: true, deviceId: 'dev-1' } });
    const lookup = await admin.store.getDevice('dev-1');
    expect(lookup.state === 'found' && lookup.record.apps).toEqual([TIKTOK]);
    expect(await admin.services.metrics.text()).toContain('mailwarden_reports_total{result="stored"} 1');
  });

  test('an older report than the stored one is not stored (200, stored:false)', async () => {
    const now = Date.now();
    await postReport(fakeJws(report({ reportedAt: new Date(now).toISOString(), osVersion: '18.0' })));
    const older = await postReport(fakeJws(report({ reportedAt: new Date(now - 60_000).toISOString(), osVersion: '16.0' })));
    expect(older).toMatchObject({ status: 200, body: { stored: false, deviceId: 'dev-1', reason: 'older than stored report' } });
    const lookup = await admin.store.getDevice('dev-1');
    expect(lookup.state === 'found' && lookup.record.osVersion).toBe('18.0');
  });

  test("a verifier failure answers with the verifier's code and its status, and writes nothing", async () => {
    const events: ChangeEvent[] = [];
    await admin.store.subscribe((e) => events.push(e));
    const answer = await postReport(fakeJws(report(), 'forged'));
    expect(answer.body).toEqual({ error: { code: 'BAD_SIGNATURE', message: expect.stringContaining('signature') } });
    expect(answer.status).toBe(401);
    expect(await admin.store.listDevices()).toEqual([]);
    expect(await admin.store.readAudit('0', 10)).toEqual([]);
    expect(events).toEqual([]);
    expect(await admin.services.metrics.text()).toContain('mailwarden_reports_total{result="rejected"} 1');
  });

  test('wrong content type 415; body over the limit 413; neither reaches the verifier', async () => {
    expectError(await call('POST', '/v1/reports', { body: fakeJws(report()), type: 'application/json' }), 415, 'UNSUPPORTED_MEDIA_TYPE');
    expectError(await postReport('x'.repeat(5000)), 413, 'BODY_TOO_LARGE');
    expect(admin.calls.verified).toEqual([]);
  });

  test('a chunked body over the limit gets 413 too', async () => {
    const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.request(`${admin.url}/v1/reports`, {
        method: 'POST',
        headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/jose', 'transfer-encoding': 'chunked' },
      });
      req.on('response', (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      req.write('y'.repeat(3000));
      req.end('y'.repeat(3000));
    });
    expect(answer.status).toBe(413);
    expect(JSON.parse(answer.body).error.code).toBe('BODY_TOO_LARGE');
    expect(admin.calls.verified).toEqual([]);
  });

  test('store down: 503 STORE_UNAVAILABLE with Retry-After', async () => {
    admin.store.putDevice = async () => {
      throw new StoreUnavailableError('connect ECONNREFUSED 127.0.0.1:6379');
    };
    const answer = await postReport(fakeJws(report()));
    expectError(answer, 503, 'STORE_UNAVAILABLE');
    expect(answer.headers.get('retry-after')).toBe('5');
    expect(await admin.services.metrics.text()).toContain('mailwarden_reports_total{result="store-unavailable"} 1');
  });

  test('neither the token nor the report body is logged', async () => {
    const jws = fakeJws(report({ apps: ['com.secret.app'] }));
    await postReport(jws);
    await postReport(fakeJws(report(), 'forged'));
    const logged = admin.logs.join('\n');
    expect(logged).toContain('"path":"/v1/reports"');
    expect(logged).not.toContain(TOKEN);
    expect(logged).not.toContain(jws.split('.')[1]);
    expect(logged).not.toContain('com.secret.app');
  });
});

describe('devices', () => {
  beforeEach(async () => {
    for (const id of ['d5', 'd3', 'd1', 'd4', 'd2']) {
      await admin.store.putDevice(record(report({ deviceId: id, user: id === 'd2' ? 'bob@example.com' : 'alice@example.com' })), 3600);
    }
  });

  test('GET /v1/devices pages by device id', async () => {
    const first = await call('GET', '/v1/devices?limit=2');
    expect(first.body.devices.map((d: { deviceId: string }) => d.deviceId)).toEqual(['d1', 'd2']);
    expect(first.body.next).toBe('d2');
    const second = await call('GET', `/v1/devices?limit=2&after=${first.body.next}`);
    expect(second.body.devices.map((d: { deviceId: string }) => d.deviceId)).toEqual(['d3', 'd4']);
    const last = await call('GET', '/v1/devices?limit=2&after=d4');
    expect(last.body).toMatchObject({ devices: [{ deviceId: 'd5' }], next: null });
  });

  test('GET /v1/devices?user= lists one user; a bad limit is 400', async () => {
    const bob = await call('GET', `/v1/devices?user=${encodeURIComponent('bob@example.com')}`);
    expect(bob.body).toMatchObject({ devices: [{ deviceId: 'd2', user: 'bob@example.com' }], next: null });
    expectError(await call('GET', '/v1/devices?limit=0'), 400, 'BAD_REQUEST');
    expectError(await call('GET', '/v1/devices?limit=abc'), 400, 'BAD_REQUEST');
  });

  test('GET /v1/devices/{id}: record, exemptions and the decision it would get now', async () => {
    await admin.store.putDevice(record(report({ deviceId: 'phone 7', apps: [TIKTOK], reportedAt: new Date(Date.now() + 1000).toISOString() })), 3600);
    await json('PUT', '/v1/exemptions/user/alice@example.com', { hours: 2, note: 'travelling', checks: ['min-os-version'] });
    const answer = await call('GET', `/v1/devices/${encodeURIComponent('phone 7')}`);
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({
      deviceId: 'phone 7',
      state: 'found',
      record: { deviceId: 'phone 7', apps: [TIKTOK] },
      exemptions: [{ scope: 'user', subject: 'alice@example.com', note: 'travelling' }],
      decision: { action: 'deny', reasonCode: 'BANNED_APP', protocol: 'imap', checks: [{ outcome: 'pass' }, { checkId: 'banned-apps', outcome: 'fail' }] },
    });
    expect((await call('GET', '/v1/devices/d1?protocol=smtp')).body.decision).toMatchObject({ protocol: 'smtp', action: 'allow' });
    expectError(await call('GET', '/v1/devices/d1?protocol=pop3'), 400, 'BAD_REQUEST');
    expectError(await call('GET', '/v1/devices/nope'), 404, 'DEVICE_NOT_FOUND');
  });

  test('a failure inside a service is 500 INTERNAL without its details; store down is 503', async () => {
    admin.services.decideForDevice = async () => {
      throw new Error('secret internal detail');
    };
    const answer = await call('GET', '/v1/devices/d1');
    expectError(answer, 500, 'INTERNAL');
    expect(answer.text).not.toContain('secret internal detail');
    admin.store.getDevice = async () => {
      throw new StoreUnavailableError('timeout');
    };
    expectError(await call('GET', '/v1/devices/d1'), 503, 'STORE_UNAVAILABLE');
  });
});

describe('app passwords', () => {
  test('POST issues one (201) and audits it without the password; DELETE removes them', async () => {
    expectError(await json('POST', '/v1/devices/dev-9/app-passwords', { user: 'alice@example.com' }), 409, 'DEVICE_NOT_REPORTED');
    await admin.store.putDevice(record(report({ deviceId: 'dev-9' })), 3600);
    const issued = await json('POST', '/v1/devices/dev-9/app-passwords', { user: 'alice@example.com' });
    expect(issued).toMatchObject({ status: 201, body: { password: 'cred-dev-9.s3cret-app-password', credentialId: 'cred-dev-9', deviceId: 'dev-9' } });
    expect(issued.headers.get('cache-control')).toBe('no-store');
    expect(await admin.store.getAppPassword('cred-dev-9')).toMatchObject({ deviceId: 'dev-9' });
    const auditText = JSON.stringify(await admin.store.readAudit('0', 10));
    expect(auditText).toContain('app-password-issued');
    expect(auditText).not.toContain('s3cret');
    expect(admin.logs.join('')).not.toContain('s3cret');

    expect(await call('DELETE', '/v1/devices/dev-9/app-passwords')).toMatchObject({ status: 200, body: { deviceId: 'dev-9', removed: 1 } });
    expect(await admin.store.getAppPassword('cred-dev-9')).toBeNull();
  });

  test('bad JSON names the problem; a missing user is 400; another user than the reported one is 409', async () => {
    const bad = await call('POST', '/v1/devices/dev-1/app-passwords', { body: '{"user": ', type: 'application/json' });
    expectError(bad, 400, 'BAD_JSON');
    expect(bad.body.error.message).toMatch(/not valid JSON/);
    expectError(await call('POST', '/v1/devices/dev-1/app-passwords', { body: '[1]' }), 400, 'BAD_JSON');
    expectError(await json('POST', '/v1/devices/dev-1/app-passwords', { user: ' ' }), 400, 'BAD_REQUEST');
    await admin.store.putDevice(record(report()), 3600);
    const mismatch = await json('POST', '/v1/devices/dev-1/app-passwords', { user: 'mallory@example.com' });
    expectError(mismatch, 409, 'DEVICE_USER_MISMATCH');
    expect(await admin.store.getAppPassword('cred-dev-1')).toBeNull();
  });

  test('an identifier enrolment refuses is 400 INVALID_IDENTIFIER', async () => {
    admin.services.issueAppPassword = async () => {
      throw Object.assign(new Error('user: control characters are not allowed'), { code: 'INVALID_IDENTIFIER' });
    };
    // force: past the stored-report rule; a name the route's own check passes, so the service's refusal is what is mapped.
    const answer = await json('POST', '/v1/devices/dev-1/app-passwords', { user: 'alice@example.com', force: true });
    expectError(answer, 400, 'INVALID_IDENTIFIER');
    expect(answer.body.error.message).toContain('control characters');
    const early = await json('POST', '/v1/devices/dev-1/app-passwords', { user: 'a\u0001b' });
    expectError(early, 400, 'INVALID_IDENTIFIER');
    expect(early.body.error.message).toBe('user: contains a control or invisible character');
  });
});

describe('exemptions', () => {
  test('PUT stores one (the store publishes the change); GET lists it; DELETE removes it', async () => {
    const events: ChangeEvent[] = [];
    await admin.store.subscribe((e) => events.push(e));
    const put = await json('PUT', '/v1/exemptions/device/dev-1', { hours: 24, note: 'VIP, ticket 42', createdBy: 'cli:ops' });
    expect(put.status).toBe(200);
    expect(put.body.exemption).toMatchObject({ scope: 'device', subject: 'dev-1', note: 'VIP, ticket 42', createdBy: 'cli:ops' });
    const hours = (Date.parse(put.body.exemption.expiresAt) - Date.now()) / 3_600_000;
    expect(hours).toBeGreaterThan(23.9);
    expect(hours).toBeLessThanOrEqual(24);
    expect((await call('GET', '/v1/exemptions')).body.exemptions).toHaveLength(1);
    expect(await call('DELETE', '/v1/exemptions/device/dev-1')).toMatchObject({ status: 200, body: { removed: true } });
    expect(await admin.store.listExemptions()).toEqual([]);
    expect(events).toEqual([
      { kind: 'exemption', scope: 'device', subject: 'dev-1' },
      { kind: 'exemption', scope: 'device', subject: 'dev-1' },
    ]);
  });

  test('expiresAt and checks are kept', async () => {
    const expiresAt = new Date(Date.now() + 3_600_000).toISOString();
    const put = await json('PUT', '/v1/exemptions/user/bob@example.com', { expiresAt, note: 'n', checks: ['banned-apps'] });
    expect(put.body.exemption).toMatchObject({ scope: 'user', expiresAt, checks: ['banned-apps'], createdBy: 'admin-api' });
  });

  test.each([
    [{ hours: 1 }, /note/],
    [{ hours: 1, note: '  ' }, /note/],
    [{ note: 'x' }, /exactly one/],
    [{ hours: 1, expiresAt: '2099-01-01T00:00:00Z', note: 'x' }, /exactly one/],
    [{ hours: -1, note: 'x' }, /positive/],
    [{ hours: 100_000, note: 'x' }, /at most/],
    [{ expiresAt: '2000-01-01T00:00:00Z', note: 'x' }, /past/],
    [{ expiresAt: 'tomorrow', note: 'x' }, /ISO-8601/],
    [{ hours: 1, note: 'x', checks: [] }, /checks/],
    [{ hours: 1, note: 'x', colour: 'red' }, /unknown field.*colour/],
  ])('PUT %j is 400 naming the problem, and stores nothing', async (body, message) => {
    const answer = await json('PUT', '/v1/exemptions/device/dev-1', body);
    expectError(answer, 400, 'BAD_REQUEST');
    expect(answer.body.error.message).toMatch(message);
    expect(await admin.store.listExemptions()).toEqual([]);
  });

  test('an unknown scope is 400', async () => {
    expectError(await json('PUT', '/v1/exemptions/group/pilot', { hours: 1, note: 'x' }), 400, 'BAD_REQUEST');
  });
});

describe('audit', () => {
  beforeEach(async () => {
    for (let i = 1; i <= 5; i++) await admin.store.appendAudit({ n: i });
  });
  const ns = (entries: AuditEntry[]) => entries.map((e) => e.event.n);

  test('after/count reads forward; next continues; nothing new keeps the cursor', async () => {
    const first = await call('GET', '/v1/audit?after=0&count=2');
    expect(ns(first.body.entries)).toEqual([1, 2]);
    const rest = await call('GET', `/v1/audit?after=${first.body.next}`);
    expect(ns(rest.body.entries)).toEqual([3, 4, 5]);
    const none = await call('GET', `/v1/audit?after=${rest.body.next}`);
    expect(none.body).toEqual({ entries: [], next: rest.body.next });
  });

  test('last=N reads the newest, with the store tail read or by paging without it', async () => {
    expect(ns((await call('GET', '/v1/audit?last=2')).body.entries)).toEqual([4, 5]);
    const store = admin.store;
    const withoutTail = Object.assign(Object.create(store) as typeof store, { readAuditLast: undefined });
    await admin.server.close();
    admin = { ...admin, ...(await startFakeAdmin({ store: withoutTail })), store };
    for (let i = 6; i <= 7; i++) await store.appendAudit({ n: i });
    expect(ns((await call('GET', '/v1/audit?last=3')).body.entries)).toEqual([5, 6, 7]);
  });

  test('bad parameters are 400', async () => {
    expectError(await call('GET', '/v1/audit?after=0&last=2'), 400, 'BAD_REQUEST');
    expectError(await call('GET', '/v1/audit?count=5000'), 400, 'BAD_REQUEST');
    expectError(await call('GET', '/v1/audit?after=%3Cscript%3E'), 400, 'BAD_REQUEST');
  });
});

describe('simulate, kill switch, metrics', () => {
  test('simulate passes the YAML body (empty = null) and a service AdminError through', async () => {
    expect(await call('POST', '/v1/policy/simulate')).toMatchObject({ status: 200, body: { candidate: 'current' } });
    expect(await call('POST', '/v1/policy/simulate', { body: 'checks: []\n', type: 'application/yaml' })).toMatchObject({
      status: 200,
      body: { candidate: 'given' },
    });
    expect(admin.calls.simulate).toEqual([null, 'checks: []\n']);
    expectError(await call('POST', '/v1/policy/simulate', { body: 'broken' }), 400, 'POLICY_INVALID');
  });

  test('kill switch on/off; a missing or non-boolean "on" is 400', async () => {
    expect(await json('PUT', '/v1/kill-switch', { on: true })).toMatchObject({ status: 200, body: { on: true } });
    expect(await admin.store.getFlag('kill-switch')).toBe('1');
    expect(await json('PUT', '/v1/kill-switch', { on: false })).toMatchObject({ status: 200, body: { on: false } });
    expectError(await json('PUT', '/v1/kill-switch', { on: 'yes' }), 400, 'BAD_REQUEST');
    expect(admin.calls.killSwitch).toEqual([true, false]);
    expect(JSON.stringify(await admin.store.readAudit('0', 10))).toContain('"msg":"admin","operation":"kill-switch"');
  });

  test('GET /v1/kill-switch answers the state: on/off, since, by whom, note', async () => {
    expect(await call('GET', '/v1/kill-switch')).toMatchObject({ status: 200, body: { on: false, since: null, by: null, note: null } });
    const put = await json('PUT', '/v1/kill-switch', { on: true, by: 'cli:alice', note: 'policy v42 denies every iPad' });
    expect(put).toMatchObject({ status: 200, body: { on: true, by: 'cli:alice', note: 'policy v42 denies every iPad' } });
    const { body } = await call('GET', '/v1/kill-switch');
    expect(body).toEqual({ on: true, since: expect.stringMatching(/^\d{4}-\d\d-\d\dT/), by: 'cli:alice', note: 'policy v42 denies every iPad' });
    // Switched on again by someone else: still on since the first time, by the first person.
    await json('PUT', '/v1/kill-switch', { on: true, by: 'cli:bob' });
    expect((await call('GET', '/v1/kill-switch')).body).toMatchObject({ since: body.since, by: 'cli:alice' });
    expect((await json('PUT', '/v1/kill-switch', { on: false })).body).toMatchObject({ on: false, by: 'admin.tokens[0]', note: null });
    expectError(await json('PUT', '/v1/kill-switch', { on: true, note: 'x'.repeat(501) }), 400, 'BAD_REQUEST');
    expectError(await json('PUT', '/v1/kill-switch', { on: true, by: 7 }), 400, 'BAD_REQUEST');
    expect((await call('GET', '/v1/kill-switch')).body).toMatchObject({ on: false });
    expect(JSON.stringify(await admin.store.readAudit('0', 10))).toContain('"on":true,"by":"cli:alice","note":"policy v42 denies every iPad"');
  });

  test('the kill switch set outside mailwarden (redis-cli SET mw:flag:kill-switch 1) reads as on, since unknown', async () => {
    await admin.store.setFlag('kill-switch', '1');
    expect((await call('GET', '/v1/kill-switch')).body).toEqual({ on: true, since: null, by: null, note: null });
  });

  test('/metrics: mailwarden_kill_switch_enabled follows the state; NaN when it cannot be read', async () => {
    let on: boolean | Error = true;
    admin.services.metrics.readFrom({ killSwitch: async () => {
      if (on instanceof Error) throw on;
      return on;
    } });
    expect((await call('GET', '/metrics')).text).toMatch(/^mailwarden_kill_switch_enabled 1$/m);
    on = false;
    expect((await call('GET', '/metrics')).text).toMatch(/^mailwarden_kill_switch_enabled 0$/m);
    on = new Error('store down');
    expect((await call('GET', '/metrics')).text).toMatch(/^mailwarden_kill_switch_enabled nan$/im);
  });

  test('/metrics serves the Prometheus text of every counter', async () => {
    const m = admin.services.metrics;
    m.onLogin('imap', 'deny');
    m.onBrakeTrip();
    const answer = await call('GET', '/metrics');
    expect(answer.status).toBe(200);
    expect(answer.headers.get('content-type')).toContain('text/plain');
    expect(answer.text).toContain('mailwarden_logins_total{protocol="imap",result="deny"} 1');
    expect(answer.text).toContain('mailwarden_brake_trips_total 1');
  });

  test('an answer JSON cannot hold is a 500, not a crash', async () => {
    admin.services.simulate = async () => ({ count: BigInt(1) });
    expectError(await call('POST', '/v1/policy/simulate'), 500, 'INTERNAL');
    expect(admin.logs.join('')).toContain('not serialisable');
    expect((await call('GET', '/healthz')).status).toBe(200);
  });

  test('AdminError thrown by a service keeps its code, the status the registry gives it, and headers', async () => {
    admin.services.setKillSwitch = async () => {
      throw new AdminError('DEVICE_USER_MISMATCH', 'try again', { 'retry-after': '1' });
    };
    const answer = await json('PUT', '/v1/kill-switch', { on: true });
    expectError(answer, 409, 'DEVICE_USER_MISMATCH');
    expect(answer.headers.get('retry-after')).toBe('1');
  });
});

describe('a request target the URL parser rejects', () => {
  test('gets 400 (the listener neither hangs nor leaves an unhandled rejection)', async () => {
    const { port, hostname } = new URL(admin.url);
    const statusLine = await new Promise<string>((resolve) => {
      const socket = net.connect(Number(port), hostname, () => socket.write('GET http://[ HTTP/1.1\r\nHost: a\r\n\r\n'));
      let text = '';
      const done = () => {
        socket.destroy();
        resolve(text.split('\r\n')[0] ?? '');
      };
      socket.on('data', (d: Buffer) => {
        text += d.toString('latin1');
        if (text.includes('\r\n')) done();
      });
      socket.on('error', done);
      socket.setTimeout(2000, done);
    });
    expect(statusLine).toBe('HTTP/1.1 400 Bad Request');
  });
});
