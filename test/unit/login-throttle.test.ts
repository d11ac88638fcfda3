// The login throttle (issue 8 item 6): a growing delay per address, per user and per app-password
// device, that never reaches another address, another user, or the user's known addresses.
import { delayAfter, LoginThrottle, type LoginThrottleSettings } from '../../src/admission/login-throttle';
import { addressKey } from '../../src/core/client-address';
import { createFailureCounters, type FailureCounters } from '../../src/store/failure-counters';

const SETTINGS: LoginThrottleSettings = { enabled: true, baseDelayMs: 2000, maxDelayMs: 15000, windowSeconds: 900, knownAddressDays: 30 };

function throttle(counters: FailureCounters = createFailureCounters({ windowSeconds: 900 }), settings = SETTINGS): LoginThrottle {
  return new LoginThrottle(counters, () => settings, async () => undefined);
}

test('the delay doubles per failure from the base, up to the cap (Dovecot: 2, 4, 8, 15 s)', () => {
  expect([0, 1, 2, 3, 4, 5, 100].map((n) => delayAfter(n, SETTINGS))).toEqual([0, 2000, 4000, 8000, 15000, 15000, 15000]);
});

test('failures from one address delay that address, not another address or another user there', async () => {
  const t = throttle();
  const attacker = { remoteAddress: '192.0.2.66', username: 'alice@example.com' };
  for (let i = 0; i < 3; i++) await t.failed(attacker);
  expect(await t.verdict(attacker)).toEqual({ delayMs: 8000, scope: 'address' });
  // Bob elsewhere: untouched.
  expect(await t.verdict({ remoteAddress: '198.51.100.7', username: 'bob@example.com' })).toEqual({ delayMs: 0, scope: null });
  // Alice from her usual address (she logged in there before): untouched by the user-wide count.
  const home = { remoteAddress: '198.51.100.8', username: 'alice@example.com' };
  await t.succeeded(home);
  expect(await t.verdict(home)).toEqual({ delayMs: 0, scope: null });
  // Alice from an address she never used: delayed by the user-wide count (never refused).
  expect(await t.verdict({ remoteAddress: '203.0.113.9', username: 'Alice@Example.com' })).toEqual({ delayMs: 8000, scope: 'user' });
});

test('an app-password device is counted on its own, and a success clears its address and device', async () => {
  const t = throttle();
  const phone = { remoteAddress: '192.0.2.10', username: 'alice@example.com', credentialId: 'abcd1234' };
  await t.failed(phone);
  await t.failed(phone);
  // From another address the same credential id is still delayed: the device scope.
  expect(await t.verdict({ ...phone, remoteAddress: '192.0.2.11' })).toMatchObject({ delayMs: 4000 });
  await t.succeeded(phone);
  expect(await t.verdict(phone)).toEqual({ delayMs: 0, scope: null });
});

test('IPv6 clients are counted per /64; IPv4-mapped addresses as IPv4', () => {
  expect(addressKey('2001:db8:1:2::5')).toBe('2001:db8:1:2::/64');
  expect(addressKey('2001:0db8:0001:0002:ffff:1:2:3')).toBe('2001:db8:1:2::/64');
  expect(addressKey('::1')).toBe('0:0:0:0::/64');
  expect(addressKey('::ffff:192.0.2.1')).toBe('192.0.2.1');
  expect(addressKey(undefined)).toBeNull();
});

test('counters that cannot answer mean no delay, never a thrown login; disabled means nothing is counted', async () => {
  const broken: FailureCounters = {
    counts: () => Promise.reject(new Error('down')),
    add: () => Promise.reject(new Error('down')),
    clear: () => Promise.reject(new Error('down')),
    mark: () => Promise.reject(new Error('down')),
    marked: () => Promise.reject(new Error('down')),
  };
  const t = throttle(broken);
  await expect(t.failed({ username: 'a' })).resolves.toBeUndefined();
  await expect(t.succeeded({ remoteAddress: '192.0.2.1', username: 'a' })).resolves.toBeUndefined();
  expect(await t.verdict({ username: 'a' })).toEqual({ delayMs: 0, scope: null });
  const counters = createFailureCounters({ windowSeconds: 900 });
  const off = throttle(counters, { ...SETTINGS, enabled: false });
  await off.failed({ remoteAddress: '192.0.2.1', username: 'a' });
  expect(await counters.counts(['a:192.0.2.1', 'u:a'])).toEqual([0, 0]);
});

test('a login without failures writes nothing to clear, and its known-address mark once an hour', async () => {
  const inner = createFailureCounters({ windowSeconds: 900 });
  const writes: string[] = [];
  const counters: FailureCounters = {
    ...inner,
    clear: async (keys) => void writes.push(`clear ${keys.join(',')}`),
    mark: async (key, seconds) => void writes.push(`mark ${key} ${seconds}`),
  };
  const t = throttle(counters);
  const alice = { remoteAddress: '192.0.2.30', username: 'alice@example.com' };
  await t.succeeded(alice, await t.wait(alice));
  await t.succeeded(alice, await t.wait(alice));
  expect(writes).toEqual(['mark k:alice@example.com|192.0.2.30 2592000']);
  await t.failed(alice);
  await t.succeeded(alice, await t.wait(alice));
  expect(writes.at(-1)).toBe('clear a:192.0.2.30');
});

test('a known address is remembered in memory for knownAddressDays (30), not forgotten at once by a timer overflow', async () => {
  // Node timers hold at most 2^31-1 ms (≈ 24.8 days); a longer one fires after 1 ms. In memory (the
  // embedded store, and the insurance limiter during a Redis outage) the 30-day mark used to vanish.
  const counters = createFailureCounters({ windowSeconds: 900 });
  const warnings: string[] = [];
  const onWarning = (w: Error): void => void warnings.push(w.name);
  process.on('warning', onWarning);
  try {
    await counters.mark('k:alice@example.com|192.0.2.7', 30 * 86400);
    await new Promise((r) => setTimeout(r, 50));
    expect(await counters.marked('k:alice@example.com|192.0.2.7')).toBe(true);
    expect(warnings).not.toContain('TimeoutOverflowWarning');
  } finally {
    process.off('warning', onWarning);
  }
});

test('wait() sleeps the delay, or at most the caller\'s bound (a gateway that drops slow answers)', async () => {
  const slept: number[] = [];
  const t = new LoginThrottle(createFailureCounters({ windowSeconds: 900 }), () => SETTINGS, async (ms) => void slept.push(ms));
  const guesser = { remoteAddress: '192.0.2.77', username: 'carol@example.com' };
  for (let i = 0; i < 3; i++) await t.failed(guesser);
  expect((await t.wait(guesser)).delayMs).toBe(8000);
  expect(await t.wait(guesser, 3000)).toMatchObject({ delayMs: 3000, scope: 'address' });
  expect((await t.wait(guesser, 0)).delayMs).toBe(0);
  expect(slept).toEqual([8000, 3000]);
});
