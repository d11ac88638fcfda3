// What the engine returns for one login: an action, a stable reason code, the sentence the user
// sees, and the per-check results that go to the audit log. Protocol code turns this into replies.
import type { Action, CheckMode } from '../core/config-types';
import type { IdentitySource, Protocol } from './contract';

export type { Action, CheckMode } from '../core/config-types';

export { CoreReasonCodes } from './contract';

/** A login (or a live session being re-evaluated) asking for a decision. */
export interface DecisionRequest {
  readonly user: string;
  readonly deviceId: string | null;
  readonly protocol: Protocol;
  readonly identitySource: IdentitySource;
  readonly identityStrength: 'strong' | 'weak';
  readonly hints?: Readonly<Record<string, string>>;
  readonly remoteAddress?: string;
  /** Set when a live session is re-evaluated (revocation), for the audit event. */
  readonly sessionId?: string;
  /** Which front end asked (imap, smtp, nginx, dovecot, postfix), for the audit event. */
  readonly frontEnd?: string;
  /** 'login' or the trigger of a re-evaluation ('device', 'policy', 'exemption', 'reconnect', ...). */
  readonly trigger?: string;
}

export interface CheckResult {
  readonly checkId: string;
  readonly plugin: string;
  /** Mode as configured. */
  readonly mode: CheckMode;
  /** Mode after the global report switch, kill switch, brake and staged rollout. */
  readonly effectiveMode: CheckMode;
  readonly outcome: 'pass' | 'fail' | 'unknown' | 'error' | 'skipped' | 'exempt';
  readonly code?: string;
  readonly reason?: string;
  /** The rendered user sentence for this check when it failed. */
  readonly message?: string;
  /** Set when the failure is inside the grace period: ISO time the grace ends. */
  readonly graceUntil?: string;
  readonly ms: number;
}

/**
 * Whose answer a refusal is: `policy` (a check or the unidentified rule said so; an allow is also
 * `policy`) or `system` (the store, a check or the decider itself failed: nothing was decided).
 * Front ends choose between "refused" and "try again" replies by this, never by reason codes.
 */
export type Fault = 'policy' | 'system';

export interface Decision {
  readonly action: Action;
  readonly reasonCode: string;
  readonly fault: Fault;
  /** Short id the user can quote to the helpdesk; also in the audit event. */
  readonly refId: string;
  /** The sentence to show the user when denied or temp-failed (already includes refId). */
  readonly message?: string;
  /** Sentences to show while allowing (warn mode, grace period). */
  readonly warnings: readonly string[];
  /** The check that decided a deny/tempfail, if any. */
  readonly decidedBy?: string;
  readonly checks: readonly CheckResult[];
  readonly user: string;
  readonly deviceId: string | null;
  readonly identitySource: IdentitySource;
  readonly identityStrength: 'strong' | 'weak';
  readonly protocol: Protocol;
  readonly policyVersion: string;
  readonly at: string;
}
