// The runtime brake (which checks fall back to report, when, and for how long) and the kill switch.
import { Brake, newestEnforcingChecks, setKillSwitch } from '../../src/policy/brake';
import type { CompiledPolicy } from '../../src/policy/compile';
import type { Decision } from '../../src/policy/decision';
import type { ChangeEvent } from '../../src/store/device-store';
import { MemoryDeviceStore } from '../../src/store/memory-store';
import { NOW, capturingLogger, checkConfig, compile, policyConfig, requireDeviceCheck, tiktokCheck } from '../fixtures/plugins/policy-fixtures';

const managed = checkConfig({ id: 'managed', plugin: 'managed-only' });

async function policies(): Promise<{ before: CompiledPolicy; after: CompiledPolicy }> {
  const before = await compile({ ...policyConfig([requireDeviceCheck, { ...tiktokCheck, mode: 'report' }, managed]), version: 'v-1' });
  const after = await compile({ ...policyConfig([requireDeviceCheck, tiktokCheck, managed]), version: 'v-2' });
  return { before, after };
}

function decision(policyVersion: string, action: Decision['action'], partial: Partial<Decision> = {}): Decision {
  return {
    action,
    reasonCode: action === 'allow' ? 'OK' : 'BANNED_APP',
    fault: 'policy',
    refId: 'MW-00000000',
    warnings: [],
    ...(action === 'allow' ? {} : { decidedBy: 'no-tiktok-on-mobiles' }),
    checks: [],
    user: 'u',
    deviceId: 'd',
    identitySource: 'app-password',
    identityStrength: 'strong',
    protocol: 'imap',
    policyVersion,
    at: NOW.toISOString(),
    ...partial,
  };
}

function feed(brake: Brake, policy: CompiledPolicy, actions: Decision['action'][], at = NOW): void {
  for (const a of actions) brake.record(decision(policy.version, a), policy, at);
}

describe('newestEnforcingChecks', () => {
  it('names the checks a change made enforcing', async () => {
    const { before, after } = await policies();
    expect(newestEnforcingChecks(before, after)).toEqual(['no-tiktok-on-mobiles']);
  });

  it('ignores a changed sentence; falls back to the last enforcing check', async () => {
    const { after } = await policies();
    const reworded = await compile({ ...policyConfig([requireDeviceCheck, { ...tiktokCheck, message: 'New words. Ref {refId}.' }, managed]), version: 'v-3' });
    expect(newestEnforcingChecks(after, reworded)).toEqual(['managed']);
  });

  it('turning the global reportOnly off makes every enforcing check newest', async () => {
    const { after } = await policies();
    const wasReportOnly = { ...after, config: { ...after.config, reportOnly: true } };
    expect(newestEnforcingChecks(wasReportOnly, after)).toEqual(['require-device', 'no-tiktok-on-mobiles', 'managed']);
  });
});

describe('Brake', () => {
  async function armed(alerts: unknown[] = []) {
    const { before, after } = await policies();
    const { log, entries } = capturingLogger();
    let trips = 0;
    const brake = new Brake({ log, alert: (kind, details) => alerts.push([kind, details]), onTrip: () => trips++ });
    brake.policyChanged(before, after, NOW);
    return { brake, after, entries, trips: () => trips };
  }

  it('trips when the denied share of at least minLogins decisions passes the limit', async () => {
    const alerts: unknown[] = [];
    const { brake, after, entries, trips } = await armed(alerts);
    // 10 decisions, 4 denied = 40% > 30%.
    feed(brake, after, ['deny', 'allow', 'deny', 'allow', 'deny', 'allow', 'deny', 'allow', 'allow']);
    expect(brake.reportOnly().size).toBe(0);
    feed(brake, after, ['allow']);
    expect([...brake.reportOnly()]).toEqual(['no-tiktok-on-mobiles']);
    expect(trips()).toBe(1);
    expect(alerts).toEqual([['brake-tripped', expect.objectContaining({ logins: 10, denied: 4, deniedPercent: 40, policyVersion: 'v-2' })]]);
    const line = entries.find((e) => e.msg === 'brake-tripped');
    expect(line?.level).toBe('error');
    expect(line?.message).toContain('no-tiktok-on-mobiles');
    feed(brake, after, ['deny', 'deny']);
    expect(alerts).toHaveLength(1);
  });

  it('with workers: each counts its share of minLogins, relays its trip, and adopts another worker’s trip', async () => {
    const { before, after } = await policies();
    const { log } = capturingLogger();
    const relayed: unknown[] = [];
    const worker = new Brake({ log, onTrip: (trip) => relayed.push(trip), shareOfDecisions: 1 / 2 });
    const other = new Brake({ log, shareOfDecisions: 1 / 2 });
    worker.policyChanged(before, after, NOW);
    other.policyChanged(before, after, NOW);
    // Half of minLogins (10) on this worker, 2 of 5 denied = 40% > 30%.
    feed(worker, after, ['deny', 'allow', 'deny', 'allow', 'allow']);
    expect([...worker.reportOnly()]).toEqual(['no-tiktok-on-mobiles']);
    expect(relayed).toEqual([{ policyVersion: 'v-2', checks: ['no-tiktok-on-mobiles'] }]);
    other.adopt({ policyVersion: 'v-1', checks: ['no-tiktok-on-mobiles'] });
    expect(other.reportOnly().size).toBe(0);
    other.adopt(relayed[0] as never);
    expect([...other.reportOnly()]).toEqual(['no-tiktok-on-mobiles']);
    expect(other.status().watchingUntil).toBeNull();
  });

  it('does not trip at or under the limit, nor with fewer than minLogins decisions', async () => {
    const { brake, after } = await armed();
    feed(brake, after, ['deny', 'deny', 'deny', 'deny', 'deny', 'deny', 'deny', 'deny', 'deny']);
    expect(brake.reportOnly().size).toBe(0);
    const second = await armed();
    feed(second.brake, second.after, ['deny', 'deny', 'deny', ...Array<'allow'>(7).fill('allow')]);
    expect(second.brake.reportOnly().size).toBe(0);
  });

  it('watches only windowSeconds after the change', async () => {
    const { brake, after } = await armed();
    feed(brake, after, Array(20).fill('deny'), new Date(NOW.getTime() + 301_000));
    expect(brake.reportOnly().size).toBe(0);
    expect(brake.status().watchingUntil).toBe('2025-06-01T12:05:00.000Z');
  });

  it('does not count outages, decisions of another policy version, or unidentified logins as denials', async () => {
    const { brake, after } = await armed();
    for (let i = 0; i < 20; i++) {
      brake.record(decision('v-2', 'tempfail', { reasonCode: 'STORE_UNAVAILABLE', decidedBy: undefined }), after, NOW);
      brake.record(decision('v-1', 'deny'), after, NOW);
      brake.record(decision('v-2', 'deny', { reasonCode: 'UNIDENTIFIED', decidedBy: undefined }), after, NOW);
    }
    expect(brake.status()).toMatchObject({ logins: 20, denied: 0, tripped: [] });
  });

  it('is not armed by the first policy, nor when disabled; a new change releases it', async () => {
    const { before, after } = await policies();
    const { log } = capturingLogger();
    const first = new Brake({ log });
    first.policyChanged(null, after, NOW);
    feed(first, after, Array(20).fill('deny'));
    expect(first.reportOnly().size).toBe(0);

    const disabled = { ...after, config: { ...after.config, brake: { ...after.config.brake, enabled: false } } };
    const off = new Brake({ log });
    off.policyChanged(before, disabled, NOW);
    feed(off, disabled, Array(20).fill('deny'));
    expect(off.reportOnly().size).toBe(0);

    const { brake } = await armed();
    feed(brake, after, Array(10).fill('deny'));
    expect(brake.reportOnly().size).toBe(1);
    brake.policyChanged(after, after, NOW);
    expect(brake.reportOnly().size).toBe(1);
    brake.policyChanged(after, before, NOW);
    expect(brake.reportOnly().size).toBe(0);
  });
});

it('setKillSwitch sets the shared flag and every subscriber hears one kill-switch event', async () => {
  const store = new MemoryDeviceStore();
  const events: ChangeEvent[] = [];
  await store.subscribe((e) => events.push(e));
  await setKillSwitch(store, true);
  expect((await store.loadFacts(null, 'u', [])).killSwitch).toBe(true);
  await setKillSwitch(store, false);
  expect((await store.loadFacts(null, 'u', [])).killSwitch).toBe(false);
  await new Promise((resolve) => setImmediate(resolve)); // the memory store emits on the next turn
  expect(events).toEqual([
    { kind: 'kill-switch', on: true },
    { kind: 'kill-switch', on: false },
  ]);
});
