// The identity resolver shared by IMAP and SMTP: validates what the client presented, then asks
// the configured sources in order; the first that recognises the credential decides.
import type { Logger } from '../core/log';
import type { IdentitySourceConfig } from '../core/config-types';
import type { AppPasswords } from '../store/device-store';
import type { Credential, CredentialContext, IdentityResolver, IdentityResult } from './types';
import { badCredentials, passthrough, unavailable, type IdentitySourceHandler } from './source';
import { createOauthSource } from './oauth';
import { createAppPasswordSource } from './app-password';
import { createAssertedSource } from './asserted';
import { createCertificateSource } from './certificate';
import { MAX_PASSWORD_BYTES, MAX_TOKEN_BYTES, validateIdentifier, validateSecret } from './validate';
import { errorText } from '../core/errors';

export interface IdentityResolverDeps {
  /** Only app-password sources read the store. */
  readonly store: Pick<AppPasswords, 'getAppPassword'>;
  readonly log: Logger;
  /** Folder of the config file: relative key-file paths resolve against it. */
  readonly configDir: string;
}

function createSource(config: IdentitySourceConfig, index: number, deps: IdentityResolverDeps): Promise<IdentitySourceHandler> {
  const field = `identity.sources[${index}]`;
  switch (config.type) {
    case 'oauth':
      return createOauthSource(config, { configDir: deps.configDir, log: deps.log, field });
    case 'app-password':
      return createAppPasswordSource(config, deps);
    case 'asserted':
      return Promise.resolve(createAssertedSource(config, field));
    case 'certificate':
      return Promise.resolve(createCertificateSource(config, field));
  }
}

/**
 * Checked before any source sees the credential: CR/LF/NUL in a name could inject commands into
 * the upstream login (IMAP and SMTP commands end at CRLF: RFC 9051 §2.2, RFC 5321 §2.3.8), and
 * bounding the token keeps JWE/PBES2 bombs and huge headers away from jose.
 */
function validateCredential(credential: Credential): string | null {
  if (credential.kind === 'password') {
    return validateIdentifier(credential.username, 'login name') ?? validateSecret(credential.password, 'password', MAX_PASSWORD_BYTES);
  }
  return (
    (credential.username === undefined ? null : validateIdentifier(credential.username, 'login name')) ??
    validateSecret(credential.token, 'token', MAX_TOKEN_BYTES)
  );
}

/**
 * No source recognised the credential: the login carries no device identity, and the policy's
 * `unidentified` rule decides. If it allows, the upstream checks the client's own credential.
 */
function unidentified(credential: Credential): IdentityResult {
  if (credential.username === undefined) {
    return badCredentials('bearer token without a user name, and no oauth source to verify it');
  }
  return {
    ok: true,
    user: credential.username,
    deviceId: null,
    source: 'none',
    strength: 'weak',
    upstream: passthrough(credential, credential.username),
  };
}

export async function createIdentityResolver(
  sources: readonly IdentitySourceConfig[],
  deps: IdentityResolverDeps,
): Promise<IdentityResolver> {
  const handlers = await Promise.all(sources.map((source, index) => createSource(source, index, deps)));

  async function resolve(context: CredentialContext): Promise<IdentityResult> {
    const problem = validateCredential(context.credential);
    if (problem) return badCredentials(problem);
    for (const handler of handlers) {
      try {
        const result = await handler.resolve(context);
        if (result) return result;
      } catch (err) {
        // A bug in a source must not crash the listener, and must never turn into an allow.
        deps.log.error('identity source failed', {
          source: handler.type,
          error: errorText(err),
        });
        return unavailable(`${handler.type}: internal error`);
      }
    }
    return unidentified(context.credential);
  }

  return { resolve };
}
