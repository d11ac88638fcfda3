// SMTP submission through the real runtime to a real Postfix (XCLIENT for app-password devices,
// Dovecot SASL for passthrough), with devices from the fake-device kit and a real redis-server.
import { execFile } from 'node:child_process';
import net from 'node:net';
import { promisify } from 'node:util';
import { findProgram } from '../harness/ports';
import { ALICE, TIKTOK, sendError, smtpClient, startSmtpRig, type SmtpRig } from './smtp-rig';

const execFileP = promisify(execFile);
jest.setTimeout(30000);
const BOB = 'bob@example.com';
let rig: SmtpRig;

async function seedDevices(): Promise<void> {
  await rig.report('alice-iphone', 'ios', [TIKTOK, 'com.apple.mobilemail']);
  await rig.report('alice-laptop', 'macos', [TIKTOK]);
}

beforeAll(async () => {
  rig = await startSmtpRig({ upstream: 'postfix' });
  await seedDevices();
}, 60000);
afterAll(async () => {
  await rig?.stop();
});

function message(subject: string, body = 'Hello Bob.'): string {
  return `From: ${ALICE.user}\r\nTo: ${BOB}\r\nSubject: ${subject}\r\nMessage-ID: <${subject.replace(/\W/g, '')}@example.com>\r\n\r\n${body}\r\n`;
}

function deliveredWith(subject: string): Buffer[] {
  return rig.postfix!.delivered(BOB).filter((m) => m.toString().includes(`Subject: ${subject}\r\n`) || m.toString().includes(`Subject: ${subject}\n`));
}

test('a laptop with TikTok (laptops are not affected) delivers through Postfix; Postfix saw XCLIENT LOGIN', async () => {
  const pass = await rig.enroll('alice-laptop');
  await smtpClient(rig.ports.starttls, { user: ALICE.user, pass }, 'starttls').sendMail({
    envelope: { from: ALICE.user, to: [BOB] },
    raw: message('laptop mail'),
  });
  await rig.postfix!.waitForDelivery(BOB, 1);
  expect(deliveredWith('laptop mail')).toHaveLength(1);
  expect(deliveredWith('laptop mail')[0]!.toString()).toContain('Hello Bob.');
  expect(rig.postfix!.log()).toMatch(/sasl_method=XCLIENT, sasl_username=alice@example\.com/);
});

test('the iPhone with TikTok: AUTH succeeds, MAIL FROM gets 550 5.7.1 naming TikTok, nothing is delivered', async () => {
  const pass = await rig.enroll('alice-iphone');
  const err = await sendError(
    smtpClient(rig.ports.implicit, { user: ALICE.user, pass }, 'implicit').sendMail({ envelope: { from: ALICE.user, to: [BOB] }, raw: message('iphone mail') }),
  );
  expect(err).toMatchObject({ responseCode: 550, command: 'MAIL FROM' });
  expect(err.response).toMatch(/^550 5\.7\.1 Company mail is blocked on this iOS device because TikTok is installed\. Remove TikTok\. Ref MW-/);
  await new Promise((r) => setTimeout(r, 300));
  expect(deliveredWith('iphone mail')).toHaveLength(0);
});

test('report mode: the iPhone delivers, and the audit keeps the would-be denial', async () => {
  await rig.setTiktok({ mode: 'report' });
  try {
    await rig.report('report-iphone', 'ios', [TIKTOK]);
    const pass = await rig.enroll('report-iphone');
    const before = rig.postfix!.delivered(BOB).length;
    await smtpClient(rig.ports.plain, { user: ALICE.user, pass }).sendMail({ envelope: { from: ALICE.user, to: [BOB] }, raw: message('report mode mail') });
    await rig.postfix!.waitForDelivery(BOB, before + 1);
    expect(deliveredWith('report mode mail')).toHaveLength(1);
    const [event] = await rig.audit('report-iphone');
    expect(event).toMatchObject({ action: 'allow', protocol: 'smtp', identitySource: 'app-password' });
    const check = (event!.checks as { checkId: string; outcome: string; effectiveMode: string }[]).find((c) => c.checkId === 'no-tiktok-on-mobiles');
    expect(check).toMatchObject({ outcome: 'fail', effectiveMode: 'report' });
  } finally {
    await rig.setTiktok({});
  }
});

test('passthrough (asserted identity): Postfix checks the password through Dovecot SASL', async () => {
  await rig.report('alice-mac2', 'macos', []);
  const before = rig.postfix!.delivered(BOB).length;
  await smtpClient(rig.ports.plain, { user: `${ALICE.user}+alice-mac2`, pass: ALICE.password }).sendMail({
    envelope: { from: ALICE.user, to: [BOB] },
    raw: message('passthrough mail'),
  });
  await rig.postfix!.waitForDelivery(BOB, before + 1);
  expect(deliveredWith('passthrough mail')).toHaveLength(1);
  const err = await sendError(smtpClient(rig.ports.plain, { user: `${ALICE.user}+alice-mac2`, pass: 'wrong' }).verify());
  expect(err.response).toBe('535 5.7.8 Authentication credentials invalid');
});

test('a recipient Postfix refuses is refused to the client at its RCPT; the others get the message', async () => {
  const pass = await rig.enroll('alice-laptop');
  const info = await smtpClient(rig.ports.plain, { user: ALICE.user, pass }).sendMail({
    envelope: { from: ALICE.user, to: [BOB, 'nobody@example.com'] },
    raw: message('one bad recipient'),
  });
  expect(info.rejected).toEqual(['nobody@example.com']);
  expect(info.rejectedErrors?.[0]?.response).toMatch(/^550 5\.1\.1 <nobody@example\.com>: Recipient address rejected/);
  await new Promise((r) => setTimeout(r, 300));
  expect(deliveredWith('one bad recipient')).toHaveLength(1);
});

test('a bare-LF smuggling attempt is refused and Postfix delivers nothing of it', async () => {
  const pass = await rig.enroll('alice-laptop');
  const socket = net.connect(rig.ports.plain, '127.0.0.1');
  let data = '';
  socket.on('data', (d: Buffer) => (data += d.toString('latin1')));
  const until = async (re: RegExp): Promise<void> => {
    for (let i = 0; i < 100 && !re.test(data); i++) await new Promise((r) => setTimeout(r, 20));
  };
  await until(/^220 /m);
  socket.write(`EHLO x\r\nAUTH PLAIN ${Buffer.from(`\0${ALICE.user}\0${pass}`).toString('base64')}\r\n`);
  await until(/^235 /m);
  socket.write(`MAIL FROM:<${ALICE.user}>\r\nRCPT TO:<${BOB}>\r\nDATA\r\n`);
  await until(/^354 /m);
  socket.write(`Subject: smuggle carrier\r\n\r\nhi\n.\r\nMAIL FROM:<ceo@example.com>\r\nRCPT TO:<${BOB}>\r\nDATA\r\nSubject: smuggled\r\n\r\nx\r\n.\r\n`);
  await until(/^550 /m);
  socket.destroy();
  expect(data).toMatch(/^550 5\.5\.2 /m);
  await new Promise((r) => setTimeout(r, 500));
  expect(deliveredWith('smuggle carrier')).toHaveLength(0);
  expect(deliveredWith('smuggled')).toHaveLength(0);
});

test('Redis down: a temporary failure (454 4.7.0), never an allow', async () => {
  await rig.redis.stop();
  try {
    const err = await sendError(smtpClient(rig.ports.plain, { user: `${ALICE.user}+never-seen`, pass: ALICE.password }).verify());
    expect(err.response).toMatch(/^454 4\.7\.0 /);
  } finally {
    await rig.redis.start();
    // The runtime reconnects on its own; wait for it so the next tests find the store answering.
    for (let i = 0; i < 100; i++) {
      if (await rig.runtime.store.ping().then(() => true, () => false)) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    // The test redis-server keeps nothing across a restart.
    await seedDevices();
  }
});

test('the upstream trusts only mailwarden: a direct unauthenticated relay attempt to Postfix is refused', async () => {
  const socket = net.connect(rig.postfix!.port, '127.0.0.1');
  let data = '';
  socket.on('data', (d: Buffer) => (data += d.toString()));
  const until = async (re: RegExp): Promise<void> => {
    for (let i = 0; i < 100 && !re.test(data); i++) await new Promise((r) => setTimeout(r, 20));
  };
  await until(/^220 /m);
  socket.write('EHLO attacker\r\n');
  await until(/^250 /m);
  socket.write('MAIL FROM:<x@example.org>\r\n');
  await until(/2\.1\.0/);
  socket.write('RCPT TO:<victim@example.net>\r\n');
  await until(/Relay access denied/);
  socket.destroy();
  expect(data).toMatch(/^554 5\.7\.1 <victim@example\.net>: Relay access denied/m);
});

/** Python's smtplib sends the big message, so the client's own buffers are not in this process's RSS. */
const SEND_BIG = `
import smtplib, sys
port, user, password, size = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
line = ("0123456789" * 7 + "\\r\\n").encode()
message = b"Subject: fifty megabytes\\r\\n\\r\\n" + line * (size // len(line) + 1)
client = smtplib.SMTP("127.0.0.1", port)
client.login(user, password)
client.sendmail("alice@example.com", ["bob@example.com"], message)
client.quit()
`;

test('a 50 MB message relays while memory stays flat', async () => {
  const pass = await rig.enroll('alice-laptop');
  const size = 50 * 1000 * 1000;
  const send = (bytes: number) => execFileP('python3', ['-c', SEND_BIG, String(rig.ports.plain), ALICE.user, pass, String(bytes)]);
  // Warm up first: the first big relay grows the process once (~30 MB: allocator pools, and garbage
  // buffers V8 collects only when external memory passes its GC threshold); a second relay of the
  // same size must then add almost nothing (nothing accumulates per message byte).
  await send(size);
  const before = rig.postfix!.delivered(BOB).length;
  const baseline = process.memoryUsage().rss;
  let peak = baseline;
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
  }, 10);
  try {
    await send(size);
  } finally {
    clearInterval(timer);
  }
  const [delivered] = (await rig.postfix!.waitForDelivery(BOB, before + 2, 30000)).slice(-1);
  // Every line arrived (Postfix stores maildir files with LF line ends, so count lines, not bytes).
  expect(delivered!.toString('latin1').split('\n').length).toBeGreaterThan(size / 72);
  // The message never sits in memory: growth stays well below its size (measured 0–12 MB: garbage
  // buffers awaiting V8's external-memory GC, bounded by that threshold rather than by the message).
  expect(peak - baseline).toBeLessThan(size / 2);
}, 60000);

const swaks = findProgram('swaks');

describe('a client that is not Node (swaks)', () => {
  async function runSwaks(user: string, pass: string, subject: string): Promise<string> {
    const args = ['--server', `127.0.0.1:${rig.ports.plain}`, '--from', ALICE.user, '--to', BOB, '--auth', 'PLAIN', '--auth-user', user, '--auth-password', pass, '--header', `Subject: ${subject}`, '--body', 'from swaks'];
    try {
      const { stdout } = await execFileP(swaks!, args);
      return stdout;
    } catch (err) {
      return (err as { stdout: string }).stdout;
    }
  }

  test('happy path: delivered', async () => {
    const before = rig.postfix!.delivered(BOB).length;
    const out = await runSwaks(ALICE.user, await rig.enroll('alice-laptop'), 'swaks laptop');
    expect(out).toMatch(/<- {2}250 2\.0\.0 Ok: queued/);
    await rig.postfix!.waitForDelivery(BOB, before + 1);
    expect(deliveredWith('swaks laptop')).toHaveLength(1);
  });

  test('denial: swaks shows the 550 5.7.1 sentence at MAIL FROM', async () => {
    const out = await runSwaks(ALICE.user, await rig.enroll('alice-iphone'), 'swaks iphone');
    expect(out).toMatch(/<- {2}235 /);
    expect(out).toMatch(/<\*\* 550 5\.7\.1 Company mail is blocked on this iOS device because TikTok is installed/);
    expect(deliveredWith('swaks iphone')).toHaveLength(0);
  });
});
