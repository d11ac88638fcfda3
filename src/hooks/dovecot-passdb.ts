// Token introspection (RFC 7662 shape) for Dovecot's oauth2 passdb, so that Dovecot can verify
// mailwarden's device-bound app passwords: `LOGIN user <app password>` reaches the passdb as a
// token, mailwarden checks it and answers the user and, as an extra field, the device.
import type { IdentityResult } from '../identity/types';
import type { DovecotHookConfig } from '../core/config-types';
import { sameSecret, type HookHttpRequest, type HookHttpResponse } from './http-listener';
import { timed, type HookDeps, type HookOutcome } from './hook';

/** The introspection field Dovecot copies into the passdb extra field of the same name (pass_attrs). */
export const DEVICE_FIELD = 'mailwarden_device';

function json(status: number, value: unknown): HookHttpResponse {
  return { status, headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(value) };
}

const INACTIVE = json(200, { active: false });

/** Verifies an app password from the password alone (src/identity/app-password.ts appPasswordOwner). */
export type VerifyAppPassword = (password: string) => Promise<IdentityResult | null>;

/**
 * POST form `token=…&client_id=…&client_secret=…` (Dovecot 2.3 `introspection_mode = post`,
 * measured). The request names no user: a query string in introspection_url makes the 2.3.19 auth
 * process panic (measured, http_client_request_set_payload assertion), so Dovecot itself compares
 * `username` with the login ("Username 'bob' did not match 'alice'", measured).
 * An unknown or wrong token is `active: false` (Dovecot: authentication failed); the store being down
 * is HTTP 503 (Dovecot: temporary failure), never an active token.
 */
export function createDovecotPassdbHandler(
  deps: HookDeps & { readonly verifyAppPassword: VerifyAppPassword },
  config: () => DovecotHookConfig,
): (request: HookHttpRequest) => Promise<HookHttpResponse> {
  async function introspect(http: HookHttpRequest): Promise<{ outcome: HookOutcome; answer: HookHttpResponse }> {
    const client = config().passdb;
    const form = new URLSearchParams(http.body.toString('utf8'));
    if (!client || http.method !== 'POST' || form.get('client_id') !== client.clientId || !sameSecret(form.get('client_secret') ?? undefined, client.clientSecret)) {
      deps.log.warn('dovecot passdb: introspection request without the configured client credentials', { remoteAddress: http.remoteAddress });
      return { outcome: 'bad-request', answer: json(401, { error: 'invalid_client' }) };
    }
    const token = form.get('token');
    if (!token) return { outcome: 'bad-request', answer: json(400, { error: 'invalid_request' }) };
    const result = await deps.verifyAppPassword(token);
    // Not of app-password shape: a password for the passdb before this one, never checked here.
    if (result === null) return { outcome: 'bad-credentials', answer: INACTIVE };
    if (!result.ok) {
      if (result.failure === 'unavailable') return { outcome: 'tempfail', answer: json(503, { error: 'temporarily_unavailable' }) };
      return { outcome: 'bad-credentials', answer: INACTIVE };
    }
    if (result.deviceId === null) return { outcome: 'bad-credentials', answer: INACTIVE };
    return { outcome: 'allow', answer: json(200, { active: true, username: result.user, [DEVICE_FIELD]: result.deviceId }) };
  }

  return (http) => timed(deps, 'dovecot-passdb', () => introspect(http), json(503, { error: 'temporarily_unavailable' }));
}
