// Postfix 3.7 submission asking mailwarden through check_policy_service (main.cf / master.cf blocks
// of docs/hooks.md): SASL through Dovecot, device identity from the MDM client certificate Postfix
// verified (ccert_subject). Client: Python smtplib with STARTTLS and a client certificate.
import net from 'node:net';
import path from 'node:path';
import { startDovecot, type DovecotServer } from '../harness/dovecot';
import { startPostfix, type PostfixServer } from '../harness/postfix';
import { freePort } from '../harness/ports';
import { docBlock, substitute } from './doc-blocks';
import { ALICE, PY_SMTP_SEND, TIKTOK, TIKTOK_SENTENCE, python, startHooksRig, type HooksRig } from './hooks-rig';

jest.setTimeout(60000);
const BOB = 'bob@example.com';

let rig: HooksRig;
let dovecot: DovecotServer;
let postfix: PostfixServer;
let hookPort: number;
let submissionPort: number;
const certs: Record<string, { cert: string; key: string }> = {};

beforeAll(async () => {
  // A fixed port: the hook comes back there after the "mailwarden unreachable" case.
  const listenPort = await freePort();
  rig = await startHooksRig({ hooks: (d) => ({ postfix: { ...d.postfix, listen: { host: '127.0.0.1', port: listenPort } } }) });
  hookPort = rig.hooks.addresses.postfix!.port;
  // Dovecot only answers Postfix's SASL questions (the user's own password).
  dovecot = await startDovecot({ extraConfig: 'service auth {\n  unix_listener auth-postfix {\n    mode = 0666\n  }\n}\n' });
  submissionPort = await freePort();
  postfix = await startPostfix({
    saslSocket: path.join(dovecot.dir, 'run', 'auth-postfix'),
    tls: { cert: rig.pki.serverCert, key: rig.pki.serverKey },
    extraMainCf: substitute(docBlock('postfix-main'), [
      ['127.0.0.1:9400', `127.0.0.1:${hookPort}`],
      ['/etc/ssl/certs/mdm-ca.pem', rig.pki.caCert],
    ]),
    extraMasterCf: `${substitute(docBlock('postfix-master'), [['submission inet', `127.0.0.1:${submissionPort} inet`]])}\n`,
    waitForPort: submissionPort,
  });
  await rig.report('alice-iphone', 'ios', [TIKTOK, 'com.apple.mobilemail']);
  await rig.report('alice-laptop', 'macos', [TIKTOK]);
  certs.iphone = rig.pki.clientCert('alice-iphone');
  certs.laptop = rig.pki.clientCert('alice-laptop');
}, 90000);

afterAll(async () => {
  await postfix?.cleanup();
  await dovecot?.cleanup();
  await rig?.stop();
});

const send = (device: keyof typeof certs | null, subject: string, user = ALICE.user, password = ALICE.password): Promise<string> => {
  const cert = device ? certs[device]! : { cert: '-', key: '-' };
  return python(PY_SMTP_SEND, ['127.0.0.1', String(submissionPort), user, password, cert.cert, cert.key, subject]).then((s) => s.trim());
};
const deliveredWith = (subject: string): Buffer[] => postfix.delivered(BOB).filter((m) => m.toString().includes(`Subject: ${subject}`));

test('the TikTok iPhone (its MDM certificate) is refused with 550 5.7.1 and the sentence; nothing is delivered', async () => {
  const answer = await send('iphone', 'iphone via postfix');
  // Postfix puts the address and the restriction's name before the sentence (sender restrictions).
  expect(answer).toMatch(/^ERR 550 5\.7\.1 <alice@example\.com>: Sender address rejected: Company mail is blocked/);
  expect(answer).toMatch(TIKTOK_SENTENCE);
  await new Promise((r) => setTimeout(r, 300));
  expect(deliveredWith('iphone via postfix')).toHaveLength(0);
  const [event] = await rig.audit('alice-iphone');
  expect(event).toMatchObject({ action: 'deny', frontEnd: 'postfix', identitySource: 'certificate', protocol: 'smtp', user: ALICE.user });
});

test('the laptop gets its mail delivered; without a certificate the unidentified rule refuses', async () => {
  expect(await send('laptop', 'laptop via postfix')).toBe('SENT');
  await postfix.waitForDelivery(BOB, 1);
  expect(deliveredWith('laptop via postfix')).toHaveLength(1);
  expect(await send(null, 'no certificate')).toMatch(/^ERR 550 5\.7\.1 <alice@example\.com>: Sender address rejected: This mail app is not enrolled for company mail/);
});

test('report mode lets the iPhone send and audits the would-be denial', async () => {
  await rig.setTiktok({ mode: 'report' });
  try {
    expect(await send('iphone', 'report mode via postfix')).toBe('SENT');
    const events = await rig.audit('alice-iphone', 2);
    const last = events[events.length - 1]!;
    expect(last).toMatchObject({ action: 'allow', frontEnd: 'postfix' });
    const check = (last.checks as { checkId: string; outcome: string; effectiveMode: string }[]).find((c) => c.checkId === 'no-tiktok-on-mobiles');
    expect(check).toMatchObject({ outcome: 'fail', effectiveMode: 'report' });
  } finally {
    await rig.setTiktok({});
  }
});

test('the kill switch lets the iPhone send', async () => {
  await rig.setKillSwitch(true);
  try {
    expect(await send('iphone', 'kill switch via postfix')).toBe('SENT');
  } finally {
    await rig.setKillSwitch(false);
  }
});

/** Raw policy-protocol exchange with the hook; what came back before the close (or a timeout). */
function rawPolicy(request: string, localAddress = '127.0.0.1', waitMs = 2000): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect({ port: hookPort, host: '127.0.0.1', localAddress });
    let data = '';
    socket.on('data', (d: Buffer) => {
      data += d.toString();
      if (data.endsWith('\n\n')) socket.end();
    });
    socket.on('close', () => resolve(data));
    socket.on('error', () => resolve(data));
    socket.setTimeout(waitMs, () => {
      socket.destroy();
      resolve(`${data}(still open)`);
    });
    socket.write(request);
  });
}

describe('bad input to the Postfix hook: no reply and a closed connection (Postfix then applies its default_action, a 4xx)', () => {
  test('two requests on one persistent connection are both answered', async () => {
    const one = `request=smtpd_access_policy\nprotocol_state=MAIL\nsasl_username=${ALICE.user}\nccert_subject=alice-laptop\ninstance=a1\n\n`;
    const answer = await new Promise<string>((resolve) => {
      const socket = net.connect(hookPort, '127.0.0.1');
      let data = '';
      socket.on('data', (d: Buffer) => {
        data += d.toString();
        if (data.split('\n\n').length === 3) socket.end();
      });
      socket.on('close', () => resolve(data));
      socket.write(one + one.replace('a1', 'a2'));
    });
    expect(answer).toBe('action=DUNNO\n\naction=DUNNO\n\n');
  });
  test('malformed lines, oversized lines, another request type', async () => {
    expect(await rawPolicy('this is not an attribute\n\n')).toBe('');
    expect(await rawPolicy(`request=smtpd_access_policy\nsasl_username=${'a'.repeat(5000)}\n\n`)).toBe('');
    expect(await rawPolicy('request=something_else\n\n')).toBe('');
  });
  test('a connection from an address not in allowFrom is closed at once', async () => {
    expect(await rawPolicy(`request=smtpd_access_policy\nsasl_username=${ALICE.user}\n\n`, '127.0.0.2')).toBe('');
  });
  test('metrics per outcome', async () => {
    const text = await rig.metrics();
    expect(text).toMatch(/mailwarden_hook_requests_total\{[^}]*hook="postfix"[^}]*outcome="deny"[^}]*\} [1-9]/);
    expect(text).toMatch(/mailwarden_hook_requests_total\{[^}]*hook="postfix"[^}]*outcome="bad-request"[^}]*\} [1-9]/);
  });
});

test('mailwarden unreachable (the hook switched off by a reload): Postfix applies default_action 451 4.7.1, nothing is delivered', async () => {
  const answer = await rig.withHookDisabled('postfix', () => send('laptop', 'hook down'));
  expect(answer).toMatch(/^ERR 451 4\.7\.1 .*Compliance check unavailable/);
  await new Promise((r) => setTimeout(r, 300));
  expect(deliveredWith('hook down')).toHaveLength(0);
  expect(await send('laptop', 'hook back')).toBe('SENT');
});

test('Redis down: a temporary failure (450 4.7.1 from DEFER_IF_PERMIT), never an allow', async () => {
  await rig.withRedisDown(async () => {
    expect(await send('laptop', 'during outage')).toMatch(/^ERR 45\d 4\.7\.1 /);
  });
  await new Promise((r) => setTimeout(r, 300));
  expect(deliveredWith('during outage')).toHaveLength(0);
});
