// Hostile input and outages against the real runtime, Dovecot and Redis: STARTTLS injection,
// LOGIN before TLS, oversized literals, CR/LF/NUL in names, bad JWTs, Redis and Dovecot down.
import tls from 'node:tls';
import { SignJWT, generateKeyPair, importJWK, base64url } from 'jose';
import { ALICE, AUDIENCE, ISSUER, imapClient, loginError, startRig, type Rig } from './imap-rig';
import { RawClient } from '../unit/imap-fakes';

let rig: Rig;

beforeAll(async () => {
  // Dozens of forged credentials from one address in a row: the login throttle (its own test:
  // login-throttle.test.ts) would hold each one up to 15 s, so it is off here.
  rig = await startRig({ outageLastKnownMaxSeconds: 0, extraConfig: { loginThrottle: { enabled: false } } });
  await rig.report('sec-phone', 'ios', []);
});
afterAll(async () => {
  await rig?.stop();
});

async function greeted(port: number): Promise<RawClient> {
  const raw = await RawClient.connect(port);
  await raw.waitFor(/^\* OK .*\r\n/);
  return raw;
}

/** Upgrade a raw client after its STARTTLS OK; collects everything decrypted. */
function upgrade(raw: RawClient): Promise<{ socket: tls.TLSSocket; data: () => string }> {
  let text = '';
  raw.socket.removeAllListeners('data');
  const socket = tls.connect({ socket: raw.socket, rejectUnauthorized: false });
  socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
  socket.on('error', () => undefined);
  return new Promise((resolve) => socket.once('secureConnect', () => resolve({ socket, data: () => text })));
}

test('before STARTTLS: LOGINDISABLED, no AUTH=, and LOGIN is refused with PRIVACYREQUIRED', async () => {
  const raw = await greeted(rig.ports.starttls);
  expect(raw.data).toMatch(/STARTTLS LOGINDISABLED\]/);
  expect(raw.data).not.toMatch(/AUTH=/);
  raw.write(`a1 LOGIN ${ALICE.user}+sec-phone ${ALICE.password}\r\na2 AUTHENTICATE PLAIN\r\n`);
  await raw.waitFor(/a2 NO/);
  raw.close();
  expect(raw.data).toMatch(/a1 NO \[PRIVACYREQUIRED\]/);
  expect(raw.data).toMatch(/a2 NO \[PRIVACYREQUIRED\]/);
});

test('STARTTLS and LOGIN in one write: the LOGIN is never executed', async () => {
  const before = (await rig.runtime.store.readAudit('0', 100000)).length;
  const raw = await greeted(rig.ports.starttls);
  raw.write(`a STARTTLS\r\nb LOGIN ${ALICE.user}+sec-phone ${ALICE.password}\r\n`);
  await raw.waitFor(/a OK Begin TLS/);
  const secure = await upgrade(raw);
  secure.socket.write('c CAPABILITY\r\n');
  const deadline = Date.now() + 3000;
  while (!/c OK/.test(secure.data()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  secure.socket.destroy();
  expect(raw.data).not.toMatch(/^b /m);
  expect(secure.data()).not.toMatch(/^b /m);
  // After TLS the capability list offers logins and no longer STARTTLS.
  expect(secure.data()).toMatch(/\* CAPABILITY IMAP4rev1 .*AUTH=PLAIN/);
  expect(secure.data()).not.toMatch(/STARTTLS|LOGINDISABLED/);
  await new Promise((r) => setTimeout(r, 100));
  expect((await rig.runtime.store.readAudit('0', 100000)).length).toBe(before);
});

test('STARTTLS then a real login over TLS works (imapflow)', async () => {
  const client = imapClient(rig.ports.starttls, { user: `${ALICE.user}+sec-phone`, pass: ALICE.password });
  (client as unknown as { options: { doSTARTTLS: boolean } }).options.doSTARTTLS = true;
  await client.connect();
  expect(client.secureConnection).toBe(true);
  await client.logout();
});

test('an oversized literal gets no continuation: BYE and close', async () => {
  const raw = await greeted(rig.ports.plain);
  raw.write('a LOGIN {100000}\r\n');
  await raw.waitClosed();
  expect(raw.data).not.toMatch(/^\+/m);
  expect(raw.data).toMatch(/\* BYE Literal too large/);
});

test('CR, LF or NUL in a user name or device id never reaches Dovecot or the store', async () => {
  const raw = await greeted(rig.ports.plain);
  raw.write(`a1 LOGIN {29+}\r\n${ALICE.user}+sec\r\nphone ${ALICE.password}\r\n`);
  await raw.waitFor(/a1 (BAD|NO)/);
  raw.write(`a2 LOGIN {29+}\r\n${ALICE.user}+sec\0phone ${ALICE.password}\r\n`);
  await raw.waitFor(/a2 (BAD|NO)/);
  const plain = Buffer.from(`\0${ALICE.user}+sec\nphone\0${ALICE.password}`).toString('base64');
  raw.write(`a3 AUTHENTICATE PLAIN ${plain}\r\n`);
  await raw.waitFor(/a3 (BAD|NO)/);
  raw.close();
  expect(raw.data).not.toMatch(/a[123] OK/);
  expect(require('node:fs').readFileSync(rig.dovecot.logFile, 'utf8')).not.toMatch(/sec.phone/);
});

describe('JWT bearer tokens', () => {
  async function oauthLogin(token: string): Promise<string> {
    const raw = await greeted(rig.ports.plain);
    const ir = Buffer.from(`n,a=${ALICE.user},\x01auth=Bearer ${token}\x01\x01`).toString('base64');
    raw.write(`o1 AUTHENTICATE OAUTHBEARER ${ir}\r\n`);
    await raw.waitFor(/^(\+ \S+|o1 \S+)/m);
    if (/^\+ /m.test(raw.data)) raw.write('AQ==\r\n');
    await raw.waitFor(/o1 (OK|NO|BAD)/);
    raw.close();
    return raw.data;
  }

  test('a valid token logs in (control)', async () => {
    expect(await oauthLogin(await rig.token('sec-phone'))).toMatch(/o1 OK/);
  });

  test('alg none is refused', async () => {
    const header = base64url.encode(JSON.stringify({ alg: 'none', typ: 'JWT' }));
    const now = Math.floor(Date.now() / 1000);
    const payload = base64url.encode(JSON.stringify({ iss: ISSUER, aud: AUDIENCE, email: ALICE.user, deviceid: 'sec-phone', iat: now, exp: now + 600 }));
    expect(await oauthLogin(`${header}.${payload}.`)).toMatch(/o1 NO \[AUTHENTICATIONFAILED\]/);
  });

  test('a token signed by another key is refused', async () => {
    const { privateKey } = await generateKeyPair('ES256');
    const forged = await new SignJWT({ email: ALICE.user, deviceid: 'sec-phone' })
      .setProtectedHeader({ alg: 'ES256', kid: 'idp-1' })
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setIssuedAt()
      .setExpirationTime('10m')
      .sign(privateKey);
    expect(await oauthLogin(forged)).toMatch(/o1 NO \[AUTHENTICATIONFAILED\]/);
  });

  test('an expired token is refused, with the invalid_token challenge first', async () => {
    const data = await oauthLogin(await rig.token('sec-phone', { expiresIn: -120 }));
    expect(data).toMatch(/^\+ eyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIn0=\r\n/m);
    expect(data).toMatch(/o1 NO \[AUTHENTICATIONFAILED\]/);
  });

  test('a token without exp is refused', async () => {
    const key = await importJWK(rig.idpKey, 'ES256');
    const noExp = await new SignJWT({ email: ALICE.user, deviceid: 'sec-phone' })
      .setProtectedHeader({ alg: 'ES256', kid: 'idp-1' })
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setIssuedAt()
      .sign(key);
    expect(await oauthLogin(noExp)).toMatch(/o1 NO \[AUTHENTICATIONFAILED\]/);
  });
});

describe('outages', () => {
  test('Dovecot down: NO [UNAVAILABLE]', async () => {
    await rig.dovecot.stop();
    try {
      const err = await loginError(imapClient(rig.ports.plain, { user: `${ALICE.user}+sec-phone`, pass: ALICE.password }));
      expect(err.serverResponseCode).toBe('UNAVAILABLE');
    } finally {
      await rig.dovecot.start();
    }
  });

  test('Redis down: every login answered within 250 ms; a device not in the cache gets NO [UNAVAILABLE]', async () => {
    await rig.redis.stop();
    try {
      // sec-phone may be served from the in-process cache (SPEC: cached state or tempfail); never-seen cannot.
      for (const [device, reply] of [['sec-phone', /a1 (OK|NO \[UNAVAILABLE\])/], ['never-seen', /a1 NO \[UNAVAILABLE\]/]] as const) {
        const raw = await greeted(rig.ports.plain);
        const started = Date.now();
        raw.write(`a1 LOGIN ${ALICE.user}+${device} ${ALICE.password}\r\n`);
        await raw.waitFor(/a1 (OK|NO)/, 2000);
        expect(Date.now() - started).toBeLessThan(250);
        expect(raw.data).toMatch(reply);
        raw.close();
      }
    } finally {
      await rig.redis.start();
    }
  });
});
