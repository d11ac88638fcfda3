// Checks user names, device ids and secrets before anything else looks at them: no control
// characters (CRLF/NUL would inject upstream commands or Redis keys), nothing over-long. The name
// grammar itself lives in src/core/identifiers.ts, shared with the stores and report ingest.

export { MAX_IDENTIFIER_BYTES, validateDeviceId, validateIdentifier, validateUserName } from '../core/identifiers';

/** Passwords are replayed upstream inside AUTHENTICATE PLAIN; long enough for any real one. */
export const MAX_PASSWORD_BYTES = 1024;

/** Same cap as Dovecot's SASL buffer (LOGIN_MAX_AUTH_BUF_SIZE 8192): checked before any JWT parsing. */
export const MAX_TOKEN_BYTES = 8192;

/** Secrets may contain anything printable; only what breaks framing upstream is refused. */
const FORBIDDEN_IN_SECRET = /[\0\r\n]/;

/** Validate a password or bearer token: not empty, bounded, no NUL/CR/LF. */
export function validateSecret(value: string, field: string, maxBytes: number): string | null {
  if (value.length === 0) return `${field}: must not be empty`;
  if (Buffer.byteLength(value, 'utf8') > maxBytes) return `${field}: longer than ${maxBytes} bytes`;
  if (FORBIDDEN_IN_SECRET.test(value)) return `${field}: contains NUL, CR or LF`;
  return null;
}

/** Thrown where an invalid name is a caller's mistake (enrolment): the admin API answers 400. */
export class InvalidIdentifierError extends Error {
  readonly code = 'INVALID_IDENTIFIER';
  constructor(message: string) {
    super(message);
    this.name = 'InvalidIdentifierError';
  }
}

/**
 * Whether two user names are the same account. Case-insensitive: mail servers commonly fold
 * login names (Dovecot `auth_username_format = %Lu`), and the name we act as always comes from the
 * verified source (token claim, enrolment record), never from the comparison.
 */
export function sameUser(a: string, b: string): boolean {
  return a.toLowerCase() === b.toLowerCase();
}
