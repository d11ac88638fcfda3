// The policy engine: modes, scope, order, global switches, rollout, exemptions, unknown handling,
// errors and timeouts, grace periods, unidentified logins and the user's sentence.
import fc from 'fast-check';
import { defineCheck } from '../../src/policy/contract';
import type { CompiledPolicy } from '../../src/policy/compile';
import type { CheckConfig, PolicyConfig } from '../../src/core/config-types';
import { evaluatePolicy, rolloutBucket, type EngineContext } from '../../src/policy/engine';
import type { DecisionRequest } from '../../src/policy/decision';
import type { StoredFacts } from '../../src/store/device-store';
import {
  NOW,
  checkConfig,
  compile,
  device,
  policyConfig,
  request,
  requireDeviceCheck,
  stored,
  tiktokCheck,
} from '../fixtures/plugins/policy-fixtures';

const HOUR = 3_600_000;
const withTikTok = (partial: Parameters<typeof device>[0] = {}) => device({ apps: ['com.zhiliaoapp.musically'], ...partial });

function ctx(partial: Partial<EngineContext> = {}): EngineContext {
  return { now: NOW, maxReportAgeHours: 24, groups: [], brakeReportOnly: new Set(), refId: 'MW-TEST0001', ...partial };
}

async function decide(
  checks: CheckConfig[] | CompiledPolicy,
  facts: StoredFacts,
  options: { req?: Partial<DecisionRequest>; ctx?: Partial<EngineContext>; policy?: Partial<PolicyConfig> } = {},
) {
  const compiled = Array.isArray(checks) ? await compile(policyConfig(checks, options.policy)) : checks;
  return evaluatePolicy(compiled, request(options.req), facts, ctx(options.ctx));
}

/** A compiled policy whose only check runs `evaluate` (for errors and timeouts). */
function withPlugin(evaluate: () => unknown, partial: Partial<CheckConfig> = {}): CompiledPolicy {
  const config = checkConfig({ id: 'custom', plugin: 'custom', timeoutMs: 30, ...partial });
  const plugin = defineCheck<unknown>({ name: 'custom', parseOptions: () => ({}), evaluate: evaluate as never });
  return { config: policyConfig([config]), version: 'v-test', checks: [{ id: 'custom', config, plugin, options: {}, pluginFile: 'custom.js' }] };
}

describe('the TikTok example', () => {
  const policy = [requireDeviceCheck, tiktokCheck];

  it('denies the iOS device with TikTok, naming the app, the platform and the reference id', async () => {
    const { decision } = await decide(policy, stored({ record: withTikTok() }));
    expect(decision).toMatchObject({ action: 'deny', reasonCode: 'BANNED_APP', decidedBy: 'no-tiktok-on-mobiles', refId: 'MW-TEST0001' });
    expect(decision.message).toBe(
      'Company mail is blocked on this iOS device because TikTok is installed. Remove TikTok; mail resumes within a minute. Questions: the IT helpdesk. Ref MW-TEST0001.',
    );
  });

  it("allows the same user's macOS laptop with TikTok (out of the check's scope)", async () => {
    const laptop = withTikTok({ deviceId: 'laptop-1', platform: 'macos', osVersion: '14.5' });
    const { decision } = await decide(policy, stored({ record: laptop }), { req: { deviceId: 'laptop-1' } });
    expect(decision).toMatchObject({ action: 'allow', reasonCode: 'OK', warnings: [] });
    expect(decision.checks.map((c) => [c.checkId, c.outcome])).toEqual([
      ['require-device', 'pass'],
      ['no-tiktok-on-mobiles', 'skipped'],
    ]);
  });

  it('allows the iOS device once TikTok is removed', async () => {
    const { decision } = await decide(policy, stored({ record: device() }));
    expect(decision.action).toBe('allow');
  });

  it('denies an unknown device through require-device, the first check', async () => {
    const { decision } = await decide(policy, stored({ record: null }));
    expect(decision).toMatchObject({ action: 'deny', reasonCode: 'UNKNOWN_DEVICE', decidedBy: 'require-device' });
    expect(decision.message).toBe('Company mail needs an up-to-date device report from your device. Ref MW-TEST0001.');
    expect(decision.checks).toHaveLength(1);
  });
});

describe('modes and the global switches', () => {
  const enforced = { ...tiktokCheck };
  it.each<[string, Partial<CheckConfig>, string, number]>([
    ['off: not run', { mode: 'off' }, 'skipped', 0],
    ['report: recorded only', { mode: 'report' }, 'fail', 0],
    ['warn: allowed with the sentence', { mode: 'warn' }, 'fail', 1],
  ])('%s', async (_name, partial, outcome, warningCount) => {
    const { decision } = await decide([{ ...enforced, ...partial }], stored({ record: withTikTok() }));
    expect(decision.action).toBe('allow');
    expect(decision.checks[0]!.outcome).toBe(outcome);
    expect(decision.warnings).toHaveLength(warningCount);
  });

  it('warn mode prefixes the sentence', async () => {
    const { decision } = await decide([{ ...enforced, mode: 'warn' }], stored({ record: withTikTok() }));
    expect(decision.warnings[0]).toMatch(/^Warning: Company mail is blocked on this iOS device because TikTok/);
  });

  it.each<[string, { policy?: Partial<PolicyConfig>; facts?: Partial<StoredFacts>; ctx?: Partial<EngineContext> }]>([
    ['global reportOnly', { policy: { reportOnly: true } }],
    ['kill switch', { facts: { killSwitch: true } }],
    ['brake', { ctx: { brakeReportOnly: new Set(['no-tiktok-on-mobiles']) } }],
  ])('%s turns enforce into report', async (_name, o) => {
    const { decision } = await decide([enforced], stored({ record: withTikTok(), ...o.facts }), { policy: o.policy, ctx: o.ctx });
    expect(decision.action).toBe('allow');
    expect(decision.checks[0]).toMatchObject({ mode: 'enforce', effectiveMode: 'report', outcome: 'fail', code: 'BANNED_APP' });
  });

  it('tempfail action', async () => {
    const { decision } = await decide([{ ...enforced, action: 'tempfail' }], stored({ record: withTikTok() }));
    expect(decision).toMatchObject({ action: 'tempfail', reasonCode: 'BANNED_APP', fault: 'policy' });
  });
});

describe('order and scope', () => {
  it('stops at the first enforced failure, in config order', async () => {
    const oldOs = checkConfig({ id: 'os', plugin: 'min-os-version', options: { minimum: { ios: '18' } } });
    const { decision } = await decide([oldOs, tiktokCheck], stored({ record: withTikTok() }));
    expect(decision).toMatchObject({ reasonCode: 'OS_TOO_OLD', decidedBy: 'os' });
    expect(decision.checks.map((c) => c.checkId)).toEqual(['os']);
  });

  it('report-mode failures before the deciding check are kept in the result', async () => {
    const managed = checkConfig({ id: 'managed', plugin: 'managed-only', mode: 'report' });
    const { decision } = await decide([managed, tiktokCheck], stored({ record: withTikTok({ managed: false }) }));
    expect(decision.checks.map((c) => [c.checkId, c.outcome, c.code])).toEqual([
      ['managed', 'fail', 'UNMANAGED_DEVICE'],
      ['no-tiktok-on-mobiles', 'fail', 'BANNED_APP'],
    ]);
  });

  it.each<[string, CheckConfig['scope'], Partial<DecisionRequest>, string[], string]>([
    ['protocol in scope', { protocols: ['imap'] }, {}, [], 'deny'],
    ['protocol out of scope', { protocols: ['smtp'] }, {}, [], 'allow'],
    ['user in scope (any case)', { users: ['Alice@Example.com'] }, {}, [], 'deny'],
    ['user out of scope', { users: ['bob@example.com'] }, {}, [], 'allow'],
    ['group in scope', { groups: ['pilot'] }, {}, ['pilot'], 'deny'],
    ['group out of scope', { groups: ['pilot'] }, {}, ['staff'], 'allow'],
    ['platform out of scope', { platforms: ['android'] }, {}, [], 'allow'],
  ])('%s', async (_name, scope, req, groups, action) => {
    const check = { ...tiktokCheck, scope };
    const { decision } = await decide([check], stored({ record: withTikTok() }), { req, ctx: { groups } });
    expect(decision.action).toBe(action);
  });

  it('runs a platform-scoped check when the platform is unknown (no record): unknown decides', async () => {
    const { decision } = await decide([{ ...tiktokCheck, onUnknown: 'fail' }], stored({ record: null }));
    expect(decision).toMatchObject({ action: 'deny', reasonCode: 'UNKNOWN_DEVICE' });
  });
});

describe('unknown verdicts', () => {
  it.each<[string, 'fail' | 'pass', string]>([
    ['onUnknown fail denies', 'fail', 'deny'],
    ['onUnknown pass allows', 'pass', 'allow'],
  ])('%s', async (_name, onUnknown, action) => {
    const { decision } = await decide([{ ...tiktokCheck, onUnknown }], stored({ record: device({ apps: undefined }) }));
    expect(decision.action).toBe(action);
    expect(decision.checks[0]).toMatchObject({ outcome: 'unknown', code: 'INVENTORY_UNAVAILABLE' });
  });

  it('classifies an old record as stale and a record with an unreadable time as malformed', async () => {
    const old = device({ reportedAt: new Date(NOW.getTime() - 25 * HOUR).toISOString() });
    expect((await decide([requireDeviceCheck], stored({ record: old }))).decision.reasonCode).toBe('STALE_REPORT');
    const bad = device({ reportedAt: 'not a time' });
    expect((await decide([requireDeviceCheck], stored({ record: bad }))).decision.reasonCode).toBe('MALFORMED_RECORD');
    const malformed: StoredFacts = { ...stored(), device: { state: 'malformed', detail: 'bad json' } };
    expect((await decide([requireDeviceCheck], malformed)).decision.reasonCode).toBe('MALFORMED_RECORD');
  });
});

describe('errors and timeouts never allow', () => {
  it.each<[string, () => unknown, string]>([
    ['a throw', () => { throw new Error('boom'); }, 'CHECK_ERROR'],
    ['a rejection', () => Promise.reject(new Error('boom')), 'CHECK_ERROR'],
    ['a timeout', () => new Promise(() => undefined), 'CHECK_TIMEOUT'],
    ['no verdict', () => ({ ok: true }), 'CHECK_ERROR'],
    ['undefined', () => undefined, 'CHECK_ERROR'],
  ])('%s → tempfail with the policy tempfail sentence', async (_name, evaluate, code) => {
    const { decision } = await decide(withPlugin(evaluate), stored());
    expect(decision).toMatchObject({ action: 'tempfail', reasonCode: code, fault: 'system', decidedBy: 'custom', message: 'Try again later. Ref MW-TEST0001.' });
    expect(decision.checks[0]!.outcome).toBe('error');
  });

  it('onError deny denies', async () => {
    const { decision } = await decide(withPlugin(() => { throw new Error('x'); }, { onError: 'deny' }), stored());
    expect(decision.action).toBe('deny');
  });

  it('a report-mode check that throws is recorded, not enforced', async () => {
    const { decision } = await decide(withPlugin(() => { throw new Error('x'); }, { mode: 'report' }), stored());
    expect(decision.action).toBe('allow');
    expect(decision.checks[0]).toMatchObject({ outcome: 'error', code: 'CHECK_ERROR', reason: 'x' });
  });

  it('property: whatever a broken enforcing check throws or returns, the login is not allowed', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.anything().map((v) => () => { throw v; }),
          fc.anything().filter((v) => !(typeof v === 'object' && v !== null && 'verdict' in v)).map((v) => () => v),
          fc.anything().map((v) => () => Promise.reject(v)),
        ),
        fc.constantFrom<'deny' | 'tempfail'>('deny', 'tempfail'),
        async (evaluate, onError) => {
          const { decision } = await decide(withPlugin(evaluate, { onError }), stored());
          expect(decision.action).toBe(onError);
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('exemptions', () => {
  const exemption = (partial: object = {}) => ({
    scope: 'device' as const,
    subject: 'dev-1',
    expiresAt: new Date(NOW.getTime() + HOUR).toISOString(),
    note: 'CEO travelling',
    createdBy: 'ops',
    createdAt: NOW.toISOString(),
    ...partial,
  });

  it.each<[string, object, string]>([
    ['device exemption', {}, 'allow'],
    ['user exemption', { scope: 'user', subject: 'alice@example.com' }, 'allow'],
    ['exemption for this check', { checks: ['no-tiktok-on-mobiles'] }, 'allow'],
    ['exemption for another check', { checks: ['require-device'] }, 'deny'],
    ['expired exemption', { expiresAt: new Date(NOW.getTime() - 1).toISOString() }, 'deny'],
    ['another device', { subject: 'dev-2' }, 'deny'],
  ])('%s → %s', async (_name, partial, action) => {
    const { decision } = await decide([tiktokCheck], stored({ record: withTikTok(), exemptions: [exemption(partial)] }));
    expect(decision.action).toBe(action);
  });

  it('records the exemption and what it covered', async () => {
    const { decision } = await decide([tiktokCheck], stored({ record: withTikTok(), exemptions: [exemption()] }));
    expect(decision.checks[0]).toMatchObject({ outcome: 'exempt', code: 'BANNED_APP' });
    expect(decision.checks[0]!.reason).toContain('CEO travelling');
  });
});

describe('grace period', () => {
  const graced = { ...tiktokCheck, graceHours: 48 };

  it('the first failure starts the grace period: allowed, warned with the end time, first-seen marked', async () => {
    const result = await decide([graced], stored({ record: withTikTok() }));
    expect(result.decision.action).toBe('allow');
    expect(result.firstSeenToMark).toEqual(['no-tiktok-on-mobiles']);
    expect(result.decision.warnings[0]).toContain('From 2025-06-03 12:00 UTC:');
    expect(result.decision.warnings[0]).toContain('TikTok');
    expect(result.decision.checks[0]!.graceUntil).toBe('2025-06-03T12:00:00.000Z');
  });

  it('inside the grace period: allowed, no new mark', async () => {
    const result = await decide([graced], stored({ record: withTikTok(), firstSeen: { 'no-tiktok-on-mobiles': NOW.getTime() - 47 * HOUR } }));
    expect(result.decision.action).toBe('allow');
    expect(result.firstSeenToMark).toEqual([]);
  });

  it('after the grace period: denied', async () => {
    const result = await decide([graced], stored({ record: withTikTok(), firstSeen: { 'no-tiktok-on-mobiles': NOW.getTime() - 49 * HOUR } }));
    expect(result.decision).toMatchObject({ action: 'deny', reasonCode: 'BANNED_APP' });
  });

  it('a passing check clears its first-seen mark', async () => {
    const result = await decide([graced], stored({ record: device(), firstSeen: { 'no-tiktok-on-mobiles': NOW.getTime() - HOUR } }));
    expect(result.firstSeenToClear).toEqual(['no-tiktok-on-mobiles']);
  });

  it('uses the graceMessage template with {graceUntil}', async () => {
    const result = await decide([{ ...graced, graceMessage: 'Remove {app} before {graceUntil}.' }], stored({ record: withTikTok() }));
    expect(result.decision.warnings).toEqual(['Warning: Remove TikTok before 2025-06-03 12:00 UTC. Ref MW-TEST0001.']);
  });
});

describe('unidentified logins', () => {
  it('deny by default, with the unidentified sentence', async () => {
    const { decision } = await decide([tiktokCheck], stored(), { req: { deviceId: null, identitySource: 'none' } });
    expect(decision).toMatchObject({ action: 'deny', reasonCode: 'UNIDENTIFIED', message: 'Enrol this device. Ref MW-TEST0001.' });
  });

  it('allow lets the checks decide on a missing device', async () => {
    const { decision } = await decide([requireDeviceCheck], { ...stored(), device: null }, {
      req: { deviceId: null, identitySource: 'none' },
      policy: { unidentified: { action: 'allow', message: '' } },
    });
    expect(decision).toMatchObject({ action: 'deny', reasonCode: 'UNKNOWN_DEVICE' });
  });
});

describe('messages', () => {
  it('appends the reference id when a template forgets it, and leaves unknown placeholders visible', async () => {
    const check = { ...tiktokCheck, message: 'No {app} on {platform} for {user} ({typo}).' };
    const { decision } = await decide([check], stored({ record: withTikTok() }));
    expect(decision.message).toBe('No TikTok on iOS for alice@example.com ({typo}). Ref MW-TEST0001.');
  });
});

describe('staged rollout', () => {
  it('outside the rollout the check runs as report; the same device always lands the same way', async () => {
    const check = { ...tiktokCheck, rollout: { percent: 50 } };
    const outcomes = new Map<string, string>();
    for (let i = 0; i < 40; i++) {
      const id = `dev-${i}`;
      const { decision } = await decide([check], stored({ record: withTikTok({ deviceId: id }) }), { req: { deviceId: id } });
      const expected = rolloutBucket('no-tiktok-on-mobiles', id) < 50 ? 'deny' : 'allow';
      expect(decision.action).toBe(expected);
      outcomes.set(id, decision.action);
    }
    expect(new Set(outcomes.values()).size).toBe(2);
  });

  it('a rollout group puts its members in', async () => {
    const check = { ...tiktokCheck, rollout: { percent: 0, groups: ['pilot'] } };
    const facts = stored({ record: withTikTok() });
    expect((await decide([check], facts, { ctx: { groups: ['pilot'] } })).decision.action).toBe('deny');
    const outside = await decide([check], facts);
    expect(outside.decision.action).toBe('allow');
    expect(outside.decision.checks[0]!.effectiveMode).toBe('report');
  });

  it('property: the bucket is stable and roughly proportional', () => {
    fc.assert(
      fc.property(fc.string(), fc.string(), (checkId, deviceId) => {
        const b = rolloutBucket(checkId, deviceId);
        expect(b).toBe(rolloutBucket(checkId, deviceId));
        expect(b).toBeGreaterThanOrEqual(0);
        expect(b).toBeLessThan(100);
      }),
    );
    fc.assert(
      fc.property(fc.integer({ min: 5, max: 95 }), fc.string(), (percent, checkId) => {
        const n = 2000;
        let inside = 0;
        for (let i = 0; i < n; i++) if (rolloutBucket(checkId, `device-${i}`) < percent) inside++;
        // 2000 draws: the standard deviation is at most ~1.1 points; 5 points is > 4 sigma.
        expect(Math.abs((inside / n) * 100 - percent)).toBeLessThan(5);
      }),
      { numRuns: 20 },
    );
  });
});

describe("another user's device", () => {
  // Bob's compliant, exempted phone; Alice logs in claiming its id (e.g. an asserted `alice+bob-phone`).
  const bobsPhone = device({ deviceId: 'bob-phone', user: 'bob@example.com', apps: [] });
  const bobsExemption = {
    scope: 'device' as const,
    subject: 'bob-phone',
    expiresAt: new Date(NOW.getTime() + HOUR).toISOString(),
    note: 'Bob travelling',
    createdBy: 'ops',
    createdAt: NOW.toISOString(),
  };

  it("is not Alice's report: her login sees no device (require-device denies)", async () => {
    const { decision } = await decide([requireDeviceCheck, tiktokCheck], stored({ record: bobsPhone }), { req: { deviceId: 'bob-phone' } });
    expect(decision).toMatchObject({ action: 'deny', reasonCode: 'UNKNOWN_DEVICE' });
  });

  it("does not carry Bob's device exemption to Alice's login", async () => {
    const { decision } = await decide([requireDeviceCheck], stored({ record: bobsPhone, exemptions: [bobsExemption] }), {
      req: { deviceId: 'bob-phone' },
    });
    expect(decision.action).toBe('deny');
  });

  it("neither gets nor touches the grace period of Bob's device", async () => {
    const graced = { ...requireDeviceCheck, graceHours: 48 };
    const marked = await decide([graced], stored({ record: bobsPhone }), { req: { deviceId: 'bob-phone' } });
    expect(marked.decision.action).toBe('deny');
    expect(marked.firstSeenToMark).toEqual([]);
    const passing = { ...tiktokCheck, onUnknown: 'pass' as const };
    const cleared = await decide([passing], stored({ record: bobsPhone, firstSeen: { 'no-tiktok-on-mobiles': NOW.getTime() } }), {
      req: { deviceId: 'bob-phone' },
    });
    expect(cleared.firstSeenToClear).toEqual([]);
  });

  it('is still the same user when only the case of the name differs', async () => {
    const { decision } = await decide([requireDeviceCheck, tiktokCheck], stored({ record: bobsPhone }), {
      req: { deviceId: 'bob-phone', user: 'Bob@Example.com' },
    });
    expect(decision.action).toBe('allow');
  });
});
