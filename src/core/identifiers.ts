// The grammar of the names mailwarden keys things by (user names, device ids, app ids, platforms):
// one definition for every entry (logins, reports, the admin API, records written to Redis directly).

/** RFC 4616 §2: servers must accept at least 255 octets per field; we accept no more for names. */
export const MAX_IDENTIFIER_BYTES = 255;

/**
 * C0 and C1 controls and DEL (Cc), invisible format characters such as zero-width spaces and bidi
 * overrides (Cf), line/paragraph separators (Zl, Zp) and lone surrogates (Cs). A name containing
 * any of them is never a real user or device, and several of them are injection vectors.
 */
const FORBIDDEN = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/u;

/**
 * `{` and `}` delimit a Redis Cluster hash tag (docs/redis-layout.md): an id containing them would
 * move its keys into another id's slot, or read keys it does not own.
 */
const HASH_TAG = /[{}]/;

/**
 * The platforms a record may name (docs/redis-layout.md). Closed: a platform outside it ("ios ",
 * "iphoneos") would match no platform-scoped check and so pass every one of them.
 */
export const PLATFORMS: readonly string[] = ['ios', 'ipados', 'android', 'macos', 'windows', 'linux', 'chromeos'];
const PLATFORM_SET = new Set(PLATFORMS);

/**
 * App ids as MDMs report them: iOS bundle ids (letters, digits, "-", "."), Android package names
 * ("_"), Windows package family names ("_", "."), Linux package names ("+"). A space or NUL is never
 * part of one: `com.zhiliaoapp.musically ` would not match the banned id and must not pass as "other app".
 */
const APP_ID = /^[A-Za-z0-9][A-Za-z0-9._+-]*$/;

/**
 * Validate a user name or device id. Returns null when acceptable, otherwise a reason for the log
 * that names the field (and never echoes the value: it may be hostile).
 */
export function validateIdentifier(value: unknown, field: string, maxBytes = MAX_IDENTIFIER_BYTES): string | null {
  if (typeof value !== 'string') return `${field}: expected a string`;
  if (value.length === 0) return `${field}: must not be empty`;
  if (Buffer.byteLength(value, 'utf8') > maxBytes) return `${field}: longer than ${maxBytes} bytes`;
  if (FORBIDDEN.test(value)) return `${field}: contains a control or invisible character`;
  if (value.trim() !== value) return `${field}: has leading or trailing white space`;
  return null;
}

/** A device id or user name: an identifier that is also safe inside a Redis key's hash tag. */
export function validateKeyName(value: unknown, field: string): string | null {
  return validateIdentifier(value, field) ?? (HASH_TAG.test(value as string) ? `${field}: contains "{" or "}"` : null);
}

export const validateDeviceId = (value: unknown, field = 'deviceId'): string | null => validateKeyName(value, field);
export const validateUserName = (value: unknown, field = 'user'): string | null => validateKeyName(value, field);

export function validatePlatform(value: unknown, field = 'platform'): string | null {
  return typeof value === 'string' && PLATFORM_SET.has(value) ? null : `${field}: expected one of ${PLATFORMS.join(', ')}`;
}

export function validateAppId(value: unknown, field = 'app id'): string | null {
  if (typeof value !== 'string' || !APP_ID.test(value)) return `${field}: expected an app id such as com.example.app`;
  return Buffer.byteLength(value, 'utf8') > MAX_IDENTIFIER_BYTES ? `${field}: longer than ${MAX_IDENTIFIER_BYTES} bytes` : null;
}
