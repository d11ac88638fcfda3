// The seam between protocol listeners (IMAP, SMTP) and the core: everything a listener needs to
// turn a login into a decision. Listeners receive a Gate; they never reach into stores or policy.
import type { Logger } from '../core/log';
import type { SessionRegistry } from './sessions';
import type { IdentityResolver } from '../identity/types';
import type { Decision, DecisionRequest } from '../policy/decision';
import type { MailwardenConfig, PolicyConfig } from '../core/config-types';
import type { Metrics } from '../admin/metrics';
import type { Admission, AdmissionRequest } from '../admission/types';
import type { CircuitBreakers } from '../core/circuit-breaker';

export interface Gate {
  readonly log: Logger;
  /**
   * The one admission step (src/admission/admit.ts): credential → identity → decision → audit →
   * live session. Front ends map the returned Admission to their replies. Never throws.
   */
  admit(request: AdmissionRequest): Promise<Admission>;
  readonly identity: IdentityResolver;
  /** Runs the policy for a login, writes the audit event, never throws (an internal error → tempfail). */
  decide(request: DecisionRequest): Promise<Decision>;
  readonly sessions: SessionRegistry;
  /** The configuration in force now (it changes on reload; read it per connection). */
  config(): MailwardenConfig;
  policy(): PolicyConfig;
  /**
   * Optional counters a listener reports (the runtime passes its Prometheus metrics; absent in
   * tests): login results, live-session count, upstream login times and failures by reason.
   */
  readonly metrics?: Pick<Metrics, 'onLogin' | 'sessionDelta' | 'onUpstreamError' | 'onUpstreamLogin'>;
  /**
   * The process's circuit breakers, one per upstream address, shared by the IMAP and SMTP legs; the
   * runtime reports their trips (metrics, alert). A private set per listener when absent (tests).
   */
  readonly breakers?: CircuitBreakers;
}

/** A started protocol front end (IMAP or SMTP listeners), as the runtime drives it. */
export interface ProtocolService {
  /** Bound addresses, in listener order (port 0 in config = any free port). */
  readonly addresses: readonly { host: string; port: number; tls: 'implicit' | 'starttls' | 'none' }[];
  /** Stop accepting; let sessions finish for up to drainMs, then end the rest (IMAP: BYE). */
  shutdown(drainMs: number): Promise<void>;
}
