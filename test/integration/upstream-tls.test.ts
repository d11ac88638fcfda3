// Upstream TLS with a private CA (upstream.caFile) and a certificate name other than the host
// (upstream.servername), against a real Dovecot whose certificate the test CA signed
// (CN=localhost, subjectAltName DNS:localhost, IP:127.0.0.1). Verification is never switched off.
import { makeTestPki, type TestPki } from '../harness/tls';
import { startDovecot, DEFAULT_MASTER, type DovecotServer } from '../harness/dovecot';
import { Upstream } from '../../src/imap/upstream';
import type { UpstreamConfig } from '../../src/core/config-types';

let pki: TestPki;
let dovecot: DovecotServer;
beforeAll(async () => {
  pki = makeTestPki();
  dovecot = await startDovecot({ tls: { cert: pki.serverCert, key: pki.serverKey } });
});
afterAll(async () => {
  await dovecot?.cleanup();
  pki?.cleanup();
});

function upstream(tls: 'implicit' | 'starttls', fields: Partial<UpstreamConfig>): Upstream {
  return new Upstream({
    host: '127.0.0.1',
    port: tls === 'implicit' ? (dovecot.tlsPort as number) : dovecot.port,
    tls,
    rejectUnauthorized: true,
    connectTimeoutMs: 3000,
    loginTimeoutMs: 5000,
    login: 'master',
    masterUser: DEFAULT_MASTER.user,
    masterPassword: DEFAULT_MASTER.password,
    circuitBreaker: { failures: 100, resetMs: 1000 },
    ...fields,
  } as UpstreamConfig);
}

async function login(u: Upstream): Promise<{ ok: boolean; detail?: string }> {
  const result = await u.login({ login: { mode: 'master', username: 'alice@example.com' }, clientId: {}, sessionId: 's1', secure: true });
  if (result.ok) result.session.socket.destroy();
  return result.ok ? { ok: true } : { ok: false, detail: result.detail };
}

describe.each(['implicit', 'starttls'] as const)('%s TLS to the upstream', (tls) => {
  test('without caFile a private CA is refused (Node knows only public CAs)', async () => {
    expect(await login(upstream(tls, {}))).toEqual({ ok: false, detail: expect.stringMatching(/certificate/i) });
  });

  test('caFile: the certificate verifies against the private CA (checked as IP 127.0.0.1)', async () => {
    expect(await login(upstream(tls, { caFile: pki.caCert }))).toEqual({ ok: true });
  });

  test('servername: the name checked is the configured one, not the host', async () => {
    expect(await login(upstream(tls, { caFile: pki.caCert, servername: 'localhost' }))).toEqual({ ok: true });
    expect(await login(upstream(tls, { caFile: pki.caCert, servername: 'mail.example.com' }))).toEqual({
      ok: false,
      detail: expect.stringMatching(/mail\.example\.com/),
    });
  });

  test('a caFile that cannot be read fails the login, never falls back to no verification', async () => {
    expect(await login(upstream(tls, { caFile: '/nonexistent/ca.pem' }))).toEqual({ ok: false, detail: expect.stringMatching(/ENOENT|no such file/) });
  });
});
