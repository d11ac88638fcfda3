// The one admission step: each outcome, the live-session registration before the upstream step,
// and confirm() after it (a revocation or a policy change in between is not lost).
import { createAdmit, type AdmissionDeps } from '../../src/admission/admit';
import type { AdmissionRequest } from '../../src/admission/types';
import { silentLogger } from '../../src/core/log';
import { SessionRegistry } from '../../src/app/sessions';
import type { Decision, DecisionRequest } from '../../src/policy/decision';
import { decision, defaultResolve } from './imap-fakes';
import { LoginThrottle, type LoginThrottleSettings } from '../../src/admission/login-throttle';
import { createFailureCounters } from '../../src/store/failure-counters';

const THROTTLE: LoginThrottleSettings = { enabled: true, baseDelayMs: 2000, maxDelayMs: 15000, windowSeconds: 900, knownAddressDays: 30 };

/** Admission with a throttle whose sleeps are recorded, not waited. */
function throttled() {
  const slept: number[] = [];
  const delayed: string[] = [];
  const throttle = new LoginThrottle(createFailureCounters({ windowSeconds: 900 }), () => THROTTLE, async (ms) => void slept.push(ms));
  const { admit } = setup(undefined, { throttle, onThrottled: ({ scope, request }) => delayed.push(`${scope} ${request.remoteAddress}`) });
  return { admit, slept, delayed };
}

function setup(decideWith: (r: DecisionRequest) => Decision = () => decision('allow'), extra: Partial<AdmissionDeps> = {}) {
  const sessions = new SessionRegistry();
  const requests: DecisionRequest[] = [];
  let version = 'v1';
  const deps: AdmissionDeps = {
    identity: { resolve: async (ctx) => defaultResolve(ctx) },
    decide: async (r) => {
      requests.push(r);
      return decideWith(r);
    },
    sessions,
    policyVersion: () => version,
    log: silentLogger(),
    ...extra,
  };
  return { admit: createAdmit(deps), sessions, requests, setVersion: (v: string) => (version = v) };
}

const login = (extra: Partial<AdmissionRequest> = {}): AdmissionRequest => ({
  protocol: 'imap',
  frontEnd: 'imap',
  sessionId: 's-1',
  credential: { kind: 'password', username: 'alice@example.com+dev-1', password: 'alice-pw' },
  hints: { name: 'Mail' },
  ...extra,
});

describe('admit', () => {
  it('a wrong password is bad-credentials and reaches no decision', async () => {
    const { admit, requests } = setup();
    const a = await admit(login({ credential: { kind: 'password', username: 'alice@example.com', password: 'nope' } }));
    expect(a.kind).toBe('bad-credentials');
    expect(requests).toHaveLength(0);
  });

  it('an allowed login is decided with the identity and hints and registered as a live session', async () => {
    const { admit, requests, sessions } = setup();
    const revoke = jest.fn();
    const a = await admit(login({ live: { revoke } }));
    expect(a).toMatchObject({ kind: 'allow', identity: { user: 'alice@example.com', deviceId: 'dev-1' }, upstream: { mode: 'passthrough' } });
    expect(requests[0]).toMatchObject({ user: 'alice@example.com', deviceId: 'dev-1', protocol: 'imap', hints: { name: 'Mail' }, trigger: 'login' });
    expect(sessions.byDevice('dev-1').map((s) => s.id)).toEqual(['s-1']);
    if (a.kind !== 'allow' || !a.session) throw new Error('expected a session');
    a.session.end();
    a.session.end();
    expect(sessions.size).toBe(0);
  });

  it('without `live` nothing is registered', async () => {
    const { admit, sessions } = setup();
    const a = await admit(login());
    expect(a.kind === 'allow' && a.session).toBeNull();
    expect(sessions.size).toBe(0);
  });

  it("the policy's deny and tempfail are refuse; a system fault is unavailable with its decision", async () => {
    expect((await setup(() => decision('deny')).admit(login())).kind).toBe('refuse');
    expect((await setup(() => decision('tempfail', { reasonCode: 'BANNED_APP' })).admit(login())).kind).toBe('refuse');
    const down = await setup(() => decision('tempfail', { reasonCode: 'STORE_UNAVAILABLE' })).admit(login());
    expect(down).toMatchObject({ kind: 'unavailable', decision: { reasonCode: 'STORE_UNAVAILABLE' } });
  });

  it('a revocation during the upstream step reaches the front end and confirm() reports it', async () => {
    const { admit, sessions } = setup();
    const revoke = jest.fn();
    const a = await admit(login({ live: { revoke } }));
    if (a.kind !== 'allow' || !a.session) throw new Error('expected a session');
    const denied = decision('deny', { refId: 'REF-LATE' });
    sessions.byDevice('dev-1')[0]!.revoke(denied);
    sessions.byDevice('dev-1')[0]!.revoke(decision('deny'));
    expect(revoke).toHaveBeenCalledTimes(1);
    expect((await a.session.confirm()).refId).toBe('REF-LATE');
  });

  it('confirm() decides again when the policy changed since the decision; only a deny ends the login', async () => {
    let next = decision('allow');
    const { admit, setVersion, requests } = setup(() => next);
    const confirmOnce = async (): Promise<string> => {
      const a = await admit(login({ live: { revoke: () => undefined } }));
      if (a.kind !== 'allow' || !a.session) throw new Error('expected a session');
      return (await a.session.confirm()).action;
    };
    expect(await confirmOnce()).toBe('allow');
    expect(requests).toHaveLength(1);
    const first = await admit(login({ live: { revoke: () => undefined } }));
    setVersion('v2');
    next = decision('tempfail', { reasonCode: 'STORE_UNAVAILABLE' });
    if (first.kind !== 'allow' || !first.session) throw new Error('expected a session');
    expect((await first.session.confirm()).action).toBe('allow');
    expect(requests.at(-1)).toMatchObject({ trigger: 'policy', sessionId: 's-1' });
    next = decision('allow', { policyVersion: 'v2' });
    const second = await admit(login({ live: { revoke: () => undefined } }));
    setVersion('v3');
    next = decision('deny', { policyVersion: 'v3' });
    if (second.kind !== 'allow' || !second.session) throw new Error('expected a session');
    expect((await second.session.confirm()).action).toBe('deny');
  });

  it('a second confirm() decides again: the handle keeps no decision (nor the request) for the session\'s life', async () => {
    let next = decision('allow');
    const { admit, requests } = setup(() => next);
    const a = await admit(login({ live: { revoke: () => undefined } }));
    if (a.kind !== 'allow' || !a.session) throw new Error('expected a session');
    expect((await a.session.confirm()).action).toBe('allow');
    expect(requests).toHaveLength(1);
    next = decision('deny');
    expect((await a.session.confirm()).action).toBe('deny');
    expect(requests).toHaveLength(2);
  });

  it('a gateway-verified user must be the user the credential names', async () => {
    const { admit } = setup();
    const a = await admit(login({ verification: { by: 'gateway', user: 'bob@example.com' } }));
    expect(a.kind).toBe('bad-credentials');
    expect((await admit(login({ verification: { by: 'gateway', user: 'ALICE@example.com' } }))).kind).toBe('allow');
  });

  it('throttle: a wrong credential delays the next attempt from that address, after the decision-free failure is counted', async () => {
    const { admit, slept, delayed } = throttled();
    const wrong = login({ credential: { kind: 'password', username: 'alice@example.com', password: 'nope' }, remoteAddress: '192.0.2.1' });
    expect((await admit(wrong)).kind).toBe('bad-credentials');
    expect((await admit(wrong)).kind).toBe('bad-credentials');
    expect(slept).toEqual([2000]);
    expect(delayed).toEqual(['address 192.0.2.1']);
    // Another user from another address is not delayed.
    await admit(login({ credential: { kind: 'password', username: 'bob@example.com+dev-2', password: 'bob-pw' }, remoteAddress: '192.0.2.9' }));
    expect(slept).toEqual([2000]);
  });

  it('throttle: a passthrough password counts when the front end reports the upstream refused it', async () => {
    const { admit, slept } = throttled();
    const a = await admit(login({ remoteAddress: '192.0.2.2' }));
    if (a.kind !== 'allow' || !a.upstreamChecked) throw new Error('expected a passthrough allow with upstreamChecked');
    a.upstreamChecked(false);
    a.upstreamChecked(false);
    await new Promise((r) => setImmediate(r));
    await admit(login({ remoteAddress: '192.0.2.2' }));
    expect(slept).toEqual([2000]);
  });

  it('throttle: a gateway-verified login is neither delayed nor counted (the daemon applies its own penalty)', async () => {
    const { admit, slept } = throttled();
    const wrong = login({ verification: { by: 'gateway', user: 'bob@example.com' }, remoteAddress: '192.0.2.3' });
    for (let i = 0; i < 3; i++) expect((await admit(wrong)).kind).toBe('bad-credentials');
    expect(slept).toEqual([]);
  });
});
