// Shared by IMAP and SMTP: what a client presented, and who and which device it proved to be.
import type { IdentitySource } from '../policy/contract';
import type { PeerCertificate } from 'node:tls';

/** What the client presented at LOGIN / AUTHENTICATE / AUTH. */
export type Credential =
  /** LOGIN, SASL PLAIN or LOGIN. */
  | { readonly kind: 'password'; readonly username: string; readonly password: string }
  /** SASL XOAUTH2 or OAUTHBEARER; username is the authzid/user= field when sent. */
  | { readonly kind: 'bearer'; readonly username?: string; readonly token: string };

export interface CredentialContext {
  readonly credential: Credential;
  /** The verified client certificate, when the listener asked for one and it chained to the MDM CA. */
  readonly peerCertificate?: PeerCertificate;
  readonly remoteAddress?: string;
  /**
   * The listener's upstream login mode (UpstreamConfig.login). With 'master', sources whose user the
   * proxy verified itself (oauth, certificate with a user field) return a master login instead of
   * replaying the client's credential. Absent = 'passthrough'. App passwords are always 'master'.
   */
  readonly upstreamLogin?: 'passthrough' | 'master';
}

/** How to log in to the upstream server once the policy allows. */
export type UpstreamLogin =
  /** Replay the client's own credentials (LOGIN/AUTHENTICATE PLAIN/XOAUTH2 as received). */
  | { readonly mode: 'passthrough'; readonly credential: Credential; readonly username: string }
  /** Log in with the configured master/proxy credential on behalf of `username`. */
  | { readonly mode: 'master'; readonly username: string };

export type IdentityResult =
  | {
      readonly ok: true;
      /** The mail user (upstream login name, `+device` already stripped). */
      readonly user: string;
      readonly deviceId: string | null;
      readonly source: IdentitySource;
      readonly strength: 'strong' | 'weak';
      readonly upstream: UpstreamLogin;
    }
  | {
      readonly ok: false;
      /** bad-credentials → NO [AUTHENTICATIONFAILED] / 535 5.7.8; unavailable → NO [UNAVAILABLE] / 454 4.7.0. */
      readonly failure: 'bad-credentials' | 'unavailable';
      /** For the log (never contains the secret). */
      readonly detail: string;
    };

export interface IdentityResolver {
  resolve(context: CredentialContext): Promise<IdentityResult>;
}
