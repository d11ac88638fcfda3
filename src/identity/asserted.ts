// Asserted identity: the device id typed into the login name (`alice@example.com+dev123`). Weak —
// anyone can type any device id — so it is off unless configured and marked weak in the audit log.
import type { IdentitySourceConfig } from '../core/config-types';
import type { CredentialContext, IdentityResult } from './types';
import { badCredentials, passthrough, type IdentitySourceHandler } from './source';
import { validateIdentifier } from './validate';

export type AssertedSourceConfig = Extract<IdentitySourceConfig, { type: 'asserted' }>;

/**
 * Split `user<sep>device` at the LAST separator. Not an asserted name when either side is empty,
 * or when the part after the separator contains `@`: then the separator belongs to a
 * sub-address in the local part (`alice+news@example.com`), not to a device suffix.
 */
export function splitAssertedName(username: string, separator: string): { user: string; deviceId: string } | null {
  const at = username.lastIndexOf(separator);
  if (at <= 0) return null;
  const user = username.slice(0, at);
  const deviceId = username.slice(at + separator.length);
  if (deviceId === '' || deviceId.includes('@')) return null;
  return { user, deviceId };
}

export function createAssertedSource(config: AssertedSourceConfig, field: string): IdentitySourceHandler {
  const separatorProblem = validateIdentifier(config.separator, `${field}.separator`, 8);
  if (separatorProblem) throw new Error(separatorProblem);

  async function resolve(context: CredentialContext): Promise<IdentityResult | null> {
    const { credential } = context;
    if (credential.kind !== 'password') return null;
    const split = splitAssertedName(credential.username, config.separator);
    if (!split) return null;
    const problem = validateIdentifier(split.deviceId, 'asserted device id');
    if (problem) return badCredentials(problem);
    return {
      ok: true,
      user: split.user,
      deviceId: split.deviceId,
      source: 'asserted',
      strength: 'weak',
      // The proxy verified nothing: the upstream checks the password, under the plain user name
      // (Dovecot's default auth_username_chars does not even allow `+`).
      upstream: passthrough(credential, split.user),
    };
  }

  return { type: 'asserted', resolve };
}
