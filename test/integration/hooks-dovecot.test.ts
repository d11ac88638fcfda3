// Dovecot 2.3 asking mailwarden: auth_policy_server_url (after the passdb), the oauth2 passdb with
// mailwarden's introspection endpoint for device-bound app passwords, and the doveadm HTTP API for
// ending a live session. Configured with the blocks of docs/hooks.md; clients: Python imaplib, curl.
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { startDovecot, type DovecotServer } from '../harness/dovecot';
import { freePort } from '../harness/ports';
import { docBlock, substitute } from './doc-blocks';
import { ALICE, PY_IMAP_LOGIN, TIKTOK, TIKTOK_SENTENCE, python, startHooksRig, type HooksRig } from './hooks-rig';

jest.setTimeout(60000);

let rig: HooksRig;
let dovecot: DovecotServer;
let hookUrl: string;
const passwords: Record<string, string> = {};

beforeAll(async () => {
  const doveadmPort = await freePort();
  rig = await startHooksRig({
    hooks: (d) => ({
      dovecot: {
        ...d.dovecot,
        listen: { host: '127.0.0.1', port: 0 },
        doveadm: { ...d.dovecot.doveadm, url: `http://127.0.0.1:${doveadmPort}/doveadm/v1` },
      },
    }),
  });
  const hook = `127.0.0.1:${rig.hooks.addresses.dovecot!.port}`;
  hookUrl = `http://${hook}`;
  const oauth2File = path.join(rig.dir, 'dovecot-oauth2.mailwarden.conf.ext');
  fs.writeFileSync(oauth2File, substitute(docBlock('dovecot-oauth2'), [['127.0.0.1:9200', hook]]));
  dovecot = await startDovecot({
    extraConfig: substitute(docBlock('dovecot-conf'), [
      ['127.0.0.1:9200', hook],
      ['port = 8080', `port = ${doveadmPort}`],
      ['/etc/dovecot/dovecot-oauth2.mailwarden.conf.ext', oauth2File],
    ]),
  });
  await rig.report('alice-iphone', 'ios', [TIKTOK, 'com.apple.mobilemail']);
  await rig.report('alice-laptop', 'macos', [TIKTOK]);
  await rig.report('alice-ipad', 'ios', ['com.apple.mobilemail']);
  passwords.iphone = await rig.enroll('alice-iphone');
  passwords.laptop = await rig.enroll('alice-laptop');
}, 90000);

afterAll(async () => {
  await dovecot?.cleanup();
  await rig?.stop();
});

const imapLogin = (user: string, password: string): Promise<string> =>
  python(PY_IMAP_LOGIN, ['127.0.0.1', String(dovecot.port), user, password, 'plain']).then((s) => s.trim());

test('the TikTok iPhone (app password verified through the oauth2 passdb) is refused with the sentence', async () => {
  const answer = await imapLogin(ALICE.user, passwords.iphone!);
  expect(answer).toMatch(/^ERR \[ALERT\] /);
  expect(answer).toMatch(TIKTOK_SENTENCE);
  const [event] = await rig.audit('alice-iphone');
  expect(event).toMatchObject({ action: 'deny', frontEnd: 'dovecot', identitySource: 'app-password', identityStrength: 'strong', protocol: 'imap' });
});

test('the laptop gets mail; the user\'s own password (no device) is decided by the unidentified rule', async () => {
  dovecot.fillMailbox(ALICE.user, ['Subject: hi\r\n\r\nhello\r\n']);
  expect(await imapLogin(ALICE.user, passwords.laptop!)).toMatch(/^OK \d+$/);
  expect(await imapLogin(ALICE.user, ALICE.password)).toMatch(/^ERR \[ALERT\] This mail app is not enrolled for company mail/);
});

test('an app password is only good for the user it was issued to (Dovecot checks the introspected username)', async () => {
  expect(await imapLogin('bob@example.com', passwords.laptop!)).toMatch(/^ERR \[AUTHENTICATIONFAILED\]/);
});

test('report mode lets the iPhone in and audits the would-be denial', async () => {
  await rig.setTiktok({ mode: 'report' });
  try {
    expect(await imapLogin(ALICE.user, passwords.iphone!)).toMatch(/^OK \d+$/);
    const events = await rig.audit('alice-iphone', 2);
    const last = events[events.length - 1]!;
    expect(last).toMatchObject({ action: 'allow', frontEnd: 'dovecot' });
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
});

test('Redis down: a temporary failure, never an allow', async () => {
  await rig.withRedisDown(async () => {
    const laptop = await imapLogin(ALICE.user, passwords.laptop!);
    expect(laptop).toMatch(/^ERR \[UNAVAILABLE\] /);
  });
});

/** Python: log in, SELECT, IDLE; prints IDLING, then the first untagged line and how long it waited. */
const PY_IDLE = `
import imaplib, sys, time
c = imaplib.IMAP4(sys.argv[1], int(sys.argv[2]))
c.login(sys.argv[3], sys.argv[4])
c.select('INBOX')
tag = c._new_tag()
c.send(tag + b' IDLE\\r\\n')
print('CONT', c.readline().decode().strip(), flush=True)
print('IDLING', flush=True)
line = c.readline()
print('GOT', repr(line.decode(errors='replace').strip()), time.time(), flush=True)
`;

test('an IDLE session of a device that turns non-compliant is ended through doveadm kick within 2 s', async () => {
  // Enrolled here: the Redis-down test restarts an empty redis-server (devices are reported again, app passwords not).
  const password = await rig.enroll('alice-ipad');
  const child = spawn('python3', ['-c', PY_IDLE, '127.0.0.1', String(dovecot.port), ALICE.user, password]);
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    for (let i = 0; i < 800 && !out.includes('IDLING') && child.exitCode === null; i++) await new Promise((r) => setTimeout(r, 25));
    expect(out).toContain('IDLING');
    const t0 = Date.now();
    await rig.report('alice-ipad', 'ios', [TIKTOK]);
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
    const got = /GOT '(.*)' ([\d.]+)/.exec(out);
    if (!got) throw new Error(`IDLE client output: ${out}`);
    expect(got?.[1]).toMatch(/^\* BYE /);
    expect(Number(got![2]) * 1000 - t0).toBeLessThan(2000);
  } finally {
    child.kill();
  }
  expect(await imapLogin(ALICE.user, password)).toMatch(TIKTOK_SENTENCE);
});

async function policy(body: string, headers: Record<string, string> = { 'X-API-Key': 'change-me-dovecot-policy-key' }, query = '?command=allow'): Promise<{ status: number; json: unknown }> {
  const res = await fetch(`${hookUrl}/dovecot/policy${query}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
  return { status: res.status, json: await res.json().catch(() => null) };
}

describe('bad input to the Dovecot hook is refused with a negative status, never 0', () => {
  const login = JSON.stringify({ login: ALICE.user, user: ALICE.user, protocol: 'imap', device: 'alice-laptop' });
  test('the device field counts only with the API key', async () => {
    expect((await policy(login)).json).toEqual({ status: 0, msg: '' });
    expect((await policy(login, { 'X-API-Key': 'wrong' })).json).toMatchObject({ status: -1 });
    expect((await policy(login, {})).json).toMatchObject({ status: -1 });
  });
  test('bad JSON, missing login, unknown protocol, oversized body', async () => {
    expect((await policy('{')).json).toMatchObject({ status: -1 });
    expect((await policy('{"protocol":"imap"}')).json).toMatchObject({ status: -1 });
    expect((await policy(JSON.stringify({ login: ALICE.user, protocol: 'pop3' }))).json).toEqual({ status: -1, msg: 'pop3 logins are not served by mailwarden' });
    const big = await policy(JSON.stringify({ login: ALICE.user, protocol: 'imap', pad: 'x'.repeat(40000) }));
    expect(big.json).toMatchObject({ status: -1 });
  });
  test('command=report is answered and ignored', async () => {
    expect((await policy(login, undefined, '?command=report')).json).toEqual({ status: 0, msg: '' });
  });
  test('the introspection endpoint wants the configured client', async () => {
    const res = await fetch(`${hookUrl}/dovecot/passdb?user=${ALICE.user}`, { method: 'POST', body: `token=${passwords.laptop}&client_id=dovecot&client_secret=wrong` });
    expect(res.status).toBe(401);
  });
  test('metrics per hook and outcome', async () => {
    const text = await rig.metrics();
    expect(text).toMatch(/mailwarden_hook_requests_total\{[^}]*hook="dovecot"[^}]*outcome="deny"[^}]*\} [1-9]/);
    expect(text).toMatch(/mailwarden_hook_requests_total\{[^}]*hook="dovecot-passdb"[^}]*outcome="allow"[^}]*\} [1-9]/);
  });
});
