// nginx 1.22 mail proxy (libnginx-mod-mail) with mailwarden as its auth_http service, configured
// with the blocks of docs/hooks.md, in front of a real Dovecot (IMAP, master user) and an SMTP sink
// that takes XCLIENT from nginx. Clients: Python imaplib/smtplib and curl.
import net from 'node:net';
import tls from 'node:tls';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { startDovecot, type DovecotServer } from '../harness/dovecot';
import { startNginx, type NginxServer } from '../harness/nginx';
import { startSmtpSink, type SmtpSink } from '../harness/smtp-sink';
import { freePort } from '../harness/ports';
import { docBlock, substitute } from './doc-blocks';
import { ALICE, PY_IMAP_LOGIN, PY_SMTP_SEND, TIKTOK, TIKTOK_SENTENCE, python, startHooksRig, type HooksRig } from './hooks-rig';

const execFileP = promisify(execFile);
jest.setTimeout(60000);

let dovecot: DovecotServer;
let sink: SmtpSink;
let rig: HooksRig;
let nginx: NginxServer;
let hookPort: number;
const passwords: Record<string, string> = {};

beforeAll(async () => {
  dovecot = await startDovecot();
  sink = await startSmtpSink({ xclient: true });
  // A fixed port: the hook comes back there after the "mailwarden unreachable" case.
  const listenPort = await freePort();
  rig = await startHooksRig({
    hooks: (d) => ({
      nginx: {
        ...d.nginx,
        listen: { host: '127.0.0.1', port: listenPort },
        backends: {
          imap: { ...d.nginx.backends.imap, port: dovecot.port, masterUser: dovecot.master.user, masterPassword: dovecot.master.password },
          smtp: { ...d.nginx.backends.smtp, port: sink.port },
        },
        limits: { requestTimeoutMs: 1000 },
      },
    }),
  });
  hookPort = rig.hooks.addresses.nginx!.port;
  nginx = await startNginx({
    ports: ['imaps', 'smtp'],
    mail: (ports) =>
      substitute(docBlock('nginx-mail'), [
        ['127.0.0.1:9300', `127.0.0.1:${hookPort}`],
        ['listen 993', `listen 127.0.0.1:${ports.imaps}`],
        ['listen 587', `listen 127.0.0.1:${ports.smtp}`],
        ['/etc/nginx/cert.pem', rig.pki.serverCert],
        ['/etc/nginx/key.pem', rig.pki.serverKey],
      ]),
  });
  await rig.report('alice-iphone', 'ios', [TIKTOK, 'com.apple.mobilemail']);
  await rig.report('alice-laptop', 'macos', [TIKTOK]);
  await rig.report('alice-mac', 'macos', []);
  passwords.iphone = await rig.enroll('alice-iphone');
  passwords.laptop = await rig.enroll('alice-laptop');
}, 90000);

afterAll(async () => {
  await nginx?.cleanup();
  await rig?.stop();
  await sink?.stop();
  await dovecot?.cleanup();
});

const imapLogin = (user: string, password: string): Promise<string> =>
  python(PY_IMAP_LOGIN, ['127.0.0.1', String(nginx.ports.imaps), user, password, 'tls']).then((s) => s.trim());
const smtpSend = (user: string, password: string, subject: string): Promise<string> =>
  python(PY_SMTP_SEND, ['127.0.0.1', String(nginx.ports.smtp), user, password, '-', '-', subject]).then((s) => s.trim());

test('the TikTok iPhone is refused: imaplib sees NO [CONTACTADMIN] with the sentence; smtplib sees 550 5.7.1', async () => {
  const imap = await imapLogin(ALICE.user, passwords.iphone!);
  expect(imap).toMatch(/^ERR \[CONTACTADMIN\] /);
  expect(imap).toMatch(TIKTOK_SENTENCE);
  const smtp = await smtpSend(ALICE.user, passwords.iphone!, 'iphone via nginx');
  expect(smtp).toMatch(/^ERR 550 5\.7\.1 /);
  expect(smtp).toMatch(TIKTOK_SENTENCE);
  expect(sink.messages.some((m) => m.raw.toString().includes('iphone via nginx'))).toBe(false);
  const events = await rig.audit('alice-iphone', 2);
  expect(events.every((e) => e.frontEnd === 'nginx' && e.action === 'deny')).toBe(true);
});

test('curl (imaps) sees the same refusal line from nginx', async () => {
  const { stderr } = await execFileP('curl', ['-sv', '-k', '--max-time', '20', `imaps://127.0.0.1:${nginx.ports.imaps}/INBOX`, '-u', `${ALICE.user}:${passwords.iphone}`]).catch((e: { stderr: string }) => e);
  expect(stderr).toMatch(/< \S+ NO \[CONTACTADMIN\] Company mail is blocked on this iOS device because TikTok is installed/);
});

test('the laptop gets mail: IMAP through the Dovecot master login, SMTP through XCLIENT LOGIN', async () => {
  dovecot.fillMailbox(ALICE.user, ['Subject: hi\r\n\r\nhello\r\n']);
  expect(await imapLogin(ALICE.user, passwords.laptop!)).toMatch(/^OK \d+$/);
  expect(await smtpSend(ALICE.user, passwords.laptop!, 'laptop via nginx')).toBe('SENT');
  const [message] = (await sink.waitForMessages(1)).filter((m) => m.raw.toString().includes('laptop via nginx'));
  expect(message?.login).toMatchObject({ user: ALICE.user });
  expect(message?.rcptTo).toEqual(['bob@example.com']);
});

test('asserted user+device with the own password: nginx sends the plain user on and Dovecot verifies the password', async () => {
  expect(await imapLogin(`${ALICE.user}+alice-mac`, ALICE.password)).toMatch(/^OK \d+$/);
  expect(await imapLogin(`${ALICE.user}+alice-mac`, 'wrong-password')).toMatch(/^ERR .*(AUTHENTICATIONFAILED|failed)/i);
});

test('report mode lets the iPhone in and audits the would-be denial', async () => {
  await rig.setTiktok({ mode: 'report' });
  try {
    expect(await imapLogin(ALICE.user, passwords.iphone!)).toMatch(/^OK \d+$/);
    const events = await rig.audit('alice-iphone', 3);
    const last = events[events.length - 1]!;
    expect(last).toMatchObject({ action: 'allow', frontEnd: 'nginx', protocol: 'imap' });
    const check = (last.checks as { checkId: string; outcome: string; effectiveMode: string }[]).find((c) => c.checkId === 'no-tiktok-on-mobiles');
    expect(check).toMatchObject({ outcome: 'fail', effectiveMode: 'report' });
  } finally {
    await rig.setTiktok({});
  }
});

test('the kill switch lets the iPhone in', async () => {
  await rig.setKillSwitch(true);
  try {
    expect(await imapLogin(ALICE.user, passwords.iphone!)).toMatch(/^OK \d+$/);
  } finally {
    await rig.setKillSwitch(false);
  }
  expect(await imapLogin(ALICE.user, passwords.iphone!)).toMatch(/^ERR \[CONTACTADMIN\] /);
});

test('Redis down: a temporary failure (NO [UNAVAILABLE], 454 4.7.0), never an allow', async () => {
  await rig.withRedisDown(async () => {
    const imap = await imapLogin(ALICE.user, passwords.laptop!);
    expect(imap).toMatch(/^ERR \[UNAVAILABLE\] /);
    const smtp = await smtpSend(ALICE.user, passwords.laptop!, 'during outage');
    expect(smtp).toMatch(/^ERR 454 4\.7\.0 /);
  });
  expect(sink.messages.some((m) => m.raw.toString().includes('during outage'))).toBe(false);
});

test('a wrong app password: NO [AUTHENTICATIONFAILED] after nginx waited the Auth-Wait', async () => {
  const wrong = `${passwords.laptop!.split('.')[0]}.${'a'.repeat(26)}`;
  const started = Date.now();
  expect(await imapLogin(ALICE.user, wrong)).toBe('ERR [AUTHENTICATIONFAILED] Authentication failed.');
  expect(Date.now() - started).toBeGreaterThanOrEqual(900);
});

test('after failed guesses the right password still gets in: the throttle never holds an answer past nginx\'s auth_http_timeout', async () => {
  // Three wrong app passwords from this address: the throttle's next delay (2, 4, 8 s) is past the
  // documented auth_http_timeout 5s. Waiting that long inside the hook made nginx give up with
  // "* BAD internal server error" (measured): the user could not log in until the failures expired.
  // (The Redis-down case restarted an empty redis-server: the app password is issued again.)
  passwords.laptop = await rig.enroll('alice-laptop');
  const wrong = `${passwords.laptop!.split('.')[0]}.${'b'.repeat(26)}`;
  for (let i = 0; i < 3; i++) expect(await imapLogin(ALICE.user, wrong)).toBe('ERR [AUTHENTICATIONFAILED] Authentication failed.');
  const started = Date.now();
  expect(await imapLogin(ALICE.user, passwords.laptop!)).toMatch(/^OK \d+$/);
  // Still delayed (the throttle's wait, capped by hooks.nginx.throttleWaitMaxMs), not answered at once.
  expect(Date.now() - started).toBeGreaterThanOrEqual(2500);
}, 60000);

test('mailwarden unreachable (the hook switched off by a reload): nginx refuses the login, never lets it in', async () => {
  // The Redis-down case above restarted an empty redis-server: the app password must be issued again.
  passwords.laptop = await rig.enroll('alice-laptop');
  const answers = await rig.withHookDisabled('nginx', async () => [
    await imapLogin(ALICE.user, passwords.laptop!),
    await rawImapsLogin(ALICE.user, passwords.laptop!),
    await smtpSend(ALICE.user, passwords.laptop!, 'hook down'),
  ]);
  // Measured against nginx 1.22.1 (docs/hooks.md quotes these): an untagged BAD, then nginx closes
  // (imaplib reports only the EOF); SMTP 451 4.3.2.
  expect(answers).toEqual(['ERR command: LOGIN => socket error: EOF', '* BAD internal server error', 'ERR 451 4.3.2 Internal server error']);
  expect(sink.messages.some((m) => m.raw.toString().includes('hook down'))).toBe(false);
  // Back on the same port after the second reload.
  expect(await imapLogin(ALICE.user, passwords.laptop!)).toMatch(/^OK /);
});

/** LOGIN over implicit TLS on a raw socket: every line after the greeting, until nginx closes. */
function rawImapsLogin(user: string, password: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ port: nginx.ports.imaps!, host: '127.0.0.1', rejectUnauthorized: false });
    let text = '';
    socket.on('data', (d: Buffer) => {
      if (text === '' && d.toString().startsWith('* OK')) socket.write(`a LOGIN "${user}" "${password}"\r\n`);
      text += d.toString();
    });
    socket.on('close', () => resolve(text.split('\r\n').slice(1).join('\n').trim()));
    socket.on('error', reject);
    socket.setTimeout(10000, () => socket.destroy());
  });
}

/** One raw HTTP request to the hook; resolves with what came back before the close. */
function rawHook(request: string, waitMs = 3000): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect(hookPort, '127.0.0.1');
    let data = '';
    socket.on('data', (d: Buffer) => (data += d.toString('latin1')));
    socket.on('close', () => resolve(data));
    socket.on('error', () => resolve(data));
    socket.setTimeout(waitMs, () => {
      socket.destroy();
      resolve(`${data}(still open)`);
    });
    socket.write(request);
  });
}

const HEADERS = `Auth-Method: plain\r\nAuth-User: ${ALICE.user}\r\nAuth-Protocol: imap\r\nAuth-Login-Attempt: 1\r\nClient-IP: 127.0.0.1\r\n`;

describe('bad input to the auth_http endpoint is refused, never OK', () => {
  test('without the shared secret', async () => {
    const answer = await rawHook(`GET /nginx/auth HTTP/1.0\r\n${HEADERS}Auth-Pass: ${passwords.laptop}\r\n\r\n`);
    expect(answer).toMatch(/^HTTP\/1\.[01] 401 /);
    expect(answer).not.toMatch(/Auth-Status: OK/i);
  });
  test('missing headers, POP3, CRAM-MD5', async () => {
    const key = 'X-Mailwarden-Key: change-me-nginx-secret\r\n';
    const missing = await rawHook(`GET /nginx/auth HTTP/1.0\r\n${key}Auth-Method: plain\r\n\r\n`);
    expect(missing).toMatch(/^HTTP\/1\.[01] 400 /);
    const pop3 = await rawHook(`GET /nginx/auth HTTP/1.0\r\n${key}${HEADERS.replace('imap', 'pop3')}Auth-Pass: x\r\n\r\n`);
    expect(pop3).toMatch(/Auth-Status: POP3 is not served by mailwarden/);
    const cram = await rawHook(`GET /nginx/auth HTTP/1.0\r\n${key}${HEADERS.replace('plain', 'cram-md5')}Auth-Pass: x\r\nAuth-Salt: <1@x>\r\n\r\n`);
    expect(cram).toMatch(/Auth-Status: Auth-Method cram-md5 is not supported/);
    expect(`${missing}${pop3}${cram}`).not.toMatch(/Auth-Status: OK/i);
  });
  test('oversized headers get 431, a slow client is cut after the request timeout', async () => {
    const big = await rawHook(`GET /nginx/auth HTTP/1.0\r\nX-Big: ${'a'.repeat(20000)}\r\n\r\n`);
    expect(big).toMatch(/^HTTP\/1\.1 431 /);
    const started = Date.now();
    const slow = await rawHook(`GET /nginx/auth HTTP/1.0\r\nAuth-Method: plain\r\n`, 8000);
    expect(slow).not.toContain('(still open)');
    expect(Date.now() - started).toBeLessThan(4000);
  });
  test('the metrics count nginx requests by outcome, with a latency histogram', async () => {
    const text = await rig.metrics();
    expect(text).toMatch(/mailwarden_hook_requests_total\{[^}]*hook="nginx"[^}]*outcome="deny"[^}]*\} [1-9]/);
    expect(text).toMatch(/mailwarden_hook_requests_total\{[^}]*hook="nginx"[^}]*outcome="bad-request"[^}]*\} [1-9]/);
    expect(text).toMatch(/mailwarden_hook_request_seconds_bucket\{[^}]*hook="nginx"/);
  });
});
