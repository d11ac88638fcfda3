// SASL message decoding shared by the IMAP and SMTP listeners: PLAIN (RFC 4616), XOAUTH2 (Google),
// OAUTHBEARER (RFC 7628), the LOGIN mechanism's single fields, and the OAuth error challenges.
// Decoders only check structure; the identity resolver validates names and secrets afterwards.
import type { Credential } from './types';

/**
 * How a listener answers each error:
 * - bad-base64: IMAP `tag BAD` (RFC 9051 §6.2.2), SMTP `501 5.5.2` (RFC 4954 §4).
 * - malformed, unsupported: IMAP `NO [AUTHENTICATIONFAILED]`, SMTP `535 5.7.8`.
 * - authzid-mismatch: IMAP `NO [AUTHORIZATIONFAILED]` (RFC 5530), SMTP `535 5.7.8`.
 */
export type SaslDecodeError = 'bad-base64' | 'malformed' | 'unsupported' | 'authzid-mismatch';

export type SaslDecodeResult =
  | { readonly ok: true; readonly credential: Credential }
  | { readonly ok: false; readonly error: SaslDecodeError; readonly detail: string };

/** RFC 4954 §4: an AUTH line (and so any SASL response) may be up to 12288 octets. */
export const MAX_SASL_RESPONSE_CHARS = 12288;

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** RFC 6750 §2.1 b64token: the characters a bearer token may contain. */
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;

function fail(error: SaslDecodeError, detail: string): SaslDecodeResult & { ok: false } {
  return { ok: false, error, detail };
}

/**
 * Strict base64 → UTF-8 text. Node's Buffer.from(…, 'base64') silently skips junk, which would let
 * two different wire strings decode to the same credential; RFC 4954 asks for a 501 instead.
 */
export function decodeSaslText(b64: string): { ok: true; text: string } | (SaslDecodeResult & { ok: false }) {
  if (b64.length > MAX_SASL_RESPONSE_CHARS) return fail('malformed', `SASL response longer than ${MAX_SASL_RESPONSE_CHARS} characters`);
  if (!BASE64.test(b64)) return fail('bad-base64', 'SASL response is not valid base64');
  try {
    return { ok: true, text: utf8.decode(Buffer.from(b64, 'base64')) };
  } catch {
    return fail('malformed', 'SASL response is not valid UTF-8');
  }
}

/** RFC 4616: `[authzid] NUL authcid NUL passwd`. An authzid other than the authcid is refused. */
export function decodePlain(b64: string): SaslDecodeResult {
  const decoded = decodeSaslText(b64);
  if (!decoded.ok) return decoded;
  const fields = decoded.text.split('\0');
  if (fields.length !== 3) return fail('malformed', `PLAIN message has ${fields.length} fields, expected 3`);
  const [authzid, authcid, password] = fields as [string, string, string];
  if (authcid === '') return fail('malformed', 'PLAIN message has an empty authentication identity');
  if (password === '') return fail('malformed', 'PLAIN message has an empty password');
  // Acting as another user is a master-user privilege; no client of the proxy has it.
  if (authzid !== '' && authzid !== authcid) {
    return fail('authzid-mismatch', 'PLAIN authorization identity differs from the authentication identity');
  }
  return { ok: true, credential: { kind: 'password', username: authcid, password } };
}

/**
 * Parse `key=value ^A key=value ^A ^A` (the tail shared by XOAUTH2 and RFC 7628 §3.1 client-resp).
 * Returns null when the framing is wrong or a key repeats.
 */
function parseKvPairs(text: string): Map<string, string> | null {
  if (!text.endsWith('\x01\x01')) return null;
  const pairs = new Map<string, string>();
  for (const pair of text.slice(0, -2).split('\x01')) {
    const match = /^([A-Za-z]+)=(.*)$/s.exec(pair);
    if (!match) return null;
    const key = match[1]!.toLowerCase();
    if (pairs.has(key)) return null;
    pairs.set(key, match[2]!);
  }
  return pairs;
}

/** RFC 7628 §3.1 `auth=Bearer <token>` (the scheme is case-insensitive, RFC 7235 §2.1). */
function bearerToken(auth: string | undefined): string | null {
  const match = auth === undefined ? null : /^Bearer +(\S+)$/i.exec(auth);
  return match && B64TOKEN.test(match[1]!) ? match[1]! : null;
}

/** Google XOAUTH2: `user=USER ^A auth=Bearer TOKEN ^A ^A`. */
export function decodeXoauth2(b64: string): SaslDecodeResult {
  const decoded = decodeSaslText(b64);
  if (!decoded.ok) return decoded;
  const pairs = parseKvPairs(decoded.text);
  if (!pairs) return fail('malformed', 'XOAUTH2 message is not user=…^Aauth=Bearer …^A^A');
  const token = bearerToken(pairs.get('auth'));
  if (!token) return fail('malformed', 'XOAUTH2 message has no valid auth=Bearer token');
  const user = pairs.get('user');
  return { ok: true, credential: { kind: 'bearer', token, ...(user ? { username: user } : {}) } };
}

/** RFC 5801 §4 saslname: `,` and `=` are escaped as `=2C` and `=3D`; any other `=` is an error. */
function unescapeSaslname(value: string): string | null {
  if (/=(?!2C|3D)/.test(value)) return null;
  return value.replace(/=2C/g, ',').replace(/=3D/g, '=');
}

/** RFC 7628 §3.1: `gs2-header ^A [host=… ^A] [port=… ^A] auth=Bearer TOKEN ^A ^A`. */
export function decodeOauthbearer(b64: string): SaslDecodeResult {
  const decoded = decodeSaslText(b64);
  if (!decoded.ok) return decoded;
  const text = decoded.text;
  if (text === '\x01') return fail('malformed', 'OAUTHBEARER dummy response where a client response was expected');
  const headerEnd = text.indexOf('\x01');
  if (headerEnd < 0) return fail('malformed', 'OAUTHBEARER message has no GS2 header');
  // gs2-header = gs2-cbind-flag "," [ authzid ] ","  (RFC 5801 §4)
  const header = text.slice(0, headerEnd).split(',');
  if (header.length !== 3 || header[2] !== '') return fail('malformed', 'OAUTHBEARER GS2 header is malformed');
  const [flag, authz] = header as [string, string, string];
  if (flag.startsWith('p=')) return fail('unsupported', 'OAUTHBEARER does not support channel binding (RFC 7628 §4)');
  if (flag !== 'n' && flag !== 'y') return fail('malformed', 'OAUTHBEARER GS2 channel-binding flag is malformed');
  let username: string | undefined;
  if (authz !== '') {
    const escaped = authz.startsWith('a=') ? unescapeSaslname(authz.slice(2)) : null;
    if (!escaped) return fail('malformed', 'OAUTHBEARER authzid is malformed');
    username = escaped;
  }
  const pairs = parseKvPairs(text.slice(headerEnd + 1));
  if (!pairs) return fail('malformed', 'OAUTHBEARER key/value pairs are malformed');
  const token = bearerToken(pairs.get('auth'));
  if (!token) return fail('malformed', 'OAUTHBEARER message has no valid auth=Bearer token');
  return { ok: true, credential: { kind: 'bearer', token, ...(username ? { username } : {}) } };
}

/**
 * The base64 JSON error challenge of RFC 7628 §3.2.2. The client answers with the dummy response
 * `AQ==` (%x01), then the listener fails the exchange. `invalid_token` tells OAuth clients to
 * refresh their token instead of prompting for a password.
 */
export function oauthbearerErrorChallenge(
  options: { status?: string; scope?: string; openidConfiguration?: string } = {},
): string {
  const body: Record<string, string> = { status: options.status ?? 'invalid_token' };
  if (options.scope !== undefined) body.scope = options.scope;
  if (options.openidConfiguration !== undefined) body['openid-configuration'] = options.openidConfiguration;
  return Buffer.from(JSON.stringify(body), 'utf8').toString('base64');
}

/** Google's XOAUTH2 error challenge; the client answers with an empty line, then the exchange fails. */
export function xoauth2ErrorChallenge(options: { scope?: string } = {}): string {
  const body: Record<string, string> = { status: '401', schemes: 'bearer' };
  if (options.scope !== undefined) body.scope = options.scope;
  return Buffer.from(JSON.stringify(body), 'utf8').toString('base64');
}
