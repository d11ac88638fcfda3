// Access tokens for the sources: a fixed API token (Fleet, a Jamf bearer token), OAuth 2.0 client
// credentials (Entra ID for Graph, Jamf API clients; RFC 6749 §4.4), Jamf's Basic → bearer exchange,
// and Google's service-account JWT grant with domain-wide delegation (RFC 7523 §2.1), signed by jose.
// Each is fetched once and refreshed shortly before it expires, never logged.
import { importPKCS8, SignJWT } from 'jose';
import { SourceError } from './contract';
import type { HttpClient, TokenSource } from './http';

/** A token with its lifetime as the issuer stated it. */
interface IssuedToken {
  readonly value: string;
  readonly expiresInSeconds: number;
}

/** A fixed token (no expiry known): the Fleet API-only user's token, a pre-issued Jamf bearer token. */
export function staticToken(token: string): TokenSource {
  return {
    authorization: async () => `Bearer ${token}`,
    invalidate: () => undefined,
    refusedHint: 'the configured API token was refused (revoked, expired or mistyped); a fixed token cannot be renewed, so set a new one in the connector\'s token file or variable',
  };
}

/**
 * Caches a fetched token and fetches a new one when less than a fifth of its lifetime (at most 60 s)
 * is left, so that a long sync never sends a token that expires in flight.
 */
export class RefreshingToken implements TokenSource {
  private current: { value: string; refreshAtMs: number } | null = null;
  private pending: Promise<string> | null = null;

  constructor(
    private readonly issue: (signal: AbortSignal) => Promise<IssuedToken>,
    private readonly now: () => number = Date.now,
  ) {}

  async authorization(signal: AbortSignal): Promise<string> {
    if (this.current && this.now() < this.current.refreshAtMs) return `Bearer ${this.current.value}`;
    this.pending ??= this.issue(signal)
      .then((token) => {
        const lifetimeMs = Math.max(0, token.expiresInSeconds * 1000);
        const marginMs = Math.min(60_000, lifetimeMs / 5);
        this.current = { value: token.value, refreshAtMs: this.now() + lifetimeMs - marginMs };
        return token.value;
      })
      .finally(() => {
        this.pending = null;
      });
    return `Bearer ${await this.pending}`;
  }

  invalidate(): void {
    this.current = null;
  }
}

function form(fields: Record<string, string>): string {
  return new URLSearchParams(fields).toString();
}

const FORM = { 'content-type': 'application/x-www-form-urlencoded' };

/** `{access_token, expires_in}` (RFC 6749 §5.1), or a SourceError naming what is missing. */
function oauthToken(body: unknown, what: string): IssuedToken {
  const b = (body ?? {}) as { access_token?: unknown; expires_in?: unknown };
  if (typeof b.access_token !== 'string' || b.access_token === '') throw new SourceError(`${what}: the token response has no access_token`);
  const expires = typeof b.expires_in === 'number' ? b.expires_in : Number(b.expires_in);
  return { value: b.access_token, expiresInSeconds: Number.isFinite(expires) && expires > 0 ? expires : 300 };
}

export interface ClientCredentials {
  readonly tokenUrl: string;
  readonly clientId: string;
  readonly clientSecret: string;
  /** Graph: https://graph.microsoft.com/.default; Jamf: omitted (the client's API roles). */
  readonly scope?: string;
}

export function clientCredentialsToken(http: HttpClient, credentials: ClientCredentials): RefreshingToken {
  return new RefreshingToken(async (signal) => {
    const body = await http.json(credentials.tokenUrl, {
      method: 'POST',
      headers: FORM,
      body: form({
        grant_type: 'client_credentials',
        client_id: credentials.clientId,
        client_secret: credentials.clientSecret,
        ...(credentials.scope ? { scope: credentials.scope } : {}),
      }),
      signal,
    });
    return oauthToken(body, 'client credentials');
  });
}

/** Jamf Pro `POST /api/v1/auth/token` with HTTP Basic → `{token, expires}` (expires: ISO time). */
export function jamfBasicToken(http: HttpClient, baseUrl: string, username: string, password: string): RefreshingToken {
  return new RefreshingToken(async (signal) => {
    const body = (await http.json(`${baseUrl}/api/v1/auth/token`, {
      method: 'POST',
      headers: { authorization: `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}` },
      signal,
    })) as { token?: unknown; expires?: unknown };
    if (typeof body?.token !== 'string' || body.token === '') throw new SourceError('Jamf auth: the token response has no token');
    const expiresMs = typeof body.expires === 'string' ? Date.parse(body.expires) : NaN;
    // Jamf bearer tokens last 30 minutes by default; when `expires` is unreadable assume less.
    const expiresInSeconds = Number.isNaN(expiresMs) ? 600 : Math.max(1, (expiresMs - Date.now()) / 1000);
    return { value: body.token, expiresInSeconds };
  });
}

/** The fields of a Google service-account key file that the JWT grant needs. */
export interface GoogleServiceAccount {
  readonly client_email: string;
  readonly private_key: string;
  readonly token_uri?: string;
}

/**
 * Google's service-account flow: a JWT (iss = the service account, sub = the admin it acts for via
 * domain-wide delegation, scope, aud = the token endpoint, at most an hour) exchanged for a token.
 */
export function googleServiceAccountToken(
  http: HttpClient,
  account: GoogleServiceAccount,
  options: { subject: string; scope: string; tokenUrl?: string },
): RefreshingToken {
  const tokenUrl = options.tokenUrl ?? account.token_uri ?? 'https://oauth2.googleapis.com/token';
  let key: ReturnType<typeof importPKCS8> | null = null;
  return new RefreshingToken(async (signal) => {
    key ??= importPKCS8(account.private_key, 'RS256').catch((err: unknown) => {
      key = null;
      throw new SourceError(`Google service account: private_key does not load (${(err as Error).message})`);
    });
    const now = Math.floor(Date.now() / 1000);
    const assertion = await new SignJWT({ scope: options.scope })
      .setProtectedHeader({ alg: 'RS256', typ: 'JWT' })
      .setIssuer(account.client_email)
      .setSubject(options.subject)
      .setAudience(tokenUrl)
      .setIssuedAt(now)
      .setExpirationTime(now + 3600)
      .sign(await key);
    const body = await http.json(tokenUrl, {
      method: 'POST',
      headers: FORM,
      body: form({ grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion }),
      signal,
    });
    return oauthToken(body, 'Google service account');
  });
}
