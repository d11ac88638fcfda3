// The console's session cookie: Secure when the console is reached through an https publicUrl or
// when configured always (the admin listener itself speaks plain HTTP, behind a TLS proxy), and a
// session past its expiry or with a changed role is not accepted, whatever the browser sends.
import type http from 'node:http';
import { SessionKeeper } from '../../src/console/session';
import { ConsoleClient, startConsoleRig, tokenOf } from './console-fakes';

async function signInCookies(config: Parameters<typeof startConsoleRig>[0]): Promise<string[]> {
  const rig = await startConsoleRig(config);
  try {
    const login = await fetch(`${rig.url}/console/login`);
    const pre = login.headers.getSetCookie();
    const csrf = /name="_csrf" value="([^"]+)"/.exec(await login.text())![1]!;
    const res = await fetch(`${rig.url}/console/login`, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: pre[0]!.split(';')[0]!, origin: rig.url },
      body: new URLSearchParams({ _csrf: csrf, token: tokenOf('viewer') }).toString(),
    });
    expect(res.status).toBe(303);
    return [...pre, ...res.headers.getSetCookie()];
  } finally {
    await rig.stop();
  }
}

test('an https publicUrl makes the session and pre-session cookies Secure', async () => {
  const cookies = await signInCookies({ publicUrl: 'https://mail-console.example.test' });
  expect(cookies.find((c) => c.startsWith('mw_pre='))).toMatch(/; Secure/);
  expect(cookies.find((c) => c.startsWith('mw_console='))).toMatch(/; HttpOnly; SameSite=Strict; Max-Age=\d+; Secure$/);
});

test('secureCookies: always makes them Secure over plain HTTP too; auto over plain HTTP does not', async () => {
  expect((await signInCookies({ secureCookies: 'always' })).find((c) => c.startsWith('mw_console='))).toMatch(/; Secure/);
  expect((await signInCookies({})).find((c) => c.startsWith('mw_console='))).not.toMatch(/Secure/);
});

const requestWith = (cookie: string) => ({ headers: { cookie } }) as unknown as http.IncomingMessage;

test('an expired session is not read, and a sealed session whose role was edited is refused', () => {
  const keeper = new SessionKeeper();
  const expired = keeper.create('viewer-holder', 'viewer', 'token', -1);
  expect(keeper.read(requestWith(`mw_console=${keeper.seal(expired)}`))).toBeNull();
  const live = keeper.create('viewer-holder', 'viewer', 'token', 5);
  const sealed = keeper.seal(live);
  expect(keeper.read(requestWith(`mw_console=${sealed}`))).toEqual(live);
  const [, mac] = sealed.split('.');
  const forged = `${Buffer.from(JSON.stringify({ ...live, role: 'admin' })).toString('base64url')}.${mac}`;
  expect(keeper.read(requestWith(`mw_console=${forged}`))).toBeNull();
});

test('a session cookie from another process (a restart) opens no page', async () => {
  const rig = await startConsoleRig();
  try {
    const other = new SessionKeeper();
    const client = new ConsoleClient(rig.url);
    const res = await client.request('/console/overview', { headers: { cookie: `mw_console=${other.seal(other.create('admin-holder', 'admin', 'token', 60))}` } });
    expect(res.status).toBe(303);
    expect(res.location).toMatch(/^\/console\/login/);
  } finally {
    await rig.stop();
  }
});
