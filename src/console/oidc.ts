// Optional console sign-in through an OpenID Connect provider: authorization code flow with PKCE
// (RFC 7636, S256), the ID token verified with jose against the provider's JWKS (issuer, audience,
// expiry, nonce), and a role claim mapped to a console role.
import { createHash, randomBytes } from 'node:crypto';
import { createRemoteJWKSet, jwtVerify, type JWTPayload } from 'jose';
import type { ConsoleOidcConfig } from '../core/config-types';
import { ROLES, type Role } from '../admin/roles';

interface Discovery {
  readonly authorization_endpoint: string;
  readonly token_endpoint: string;
  readonly jwks_uri: string;
  readonly issuer: string;
}

/** What the browser carries between start and callback (sealed in a short-lived cookie). */
export interface OidcPending {
  readonly state: string;
  readonly nonce: string;
  readonly verifier: string;
  readonly expires: number;
}

export class OidcError extends Error {}

const b64url = (bytes: Buffer) => bytes.toString('base64url');
const FETCH_TIMEOUT_MS = 5000;

export class OidcClient {
  private discovery: Promise<Discovery> | null = null;
  private jwks: ReturnType<typeof createRemoteJWKSet> | null = null;

  constructor(private readonly config: ConsoleOidcConfig) {}

  private discover(): Promise<Discovery> {
    this.discovery ??= (async () => {
      const url = `${this.config.issuer.replace(/\/$/, '')}/.well-known/openid-configuration`;
      const res = await fetch(url, { signal: AbortSignal.timeout(FETCH_TIMEOUT_MS) });
      if (!res.ok) throw new OidcError(`the provider's discovery document answered ${res.status}`);
      const doc = (await res.json()) as Partial<Discovery>;
      if (!doc.authorization_endpoint || !doc.token_endpoint || !doc.jwks_uri) throw new OidcError('the provider\'s discovery document lacks endpoints');
      // OpenID Connect Discovery 1.0 §4.3: the issuer in the document must be the one configured.
      if (doc.issuer !== this.config.issuer) throw new OidcError(`the provider names issuer ${String(doc.issuer)}, not ${this.config.issuer}`);
      return doc as Discovery;
    })().catch((err: unknown) => {
      this.discovery = null;
      throw err;
    });
    return this.discovery;
  }

  /** The provider URL to send the browser to, and what to remember until the callback. */
  async start(redirectUri: string): Promise<{ url: string; pending: OidcPending }> {
    const d = await this.discover();
    const pending: OidcPending = {
      state: b64url(randomBytes(16)),
      nonce: b64url(randomBytes(16)),
      verifier: b64url(randomBytes(32)),
      expires: Date.now() + 10 * 60_000,
    };
    const url = new URL(d.authorization_endpoint);
    url.searchParams.set('response_type', 'code');
    url.searchParams.set('client_id', this.config.clientId);
    url.searchParams.set('redirect_uri', redirectUri);
    url.searchParams.set('scope', this.config.scopes.join(' '));
    url.searchParams.set('state', pending.state);
    url.searchParams.set('nonce', pending.nonce);
    url.searchParams.set('code_challenge', b64url(createHash('sha256').update(pending.verifier).digest()));
    url.searchParams.set('code_challenge_method', 'S256');
    return { url: url.toString(), pending };
  }

  /** Exchanges the code, verifies the ID token; returns who signed in and their console role. */
  async finish(query: URLSearchParams, pending: OidcPending | null, redirectUri: string): Promise<{ name: string; role: Role }> {
    if (query.get('error')) throw new OidcError(`the provider refused the sign-in: ${query.get('error')}`);
    if (!pending || pending.expires < Date.now()) throw new OidcError('the sign-in took too long or was started in another browser; start again');
    if (query.get('state') !== pending.state) throw new OidcError('the sign-in answer does not match the request (state); start again');
    const code = query.get('code');
    if (!code) throw new OidcError('the provider sent no authorization code');
    const d = await this.discover();
    const form = new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: redirectUri, client_id: this.config.clientId, code_verifier: pending.verifier });
    if (this.config.clientSecret) form.set('client_secret', this.config.clientSecret);
    const res = await fetch(d.token_endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: form.toString(),
      signal: AbortSignal.timeout(FETCH_TIMEOUT_MS),
    });
    if (!res.ok) throw new OidcError(`the provider refused the code (${res.status})`);
    const idToken = ((await res.json()) as { id_token?: unknown }).id_token;
    if (typeof idToken !== 'string') throw new OidcError('the provider sent no ID token');
    this.jwks ??= createRemoteJWKSet(new URL(d.jwks_uri));
    let claims: JWTPayload;
    try {
      ({ payload: claims } = await jwtVerify(idToken, this.jwks, { issuer: this.config.issuer, audience: this.config.clientId }));
    } catch (err) {
      throw new OidcError(`the ID token does not verify: ${(err as Error).message}`);
    }
    if (claims.nonce !== pending.nonce) throw new OidcError('the ID token was not issued for this sign-in (nonce)');
    const role = this.roleOf(claims[this.config.roleClaim]);
    if (!role) throw new OidcError(`your account has no console role (claim "${this.config.roleClaim}")`);
    const name = claims[this.config.nameClaim];
    return { name: typeof name === 'string' && name !== '' ? name : String(claims.sub), role };
  }

  /** The most capable role any claimed value maps to. */
  private roleOf(claim: unknown): Role | null {
    const values = Array.isArray(claim) ? claim : [claim];
    let best = -1;
    for (const v of values) {
      if (typeof v !== 'string') continue;
      const role = this.config.roles[v];
      if (role) best = Math.max(best, ROLES.indexOf(role));
    }
    return best < 0 ? null : ROLES[best]!;
  }
}
