// Issue 8 item 6 on SMTP submission: swaks as the attacker, wrong app passwords from one address get
// their 535 ever later (the default throttle: 2 s doubling), another user at another address at once.
import { spawn } from 'node:child_process';
import { ALICE, startSmtpRig, type SmtpRig } from './smtp-rig';

let rig: SmtpRig;
let appPassword: string;

beforeAll(async () => {
  rig = await startSmtpRig({ upstream: 'sink' });
  await rig.report('smtp-phone', 'macos', []);
  appPassword = await rig.enroll('smtp-phone');
}, 60_000);
afterAll(async () => {
  await rig?.stop();
});

/** One swaks AUTH PLAIN from a loopback source address; the last reply line and the seconds it took. */
function swaksAuth(source: string, user: string, password: string): Promise<{ seconds: number; reply: string }> {
  const started = Date.now();
  const args = ['--server', `127.0.0.1:${rig.ports.plain}`, '--local-interface', source, '--auth', 'PLAIN', '--auth-user', user, '--auth-password', password, '--quit-after', 'AUTH', '--timeout', '40'];
  return new Promise((resolve, reject) => {
    const child = spawn('swaks', args);
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('close', () => {
      const replies = out.split('\n').filter((l) => /^<~?\*? +\d{3}[ -]/.test(l) || /^<\** \d{3}/.test(l));
      resolve({ seconds: (Date.now() - started) / 1000, reply: replies.at(-2) ?? out });
    });
  });
}

test('wrong app passwords from one address are answered later each time; another user elsewhere is not delayed', async () => {
  const [credentialId, secret] = appPassword.split('.') as [string, string];
  const wrong = `${credentialId.replace(/.$/, (c) => (c === '0' ? '1' : '0'))}.${'z'.repeat(secret.length)}`;
  const attack = [];
  for (let i = 0; i < 3; i++) attack.push(await swaksAuth('127.0.0.1', 'mallory@example.com', wrong));
  expect(attack.map((a) => a.reply)).toEqual(attack.map(() => expect.stringMatching(/535 5\.7\.8/)));
  const seconds = attack.map((a) => a.seconds);
  // 0, then 2, then 4 s before the answer (lower bounds only: load adds time).
  expect({ seconds, delayed: [seconds[1]! >= 1.9, seconds[2]! >= 3.9] }).toEqual({ seconds, delayed: [true, true] });
  // Alice from another address (her name has no failures: a guess at her name from a new address
  // would wait out the user-wide count, login-throttle.test.ts).
  const other = await swaksAuth('127.0.0.2', ALICE.user, appPassword);
  expect(other.reply).toMatch(/235 /);
  expect(other.seconds).toBeLessThan(1.9);
}, 60_000);
