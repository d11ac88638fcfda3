// What every identity source implements for the resolver, and the small result builders they share.
import type { IdentitySourceConfig } from '../core/config-types';
import type { Credential, CredentialContext, IdentityResult, UpstreamLogin } from './types';

export interface IdentitySourceHandler {
  readonly type: IdentitySourceConfig['type'];
  /**
   * null: this source does not recognise the credential (the next source is tried). Otherwise the
   * source decides: a result, success or failure. Throws only on bugs (the resolver turns a throw
   * into `unavailable`, never into an allow).
   */
  resolve(context: CredentialContext): Promise<IdentityResult | null>;
}

export function badCredentials(detail: string): IdentityResult {
  return { ok: false, failure: 'bad-credentials', detail };
}

export function unavailable(detail: string): IdentityResult {
  return { ok: false, failure: 'unavailable', detail };
}

/** Replay the client's credential upstream (with `username` as the login name the upstream sees). */
export function passthrough(credential: Credential, username: string): UpstreamLogin {
  const replayed: Credential = { ...credential, username };
  return { mode: 'passthrough', credential: replayed, username };
}

/**
 * Upstream login for a user the proxy verified itself: a master login when the listener's upstream
 * is configured for one, otherwise the client's own credential.
 */
export function verifiedUpstream(context: CredentialContext, user: string): UpstreamLogin {
  return context.upstreamLogin === 'master'
    ? { mode: 'master', username: user }
    : passthrough(context.credential, user);
}
