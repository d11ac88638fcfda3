// A small OpenID Connect provider for tests, written from OpenID Connect Core 1.0 and RFC 7636:
// discovery, an authorization endpoint that signs the configured person in at once, a token
// endpoint that checks the PKCE verifier (S256), and the JWKS of its ES256 signing key.
import http from 'node:http';
import { createHash, randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { SignJWT, exportJWK, generateKeyPair, type JWK } from 'jose';

export interface FakeOidcOptions {
  readonly clientId: string;
  /** Claims of the person who signs in (sub, email, roles, ...). */
  claims: Record<string, unknown>;
  /** Tests of the client's checks: issue a bad ID token (another audience, nonce, signing key, or expired). */
  forge?: { audience?: string; nonce?: string; foreignKey?: boolean; expired?: boolean };
}

export interface FakeOidc {
  readonly issuer: string;
  /** Token requests seen, for assertions (the code verifier the client sent, ...). */
  readonly tokenRequests: URLSearchParams[];
  options: FakeOidcOptions;
  stop(): Promise<void>;
}

interface Grant {
  readonly challenge: string;
  readonly nonce: string;
  readonly redirectUri: string;
  readonly clientId: string;
}

export async function startFakeOidc(options: FakeOidcOptions): Promise<FakeOidc> {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const foreign = await generateKeyPair('ES256');
  const jwk: JWK = { ...(await exportJWK(publicKey)), kid: 'fake-oidc-1', alg: 'ES256', use: 'sig' };
  const grants = new Map<string, Grant>();
  const tokenRequests: URLSearchParams[] = [];
  let issuer = '';
  const fake: FakeOidc = {
    get issuer() {
      return issuer;
    },
    tokenRequests,
    options,
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
  const json = (res: http.ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', issuer);
    if (url.pathname === '/.well-known/openid-configuration') {
      return json(res, 200, { issuer, authorization_endpoint: `${issuer}/authorize`, token_endpoint: `${issuer}/token`, jwks_uri: `${issuer}/jwks`, code_challenge_methods_supported: ['S256'] });
    }
    if (url.pathname === '/jwks') return json(res, 200, { keys: [jwk] });
    if (url.pathname === '/authorize') {
      const q = url.searchParams;
      if (q.get('response_type') !== 'code' || q.get('code_challenge_method') !== 'S256' || !q.get('code_challenge') || q.get('client_id') !== fake.options.clientId) {
        return json(res, 400, { error: 'invalid_request' });
      }
      const code = randomBytes(12).toString('base64url');
      grants.set(code, { challenge: q.get('code_challenge')!, nonce: q.get('nonce') ?? '', redirectUri: q.get('redirect_uri')!, clientId: q.get('client_id')! });
      const back = new URL(q.get('redirect_uri')!);
      back.searchParams.set('code', code);
      back.searchParams.set('state', q.get('state') ?? '');
      res.writeHead(302, { location: back.toString() });
      return res.end();
    }
    if (url.pathname === '/token' && req.method === 'POST') {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        void (async () => {
          const form = new URLSearchParams(body);
          tokenRequests.push(form);
          const grant = grants.get(form.get('code') ?? '');
          grants.delete(form.get('code') ?? '');
          const verifier = form.get('code_verifier') ?? '';
          const challenge = createHash('sha256').update(verifier).digest('base64url');
          if (!grant || grant.challenge !== challenge || grant.redirectUri !== form.get('redirect_uri') || grant.clientId !== form.get('client_id')) {
            return json(res, 400, { error: 'invalid_grant' });
          }
          const forge = fake.options.forge ?? {};
          const idToken = await new SignJWT({ ...fake.options.claims, nonce: forge.nonce ?? grant.nonce })
            .setProtectedHeader({ alg: 'ES256', kid: jwk.kid })
            .setIssuer(issuer)
            .setAudience(forge.audience ?? grant.clientId)
            .setIssuedAt(forge.expired ? Math.floor(Date.now() / 1000) - 3600 : undefined)
            .setExpirationTime(forge.expired ? Math.floor(Date.now() / 1000) - 1800 : '5m')
            .sign(forge.foreignKey ? foreign.privateKey : privateKey);
          json(res, 200, { access_token: 'unused', token_type: 'Bearer', id_token: idToken, expires_in: 300 });
        })();
      });
      return;
    }
    json(res, 404, { error: 'not_found' });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return fake;
}
