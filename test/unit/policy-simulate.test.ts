// `policy simulate` and the blast-radius guard: per check and per platform counts, exemptions from
// the store, the readable table, and the refusal text.
import { simulate, formatSimulation } from '../../src/policy/simulate';
import { checkBlastRadius } from '../../src/policy/blast-radius';
import { MemoryDeviceStore } from '../../src/store/memory-store';
import { NOW, checkConfig, compile, device, policyConfig, requireDeviceCheck, tiktokCheck } from '../fixtures/plugins/policy-fixtures';

const TIKTOK = 'com.zhiliaoapp.musically';
const limits = (maxNewlyDeniedPercent: number, maxNewlyDeniedCount: number, minNewlyDeniedCount = 0) => ({
  maxNewlyDeniedPercent,
  maxNewlyDeniedCount,
  minNewlyDeniedCount,
  inForceWindowHours: 24,
});

/** 10 devices: 3 iPhones with TikTok, 1 Android with TikTok, 2 laptops with TikTok, 4 clean iPhones (one unmanaged). */
function population() {
  return [
    ...[0, 1, 2].map((i) => device({ deviceId: `iphone-tt-${i}`, user: `u${i}@example.com`, apps: [TIKTOK] })),
    device({ deviceId: 'android-tt', user: 'u3@example.com', platform: 'android', osVersion: '14', apps: ['com.ss.android.ugc.trill'] }),
    device({ deviceId: 'mac-tt', user: 'u0@example.com', platform: 'macos', osVersion: '14.5', apps: [TIKTOK] }),
    device({ deviceId: 'win-tt', user: 'u4@example.com', platform: 'windows', osVersion: '10.0.19045', apps: [TIKTOK] }),
    ...[5, 6, 7].map((i) => device({ deviceId: `iphone-${i}`, user: `u${i}@example.com` })),
    device({ deviceId: 'iphone-unmanaged', user: 'u8@example.com', managed: false }),
  ];
}

const managed = checkConfig({ id: 'managed', plugin: 'managed-only' });

async function policies() {
  const current = await compile({ ...policyConfig([requireDeviceCheck, managed, { ...tiktokCheck, mode: 'report' }]), version: 'v-1' });
  const candidate = await compile({ ...policyConfig([requireDeviceCheck, { ...managed, mode: 'report' }, tiktokCheck]), version: 'v-2' });
  return { current, candidate };
}

it('counts denied now, denied under the candidate, newly denied and newly allowed, per check and per platform', async () => {
  const { current, candidate } = await policies();
  const sim = await simulate(current, candidate, population(), { now: NOW, maxReportAgeHours: 24 });

  expect(sim.devices).toBe(10);
  expect(sim.total).toMatchObject({ deniedNow: 1, deniedCandidate: 4, newlyDenied: 4, newlyAllowed: 1 });
  const byCheck = Object.fromEntries(sim.byCheck.map((r) => [r.key, r]));
  expect(byCheck['no-tiktok-on-mobiles']).toMatchObject({ deniedNow: 0, deniedCandidate: 4, newlyDenied: 4, newlyAllowed: 0, failing: 4 });
  expect(byCheck.managed).toMatchObject({ deniedNow: 1, deniedCandidate: 0, newlyDenied: 0, newlyAllowed: 1, failing: 1 });
  expect(byCheck['require-device']).toMatchObject({ deniedNow: 0, deniedCandidate: 0, failing: 0 });
  const byPlatform = Object.fromEntries(sim.byPlatform.map((r) => [r.key, r]));
  expect(byPlatform.ios).toMatchObject({ newlyDenied: 3, newlyAllowed: 1 });
  expect(byPlatform.android).toMatchObject({ newlyDenied: 1 });
  expect(byPlatform.macos).toMatchObject({ newlyDenied: 0, deniedCandidate: 0 });
  expect(sim.newlyDenied.map((d) => d.deviceId).sort()).toEqual(['android-tt', 'iphone-tt-0', 'iphone-tt-1', 'iphone-tt-2']);
  expect(sim.newlyAllowed).toEqual([{ deviceId: 'iphone-unmanaged', user: 'u8@example.com', platform: 'ios', reasonCode: 'UNMANAGED_DEVICE', checkId: 'managed' }]);
});

it('takes exemptions from the store into account', async () => {
  const { current, candidate } = await policies();
  const store = new MemoryDeviceStore({ now: () => NOW.getTime() });
  const later = new Date(NOW.getTime() + 3_600_000).toISOString();
  await store.putExemption({ scope: 'device', subject: 'iphone-tt-0', expiresAt: later, note: 'travel', createdBy: 'ops', createdAt: NOW.toISOString() });
  await store.putExemption({ scope: 'user', subject: 'u3@example.com', expiresAt: later, note: 'vip', createdBy: 'ops', createdAt: NOW.toISOString() });
  const sim = await simulate(current, candidate, population(), { now: NOW, maxReportAgeHours: 24, store });
  expect(sim.newlyDenied.map((d) => d.deviceId).sort()).toEqual(['iphone-tt-1', 'iphone-tt-2']);
});

it('with no policy in force, every denial is new', async () => {
  const { candidate } = await policies();
  const sim = await simulate(null, candidate, population(), { now: NOW, maxReportAgeHours: 24 });
  expect(sim.total).toMatchObject({ deniedNow: 0, newlyDenied: 4 });
  expect(sim.currentVersion).toBeNull();
});

it('formats a readable table', async () => {
  const { current, candidate } = await policies();
  const text = formatSimulation(await simulate(current, candidate, population(), { now: NOW, maxReportAgeHours: 24 }), { maxDevices: 2 });
  const lines = text.split('\n');
  expect(lines[0]).toBe('Simulation over 10 known devices: policy in force v-1 → candidate v-2');
  expect(lines).toContain('check                 denied now  denied then  newly denied  newly allowed  fails (any mode)');
  expect(lines).toContain('no-tiktok-on-mobiles           0            4             4              0                 4');
  expect(lines).toContain('platform  denied now  denied then  newly denied  newly allowed');
  expect(lines).toContain('ios                1            3             3              1');
  expect(lines).toContain('macos              0            0             0              0');
  expect(lines).toContain('all                1            4             4              1');
  expect(lines).toContain('Newly denied: 4 (40.0%); newly allowed: 1 (10.0%).');
  expect(lines).toContain('Newly denied devices (first 2 of 4):');
  expect(lines).toContain('  iphone-tt-0  u0@example.com  ios  no-tiktok-on-mobiles  BANNED_APP');
});

it('says so when no device is known', async () => {
  const { current, candidate } = await policies();
  const text = formatSimulation(await simulate(current, candidate, [], { now: NOW, maxReportAgeHours: 24 }));
  expect(text).toContain('No device is known to the store, so nothing can be compared.');
});

describe('blast-radius guard', () => {
  it('refuses a policy that newly denies more than the share allowed, naming counts, share and checks', async () => {
    const { current, candidate } = await policies();
    const sim = await simulate(current, candidate, population(), { now: NOW, maxReportAgeHours: 24 });
    const verdict = checkBlastRadius(sim, limits(20, 500));
    expect(verdict.ok).toBe(false);
    expect(!verdict.ok && verdict.message).toBe(
      'policy v-2 not activated: it would newly deny 4 of 10 known devices (40.0%) — no-tiktok-on-mobiles 4; ' +
        'the blast-radius limit is 20% or 500 devices. The policy in force stays. See who with `mailwarden policy simulate`; ' +
        'stage the change (mode: report, rollout) or force the reload.',
    );
  });

  it('refuses above the device count too, and accepts within both limits', async () => {
    const { current, candidate } = await policies();
    const sim = await simulate(current, candidate, population(), { now: NOW, maxReportAgeHours: 24 });
    expect(checkBlastRadius(sim, limits(100, 3)).ok).toBe(false);
    expect(checkBlastRadius(sim, limits(40, 4))).toEqual({ ok: true, newlyDenied: 4, devices: 10 });
  });

  it('small sites: below minNewlyDeniedCount the share does not apply, unless every known device would be denied', async () => {
    const { current, candidate } = await policies();
    const sim = await simulate(current, candidate, population(), { now: NOW, maxReportAgeHours: 24 });
    expect(checkBlastRadius(sim, limits(20, 500, 5))).toEqual({ ok: true, newlyDenied: 4, devices: 10 });
    expect(checkBlastRadius(sim, limits(20, 500, 4)).ok).toBe(false);
    const everyone = { ...sim, devices: 4 };
    expect(checkBlastRadius(everyone, limits(20, 500, 5)).ok).toBe(false);
  });

  it('accepts anything when no device is known', async () => {
    const { current, candidate } = await policies();
    const sim = await simulate(current, candidate, [], { now: NOW, maxReportAgeHours: 24 });
    expect(checkBlastRadius(sim, limits(0, 0)).ok).toBe(true);
  });
});
