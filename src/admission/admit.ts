// The one admission step every front end calls: throttle → credential → identity → decision (the
// decider writes the audit event) → outcome → live session. Written as a list of named steps, each a
// small function.
import type { Logger } from '../core/log';
import { errorText } from '../core/errors';
import type { IdentityResolver, IdentityResult } from '../identity/types';
import { validateIdentifier } from '../identity/validate';
import type { Decision, DecisionRequest } from '../policy/decision';
import type { LiveSession } from '../policy/live-session';
import { parseAppPassword } from '../identity/app-password';
import type { LoginThrottle, ThrottleSubject, ThrottleTurn, ThrottleVerdict } from './login-throttle';
import type { Admission, AdmissionRequest, AdmittedIdentity, LiveSessionHandle } from './types';

export interface AdmissionDeps {
  readonly identity: IdentityResolver;
  /** Runs the policy and writes the audit event; never throws (an internal error → tempfail). */
  decide(request: DecisionRequest): Promise<Decision>;
  /** Where live sessions are registered for revocation. */
  readonly sessions: { add(session: LiveSession): () => void };
  /** The version of the policy in force now (a login decided under another one is decided again). */
  policyVersion(): string;
  readonly log: Logger;
  /** mailwarden's failed-login delay; absent = none. */
  readonly throttle?: LoginThrottle;
  /** A login was delayed by the throttle (metrics, audit). Must not throw. */
  onThrottled?(login: ThrottledLogin): void;
}

/** What `onThrottled` is told about a delayed login. */
export interface ThrottledLogin extends ThrottleVerdict {
  readonly request: AdmissionRequest;
}

export type Admit = (request: AdmissionRequest) => Promise<Admission>;

type Identified = Extract<IdentityResult, { ok: true }>;

/**
 * Step 0: who to count failures for, as far as is known before the credential is checked. None when
 * the gateway verified the password already (Dovecot and Postfix apply their own penalty, and a
 * policy request is never a guess).
 */
function throttleSubject(deps: AdmissionDeps, request: AdmissionRequest): ThrottleSubject | null {
  if (!deps.throttle || request.verification?.by === 'gateway') return null;
  const { credential } = request;
  const credentialId = credential.kind === 'password' ? parseAppPassword(credential.password)?.credentialId : undefined;
  return { remoteAddress: request.remoteAddress, username: credential.username, credentialId };
}

/** Waits out the throttle's delay for this subject (after earlier failures), and says so. */
async function waitTurn(deps: AdmissionDeps, request: AdmissionRequest, subject: ThrottleSubject | null): Promise<ThrottleTurn | undefined> {
  if (!subject || !deps.throttle) return undefined;
  const turn = await deps.throttle.wait(subject, request.throttleWaitMaxMs);
  if (turn.delayMs > 0) deps.onThrottled?.({ delayMs: turn.delayMs, scope: turn.scope, request });
  return turn;
}

/** Step 1: who is this? A resolver that throws is an outage, never an allow. */
async function identify(deps: AdmissionDeps, request: AdmissionRequest): Promise<IdentityResult> {
  const verification = request.verification;
  if (verification?.by === 'gateway' && verification.deviceId !== undefined) {
    const problem = validateIdentifier(verification.user, 'gateway user') ?? validateIdentifier(verification.deviceId, 'gateway device id');
    if (problem) return { ok: false, failure: 'bad-credentials', detail: problem };
    const { user, deviceId } = verification;
    return { ok: true, user, deviceId, source: 'app-password', strength: 'strong', upstream: { mode: 'master', username: user } };
  }
  let result: IdentityResult;
  try {
    result = await deps.identity.resolve({
      credential: request.credential,
      peerCertificate: request.peerCertificate,
      remoteAddress: request.remoteAddress,
      upstreamLogin: request.upstreamLogin,
    });
  } catch (err) {
    deps.log.error('identity resolver failed', { protocol: request.frontEnd, sessionId: request.sessionId, error: errorText(err) });
    return { ok: false, failure: 'unavailable', detail: errorText(err) };
  }
  // The gateway verified the password for one user: an identity for anyone else is not this login.
  if (result.ok && verification?.by === 'gateway' && result.user.toLowerCase() !== verification.user.toLowerCase()) {
    return { ok: false, failure: 'bad-credentials', detail: `the gateway verified ${verification.user}, the credential names ${result.user}` };
  }
  return result;
}

/** Step 2: what does the policy say? (The decider writes the audit event and feeds the brake.) */
function decide(deps: AdmissionDeps, request: AdmissionRequest, identity: Identified): Promise<Decision> {
  return deps.decide({
    user: identity.user,
    deviceId: identity.deviceId,
    protocol: request.protocol,
    identitySource: identity.source,
    identityStrength: identity.strength,
    hints: request.hints ?? {},
    remoteAddress: request.remoteAddress,
    frontEnd: request.frontEnd,
    trigger: 'login',
  });
}

/** Step 3: the decision as an outcome. A system fault is `unavailable`; the policy's no is `refuse`. */
function outcome(identity: Identified, decision: Decision): Admission {
  const admitted: AdmittedIdentity = { user: identity.user, deviceId: identity.deviceId, source: identity.source, strength: identity.strength };
  if (decision.action === 'allow') return { kind: 'allow', identity: admitted, decision, upstream: identity.upstream, session: null };
  if (decision.action === 'tempfail' && decision.fault === 'system') {
    return { kind: 'unavailable', detail: `decision ${decision.reasonCode}`, decision };
  }
  return { kind: 'refuse', identity: admitted, decision, upstream: identity.upstream };
}

/**
 * Step 4: an allowed login becomes a live session before the front end's upstream step, so that a
 * revocation landing during the upstream login is not lost; `confirm()` reports it afterwards.
 */
function register(deps: AdmissionDeps, request: AdmissionRequest, identity: AdmittedIdentity, decision: Decision): LiveSessionHandle | null {
  const live = request.live;
  if (!live) return null;
  let revokedWith: Decision | null = null;
  const session: LiveSession = {
    id: request.sessionId,
    protocol: request.protocol,
    user: identity.user,
    deviceId: identity.deviceId,
    identitySource: identity.source,
    identityStrength: identity.strength,
    hints: request.hints ?? {},
    remoteAddress: request.remoteAddress,
    revoke(denied) {
      if (revokedWith) return;
      revokedWith = denied;
      live.revoke(denied);
    },
  };
  const unregister = deps.sessions.add(session);
  // The closures below outlive the login by hours: they read the session's own fields, never
  // `request` (which holds the client's credential), and let go of the decision once confirmed.
  let admitted: Decision | null = decision;
  let ended = false;
  return {
    id: session.id,
    async confirm() {
      const decided = admitted;
      admitted = null;
      if (revokedWith) return revokedWith;
      if (decided && deps.policyVersion() === decided.policyVersion) return decided;
      // The policy changed between the decision and the registration: the reload's re-evaluation
      // may have missed this session, so decide again (as the revoker would: only a deny ends it).
      const again = await deps.decide({
        user: session.user,
        deviceId: session.deviceId,
        protocol: session.protocol,
        identitySource: session.identitySource,
        identityStrength: session.identityStrength,
        hints: session.hints,
        remoteAddress: session.remoteAddress,
        sessionId: session.id,
        trigger: 'policy',
      });
      if (revokedWith) return revokedWith;
      if (again.action === 'deny') session.revoke(again);
      return again.action === 'deny' || !decided ? again : decided;
    },
    end() {
      if (ended) return;
      ended = true;
      unregister();
    },
  };
}

/**
 * After the identity step: a wrong credential counts as a failure; one mailwarden verified itself
 * (a master login upstream) is a success now; a passthrough password is judged by the upstream, so
 * the front end reports that verdict through `upstreamChecked`.
 */
async function countAttempt(
  deps: AdmissionDeps,
  subject: ThrottleSubject | null,
  turn: ThrottleTurn | undefined,
  identity: IdentityResult,
): Promise<((accepted: boolean) => void) | undefined> {
  const throttle = deps.throttle;
  if (!subject || !throttle) return undefined;
  // Awaited, so that the next attempt (at any instance) already sees this failure.
  if (!identity.ok) return identity.failure === 'bad-credentials' ? void (await throttle.failed(subject)) : undefined;
  if (identity.upstream.mode === 'master') return void throttle.succeeded(subject, turn);
  let reported = false;
  return (accepted) => {
    if (reported) return;
    reported = true;
    void (accepted ? throttle.succeeded(subject, turn) : throttle.failed(subject));
  };
}

/** Builds the admission step over the throttle, the identity resolver, the decider and the session registry. */
export function createAdmit(deps: AdmissionDeps): Admit {
  return async function admit(request) {
    const subject = throttleSubject(deps, request);
    const turn = await waitTurn(deps, request, subject);
    const identity = await identify(deps, request);
    const upstreamChecked = await countAttempt(deps, subject, turn, identity);
    if (!identity.ok) {
      return identity.failure === 'bad-credentials'
        ? { kind: 'bad-credentials', detail: identity.detail }
        : { kind: 'unavailable', detail: identity.detail };
    }
    const decision = await decide(deps, request, identity);
    const admission = outcome(identity, decision);
    const checked = upstreamChecked ? { upstreamChecked } : {};
    if (admission.kind !== 'allow') return admission.kind === 'refuse' ? { ...admission, ...checked } : admission;
    return { ...admission, ...checked, session: register(deps, request, admission.identity, decision) };
  };
}
