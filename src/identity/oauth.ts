// OAuth2 bearer-token identity (SASL OAUTHBEARER / XOAUTH2): a JWT from the organisation's identity
// provider, verified with jose against its JWKS; the user and device id come from its claims.
import { jwtVerify } from 'jose';
import type { Logger } from '../core/log';
import type { IdentitySourceConfig } from '../core/config-types';
import type { CredentialContext, IdentityResult } from './types';
import { badCredentials, unavailable, verifiedUpstream, type IdentitySourceHandler } from './source';
import { isReportTyp, isTokenError, loadKeySet } from './jwks';
import { sameUser, validateIdentifier } from './validate';
import { errorText } from '../core/errors';

export type OauthSourceConfig = Extract<IdentitySourceConfig, { type: 'oauth' }>;

export async function createOauthSource(
  config: OauthSourceConfig,
  deps: { configDir: string; log: Logger; field: string },
): Promise<IdentitySourceHandler> {
  if (config.algorithms.length === 0) throw new Error(`${deps.field}.algorithms: list at least one algorithm`);
  const keys = await loadKeySet(config, deps.configDir, deps.field, deps.log);
  const options = {
    // Pinned: jose otherwise accepts every algorithm the key allows (RFC 8725 §3.1: the verifier chooses the algorithm, never the token).
    algorithms: [...config.algorithms],
    issuer: config.issuer,
    audience: config.audience,
    // exp is optional in jose unless required; a token without it would never expire.
    requiredClaims: ['exp', config.userClaim, config.deviceClaim],
    clockTolerance: config.clockToleranceSeconds,
  };

  async function resolve(context: CredentialContext): Promise<IdentityResult | null> {
    const { credential } = context;
    if (credential.kind !== 'bearer') return null;
    // The resolver has already bounded the token (MAX_TOKEN_BYTES) before it reaches jose.
    let verified: Awaited<ReturnType<typeof jwtVerify>>;
    try {
      verified = await jwtVerify(credential.token, keys, options);
    } catch (err) {
      const message = errorText(err);
      if (isTokenError(err)) return badCredentials(`token rejected: ${message}`);
      return unavailable(`identity provider keys unavailable: ${message}`);
    }
    if (isReportTyp(verified.protectedHeader.typ)) {
      return badCredentials('token rejected: it is a signed device report, not a login token');
    }
    const user = verified.payload[config.userClaim];
    const deviceId = verified.payload[config.deviceClaim];
    const problem =
      validateIdentifier(user, `token claim "${config.userClaim}"`) ??
      validateIdentifier(deviceId, `token claim "${config.deviceClaim}"`);
    if (problem) return badCredentials(`token rejected: ${problem}`);
    const tokenUser = user as string;
    // The authzid (OAUTHBEARER a=, XOAUTH2 user=) must name the token's own user.
    if (credential.username !== undefined && !sameUser(credential.username, tokenUser)) {
      return badCredentials(`login name differs from the token's "${config.userClaim}" claim`);
    }
    return {
      ok: true,
      user: tokenUser,
      deviceId: deviceId as string,
      source: 'oauth',
      strength: 'strong',
      upstream: verifiedUpstream(context, tokenUser),
    };
  }

  return { type: 'oauth', resolve };
}
