// Issue 8 item 5: wrong passwords must not lock everyone out. Dovecot runs with its default auth
// penalty (the proxy is not a trusted network, so every login shares the proxy's address and each
// failure delays the next logins by 2, 4, 8, up to 15 s). Clients hammering a wrong password must
// neither open the upstream circuit breaker nor make another user's correct login fail.
import { ALICE, startRig, type Rig } from './imap-rig';
import { RawClient } from '../unit/imap-fakes';

const BOB = { user: 'bob@example.com', password: 'bob-pw' };
let rig: Rig;

beforeAll(async () => {
  // The rig's connect timeout (1 s) and breaker (3 failures) are the ones that tripped in the report.
  rig = await startRig({ dovecot: { trustedNetworks: '' } });
  await rig.report('brk-attacker', 'macos', []);
  await rig.report('brk-bob', 'macos', [], BOB.user);
});
afterAll(async () => {
  await rig?.stop();
});

/** One LOGIN over a raw socket; resolves with the tagged reply line (or what arrived by the deadline). */
async function login(user: string, password: string, options: { localAddress?: string; timeoutMs: number }): Promise<string> {
  const raw = await RawClient.connect(rig.ports.plain, '127.0.0.1', options.localAddress);
  try {
    await raw.waitFor(/^\* OK .*\r\n/);
    raw.write(`a1 LOGIN "${user}" "${password}"\r\n`);
    return (await raw.waitFor(/^a1 .*$/m, options.timeoutMs))[0];
  } catch (err) {
    return `(no reply) ${(err as Error).message.split('\n')[0]}`;
  } finally {
    raw.close();
  }
}

test("clients with a wrong password (Dovecot's auth penalty on) do not make another user's correct login fail", async () => {
  let attacking = true;
  const attackReplies: string[] = [];
  // 20 clients, each retrying with a new wrong password until Bob is done (bounded by the test timeout).
  const attackers = Array.from({ length: 20 }, async (_, i) => {
    for (let n = 0; attacking && n < 50; n++) {
      // Dovecot's penalty (up to 15 s) and mailwarden's own login throttle (up to 15 s) add up.
      attackReplies.push(await login(`${ALICE.user}+brk-attacker`, `wrong-${i}-${n}`, { timeoutMs: 45_000 }));
    }
  });
  await new Promise((r) => setTimeout(r, 3000));
  // Bob comes from another address: mailwarden's own throttle must not touch him either.
  const started = Date.now();
  const bob = await login(`${BOB.user}+brk-bob`, BOB.password, { localAddress: '127.0.0.2', timeoutMs: 35_000 });
  const bobSeconds = (Date.now() - started) / 1000;
  attacking = false;
  await Promise.all(attackers);
  expect({ bob, bobSeconds }).toEqual({ bob: expect.stringMatching(/^a1 OK /), bobSeconds: expect.any(Number) });
  // The attackers were told their password is wrong (after Dovecot's delay), not "unavailable".
  expect(attackReplies.length).toBeGreaterThan(0);
  expect(attackReplies.filter((r) => !/^a1 NO \[AUTHENTICATIONFAILED\]/.test(r))).toEqual([]);
}, 90_000);
