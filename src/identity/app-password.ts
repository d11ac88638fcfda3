// Device-bound app passwords: enrolment issues `<credentialId>.<secret>` once, the store keeps only
// a keyed hash, and a login with it proves both the user and the device (main path for iOS Mail).
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../core/log';
import type { IdentitySourceConfig } from '../core/config-types';
import type { AppPasswordCredential, AppPasswords } from '../store/device-store';
import type { CredentialContext, IdentityResult } from './types';
import { badCredentials, unavailable, type IdentitySourceHandler } from './source';
import { InvalidIdentifierError, sameUser, validateDeviceId, validateIdentifier, validateUserName } from './validate';
import { errorText } from '../core/errors';

export type AppPasswordSourceConfig = Extract<IdentitySourceConfig, { type: 'app-password' }>;

/**
 * Crockford's base32 alphabet in lower case: no i, l, o, u, so nothing reads as 1/0 when a person
 * types it, and nothing IMAP would need to quote (RFC 9051 atom-specials) or SASL to escape.
 */
const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz';
/** The id is public (a lookup key): 40 bits is plenty, and issue() retries on a collision. */
const ID_CHARS = 8;
/** 26 × 5 = 130 bits of randomness: beyond any guessing, online or offline. */
const SECRET_CHARS = 26;
const SHAPE = new RegExp(`^([${ALPHABET}]{${ID_CHARS}})\\.([${ALPHABET}]{${SECRET_CHARS}})$`);

/**
 * Used when no hmacKeyFile is configured. Any key kept in the store next to the hashes would
 * protect nothing more than a fixed one (whoever reads the hashes reads the key), and a fixed key
 * works unchanged on any number of proxy instances sharing one Redis, with no start-up race to
 * create it. What makes a leaked hash useless is the 130-bit secret. A key file on the proxy hosts
 * adds one thing: write access to Redis alone can no longer mint a working app password.
 */
const FALLBACK_KEY = Buffer.from('mailwarden app-password v1 (no hmacKeyFile configured)', 'utf8');
const MIN_KEY_BYTES = 32;

function randomString(length: number): string {
  // 256 is a multiple of 32, so `byte & 31` is uniform over the alphabet.
  return Array.from(randomBytes(length), (byte) => ALPHABET[byte & 31]).join('');
}

/** Split a password of app-password shape (case-insensitive), or null when it is not one. */
export function parseAppPassword(password: string): { credentialId: string; secret: string } | null {
  const match = SHAPE.exec(password.toLowerCase());
  return match ? { credentialId: match[1]!, secret: match[2]! } : null;
}

/**
 * HMAC-SHA-256 of the secret, hex. A fast keyed hash is right here, unlike for people's passwords:
 * slow hashes (bcrypt, scrypt, argon2) exist to make guessing low-entropy human choices expensive,
 * but this secret is 130 random bits, which no hash speed makes guessable; a slow hash would only
 * cost tens of milliseconds of CPU per login and hand attackers a denial-of-service lever.
 */
export function hashAppPasswordSecret(hmacKey: Buffer, secret: string): string {
  return createHmac('sha256', hmacKey).update(secret, 'utf8').digest('hex');
}

/** The HMAC key: the configured file's content (at least 32 bytes), else the documented fallback. */
export async function loadAppPasswordKey(hmacKeyFile: string | undefined, configDir: string, log?: Logger): Promise<Buffer> {
  if (hmacKeyFile === undefined) {
    log?.warn('app passwords: no hmacKeyFile configured; using the built-in key (see docs/identity.md)');
    return FALLBACK_KEY;
  }
  const file = path.resolve(configDir, hmacKeyFile);
  let key: string;
  try {
    key = (await fs.readFile(file, 'utf8')).trim();
  } catch (err) {
    throw new Error(`app-password hmacKeyFile ${file}: ${errorText(err)}`);
  }
  if (Buffer.byteLength(key, 'utf8') < MIN_KEY_BYTES) {
    throw new Error(`app-password hmacKeyFile ${file}: needs at least ${MIN_KEY_BYTES} bytes (e.g. openssl rand -base64 48)`);
  }
  return Buffer.from(key, 'utf8');
}

/**
 * Issue a new app password for a device and store its hash. The password is returned here once and
 * is never stored or logged. Throws InvalidIdentifierError on a bad user or device id, and
 * StoreUnavailableError when the store is down.
 */
export async function issueAppPassword(
  store: AppPasswords,
  subject: { user: string; deviceId: string },
  hmacKey: Buffer,
  now: Date = new Date(),
): Promise<{ password: string; credentialId: string }> {
  const problem = validateUserName(subject.user) ?? validateDeviceId(subject.deviceId);
  if (problem) throw new InvalidIdentifierError(problem);
  for (let attempt = 0; attempt < 5; attempt++) {
    const credentialId = randomString(ID_CHARS);
    if ((await store.getAppPassword(credentialId)) !== null) continue;
    const secret = randomString(SECRET_CHARS);
    await store.putAppPassword({
      credentialId,
      user: subject.user,
      deviceId: subject.deviceId,
      hash: hashAppPasswordSecret(hmacKey, secret),
      createdAt: now.toISOString(),
    });
    return { password: `${credentialId}.${secret}`, credentialId };
  }
  throw new Error('could not find an unused app password id after 5 attempts');
}

/**
 * Who an app password belongs to, from the password alone: null when it is not of app-password
 * shape, otherwise the verified user and device or the failure. Used by the source below (which
 * also checks the login name) and by Dovecot's passdb introspection, which sends only the password
 * and compares the user name itself.
 */
export async function appPasswordOwner(store: Pick<AppPasswords, 'getAppPassword'>, hmacKey: Buffer, password: string): Promise<IdentityResult | null> {
  const parsed = parseAppPassword(password);
  if (!parsed) return null;
  const id = parsed.credentialId;
  let stored: AppPasswordCredential | null;
  try {
    stored = await store.getAppPassword(id);
  } catch (err) {
    return unavailable(`app password ${id}: store unavailable: ${errorText(err)}`);
  }
  if (!stored) return badCredentials(`app password ${id}: unknown id`);
  if (!/^[0-9a-f]{64}$/.test(stored.hash)) return badCredentials(`app password ${id}: stored hash is malformed`);
  const expected = Buffer.from(hashAppPasswordSecret(hmacKey, parsed.secret), 'hex');
  if (!timingSafeEqual(expected, Buffer.from(stored.hash, 'hex'))) {
    return badCredentials(`app password ${id}: secret does not match`);
  }
  // A record written straight to Redis by an integration is checked like any other input.
  const problem = validateIdentifier(stored.user, 'stored user') ?? validateIdentifier(stored.deviceId, 'stored deviceId');
  if (problem) return badCredentials(`app password ${id}: ${problem}`);
  return {
    ok: true,
    user: stored.user,
    deviceId: stored.deviceId,
    source: 'app-password',
    strength: 'strong',
    // The upstream has never seen this password: log in with the master credential as the user.
    upstream: { mode: 'master', username: stored.user },
  };
}

export async function createAppPasswordSource(
  config: AppPasswordSourceConfig,
  deps: { store: Pick<AppPasswords, 'getAppPassword'>; log: Logger; configDir: string },
): Promise<IdentitySourceHandler> {
  const hmacKey = await loadAppPasswordKey(config.hmacKeyFile, deps.configDir, deps.log);

  async function resolve(context: CredentialContext): Promise<IdentityResult | null> {
    const { credential } = context;
    if (credential.kind !== 'password') return null;
    const owner = await appPasswordOwner(deps.store, hmacKey, credential.password);
    if (owner?.ok && !sameUser(credential.username, owner.user)) {
      const id = parseAppPassword(credential.password)!.credentialId;
      return badCredentials(`app password ${id}: login name is not the user it was issued to`);
    }
    return owner;
  }

  return { type: 'app-password', resolve };
}

/**
 * The HMAC key of the configured app-password source, for enrolment (the admin API and the CLI
 * must hash with the key the verifier uses). null when no app-password source is configured.
 */
export async function appPasswordKeyFor(
  sources: readonly IdentitySourceConfig[],
  configDir: string,
): Promise<Buffer | null> {
  const source = sources.find((s): s is AppPasswordSourceConfig => s.type === 'app-password');
  return source ? loadAppPasswordKey(source.hmacKeyFile, configDir) : null;
}
