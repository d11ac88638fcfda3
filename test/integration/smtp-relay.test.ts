// SMTP relay guarantees through the real runtime, with the capturing sink as the upstream where the
// exact bytes and transactions must be seen: byte-identical delivery, exactly-once after an upstream
// failure mid-DATA, no smuggled second message, revocation of a live session by a device report.
import { ALICE, TIKTOK, sendError, smtpClient, startSmtpRig, type SmtpRig } from './smtp-rig';
import { RawClient } from '../unit/smtp-fakes';

jest.setTimeout(30000);
const BOB = 'bob@example.com';
let rig: SmtpRig;
let iphonePass: string;

beforeAll(async () => {
  rig = await startSmtpRig({ upstream: 'sink' });
  await rig.report('clean-iphone', 'ios', ['com.apple.mobilemail']);
  iphonePass = await rig.enroll('clean-iphone');
}, 60000);
afterAll(async () => {
  await rig?.stop();
});

async function loggedIn(): Promise<RawClient> {
  const c = await RawClient.connect(rig.ports.plain);
  expect(await c.login(ALICE.user, iphonePass)).toMatch(/^235 /);
  return c;
}

test("a compliant iPhone's message arrives byte-identical, the upstream told who and where by XCLIENT", async () => {
  const raw = Buffer.from(
    'From: alice@example.com\r\nTo: bob@example.com\r\nSubject: =?UTF-8?Q?caf=C3=A9?=\r\nX-Mailer: iPhone Mail (22C161)\r\n\r\n' +
      '.a line starting with a dot\r\n.\r\n..\r\nraw 8-bit: caf\xc3\xa9 \xff\x00\x7f\r\n' +
      `${'x'.repeat(5000)}\r\nend\r\n`,
    'latin1',
  );
  const sent = rig.sink!.messages.length;
  await smtpClient(rig.ports.implicit, { user: ALICE.user, pass: iphonePass }, 'implicit').sendMail({ envelope: { from: ALICE.user, to: [BOB] }, raw });
  const got = (await rig.sink!.waitForMessages(sent + 1))[sent]!;
  expect(got.raw.equals(raw)).toBe(true);
  expect(got.login).toEqual({ method: 'XCLIENT', user: ALICE.user });
  expect(got.xclient).toMatchObject({ ADDR: '127.0.0.1', LOGIN: ALICE.user });
});

test('that login shows in the metrics: an SMTP allow, its upstream login timed, the upstream address breaker closed', async () => {
  const text = await rig.runtime.metrics.text();
  expect(text).toMatch(/^mailwarden_logins_total\{protocol="smtp",result="allow"\} [1-9]/m);
  expect(text).toMatch(/^mailwarden_upstream_login_seconds_count\{protocol="smtp",result="ok"\} [1-9]/m);
  expect(text).toMatch(/^mailwarden_upstream_breaker_open\{service="smtp",upstream="127\.0\.0\.1:\d+"\} 0$/m);
});

test('the upstream dies in the middle of DATA: the client gets a 4xx, and its retry delivers exactly once', async () => {
  const raw = Buffer.concat([Buffer.from('Subject: retried\r\n\r\n'), Buffer.alloc(40 * 50_000, 'retry body, line of forty bytes.......\r\n')]);
  const transport = smtpClient(rig.ports.plain, { user: ALICE.user, pass: iphonePass });
  const sent = rig.sink!.messages.length;
  rig.sink!.failNext(1, { kind: 'close-mid-data' });
  const err = await sendError(transport.sendMail({ envelope: { from: ALICE.user, to: [BOB] }, raw }));
  expect(err.responseCode).toBeGreaterThanOrEqual(400);
  expect(err.responseCode).toBeLessThan(500);
  expect(err.response).toMatch(/^451 4\.4\.2 /);
  await transport.sendMail({ envelope: { from: ALICE.user, to: [BOB] }, raw });
  await rig.sink!.waitForMessages(sent + 1);
  await new Promise((r) => setTimeout(r, 200));
  const retried = rig.sink!.messages.slice(sent);
  expect(retried).toHaveLength(1);
  expect(retried[0]!.raw.equals(raw)).toBe(true);
});

// failure-catalogue §1.2 and rows 42–45.
const SMUGGLING: readonly [string, string][] = [
  ['<LF>.<LF>', '\n.\n'],
  ['<LF>.<CR><LF>', '\n.\r\n'],
  ['<CR>.<CR>', '\r.\r'],
  ['<CR><LF>.<CR>', '\r\n.\r'],
  ['<CR><LF>.<LF>', '\r\n.\n'],
  ['<CR>.<CR><LF>', '\r.\r\n'],
  ['<CR><CR><LF>.<CR><CR><LF>', '\r\r\n.\r\r\n'],
  ['<CR><LF>.<CR>x', '\r\n.\rx'],
];

test.each(SMUGGLING)('smuggling with %s is refused (550 5.5.2) and the upstream sees no second message', async (_name, sequence) => {
  const before = { messages: rig.sink!.messages.length, transactions: rig.sink!.transactions };
  const c = await loggedIn();
  await c.startData(ALICE.user, BOB);
  c.write(`Subject: carrier\r\n\r\nhi${sequence}MAIL FROM:<ceo@example.com>\r\nRCPT TO:<${BOB}>\r\nDATA\r\nSubject: smuggled\r\n\r\nx\r\n.\r\n`);
  expect(await c.reply()).toMatch(/^550 5\.5\.2 /);
  await c.command('QUIT');
  c.close();
  await new Promise((r) => setTimeout(r, 100));
  expect(rig.sink!.messages.length).toBe(before.messages);
  // Exactly our own transaction reached the upstream (aborted before its final dot); no smuggled MAIL.
  expect(rig.sink!.transactions).toBe(before.transactions + 1);
});

test('a device report that makes a live session non-compliant refuses its next MAIL FROM', async () => {
  await rig.report('turning-iphone', 'ios', []);
  const pass = await rig.enroll('turning-iphone');
  const c = await RawClient.connect(rig.ports.plain);
  expect(await c.login(ALICE.user, pass)).toMatch(/^235 /);
  expect(await c.command(`MAIL FROM:<${ALICE.user}>`)).toMatch(/^250/);
  expect(await c.command('RSET')).toMatch(/^250/);
  await rig.report('turning-iphone', 'ios', [TIKTOK]);
  let reply = '';
  for (let i = 0; i < 50; i++) {
    reply = await c.command(`MAIL FROM:<${ALICE.user}>`);
    if (!reply.startsWith('250')) break;
    await c.command('RSET');
    await new Promise((r) => setTimeout(r, 50));
  }
  expect(reply).toMatch(/^550 5\.7\.1 Company mail is blocked on this iOS device because TikTok is installed/);
  c.close();
});

test('a deny report landing while the upstream login is still running refuses the session (issue 8.2)', async () => {
  await rig.report('racing-iphone', 'ios', []);
  const pass = await rig.enroll('racing-iphone');
  const c = await RawClient.connect(rig.ports.plain);
  const connectionsBefore = rig.sink!.connections;
  // A slow upstream: its greeting, and so mailwarden's upstream login, takes 0.8 s (the rig's connect timeout is 1 s).
  rig.sink!.delayGreeting(800);
  try {
    const login = c.login(ALICE.user, pass);
    // The decision (allow) is made and the upstream connection opened; the login is now in the gap.
    for (let i = 0; i < 100 && rig.sink!.connections === connectionsBefore; i++) await new Promise((r) => setTimeout(r, 10));
    expect(rig.sink!.connections).toBe(connectionsBefore + 1);
    await rig.report('racing-iphone', 'ios', [TIKTOK]);
    expect(await login).toMatch(/^235 /);
  } finally {
    rig.sink!.delayGreeting(0);
  }
  expect(await c.command(`MAIL FROM:<${ALICE.user}>`)).toMatch(/^550 5\.7\.1 Company mail is blocked on this iOS device because TikTok is installed/);
  c.close();
});
