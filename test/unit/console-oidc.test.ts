// Console sign-in through OpenID Connect against a fake provider: code + PKCE, the ID token verified
// with jose, the role claim mapped to a console role; tampered state, unmapped roles and ID tokens
// with a foreign signature, another audience, an old expiry or another nonce refused.
import { startFakeOidc, type FakeOidc } from '../harness/fake-oidc';
import { ConsoleClient, startConsoleRig, type ConsoleRig } from './console-fakes';

let provider: FakeOidc;
let rig: ConsoleRig;

beforeAll(async () => {
  provider = await startFakeOidc({ clientId: 'mailwarden-console', claims: { sub: 'u-1', email: 'hd@example.com', groups: ['mail-helpdesk', 'staff'] } });
});
beforeEach(async () => {
  delete provider.options.forge;
  provider.options.claims = { sub: 'u-1', email: 'hd@example.com', groups: ['mail-helpdesk', 'staff'] };
  rig = await startConsoleRig({
    oidc: { issuer: provider.issuer, clientId: 'mailwarden-console', scopes: ['openid', 'email'], roleClaim: 'groups', roles: { 'mail-helpdesk': 'helpdesk', 'mail-admins': 'admin' }, nameClaim: 'email' },
  });
});
afterEach(async () => rig.stop());
afterAll(async () => provider.stop());

/** Start → provider → callback, as the browser would follow it; returns the callback answer. */
async function signIn(client: ConsoleClient, tamper?: (callback: URL) => void) {
  const start = await client.request('/console/oidc/start');
  expect(start.status).toBe(303);
  const authorize = new URL(start.location!);
  expect(authorize.searchParams.get('code_challenge_method')).toBe('S256');
  const back = await fetch(authorize, { redirect: 'manual' });
  const callback = new URL(back.headers.get('location')!);
  tamper?.(callback);
  return client.request(callback.pathname + callback.search);
}

test('code + PKCE: the helpdesk signs in with the mapped role and is audited by name', async () => {
  const client = new ConsoleClient(rig.url);
  const done = await signIn(client);
  expect(done.status).toBe(200);
  expect(done.text).toContain('Signed in as hd@example.com (helpdesk)');
  const verifier = provider.tokenRequests.at(-1)!.get('code_verifier');
  expect(verifier).toMatch(/^[A-Za-z0-9_-]{43}$/);
  const overview = await client.request('/console/overview');
  expect(overview.status).toBe(200);
  expect(overview.text).toContain('hd@example.com (helpdesk)');
  const events = (await rig.store.readAudit('0', 100)).map((e) => e.event);
  expect(events).toContainEqual(expect.objectContaining({ operation: 'console-sign-in', by: 'hd@example.com', role: 'helpdesk', via: 'console-oidc' }));
});

test('a tampered state is refused', async () => {
  const client = new ConsoleClient(rig.url);
  const done = await signIn(client, (cb) => cb.searchParams.set('state', 'forged'));
  expect(done.status).toBe(401);
  expect(done.text).toContain('does not match the request');
  expect((await client.request('/console/overview')).status).toBe(303);
});

test('an account without a mapped role is refused', async () => {
  provider.options.claims = { sub: 'u-2', email: 'someone@example.com', groups: ['staff'] };
  const client = new ConsoleClient(rig.url);
  const done = await signIn(client);
  expect(done.status).toBe(401);
  expect(done.text).toContain('no console role');
});

test('a callback without the start cookie is refused', async () => {
  const done = await new ConsoleClient(rig.url).request('/console/oidc/callback?code=x&state=y');
  expect(done.status).toBe(401);
});

test.each([
  ['signed by another key', { foreignKey: true }, 'the ID token does not verify'],
  ['for another client', { audience: 'someone-else' }, 'the ID token does not verify'],
  ['expired', { expired: true }, 'the ID token does not verify'],
  ['for another sign-in (nonce)', { nonce: 'replayed' }, 'not issued for this sign-in (nonce)'],
])('an ID token %s is refused and opens no page', async (_what, forge, message) => {
  provider.options.forge = forge;
  const client = new ConsoleClient(rig.url);
  const done = await signIn(client);
  expect(done.status).toBe(401);
  expect(done.text).toContain(message);
  expect((await client.request('/console/overview')).status).toBe(303);
});
