// Issue 8 item 6: mailwarden's own failed-login throttle, end to end. Python imaplib is the attacker
// against two mailwarden instances sharing one redis-server, in front of a real Dovecot (trusted
// network, auth_failure_delay 0; the guesses are app passwords, which Dovecot never sees).
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { startRuntime, type Runtime } from '../../src/app/runtime';
import { silentLogger } from '../../src/core/log';
import { ADMIN_TOKEN, ALICE, startRig, type Rig } from './imap-rig';

const run = promisify(execFile);
const BOB = { user: 'bob@example.com', password: 'bob-pw' };
const THROTTLE = { baseDelayMs: 1000, maxDelayMs: 3000, windowSeconds: 120, knownAddressDays: 1 };
let rig: Rig;
let second: Runtime;
let secondPort: number;
let appPassword: string;

/** Logins with imaplib, one connection each, from a chosen loopback source address; one JSON line per login. */
const IMAPLIB = `
import imaplib, json, socket, sys, time
class FromAddress(imaplib.IMAP4):
    def __init__(self, host, port, source):
        self.source = source
        super().__init__(host, port, timeout=30)
    def _create_socket(self, timeout):
        return socket.create_connection((self.host, self.port), timeout, source_address=(self.source, 0))
port, source = int(sys.argv[1]), sys.argv[2]
for pair in json.loads(sys.argv[3]):
    user, password = pair
    m = FromAddress('127.0.0.1', port, source)
    started = time.monotonic()
    try:
        typ, data = m.login(user, password)
        reply = typ + ' ' + data[0].decode()
    except imaplib.IMAP4.error as e:
        reply = 'NO ' + str(e)
    print(json.dumps({'seconds': time.monotonic() - started, 'reply': reply}), flush=True)
    try:
        m.logout()
    except Exception:
        pass
`;

interface Attempt {
  readonly seconds: number;
  readonly reply: string;
}

async function imaplib(port: number, source: string, logins: readonly (readonly [string, string])[]): Promise<Attempt[]> {
  const { stdout } = await run('python3', ['-c', IMAPLIB, String(port), source, JSON.stringify(logins)], { timeout: 60_000 });
  return stdout.trim().split('\n').map((line) => JSON.parse(line) as Attempt);
}

beforeAll(async () => {
  // Dovecot answers a wrong password after auth_failure_delay (2 s by default, even from trusted networks).
  rig = await startRig({ extraConfig: { loginThrottle: THROTTLE }, dovecot: { extraConfig: 'auth_failure_delay = 0\n' } });
  await rig.report('thr-phone', 'macos', []);
  await rig.report('thr-bob', 'macos', [], BOB.user);
  const res = await fetch(`${rig.adminUrl}/v1/devices/thr-phone/app-passwords`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ user: ALICE.user }),
  });
  appPassword = ((await res.json()) as { password: string }).password;
  // A second instance with the same configuration and Redis: the counts must be shared.
  second = await startRuntime({ configFile: path.join(rig.dir, 'mailwarden.yaml'), logger: silentLogger(), watch: false });
  secondPort = second.imap!.addresses[2]!.port;
}, 60_000);
afterAll(async () => {
  await second?.stop(0);
  await rig?.stop();
});

/** A wrong password of app-password shape: a credential id that was never issued. */
function guess(n: number): string {
  const [credentialId, secret] = appPassword.split('.') as [string, string];
  return `${'y'.repeat(credentialId.length - 1)}${n}.${'z'.repeat(secret.length)}`;
}

/** Audit entries of delayed logins (the throttle writes one per delay). */
async function throttledAudit(): Promise<Record<string, unknown>[]> {
  return (await rig.runtime.store.readAudit('0', 10000)).map((e) => e.event).filter((e) => e.msg === 'login-throttled');
}

test('wrong passwords from one address are answered ever later, at every instance, and nobody else waits', async () => {
  // Alice's phone logs in from 127.0.0.2 first: that address is known for her from now on.
  const [alicePhone] = await imaplib(rig.ports.plain, '127.0.0.2', [[ALICE.user, appPassword]]);
  expect(alicePhone!.reply).toMatch(/^OK /);

  // The attacker at 127.0.0.1 guesses app passwords for Alice: mailwarden verifies these itself,
  // so Dovecot never sees a failure and its auth penalty never applies (measured: with passwords
  // passed through, Dovecot's own penalty of 4, 8, 15 s hit the forwarded client address).
  const guesses = [1, 2, 3, 4].map((n) => [ALICE.user, guess(n)] as const);
  const attack = await imaplib(rig.ports.plain, '127.0.0.1', guesses);
  expect(attack.map((a) => a.reply)).toEqual(attack.map(() => expect.stringMatching(/AUTHENTICATIONFAILED/)));
  // After the first failure: 1, 2, then 3 s (doubling, capped at maxDelayMs). Lower bounds only: load adds time.
  const seconds = attack.map((a) => a.seconds);
  expect({ seconds, delayed: seconds.slice(1).map((s, i) => s >= [0.95, 1.95, 2.95][i]!) }).toEqual({ seconds, delayed: [true, true, true] });

  // The other instance counts the same failures (Redis): its first answer to the attacker is late too.
  const [atSecond] = await imaplib(secondPort, '127.0.0.1', [[ALICE.user, guess(5)]]);
  expect(atSecond!.reply).toMatch(/AUTHENTICATIONFAILED/);
  expect(atSecond!.seconds).toBeGreaterThanOrEqual(2.9);

  // Alice from her known address and Bob from his own are not delayed, at either instance.
  const [aliceKnown] = await imaplib(secondPort, '127.0.0.2', [[ALICE.user, appPassword]]);
  const [bob] = await imaplib(rig.ports.plain, '127.0.0.3', [[`${BOB.user}+thr-bob`, BOB.password]]);
  expect({ alice: aliceKnown!.reply.slice(0, 3), bob: bob!.reply.slice(0, 3) }).toEqual({ alice: 'OK ', bob: 'OK ' });
  expect((await throttledAudit()).filter((e) => e.remoteAddress !== '127.0.0.1')).toEqual([]);
  expect(Math.max(aliceKnown!.seconds, bob!.seconds)).toBeLessThan(1);

  // Alice from an address she never used waits out the user-wide delay, and then gets in: a delay, never a lockout.
  const [aliceNew] = await imaplib(rig.ports.plain, '127.0.0.4', [[ALICE.user, appPassword]]);
  expect(aliceNew!.reply).toMatch(/^OK /);
  expect(aliceNew!.seconds).toBeGreaterThanOrEqual(2.9);

  // Counted in metrics and in the audit stream.
  const metrics = await (await fetch(`${rig.adminUrl}/metrics`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).text();
  expect(metrics).toMatch(/^mailwarden_login_throttle_delays_total\{scope="address"\} [1-9]/m);
  expect((await throttledAudit())[0]).toMatchObject({ user: ALICE.user, remoteAddress: '127.0.0.1', scope: 'address', delayMs: 1000, protocol: 'imap' });
}, 90_000);

test('wrong app passwords for one device are counted for that device, whichever address and name they come with', async () => {
  // Alice's credential id with a wrong secret, under names that have no failures of their own.
  const [credentialId, secret] = appPassword.split('.') as [string, string];
  const wrong = `${credentialId}.${'x'.repeat(secret.length)}`;
  const attempts = await imaplib(rig.ports.plain, '127.0.0.5', [['eve1@example.com', wrong], ['eve2@example.com', wrong]]);
  const elsewhere = await imaplib(secondPort, '127.0.0.6', [['eve3@example.com', wrong]]);
  expect([...attempts, ...elsewhere].map((a) => a.reply)).toEqual([1, 2, 3].map(() => expect.stringMatching(/AUTHENTICATIONFAILED/)));
  // Two failures for the device so far: the third guess, from a fresh address at the other instance, waits 2 s.
  expect(elsewhere[0]!.seconds).toBeGreaterThanOrEqual(1.9);
  expect((await throttledAudit()).filter((e) => e.remoteAddress === '127.0.0.6')).toEqual([expect.objectContaining({ scope: 'device', delayMs: 2000 })]);
}, 60_000);
