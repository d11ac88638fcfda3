// The Decider: store facts → engine → grace marks, one audit event, brake, metrics; outages and
// bugs answer tempfail and never throw.
import { Decider } from '../../src/policy/decider';
import type { CompiledPolicy } from '../../src/policy/compile';
import { MemoryDeviceStore } from '../../src/store/memory-store';
import { StoreUnavailableError, type DeviceStore } from '../../src/store/device-store';
import type { Decision } from '../../src/policy/decision';
import {
  NOW,
  capturingLogger,
  compile,
  deciderConfig,
  device,
  policyConfig,
  request,
  requireDeviceCheck,
  tiktokCheck,
} from '../fixtures/plugins/policy-fixtures';

const HOUR = 3_600_000;
const REF_ID = /^MW-[0-9ABCDEFGHJKMNPQRSTVWXYZ]{8}$/;

async function setup(options: { policy?: CompiledPolicy; store?: DeviceStore; now?: () => Date } = {}) {
  let clock = NOW.getTime();
  const memory = new MemoryDeviceStore({ now: () => clock });
  const store = options.store ?? memory;
  const policy = options.policy ?? (await compile(policyConfig([requireDeviceCheck, tiktokCheck])));
  const { log, entries } = capturingLogger();
  const metrics: [Decision, number][] = [];
  const alerts: [string, unknown][] = [];
  const decider = new Decider({
    store,
    log,
    getPolicy: () => policy,
    getConfig: () => deciderConfig({ 'alice@example.com': ['pilot'] }),
    metrics: { onDecision: (d, s) => metrics.push([d, s]) },
    alert: (kind, details) => alerts.push([kind, details]),
    now: options.now ?? (() => new Date(clock)),
  });
  /** Sets the clock to NOW + ms. */
  const setTime = (ms: number) => (clock = NOW.getTime() + ms);
  return { decider, memory, store, log, entries, metrics, alerts, setTime, policy };
}

/** `inner` with some of its methods replaced. */
function override<T extends object>(inner: T, methods: Partial<Record<keyof T, unknown>>): T {
  return new Proxy(inner, {
    get(target, prop, receiver) {
      if (Object.hasOwn(methods, prop)) return methods[prop as keyof T];
      const value = Reflect.get(target, prop, receiver) as unknown;
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

/** A store whose loadFacts fails with `error` (everything else works). */
function failingStore(error: Error): DeviceStore {
  return override(new MemoryDeviceStore(), { loadFacts: () => Promise.reject(error) });
}

it('denies the iOS device with TikTok, writes one audit line and one audit stream entry', async () => {
  const t = await setup();
  await t.memory.putDevice(device({ apps: ['com.zhiliaoapp.musically'] }), 3600);
  const decision = await t.decider.decide(request({ remoteAddress: '192.0.2.7' }));
  await t.decider.idle();

  expect(decision).toMatchObject({ action: 'deny', reasonCode: 'BANNED_APP', fault: 'policy' });
  expect(decision.refId).toMatch(REF_ID);
  expect(decision.message).toContain('TikTok');
  expect(decision.message).toContain(decision.refId);

  const lines = t.entries.filter((e) => e.msg === 'decision');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatchObject({
    user: 'alice@example.com',
    deviceId: 'dev-1',
    identitySource: 'app-password',
    identityStrength: 'strong',
    protocol: 'imap',
    action: 'deny',
    reasonCode: 'BANNED_APP',
    refId: decision.refId,
    policyVersion: 'v-test',
    trigger: 'login',
    fromLastKnown: false,
    remoteAddress: '192.0.2.7',
  });
  expect((lines[0]!.checks as unknown[]).length).toBe(2);

  const audit = await t.memory.readAudit('0', 10);
  expect(audit).toHaveLength(1);
  expect(audit[0]!.event).toMatchObject({ msg: 'decision', refId: decision.refId, action: 'deny' });
  expect(t.metrics).toHaveLength(1);
  expect(t.metrics[0]![1]).toBeGreaterThanOrEqual(0);
});

it('gives every decision its own reference id', async () => {
  const t = await setup();
  const ids = new Set<string>();
  for (let i = 0; i < 50; i++) ids.add((await t.decider.decide(request())).refId);
  expect(ids.size).toBe(50);
});

it('passes session id and trigger of a re-evaluation into the audit event', async () => {
  const t = await setup();
  await t.memory.putDevice(device(), 3600);
  await t.decider.decide(request({ sessionId: 's-42', trigger: 'device' }));
  expect(t.entries.find((e) => e.msg === 'decision')).toMatchObject({ sessionId: 's-42', trigger: 'device', action: 'allow', reasonCode: 'OK' });
});

it.each<[string, Error, string]>([
  ['store unavailable', new StoreUnavailableError('redis down'), 'STORE_UNAVAILABLE'],
  ['another store error', new TypeError('oops'), 'INTERNAL_ERROR'],
])('%s → tempfail with the policy sentence, logged', async (_name, error, code) => {
  const t = await setup({ store: failingStore(error) });
  const decision = await t.decider.decide(request());
  expect(decision).toMatchObject({ action: 'tempfail', reasonCode: code, fault: 'system', message: `Try again later. Ref ${decision.refId}.` });
  expect(t.entries.some((e) => e.message === 'device store cannot answer: tempfail' && e.error === error.message)).toBe(true);
  expect(t.entries.filter((e) => e.msg === 'decision')).toHaveLength(1);
});

it('answers an unidentified login without the store (also during an outage)', async () => {
  const t = await setup({ store: failingStore(new StoreUnavailableError('down')) });
  const decision = await t.decider.decide(request({ deviceId: null, identitySource: 'none' }));
  expect(decision).toMatchObject({ action: 'deny', reasonCode: 'UNIDENTIFIED' });
});

it('never throws: a broken policy getter is a tempfail', async () => {
  const { log, entries } = capturingLogger();
  const decider = new Decider({
    store: new MemoryDeviceStore(),
    log,
    getPolicy: () => {
      throw new Error('no policy');
    },
    getConfig: () => deciderConfig(),
  });
  const decision = await decider.decide(request());
  expect(decision).toMatchObject({ action: 'tempfail', reasonCode: 'INTERNAL_ERROR' });
  expect(decision.message).toContain(decision.refId);
  expect(entries.some((e) => e.error === 'no policy')).toBe(true);
});

it('a failing audit stream is logged and does not change the decision', async () => {
  const inner = new MemoryDeviceStore();
  await inner.putDevice(device(), 3600);
  const store = override(inner, { appendAudit: () => Promise.reject(new Error('stream full')) });
  const t = await setup({ store });
  const decision = await t.decider.decide(request());
  await t.decider.idle();
  expect(decision.action).toBe('allow');
  expect(t.entries.some((e) => e.message === 'audit stream failed (the decision stands)' && e.error === 'stream full')).toBe(true);
});

it('grace period: the first failure is marked in the store; after graceHours the device is denied; removal clears the mark', async () => {
  const policy = await compile(policyConfig([{ ...tiktokCheck, graceHours: 24 }]));
  const t = await setup({ policy });
  await t.memory.putDevice(device({ apps: ['com.zhiliaoapp.musically'] }), 7 * 24 * 3600);

  const first = await t.decider.decide(request());
  await t.decider.idle();
  expect(first.action).toBe('allow');
  expect(first.warnings[0]).toContain('From 2025-06-02 12:00 UTC');
  expect(await t.memory.getFirstSeenNoncompliant('dev-1', 'no-tiktok-on-mobiles')).toBe(NOW.getTime());

  // The device keeps reporting (so its record stays current) with TikTok still installed.
  const report = async (hoursAfter: number, apps: string[]) => {
    t.setTime(hoursAfter * HOUR);
    const at = new Date(NOW.getTime() + hoursAfter * HOUR).toISOString();
    await t.memory.putDevice(device({ apps, reportedAt: at, receivedAt: at }), 7 * 24 * 3600);
  };
  await report(23, ['com.zhiliaoapp.musically']);
  expect((await t.decider.decide(request())).action).toBe('allow');
  await report(25, ['com.zhiliaoapp.musically']);
  expect((await t.decider.decide(request())).action).toBe('deny');

  await report(26, []);
  expect((await t.decider.decide(request())).action).toBe('allow');
  await t.decider.idle();
  expect(await t.memory.getFirstSeenNoncompliant('dev-1', 'no-tiktok-on-mobiles')).toBeNull();
});

it('uses the user groups from the config (scope by group)', async () => {
  const policy = await compile(policyConfig([{ ...tiktokCheck, scope: { groups: ['pilot'] } }]));
  const t = await setup({ policy });
  await t.memory.putDevice(device({ apps: ['com.zhiliaoapp.musically'] }), 3600);
  await t.memory.putDevice(device({ deviceId: 'dev-b', user: 'bob@example.com', apps: ['com.zhiliaoapp.musically'] }), 3600);
  expect((await t.decider.decide(request())).action).toBe('deny');
  expect((await t.decider.decide(request({ user: 'bob@example.com', deviceId: 'dev-b' }))).action).toBe('allow');
});

it('the kill switch flag in the store puts every check in report', async () => {
  const t = await setup();
  await t.memory.putDevice(device({ apps: ['com.zhiliaoapp.musically'] }), 3600);
  await t.memory.setFlag('kill-switch', '1');
  const decision = await t.decider.decide(request());
  expect(decision.action).toBe('allow');
  expect(decision.checks[1]).toMatchObject({ effectiveMode: 'report', code: 'BANNED_APP' });
});

it('feeds the brake: after a change, too many denials put the changed check in report and alert once', async () => {
  const before = await compile(policyConfig([requireDeviceCheck]));
  const after = await compile({ ...policyConfig([requireDeviceCheck, tiktokCheck]), version: 'v-2' });
  let current = before;
  const t = await setup({ policy: before });
  const decider = new Decider({
    store: t.memory,
    log: t.log,
    getPolicy: () => current,
    getConfig: () => deciderConfig(),
    alert: (kind, details) => t.alerts.push([kind, details]),
    now: () => NOW,
  });
  for (let i = 0; i < 10; i++) await t.memory.putDevice(device({ deviceId: `d${i}`, apps: ['com.zhiliaoapp.musically'] }), 3600);
  current = after;
  decider.policyChanged(before, after);

  const actions: string[] = [];
  for (let i = 0; i < 12; i++) actions.push((await decider.decide(request({ deviceId: `d${i % 10}` }))).action);
  // minLogins is 10: the 10th denial trips the brake, later logins run the check as report.
  expect(actions.slice(0, 10)).toEqual(Array(10).fill('deny'));
  expect(actions.slice(10)).toEqual(['allow', 'allow']);
  expect(t.alerts).toEqual([['brake-tripped', expect.objectContaining({ checks: ['no-tiktok-on-mobiles'], logins: 10, denied: 10 })]]);
  expect(t.entries.some((e) => e.level === 'error' && e.msg === 'brake-tripped')).toBe(true);
});

it('dryRun answers like decide but leaves no trace (no audit, no grace mark, no brake, no metrics)', async () => {
  const policy = await compile(policyConfig([{ ...tiktokCheck, graceHours: 24 }]));
  const t = await setup({ policy });
  await t.memory.putDevice(device({ apps: ['com.zhiliaoapp.musically'] }), 3600);
  const decision = await t.decider.dryRun(request({ trigger: 'admin' }));
  await t.decider.idle();
  expect(decision).toMatchObject({ action: 'allow', reasonCode: 'OK' });
  expect(decision.warnings[0]).toContain('TikTok');
  expect(t.entries.filter((e) => e.msg === 'decision')).toHaveLength(0);
  expect(await t.memory.readAudit('0', 10)).toHaveLength(0);
  expect(await t.memory.getFirstSeenNoncompliant('dev-1', 'no-tiktok-on-mobiles')).toBeNull();
  expect(t.metrics).toHaveLength(0);
});

it('marks a decision made on last-known facts (store outage) in the audit event', async () => {
  const inner = new MemoryDeviceStore();
  await inner.putDevice(device(), 3600);
  const lastKnown = async (...args: Parameters<typeof inner.loadFacts>) => ({ ...(await inner.loadFacts(...args)), fromLastKnown: true });
  const store = override(inner, { loadFacts: lastKnown });
  const t = await setup({ store });
  expect((await t.decider.decide(request())).action).toBe('allow');
  expect(t.entries.find((e) => e.msg === 'decision')).toMatchObject({ fromLastKnown: true });
});

it('finds the user groups whatever the case of the login name or the config key (a group-scoped check is not skipped)', async () => {
  const policy = await compile(policyConfig([{ ...tiktokCheck, scope: { groups: ['pilot'] } }]));
  let clock = NOW.getTime();
  const memory = new MemoryDeviceStore({ now: () => clock });
  const { log } = capturingLogger();
  const decider = new Decider({
    store: memory,
    log,
    getPolicy: () => policy,
    getConfig: () => deciderConfig({ 'Alice@Example.com': ['pilot'] }),
    now: () => new Date(clock),
  });
  await memory.putDevice(device({ apps: ['com.zhiliaoapp.musically'] }), 3600);
  expect((await decider.decide(request())).action).toBe('deny');
  expect((await decider.decide(request({ user: 'ALICE@example.com' }))).action).toBe('deny');
});

it('a user named like an Object.prototype member has no groups (no internal error)', async () => {
  const policy = await compile(policyConfig([{ ...tiktokCheck, scope: { groups: ['pilot'] } }]));
  const t = await setup({ policy });
  await t.memory.putDevice(device({ user: 'constructor', apps: ['com.zhiliaoapp.musically'] }), 3600);
  const decision = await t.decider.decide(request({ user: 'constructor' }));
  expect(decision.reasonCode).not.toBe('INTERNAL_ERROR');
});
