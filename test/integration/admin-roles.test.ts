// Issue 8 item 9, the scenario against the real Dovecot: the token the MDM reporter and the
// Prometheus scraper hold must not lead to a mailbox (enrol an app password for a never-reported
// device, exempt it, log in through the master user), and even an admin enrols only a device whose
// record names that user, unless it says `force` explicitly.
import { createHash } from 'node:crypto';
import { ADMIN_TOKEN, ALICE, imapClient, seedMailbox, startRig, type Rig } from './imap-rig';

const TOKENS = { reporter: 'mdm-reporter-token', metrics: 'prometheus-token', helpdesk: 'helpdesk-token', admin: 'ops-admin-token' } as const;
type Role = keyof typeof TOKENS;
let rig: Rig;

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

beforeAll(async () => {
  rig = await startRig({
    admin: { accessTokens: Object.entries(TOKENS).map(([role, token]) => ({ name: `${role}-1`, role, sha256: sha256(token) })) },
  });
  seedMailbox(rig.dovecot);
  await rig.report('bobs-phone', 'macos', [], 'bob@example.com');
  await rig.report('alices-laptop', 'macos', []);
}, 60_000);
afterAll(async () => {
  await rig?.stop();
});

async function call(role: Role, method: string, path: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${rig.adminUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${TOKENS[role]}`, 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

/** Logs in as Alice with the password and selects INBOX through mailwarden and the Dovecot master user. */
async function selectsInbox(password: unknown): Promise<boolean> {
  if (typeof password !== 'string') return false;
  const client = imapClient(rig.ports.plain, { user: ALICE.user, pass: password });
  try {
    await client.connect();
    await client.mailboxOpen('INBOX');
    await client.logout();
    return true;
  } catch {
    client.close();
    return false;
  }
}

test.each(['reporter', 'metrics'] as const)('the %s token cannot enrol, exempt and read a mailbox through the master user', async (role) => {
  const device = `never-reported-${role}`;
  const enrol = await call(role, 'POST', `/v1/devices/${device}/app-passwords`, { user: ALICE.user, force: true });
  const exempt = await call(role, 'PUT', `/v1/exemptions/device/${device}`, { hours: 1 });
  const selected = await selectsInbox(enrol.body.password);
  expect({ enrol: enrol.status, exempt: exempt.status, selected }).toEqual({ enrol: 403, exempt: 403, selected: false });
});

test('an admin cannot enrol a never-reported device, or a device for another user, without force', async () => {
  const never = await call('admin', 'POST', '/v1/devices/never-reported-admin/app-passwords', { user: ALICE.user });
  const bobs = await call('admin', 'POST', '/v1/devices/bobs-phone/app-passwords', { user: ALICE.user });
  const code = (answer: { body: Record<string, unknown> }) => (answer.body.error as { code?: string } | undefined)?.code;
  expect({ never: [never.status, code(never)], bobs: [bobs.status, code(bobs)] }).toEqual({
    never: [409, 'DEVICE_NOT_REPORTED'],
    bobs: [409, 'DEVICE_USER_MISMATCH'],
  });
  // The reported device of the same user is enrolled, and that app password opens her mailbox.
  const own = await call('admin', 'POST', '/v1/devices/alices-laptop/app-passwords', { user: ALICE.user });
  expect(own.status).toBe(201);
  expect(await selectsInbox(own.body.password)).toBe(true);
});

test('force: an admin token may, explicitly and audited; a helpdesk token may not', async () => {
  const helpdesk = await call('helpdesk', 'POST', '/v1/devices/never-reported-forced/app-passwords', { user: ALICE.user, force: true });
  expect(helpdesk.status).toBe(403);
  const forced = await call('admin', 'POST', '/v1/devices/never-reported-forced/app-passwords', { user: ALICE.user, force: true });
  expect(forced.status).toBe(201);
  const audit = (await rig.runtime.store.readAudit('0', 10000)).map((e) => e.event).filter((e) => e.operation === 'app-password-issued' && e.deviceId === 'never-reported-forced');
  expect(audit).toEqual([expect.objectContaining({ token: 'admin-1', role: 'admin', forced: true, reported: false })]);
  // The legacy plain token is an admin too, but without force it gets the same refusal.
  const legacy = await fetch(`${rig.adminUrl}/v1/devices/never-reported-legacy/app-passwords`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ user: ALICE.user }),
  });
  expect(legacy.status).toBe(409);
});
