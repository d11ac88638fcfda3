// End to end through the real runtime: fake devices report to the admin API, mail clients (imapflow,
// Python imaplib) log in through mailwarden to a real Dovecot, backed by a real redis-server.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { ALICE, TIKTOK, imapClient, loginError, seedMailbox, startRig, type Rig } from './imap-rig';
import { RawClient } from '../unit/imap-fakes';

const run = promisify(execFile);
let rig: Rig;

beforeAll(async () => {
  rig = await startRig();
  seedMailbox(rig.dovecot, 3);
  await rig.report('alice-iphone', 'ios', [TIKTOK, 'com.apple.mobilemail']);
  await rig.report('alice-mac', 'macos', [TIKTOK]);
});
afterAll(async () => {
  await rig?.stop();
});

/** Python's imaplib: a client that is not Node. Prints OK or the server's refusal. */
async function python(port: number, user: string, password: string): Promise<string> {
  const script = `
import imaplib, sys
M = imaplib.IMAP4('127.0.0.1', ${port})
try:
    M.login(sys.argv[1], sys.argv[2])
except imaplib.IMAP4.error as e:
    print('REFUSED', e); sys.exit(0)
typ, data = M.select('INBOX', readonly=True)
typ2, msg = M.fetch(b'1', '(BODY.PEEK[HEADER.FIELDS (SUBJECT)])')
print('OK', data[0].decode(), msg[0][1].decode().strip())
M.logout()
`;
  const { stdout } = await run('python3', ['-c', script, user, password], { timeout: 10000 });
  return stdout.trim();
}

test('alice’s iOS device with TikTok: ALERT naming the app, then NO [CONTACTADMIN] (imapflow and imaplib)', async () => {
  const err = await loginError(imapClient(rig.ports.plain, { user: `${ALICE.user}+alice-iphone`, pass: ALICE.password }));
  expect(err.serverResponseCode).toBe('CONTACTADMIN');
  expect(err.responseText).toMatch(/TikTok is installed/);

  const raw = await RawClient.connect(rig.ports.plain);
  await raw.waitFor(/^\* OK/);
  raw.write(`a1 LOGIN ${ALICE.user}+alice-iphone ${ALICE.password}\r\n`);
  await raw.waitFor(/a1 NO/);
  raw.close();
  expect(raw.data).toMatch(/\* OK \[ALERT\] Company mail is blocked on this iOS device because TikTok is installed\. .*Ref \S+\.\r\na1 NO \[CONTACTADMIN\] /);

  const out = await python(rig.ports.plain, `${ALICE.user}+alice-iphone`, ALICE.password);
  expect(out).toMatch(/^REFUSED .*\[CONTACTADMIN\].*TikTok/);
});

test('alice’s macOS laptop with TikTok logs in; SELECT and FETCH work (imapflow and imaplib)', async () => {
  const client = imapClient(rig.ports.plain, { user: `${ALICE.user}+alice-mac`, pass: ALICE.password });
  await client.connect();
  const box = await client.mailboxOpen('INBOX');
  expect(box.exists).toBe(3);
  const msg = await client.fetchOne('1', { envelope: true, source: true });
  expect(msg && msg.envelope?.subject).toBe('hello 1');
  expect(msg && msg.source?.toString()).toContain('lorem ipsum');
  expect(client.serverInfo).toBeDefined();
  await client.logout();

  const out = await python(rig.ports.plain, `${ALICE.user}+alice-mac`, ALICE.password);
  expect(out).toMatch(/^OK 3 Subject: hello 1$/);
});

test('the logins above show in the metrics: upstream login time against the real Dovecot, its breaker closed, logins by result', async () => {
  const text = await rig.runtime.metrics.text();
  const count = /^mailwarden_upstream_login_seconds_count\{protocol="imap",result="ok"\} (\d+)$/m.exec(text);
  expect(Number(count?.[1])).toBeGreaterThanOrEqual(2);
  expect(text).toMatch(/^mailwarden_upstream_breaker_open\{service="imap",upstream="127\.0\.0\.1:\d+"\} 0$/m);
  expect(text).toMatch(/^mailwarden_logins_total\{protocol="imap",result="allow"\} [1-9]/m);
  expect(text).toMatch(/^mailwarden_logins_total\{protocol="imap",result="deny"\} [1-9]/m);
  expect(text).toMatch(/^mailwarden_store_up 1$/m);
});

test('the iOS device reports again without TikTok and logs in', async () => {
  await rig.report('alice-iphone-2', 'ios', [TIKTOK]);
  await expect(loginError(imapClient(rig.ports.plain, { user: `${ALICE.user}+alice-iphone-2`, pass: ALICE.password }))).resolves.toMatchObject({
    serverResponseCode: 'CONTACTADMIN',
  });
  await rig.report('alice-iphone-2', 'ios', ['com.apple.mobilemail']);
  const client = imapClient(rig.ports.plain, { user: `${ALICE.user}+alice-iphone-2`, pass: ALICE.password });
  await client.connect();
  expect((await client.mailboxOpen('INBOX')).exists).toBe(3);
  await client.logout();
});

test('an unidentified client gets the configured rule (deny with the enrolment sentence)', async () => {
  const err = await loginError(imapClient(rig.ports.plain, { user: ALICE.user, pass: ALICE.password }));
  expect(err.serverResponseCode).toBe('CONTACTADMIN');
  expect(err.responseText).toMatch(/not enrolled/);
});

test('a device-bound app password logs in through the Dovecot master user', async () => {
  await rig.report('alice-ipad', 'ipados', ['com.apple.mobilemail']);
  const res = await fetch(`http://127.0.0.1:${rig.runtime.admin!.address.port}/v1/devices/alice-ipad/app-passwords`, {
    method: 'POST',
    headers: { authorization: 'Bearer imap-test-admin-token', 'content-type': 'application/json' },
    body: JSON.stringify({ user: ALICE.user }),
  });
  expect(res.status).toBeLessThan(300);
  const { password } = (await res.json()) as { password: string };
  const client = imapClient(rig.ports.plain, { user: ALICE.user, pass: password });
  await client.connect();
  expect((await client.mailboxOpen('INBOX')).exists).toBe(3);
  await client.logout();
  const log = require('node:fs').readFileSync(rig.dovecot.logFile, 'utf8') as string;
  // Dovecot saw the client's address through ID x-originating-ip from a trusted network, and the master login.
  expect(log).toMatch(/Master user logging in as alice@example.com/);
});

test('OAUTHBEARER with a JWT carrying the device claim (imapflow over implicit TLS)', async () => {
  await rig.report('alice-pixel', 'android', []);
  const token = await rig.token('alice-pixel');
  const client = imapClient(rig.ports.implicit, { user: ALICE.user, accessToken: token }, true);
  await client.connect();
  expect((await client.mailboxOpen('INBOX')).exists).toBe(3);
  await client.logout();
  let audit: Record<string, unknown>[] = [];
  for (let i = 0; i < 50 && audit.length === 0; i++) {
    audit = (await rig.runtime.store.readAudit('0', 10000)).map((e) => e.event).filter((e) => e.deviceId === 'alice-pixel');
    if (audit.length === 0) await new Promise((r) => setTimeout(r, 20));
  }
  expect(audit[0]).toMatchObject({ identitySource: 'oauth', identityStrength: 'strong', action: 'allow' });
});

test('an IDLE session is ended within 1 s of a non-compliant report for its device', async () => {
  await rig.report('alice-iphone-3', 'ios', []);
  const client = imapClient(rig.ports.plain, { user: `${ALICE.user}+alice-iphone-3`, pass: ALICE.password });
  await client.connect();
  await client.mailboxOpen('INBOX');
  const idling = client.idle();
  await new Promise((r) => setTimeout(r, 100));
  expect(rig.runtime.gate.sessions.byDevice('alice-iphone-3')).toHaveLength(1);
  const closed = new Promise<number>((resolve) => client.on('close', () => resolve(Date.now())));
  const started = Date.now();
  await rig.report('alice-iphone-3', 'ios', [TIKTOK]);
  const at = await closed;
  await idling.catch(() => undefined);
  expect(at - started).toBeLessThan(1000);
  expect(rig.runtime.gate.sessions.byDevice('alice-iphone-3')).toHaveLength(0);
});

test('the BYE carries the sentence (raw client in IDLE)', async () => {
  await rig.report('alice-iphone-4', 'ios', []);
  const raw = await RawClient.connect(rig.ports.plain);
  await raw.waitFor(/^\* OK/);
  raw.write(`a1 LOGIN ${ALICE.user}+alice-iphone-4 ${ALICE.password}\r\na2 SELECT INBOX\r\na3 IDLE\r\n`);
  await raw.waitFor(/\+ idling/);
  await rig.report('alice-iphone-4', 'ios', [TIKTOK]);
  await raw.waitClosed();
  expect(raw.data).toMatch(/\* BYE Company mail is blocked on this iOS device because TikTok is installed\..*\r\n$/);
});
