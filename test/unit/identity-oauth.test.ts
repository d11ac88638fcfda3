// OAuth bearer-token identity: JWTs verified against a JWKS file or URL, and every way one can be bad.
import { createPrivateKey, sign, type JsonWebKey } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { SignJWT, importJWK, type JWK } from 'jose';
import { createIdentityResolver } from '../../src/identity/resolver';
import type { Credential, IdentityResolver } from '../../src/identity/types';
import type { IdentitySourceConfig } from '../../src/core/config-types';
import { MemoryDeviceStore } from '../../src/store/memory-store';
import { silentLogger } from '../../src/core/log';
import { makeIdpKeys, makeOauthToken } from '../../src/kit';
import { REPORT_TYP } from '../../src/identity/jwks';
import { tempDir } from '../harness/ports';

const ISSUER = 'https://idp.example.com';
const AUDIENCE = 'mailwarden';
const USER = 'alice@example.com';
const DEVICE = 'dev-123';

let dir: string;
let idpKey: JWK;
let otherKey: JWK;
let resolver: IdentityResolver;

const oauthSource = (overrides: Partial<Extract<IdentitySourceConfig, { type: 'oauth' }>> = {}): IdentitySourceConfig => ({
  type: 'oauth',
  jwksFile: 'idp.jwks.json',
  issuer: ISSUER,
  audience: AUDIENCE,
  algorithms: ['ES256'],
  userClaim: 'email',
  deviceClaim: 'deviceid',
  clockToleranceSeconds: 5,
  ...overrides,
});

const deps = () => ({ store: new MemoryDeviceStore(), log: silentLogger(), configDir: dir });
const bearer = (token: string, username?: string): { credential: Credential } => ({
  credential: { kind: 'bearer', token, ...(username === undefined ? {} : { username }) },
});
const token = (overrides: Partial<Parameters<typeof makeOauthToken>[0]> = {}) =>
  makeOauthToken({ privateJwk: idpKey, issuer: ISSUER, audience: AUDIENCE, user: USER, deviceId: DEVICE, ...overrides });

/** Sign arbitrary claims with the IdP key (for tokens the kit would never make). */
async function rawToken(claims: Record<string, unknown>, header: Record<string, unknown> = {}, key: JWK = idpKey): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'ES256', kid: key.kid, ...header })
    .sign(await importJWK(key, 'ES256'));
}

const b64u = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

/** ES256 by hand with node:crypto, for headers jose's signer itself refuses (an unknown crit). */
function signByHand(header: Record<string, unknown>, payload: Record<string, unknown>): string {
  const input = `${b64u(header)}.${b64u(payload)}`;
  const key = createPrivateKey({ key: idpKey as JsonWebKey, format: 'jwk' });
  return `${input}.${sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
}
const now = () => Math.floor(Date.now() / 1000);

beforeAll(async () => {
  dir = tempDir('identity-oauth');
  idpKey = (await makeIdpKeys({ kid: 'idp-1', outDir: dir })).privateJwk;
  otherKey = (await makeIdpKeys({ kid: 'idp-1' })).privateJwk; // same kid, different key
  resolver = await createIdentityResolver([oauthSource()], deps());
});

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('oauth source', () => {
  it('accepts a valid token: user and device from the claims, strong, passthrough upstream', async () => {
    const jwt = await token();
    const result = await resolver.resolve(bearer(jwt, USER));
    expect(result).toEqual({
      ok: true,
      user: USER,
      deviceId: DEVICE,
      source: 'oauth',
      strength: 'strong',
      upstream: { mode: 'passthrough', username: USER, credential: { kind: 'bearer', token: jwt, username: USER } },
    });
  });

  it('accepts a token without an authzid, and uses a master login when the listener asks for one', async () => {
    const result = await resolver.resolve({ ...bearer(await token()), upstreamLogin: 'master' });
    expect(result).toMatchObject({ ok: true, user: USER, upstream: { mode: 'master', username: USER } });
  });

  it('compares the authzid with the user claim case-insensitively', async () => {
    expect(await resolver.resolve(bearer(await token(), 'Alice@Example.COM'))).toMatchObject({ ok: true, user: USER });
  });

  const rejected: [string, () => Promise<string>, RegExp][] = [
    ['alg none', async () => `${b64u({ alg: 'none', typ: 'JWT' })}.${b64u({ email: USER, deviceid: DEVICE, iss: ISSUER, aud: AUDIENCE, exp: now() + 600 })}.`, /alg|Unsecured|JWS/i],
    ['alg NONE with a signature part', async () => `${b64u({ alg: 'NONE' })}.${b64u({ email: USER, deviceid: DEVICE, exp: now() + 600 })}.AAAA`, /alg|JWS/i],
    ['a token signed by another key with the same kid', () => token({ privateJwk: otherKey }), /signature verification failed/],
    ['an unknown kid', () => rawToken({ email: USER, deviceid: DEVICE, iss: ISSUER, aud: AUDIENCE, exp: now() + 600 }, { kid: '../../etc/passwd' }), /no applicable key|matching key|JWKS/i],
    ['an expired token', () => token({ expiresIn: -120 }), /"exp" claim timestamp check failed/],
    ['a token without exp', () => rawToken({ email: USER, deviceid: DEVICE, iss: ISSUER, aud: AUDIENCE }), /"exp"/],
    ['a token for another audience', () => token({ audience: 'other-api' }), /"aud"/],
    ['a token from another issuer', () => token({ issuer: 'https://evil.example.com' }), /"iss"/],
    ['a token without the device claim', () => rawToken({ email: USER, iss: ISSUER, aud: AUDIENCE, exp: now() + 600 }), /"deviceid"/],
    ['a token whose nbf is 10 minutes ahead', () => rawToken({ email: USER, deviceid: DEVICE, iss: ISSUER, aud: AUDIENCE, exp: now() + 6000, nbf: now() + 600 }), /"nbf"/],
    ['an unknown crit header', async () => signByHand({ alg: 'ES256', kid: 'idp-1', crit: ['x-unknown'], 'x-unknown': 1 }, { email: USER, deviceid: DEVICE, iss: ISSUER, aud: AUDIENCE, exp: now() + 600 }), /x-unknown/],
    ['a device id claim with CRLF', () => rawToken({ email: USER, deviceid: 'dev\r\nA1 LOGOUT', iss: ISSUER, aud: AUDIENCE, exp: now() + 600 }), /control/],
    ['a non-string user claim', () => rawToken({ email: ['a', 'b'], deviceid: DEVICE, iss: ISSUER, aud: AUDIENCE, exp: now() + 600 }), /"email".*expected a string/],
    ['garbage', async () => 'not-a-jwt', /Invalid|JWS|JWT/i],
  ];

  it.each(rejected)('rejects %s as bad-credentials with a precise detail', async (_name, make, detail) => {
    const result = await resolver.resolve(bearer(await make()));
    expect(result).toMatchObject({ ok: false, failure: 'bad-credentials' });
    if (!result.ok) expect(result.detail).toMatch(detail);
  });

  it('rejects an HS256 token MACed with the public JWKS (algorithm confusion)', async () => {
    const publicJwks = fs.readFileSync(path.join(dir, 'idp.jwks.json'));
    const forged = await new SignJWT({ email: USER, deviceid: DEVICE, iss: ISSUER, aud: AUDIENCE, exp: now() + 600 })
      .setProtectedHeader({ alg: 'HS256', kid: 'idp-1' })
      .sign(new Uint8Array(publicJwks));
    expect(await resolver.resolve(bearer(forged))).toMatchObject({ ok: false, failure: 'bad-credentials' });
  });

  it('rejects an authzid that differs from the user claim', async () => {
    const result = await resolver.resolve(bearer(await token(), 'bob@example.com'));
    expect(result).toMatchObject({ ok: false, failure: 'bad-credentials' });
    if (!result.ok) expect(result.detail).toMatch(/differs/);
  });

  it('never accepts a token typed as a device report, even one that is otherwise valid', async () => {
    const claims = { email: USER, deviceid: DEVICE, iss: ISSUER, aud: AUDIENCE, exp: now() + 600 };
    const result = await resolver.resolve(bearer(await rawToken(claims, { typ: REPORT_TYP })));
    expect(result).toMatchObject({ ok: false, failure: 'bad-credentials' });
    if (!result.ok) expect(result.detail).toMatch(/device report/);
    expect(await resolver.resolve(bearer(await rawToken(claims, { typ: 'JWT' })))).toMatchObject({ ok: true });
  });

  it('refuses a token over 8 KiB before parsing it', async () => {
    const result = await resolver.resolve(bearer(`${'a'.repeat(9000)}.b.c`));
    expect(result).toMatchObject({ ok: false, failure: 'bad-credentials' });
    if (!result.ok) expect(result.detail).toMatch(/longer than 8192/);
  });

  it('fails config loading on a missing JWKS file or a private key in it', async () => {
    await expect(createIdentityResolver([oauthSource({ jwksFile: 'missing.json' })], deps())).rejects.toThrow(/identity.sources\[0\].jwksFile/);
    fs.writeFileSync(path.join(dir, 'private.jwks.json'), JSON.stringify({ keys: [idpKey] }));
    await expect(createIdentityResolver([oauthSource({ jwksFile: 'private.jwks.json' })], deps())).rejects.toThrow(/private key/);
    await expect(createIdentityResolver([oauthSource({ jwksFile: undefined, jwksUrl: 'http://idp.example.com/jwks' })], deps())).rejects.toThrow(/https/);
  });
});

describe('oauth source with a remote JWKS', () => {
  let server: http.Server;
  let status = 200;
  let fetches = 0;
  let url: string;

  beforeAll(async () => {
    const jwks = fs.readFileSync(path.join(dir, 'idp.jwks.json'), 'utf8');
    server = http.createServer((_req, res) => {
      fetches++;
      res.writeHead(status, { 'content-type': 'application/json' }).end(status === 200 ? jwks : '{}');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`;
  });

  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('pre-fetches the keys, then verifies from the cache while the IdP is down', async () => {
    status = 200;
    fetches = 0;
    const remote = await createIdentityResolver([oauthSource({ jwksFile: undefined, jwksUrl: url })], deps());
    expect(fetches).toBe(1);
    status = 500;
    expect(await remote.resolve(bearer(await token()))).toMatchObject({ ok: true, deviceId: DEVICE });
    expect(fetches).toBe(1);
  });

  it('answers unavailable (not bad-credentials) when the keys cannot be fetched', async () => {
    status = 500;
    const remote = await createIdentityResolver([oauthSource({ jwksFile: undefined, jwksUrl: url })], deps());
    const result = await remote.resolve(bearer(await token()));
    expect(result).toMatchObject({ ok: false, failure: 'unavailable' });
  });

  it('answers unavailable when nothing listens at the JWKS URL', async () => {
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const remote = await createIdentityResolver([oauthSource({ jwksFile: undefined, jwksUrl: `http://127.0.0.1:${port}/jwks` })], deps());
    expect(await remote.resolve(bearer(await token()))).toMatchObject({ ok: false, failure: 'unavailable' });
  });
});
