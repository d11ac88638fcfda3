// Each admin token role against each admin API route (the table in src/admin/roles.ts), the audit of
// an admin action naming the token, and the same 401 for unknown and known paths without a token.
import { ROUTE_PERMISSIONS, roleAllows, type Role } from '../../src/admin/roles';
import { ROLE_TOKENS, startFakeAdmin } from './admin-fakes';

type Admin = Awaited<ReturnType<typeof startFakeAdmin>>;
let admin: Admin;
beforeAll(async () => {
  admin = await startFakeAdmin();
});
afterAll(() => admin.server.close());

const call = async (method: string, path: string, token: string | null, body?: unknown) => {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (token !== null) headers.authorization = `Bearer ${token}`;
  const res = await fetch(admin.url + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: res.status, body: (await res.json().catch(() => null)) as any };
};

/** A concrete path for each pattern of the table. */
const concrete = (pattern: string) => pattern.replace('/:/:', '/device/dev-1').replace('/:', '/dev-1');

const expected: Record<Role, string[]> = {
  reporter: ['POST /v1/reports'],
  metrics: ['GET /metrics'],
  viewer: ['GET /metrics', 'GET /v1/devices', 'GET /v1/devices/:', 'GET /v1/exemptions', 'GET /v1/audit', 'POST /v1/policy/simulate', 'GET /v1/kill-switch', 'GET /v1/connectors'],
  helpdesk: ['GET /metrics', 'GET /v1/devices', 'GET /v1/devices/:', 'GET /v1/exemptions', 'GET /v1/audit', 'POST /v1/policy/simulate', 'GET /v1/kill-switch', 'GET /v1/connectors', 'PUT /v1/exemptions/:/:', 'DELETE /v1/exemptions/:/:'],
  admin: Object.keys(ROUTE_PERMISSIONS),
};

test.each(ROLE_TOKENS)('$role token: 403 FORBIDDEN exactly on the routes its role may not call', async ({ role, token }) => {
  const allowed: string[] = [];
  for (const route of Object.keys(ROUTE_PERMISSIONS)) {
    const [method, pattern] = route.split(' ');
    const answer = await call(method, concrete(pattern), token, method === 'GET' || method === 'DELETE' ? undefined : {});
    if (answer.status === 403) expect(answer.body.error.code).toBe('FORBIDDEN');
    else allowed.push(route);
  }
  expect(allowed.sort()).toEqual([...expected[role]].sort());
  expect(allowed.every((r) => roleAllows(role, ROUTE_PERMISSIONS[r]))).toBe(true);
});

test('a reporter token cannot enrol an app password nor exempt a device; nothing is issued', async () => {
  const reporter = ROLE_TOKENS.find((t) => t.role === 'reporter')!.token;
  const enrol = await call('POST', '/v1/devices/never-reported/app-passwords', reporter, { user: 'alice@example.com' });
  const exempt = await call('PUT', '/v1/exemptions/device/never-reported', reporter, { hours: 1 });
  expect([enrol.status, exempt.status]).toEqual([403, 403]);
  expect(await admin.services.store.listExemptions()).toEqual([]);
});

test("an admin action is audited with the token's name and role", async () => {
  const helpdesk = ROLE_TOKENS.find((t) => t.role === 'helpdesk')!.token;
  const answer = await call('PUT', '/v1/exemptions/device/dev-audit', helpdesk, { hours: 1, note: 'travel' });
  expect(answer.status).toBe(200);
  const audit = await admin.services.store.readAudit('0', 100);
  expect(JSON.stringify(audit)).toContain('"token":"helpdesk-token"');
});

test('without a token, an unknown path answers the same 401 as a known one', async () => {
  const known = await call('GET', '/v1/devices', null);
  const unknown = await call('GET', '/v1/no-such-route', null);
  expect(unknown).toEqual(known);
  expect(known.status).toBe(401);
});

test('a device id with braces, CR/LF or NUL in the path is 400 INVALID_IDENTIFIER, before any lookup', async () => {
  const adminToken = ROLE_TOKENS.find((t) => t.role === 'admin')!.token;
  for (const id of ['%7Bx%7D', 'a%0D%0Ab', 'a%00b']) {
    const enrol = await call('POST', `/v1/devices/${id}/app-passwords`, adminToken, { user: 'alice@example.com' });
    expect([id, enrol.status, enrol.body?.error?.code]).toEqual([id, 400, 'INVALID_IDENTIFIER']);
    const show = await call('GET', `/v1/devices/${id}`, adminToken);
    expect([id, show.status, show.body?.error?.code]).toEqual([id, 400, 'INVALID_IDENTIFIER']);
  }
});

test('an enrolment body whose user has braces, CR/LF or NUL is 400 INVALID_IDENTIFIER and issues nothing', async () => {
  const adminToken = ROLE_TOKENS.find((t) => t.role === 'admin')!.token;
  for (const user of ['{alice}@example.com', 'alice\r\nx', 'al\0ice', ' alice']) {
    const enrol = await call('POST', '/v1/devices/fresh-dev-9/app-passwords', adminToken, { user });
    expect([user, enrol.status, enrol.body?.error?.code]).toEqual([user, 400, 'INVALID_IDENTIFIER']);
  }
  expect(await admin.store.getAppPassword('cred-fresh-dev-9')).toBeNull();
});
