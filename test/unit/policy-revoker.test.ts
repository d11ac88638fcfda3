// The Revoker: which change events re-decide which live sessions, a deny ends the session, a
// tempfail (store down) keeps it, and many sessions are re-decided with bounded concurrency.
import { Revoker } from '../../src/policy/revoker';
import { Decider } from '../../src/policy/decider';
import { SessionRegistry } from '../../src/app/sessions';
import type { LiveSession } from '../../src/policy/live-session';
import type { Decision, DecisionRequest } from '../../src/policy/decision';
import { MemoryDeviceStore } from '../../src/store/memory-store';
import { StoreUnavailableError } from '../../src/store/device-store';
import { NOW, capturingLogger, compile, deciderConfig, device, policyConfig, requireDeviceCheck, tiktokCheck } from '../fixtures/plugins/policy-fixtures';

const TIKTOK = 'com.zhiliaoapp.musically';

function session(id: string, deviceId: string | null, user = 'alice@example.com'): LiveSession & { revokedWith: Decision[] } {
  const revokedWith: Decision[] = [];
  return {
    id,
    protocol: 'imap',
    user,
    deviceId,
    identitySource: 'app-password',
    identityStrength: 'strong',
    hints: {},
    revokedWith,
    revoke: (d) => revokedWith.push(d),
  };
}

/** Waits until the revoker has handled the events published so far (the memory store emits on the next turn). */
async function settle(revoker: Revoker): Promise<void> {
  await new Promise((resolve) => setImmediate(resolve));
  await revoker.idle();
}

async function setup() {
  const store = new MemoryDeviceStore({ now: () => NOW.getTime() });
  let storeDown = false;
  const realLoad = store.loadFacts.bind(store);
  store.loadFacts = (...args) => (storeDown ? Promise.reject(new StoreUnavailableError('redis down')) : realLoad(...args));
  const policy = await compile(policyConfig([requireDeviceCheck, tiktokCheck]));
  const { log, entries } = capturingLogger();
  const decider = new Decider({ store, log, getPolicy: () => policy, getConfig: () => deciderConfig(), now: () => NOW });
  const sessions = new SessionRegistry();
  const revocations: string[] = [];
  const revoker = new Revoker({ store, sessions, decider, log, metrics: { onRevocation: (p) => revocations.push(p) } });
  await revoker.start();
  await store.putDevice(device({ deviceId: 'phone' }), 3600);
  await store.putDevice(device({ deviceId: 'laptop', platform: 'macos' }), 3600);
  await settle(revoker);
  return { store, sessions, revoker, entries, revocations, setStoreDown: (down: boolean) => (storeDown = down) };
}

it('a device report with TikTok ends that device’s session with the deny decision, and only that one', async () => {
  const t = await setup();
  const phone = session('s1', 'phone');
  const laptop = session('s2', 'laptop');
  t.sessions.add(phone);
  t.sessions.add(laptop);

  await t.store.putDevice(device({ deviceId: 'phone', apps: [TIKTOK], reportedAt: new Date(NOW.getTime() - 60_000).toISOString() }), 3600);
  await settle(t.revoker);

  expect(phone.revokedWith).toHaveLength(1);
  expect(phone.revokedWith[0]).toMatchObject({ action: 'deny', reasonCode: 'BANNED_APP' });
  expect(phone.revokedWith[0]!.message).toContain('TikTok');
  expect(laptop.revokedWith).toHaveLength(0);
  expect(t.revocations).toEqual(['imap']);
  const audit = t.entries.filter((e) => e.msg === 'decision' && e.sessionId === 's1');
  expect(audit).toEqual([expect.objectContaining({ trigger: 'device', action: 'deny' })]);
});

it('a tempfail on re-evaluation (store down) keeps the session and logs it', async () => {
  const t = await setup();
  const phone = session('s1', 'phone');
  t.sessions.add(phone);
  t.setStoreDown(true);
  const result = await t.revoker.onChange({ kind: 'device', deviceId: 'phone' });
  expect(result).toEqual({ checked: 1, revoked: 0, undecided: 1 });
  expect(phone.revokedWith).toHaveLength(0);
  expect(t.entries.some((e) => e.message === 'live session kept: re-evaluation could not decide' && e.reasonCode === 'STORE_UNAVAILABLE')).toBe(true);
});

it('an exemption change re-decides the sessions of that user; a policy change and revalidateAll every session', async () => {
  const t = await setup();
  const requests: DecisionRequest[] = [];
  const decider = { decide: async (r: DecisionRequest) => (requests.push(r), { action: 'allow' } as Decision) };
  const { log } = capturingLogger();
  const revoker = new Revoker({ store: t.store, sessions: t.sessions, decider, log });
  t.sessions.add(session('a1', 'phone'));
  t.sessions.add(session('a2', 'laptop'));
  t.sessions.add(session('b1', 'bob-phone', 'bob@example.com'));

  await revoker.onChange({ kind: 'exemption', scope: 'user', subject: 'alice@example.com' });
  expect(requests.map((r) => [r.sessionId, r.trigger])).toEqual([
    ['a1', 'exemption'],
    ['a2', 'exemption'],
  ]);
  requests.length = 0;
  await revoker.onChange({ kind: 'exemption', scope: 'device', subject: 'bob-phone' });
  expect(requests.map((r) => r.sessionId)).toEqual(['b1']);
  requests.length = 0;
  await revoker.onChange({ kind: 'policy', version: 'v-2' });
  expect(requests.map((r) => r.sessionId).sort()).toEqual(['a1', 'a2', 'b1']);
  requests.length = 0;
  await revoker.revalidateAll('reload');
  expect(new Set(requests.map((r) => r.trigger))).toEqual(new Set(['reload']));
  expect(requests).toHaveLength(3);
});

it('revokes a session once even when events arrive in a burst', async () => {
  const t = await setup();
  const phone = session('s1', 'phone');
  t.sessions.add(phone);
  await t.store.putDevice(device({ deviceId: 'phone', apps: [TIKTOK], reportedAt: new Date(NOW.getTime() - 60_000).toISOString() }), 3600);
  await Promise.all([t.revoker.revalidateAll('reload'), t.revoker.revalidateAll('reload')]);
  await settle(t.revoker);
  expect(phone.revokedWith).toHaveLength(1);
});

it('re-decides many sessions with bounded concurrency, and all of them', async () => {
  const store = new MemoryDeviceStore();
  const sessions = new SessionRegistry();
  for (let i = 0; i < 100; i++) sessions.add(session(`s${i}`, `d${i}`));
  let inFlight = 0;
  let maxInFlight = 0;
  const decider = {
    decide: async () => {
      maxInFlight = Math.max(maxInFlight, ++inFlight);
      await new Promise((resolve) => setImmediate(resolve));
      inFlight--;
      return { action: 'deny' } as Decision;
    },
  };
  const { log } = capturingLogger();
  const revoker = new Revoker({ store, sessions, decider, log, concurrency: 5 });
  const result = await revoker.revalidateAll('reload');
  expect(result).toEqual({ checked: 100, revoked: 100, undecided: 0 });
  expect(maxInFlight).toBe(5);
});

it('stop() unsubscribes from the change channel', async () => {
  const t = await setup();
  const phone = session('s1', 'phone');
  t.sessions.add(phone);
  await t.revoker.stop();
  await t.store.putDevice(device({ deviceId: 'phone', apps: [TIKTOK], reportedAt: new Date(NOW.getTime() - 60_000).toISOString() }), 3600);
  await settle(t.revoker);
  expect(phone.revokedWith).toHaveLength(0);
});

it('a reconnect of the change channel (events may be lost) re-decides every session', async () => {
  const store = new MemoryDeviceStore();
  let reconnected: () => void = () => undefined;
  store.onReconnect = (listener) => ((reconnected = listener), () => undefined);
  const sessions = new SessionRegistry();
  sessions.add(session('s1', 'd1'));
  sessions.add(session('s2', 'd2'));
  const triggers: (string | undefined)[] = [];
  const decider = { decide: async (r: DecisionRequest) => (triggers.push(r.trigger), { action: 'allow' } as Decision) };
  const revoker = new Revoker({ store, sessions, decider, log: capturingLogger().log });
  await revoker.start();
  reconnected();
  await revoker.idle();
  expect(triggers).toEqual(['reconnect', 'reconnect']);
});
