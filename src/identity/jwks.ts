// Trusted public keys for JWT logins and signed device reports: a JWKS file or a cached remote
// JWKS URL, and the split of jose errors into "the token is bad" versus "the keys are unreachable".
import fs from 'node:fs/promises';
import path from 'node:path';
import { createLocalJWKSet, createRemoteJWKSet, type JSONWebKeySet, type LocalJWKSet, type RemoteJWKSet } from 'jose';
import type { Logger } from '../core/log';
import { errorText } from '../core/errors';

export type KeySet = LocalJWKSet | RemoteJWKSet;

/**
 * A JWKS fetch that takes longer fails the login with a temporary error (jose's default is 5 s;
 * a login should be answered well before a client's own timeout).
 */
export const JWKS_FETCH_TIMEOUT_MS = 2000;

function isLoopbackHost(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(hostname);
}

/**
 * Load a key set for `field` (e.g. "identity.sources[0]", "reports"). A local file is read and
 * checked now, so a broken file fails config loading rather than every login; a remote set is
 * pre-fetched (a failure is only logged: the IdP may come back before the first login).
 */
export async function loadKeySet(
  source: { readonly jwksFile?: string; readonly jwksUrl?: string },
  configDir: string,
  field: string,
  log?: Logger,
): Promise<KeySet> {
  if (source.jwksFile !== undefined && source.jwksUrl !== undefined) {
    throw new Error(`${field}: set jwksFile or jwksUrl, not both`);
  }
  if (source.jwksFile !== undefined) {
    const file = path.resolve(configDir, source.jwksFile);
    let parsed: unknown;
    try {
      parsed = JSON.parse(await fs.readFile(file, 'utf8'));
    } catch (err) {
      throw new Error(`${field}.jwksFile ${file}: ${errorText(err)}`);
    }
    return createLocalJWKSet(checkPublicJwks(parsed, `${field}.jwksFile ${file}`));
  }
  if (source.jwksUrl !== undefined) {
    let url: URL;
    try {
      url = new URL(source.jwksUrl);
    } catch {
      throw new Error(`${field}.jwksUrl: not a URL`);
    }
    // Keys fetched over plain http could be swapped on the way; loopback is allowed for tests.
    if (url.protocol !== 'https:' && !(url.protocol === 'http:' && isLoopbackHost(url.hostname))) {
      throw new Error(`${field}.jwksUrl: must be an https URL`);
    }
    const remote = createRemoteJWKSet(url, { timeoutDuration: JWKS_FETCH_TIMEOUT_MS });
    await remote.reload().catch((err: unknown) => {
      log?.warn('JWKS pre-fetch failed; will retry at the first use', {
        field,
        url: url.href,
        error: errorText(err),
      });
    });
    return remote;
  }
  throw new Error(`${field}: jwksFile or jwksUrl is required`);
}

/** A trust store must hold only public signature keys: a private or symmetric key is a mistake. */
function checkPublicJwks(value: unknown, where: string): JSONWebKeySet {
  const keys = (value as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys)) throw new Error(`${where}: expected a JSON object with a "keys" array`);
  keys.forEach((key: unknown, i) => {
    if (typeof key !== 'object' || key === null) throw new Error(`${where}: keys[${i}]: expected an object`);
    const jwk = key as Record<string, unknown>;
    if (jwk.kty === 'oct') throw new Error(`${where}: keys[${i}]: symmetric keys are not accepted`);
    if ('d' in jwk) throw new Error(`${where}: keys[${i}]: is a private key; publish only the public part`);
  });
  return value as JSONWebKeySet;
}

/**
 * jose errors that mean "this token or JWS is not acceptable". Anything else (JWKS timeout, fetch
 * failure, an unparsable key set, a bug) means we could not check it: a temporary failure, never
 * an authentication failure and never an allow.
 */
const TOKEN_ERROR_CODES = new Set([
  'ERR_JWT_EXPIRED',
  'ERR_JWT_CLAIM_VALIDATION_FAILED',
  'ERR_JWT_INVALID',
  'ERR_JWS_INVALID',
  'ERR_JWS_SIGNATURE_VERIFICATION_FAILED',
  'ERR_JOSE_ALG_NOT_ALLOWED',
  'ERR_JOSE_NOT_SUPPORTED',
  'ERR_JWKS_NO_MATCHING_KEY',
  'ERR_JWKS_MULTIPLE_MATCHING_KEYS',
]);

export function joseErrorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

export function isTokenError(err: unknown): boolean {
  return TOKEN_ERROR_CODES.has(joseErrorCode(err) ?? '');
}

/**
 * The JWS `typ` of a signed device report. Distinct from any login token type, so a report can
 * never be replayed as a login and a login token never accepted as a report (RFC 8725 §3.11).
 */
export const REPORT_TYP = 'mailwarden-report+jwt';

/** RFC 7515 §4.1.9: compare media types case-insensitively, with or without "application/". */
export function isReportTyp(typ: unknown): boolean {
  return typeof typ === 'string' && typ.toLowerCase().replace(/^application\//, '') === REPORT_TYP;
}
