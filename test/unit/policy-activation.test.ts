// Loosening detection, the shared history of policies in force, and the activation guard built on
// them: a return to a policy in force lately is never blocked, the baseline at start is the last
// policy that stayed in force for the whole window, and a brief mistake never becomes it.
import { findLoosenings } from '../../src/policy/loosening';
import { establishedBaseline, inForceWithin, parseHistory, withActivation, PolicyHistory, POLICY_HISTORY_FLAG } from '../../src/policy/policy-history';
import { PolicyActivation } from '../../src/policy/activation';
import type { BlastRadiusResult } from '../../src/policy/blast-radius';
import type { CompiledPolicy } from '../../src/policy/compile';
import { MemoryDeviceStore } from '../../src/store/memory-store';
import { capturingLogger, checkConfig, compile, policyConfig, requireDeviceCheck, tiktokCheck } from '../fixtures/plugins/policy-fixtures';

const HOUR = 3_600_000;
const WINDOW = 24 * HOUR;

describe('findLoosenings', () => {
  const tiktok = { ...tiktokCheck, onUnknown: 'fail' as const };
  const full = policyConfig([requireDeviceCheck, tiktok]);

  test('removing, reporting or weakening an enforcing check is a loosening naming it; tightening is not', () => {
    expect(findLoosenings(full, policyConfig([requireDeviceCheck]))).toEqual([{ check: tiktok.id, change: 'removed' }]);
    expect(findLoosenings(full, policyConfig([requireDeviceCheck, { ...tiktok, mode: 'report' }]))).toEqual([
      { check: tiktok.id, change: 'mode enforce → report' },
    ]);
    const weaker = { ...tiktok, onUnknown: 'pass' as const, graceHours: 48, scope: { platforms: ['android'] }, rollout: { percent: 10 } };
    expect(findLoosenings(full, policyConfig([requireDeviceCheck, weaker])).map((l) => l.change)).toEqual([
      'onUnknown fail → pass',
      'graceHours 0 → 48',
      'scope narrowed',
      'rollout narrowed',
    ]);
    expect(findLoosenings(full, { ...full, reportOnly: true })).toEqual([{ check: 'reportOnly', change: 'false → true (every check in report)' }]);
    expect(findLoosenings(policyConfig([requireDeviceCheck]), full)).toEqual([]);
    expect(findLoosenings(full, policyConfig([requireDeviceCheck, { ...tiktok, message: 'reworded' }]))).toEqual([]);
  });

  test('a check that was not enforcing cannot be loosened', () => {
    const reporting = policyConfig([requireDeviceCheck, { ...tiktok, mode: 'report' }]);
    expect(findLoosenings(reporting, policyConfig([requireDeviceCheck]))).toEqual([]);
  });
});

describe('policy history', () => {
  const p = (version: string) => ({ version, text: `# ${version}` });

  test('the baseline is the last policy in force for the whole window, not the last one loaded', () => {
    let h = withActivation([], p('full'), 0, WINDOW);
    h = withActivation(h, p('loose'), 10 * 24 * HOUR, WINDOW); // a mistake after ten days
    const now = 10 * 24 * HOUR + 60_000;
    expect(establishedBaseline(h, now, WINDOW)?.version).toBe('full');
    expect(inForceWithin(h, now, WINDOW).map((e) => e.version)).toEqual(['loose', 'full']);
    // Only once it stayed in force for the window does the loose policy become the baseline.
    expect(establishedBaseline(h, 11 * 24 * HOUR + 1, WINDOW)?.version).toBe('loose');
  });

  test('re-activating the policy in force changes nothing; old entries are pruned but the baseline is kept', () => {
    let h = withActivation([], p('a'), 0, WINDOW);
    expect(withActivation(h, p('a'), 1000, WINDOW)).toEqual(h);
    h = withActivation(h, p('b'), 30 * 24 * HOUR, WINDOW);
    for (let i = 0; i < 40; i++) h = withActivation(h, p(`c${i}`), 30 * 24 * HOUR + i * 1000, WINDOW);
    expect(h.length).toBeLessThanOrEqual(17);
    expect(h[0]!.version).toBe('a');
    expect(h.at(-1)).toMatchObject({ version: 'c39', untilMs: null });
  });

  test('an unreadable history is empty, never an error', () => {
    expect(parseHistory('{not json')).toEqual([]);
    expect(parseHistory('[{"version":1}]')).toEqual([]);
    expect(parseHistory(null)).toEqual([]);
  });

  test('the legacy policy:active flag seeds the history once', async () => {
    const store = new MemoryDeviceStore();
    await store.setFlag('policy:active', 'checks: []\n');
    const history = await new PolicyHistory(store).load();
    expect(history).toEqual([{ version: expect.any(String), text: 'checks: []\n', fromMs: 0, untilMs: null }]);
    await new PolicyHistory(store).recordActivation(p('x'), 5, WINDOW);
    expect(parseHistory(await store.getFlag(POLICY_HISTORY_FLAG)).map((e) => e.version)).toEqual([history[0]!.version, 'x']);
  });
});

describe('PolicyActivation', () => {
  async function setup(): Promise<{ activation: PolicyActivation; full: CompiledPolicy; loose: CompiledPolicy; other: CompiledPolicy; clock: { now: number }; entries: Record<string, unknown>[] }> {
    const full = await compile({ ...policyConfig([requireDeviceCheck, tiktokCheck]), version: 'full', text: 'full' });
    const loose = await compile({ ...policyConfig([requireDeviceCheck]), version: 'loose', text: 'loose' });
    const other = await compile({ ...policyConfig([requireDeviceCheck, tiktokCheck, checkConfig({ id: 'managed', plugin: 'managed-only' })]), version: 'other', text: 'other' });
    const byText = new Map([full, loose, other].map((c) => [c.config.text, c]));
    const clock = { now: 0 };
    const { log, entries } = capturingLogger();
    // The guard refuses whatever has more checks than its baseline (a stand-in for "newly denies too many").
    const guard = async (baseline: CompiledPolicy, candidate: CompiledPolicy): Promise<BlastRadiusResult> =>
      candidate.checks.length > baseline.checks.length
        ? { ok: false, newlyDenied: 12, devices: 35, message: `refused against ${baseline.version}` }
        : { ok: true, newlyDenied: 0, devices: 35 };
    const activation = new PolicyActivation({
      store: new MemoryDeviceStore(),
      log,
      guard,
      alert: () => undefined,
      compile: async (text) => byText.get(text)!,
      now: () => clock.now,
    });
    return { activation, full, loose, other, clock, entries };
  }

  test('returning to the policy in force before a mistaken loosening passes; a new tightening is still refused', async () => {
    const { activation, full, loose, other, clock, entries } = await setup();
    await activation.activated(null, full);
    clock.now = 10 * 24 * HOUR;
    expect(await activation.check(full, loose)).toMatchObject({ ok: true });
    const recent = await activation.activated(full, loose);
    expect(recent).toEqual([]); // only policies other than the one just replaced
    expect(entries.find((e) => e.msg === 'policy-loosened')).toMatchObject({ checks: [tiktokCheck.id] });
    clock.now += 6000;
    expect(await activation.check(loose, full)).toMatchObject({ ok: true, returningTo: 'full' });
    expect(await activation.check(loose, other)).toMatchObject({ ok: false, message: 'refused against loose' });
  });

  test('at start, the baseline is the policy established before the mistake', async () => {
    const { activation, full, loose, other, clock } = await setup();
    await activation.activated(null, full);
    clock.now = 10 * 24 * HOUR;
    await activation.activated(full, loose);
    clock.now += 3 * 24 * HOUR; // the loose policy is now established itself
    expect(await activation.check(null, other)).toMatchObject({ ok: false });
    expect(await activation.check(null, full)).toMatchObject({ ok: false }); // full was in force too long ago
    clock.now -= 3 * 24 * HOUR - 60_000; // a minute after the mistake
    expect(await activation.check(null, full)).toMatchObject({ ok: true, returningTo: 'full' });
  });
});
