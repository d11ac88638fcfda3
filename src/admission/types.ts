// The contract of the one admission step that every front end (IMAP, SMTP, the gateway hooks) calls:
// what a front end asks about one login, and the four outcomes it turns into its own replies.
import type { PeerCertificate } from 'node:tls';
import type { Credential, UpstreamLogin } from '../identity/types';
import type { IdentitySource, Protocol } from '../policy/contract';
import type { Decision } from '../policy/decision';

/** Which front end asked; named in the audit event and the logs. */
export type FrontEnd = 'imap' | 'smtp' | 'nginx' | 'dovecot' | 'postfix';

/**
 * Who verifies the password of a `password` credential.
 * - `mailwarden` (the default): the configured identity sources, as the IMAP and SMTP proxies do.
 * - `gateway`: the calling daemon already verified it for `user` (e.g. Dovecot's passdb ran before
 *   its policy request); the sources only derive the device, and a different user is refused.
 * (A passthrough password that the backend verifies after the decision is the identity sources'
 * business: they pass it on, as for the IMAP and SMTP proxies.)
 */
export type Verification =
  | { readonly by: 'mailwarden' }
  | {
      readonly by: 'gateway';
      readonly user: string;
      /**
       * The device of a device-bound credential that mailwarden itself verified for the gateway
       * (Dovecot's oauth2 passdb asking mailwarden's introspection endpoint): a strong identity,
       * the identity sources are not asked (the Dovecot policy hook sets it).
       */
      readonly deviceId?: string;
    };

/**
 * The password of a credential the gateway verified (it never passes the password on): not empty,
 * so it passes credential validation, and never of app-password shape. Never sent anywhere: hooks
 * do not log in upstream.
 */
export const GATEWAY_VERIFIED = '(verified by the gateway)';

/** Registration of the connection as a live session, so that revocation can reach it. */
export interface LiveRegistration {
  /**
   * Called (at most once) when a re-evaluation now refuses the session: IMAP ends it with
   * `* BYE`, SMTP refuses its next MAIL FROM, a hook asks its daemon to kick it. Must not throw.
   */
  revoke(decision: Decision): void;
}

/** One login, as a front end presents it. */
export interface AdmissionRequest {
  /** The mail protocol the policy sees (a check may be scoped to one). */
  readonly protocol: Protocol;
  /** The front end that asks (audit event, logs, metrics). */
  readonly frontEnd: FrontEnd;
  /** The connection's id: the live session's id and the `sessionId` of its log lines. */
  readonly sessionId: string;
  readonly credential: Credential;
  /** The verified client certificate, when the listener (or the gateway) verified one. */
  readonly peerCertificate?: PeerCertificate;
  readonly remoteAddress?: string;
  /** Client hints: IMAP ID fields, EHLO name, X-Mailer / User-Agent. Never an identity. */
  readonly hints?: Readonly<Record<string, string>>;
  /** The upstream login mode of this front end (`upstream.login`); absent = passthrough. */
  readonly upstreamLogin?: 'passthrough' | 'master';
  /** Absent = `{ by: 'mailwarden' }`. */
  readonly verification?: Verification;
  /** Present: an allowed login is registered as a live session before the answer returns. */
  readonly live?: LiveRegistration;
  /**
   * The longest the failed-login throttle may delay this answer (a gateway that gives up on a slow
   * answer: nginx's auth_http_timeout). Absent: the throttle's own delay, up to its maxDelayMs.
   */
  readonly throttleWaitMaxMs?: number;
}

/** Who the login proved to be. */
export interface AdmittedIdentity {
  /** The mail user (upstream login name, `+device` already stripped). */
  readonly user: string;
  readonly deviceId: string | null;
  readonly source: IdentitySource;
  readonly strength: 'strong' | 'weak';
}

/** The live session an allowed login was registered as (present when the request had `live`). */
export interface LiveSessionHandle {
  readonly id: string;
  /**
   * After the front end's own upstream step: the decision that stands now. The original allow,
   * unless the session was revoked meanwhile, or the policy changed since the decision (then the
   * login is decided again). A non-allow answer means: refuse, the login must not proceed. Called
   * once; a second call decides again (the handle lets go of the first decision).
   */
  confirm(): Promise<Decision>;
  /** Remove the session from the registry (connection closed or login abandoned). Idempotent. */
  end(): void;
}

/**
 * The front end tells the login throttle what the upstream said about a passthrough credential:
 * false = it refused the client's password (a failed login), true = it accepted it. At most once.
 */
export type UpstreamChecked = (accepted: boolean) => void;

/** What the admission step answers; the front end maps each kind to its protocol's replies. */
export type Admission =
  /** Let the login in: log in upstream with `upstream`, show `decision.warnings`. */
  | {
      readonly kind: 'allow';
      readonly identity: AdmittedIdentity;
      readonly decision: Decision;
      readonly upstream: UpstreamLogin;
      readonly session: LiveSessionHandle | null;
      /** Present for a passthrough login: report the upstream's verdict on the client's own credential. */
      readonly upstreamChecked?: UpstreamChecked;
    }
  /**
   * The policy (or a system fault, `decision.fault === 'system'`) refuses: show
   * `decision.message` (sentence with ref id), `decision.reasonCode`, `decision.refId`.
   * `upstream` is there for front ends that must still let the backend judge a passthrough password.
   */
  | {
      readonly kind: 'refuse';
      readonly identity: AdmittedIdentity;
      readonly decision: Decision;
      readonly upstream: UpstreamLogin;
      /** As for `allow`: the upstream judged a passthrough credential (SMTP checks it even when refused). */
      readonly upstreamChecked?: UpstreamChecked;
    }
  /** Wrong password or token: the protocol's authentication-failed reply. `detail` is for the log. */
  | { readonly kind: 'bad-credentials'; readonly detail: string }
  /**
   * Nothing could be decided now (identity source down, an internal error): a temporary failure.
   * `decision` is present when it came from the decider (with its sentence and ref id).
   */
  | { readonly kind: 'unavailable'; readonly detail: string; readonly decision?: Decision };
