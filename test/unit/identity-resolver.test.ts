// The identity resolver: input validation first, sources in config order, asserted and certificate
// identities, and the unidentified fallback.
import type { PeerCertificate } from 'node:tls';
import { createIdentityResolver } from '../../src/identity/resolver';
import { issueAppPassword, loadAppPasswordKey } from '../../src/identity/app-password';
import { parseSubjectAltNames } from '../../src/identity/certificate';
import { splitAssertedName } from '../../src/identity/asserted';
import type { CredentialContext, IdentityResolver } from '../../src/identity/types';
import type { IdentitySourceConfig } from '../../src/core/config-types';
import type { DeviceStore } from '../../src/store/device-store';
import { MemoryDeviceStore } from '../../src/store/memory-store';
import { silentLogger } from '../../src/core/log';

const USER = 'alice@example.com';

/** A store that fails the test if anything reaches it. */
const untouchableStore = new Proxy({} as DeviceStore, {
  get: (_target, prop) => {
    throw new Error(`store.${String(prop)} must not be called`);
  },
});

const make = (sources: IdentitySourceConfig[], store: DeviceStore = new MemoryDeviceStore()): Promise<IdentityResolver> =>
  createIdentityResolver(sources, { store, log: silentLogger(), configDir: '/nonexistent' });

const password = (username: string, pass = 'hunter2'): CredentialContext => ({ credential: { kind: 'password', username, password: pass } });

const cert = (fields: Partial<PeerCertificate>): PeerCertificate => fields as PeerCertificate;

describe('input validation, before any source', () => {
  it.each([
    ['CRLF in the login name', password('alice\r\nA1 LOGOUT')],
    ['LF in the login name', password('alice\n')],
    ['NUL in the login name', password('alice\0bob')],
    ['DEL in the login name', password('alice\x7f')],
    ['a C1 control in the login name', password('alice\u0085')],
    ['a zero-width space in the login name', password('al\u200bice@example.com')],
    ['an over-long login name', password(`${'a'.repeat(250)}@example.com`)],
    ['an empty login name', password('')],
    ['NUL in the password', password(USER, 'pw\0x')],
    ['CRLF in the password', password(USER, 'pw\r\nx')],
    ['an over-long password', password(USER, 'p'.repeat(1025))],
    ['CRLF in a bearer authzid', { credential: { kind: 'bearer', username: 'a\r\nb', token: 'abc' } } as CredentialContext],
  ])('rejects %s as bad-credentials without touching the store', async (_name, context) => {
    const resolver = await make([{ type: 'app-password' }, { type: 'asserted', separator: '+' }], untouchableStore);
    const result = await resolver.resolve(context);
    expect(result).toMatchObject({ ok: false, failure: 'bad-credentials' });
  });
});

describe('asserted identity', () => {
  it('takes the device after the last separator and strips it for the upstream', async () => {
    const resolver = await make([{ type: 'asserted', separator: '+' }]);
    expect(await resolver.resolve(password('alice+work@example.com+dev123'))).toEqual({
      ok: true,
      user: 'alice+work@example.com',
      deviceId: 'dev123',
      source: 'asserted',
      strength: 'weak',
      upstream: {
        mode: 'passthrough',
        username: 'alice+work@example.com',
        credential: { kind: 'password', username: 'alice+work@example.com', password: 'hunter2' },
      },
    });
  });

  it('does not mistake a sub-address for a device, and honours a custom separator', async () => {
    expect(splitAssertedName('alice+news@example.com', '+')).toBeNull();
    expect(splitAssertedName('+dev', '+')).toBeNull();
    expect(splitAssertedName('alice@example.com+', '+')).toBeNull();
    expect(splitAssertedName('alice@example.com##ipad', '##')).toEqual({ user: 'alice@example.com', deviceId: 'ipad' });
    const resolver = await make([{ type: 'asserted', separator: '+' }]);
    expect(await resolver.resolve(password('alice+news@example.com'))).toMatchObject({ ok: true, source: 'none', deviceId: null });
  });

  it('refuses a device part with leading white space', async () => {
    const resolver = await make([{ type: 'asserted', separator: '+' }]);
    expect(await resolver.resolve(password('alice@example.com+ dev'))).toMatchObject({ ok: false, failure: 'bad-credentials' });
  });

  it('is off unless configured: the name goes upstream unchanged and the login is unidentified', async () => {
    const resolver = await make([]);
    expect(await resolver.resolve(password('alice@example.com+dev123'))).toMatchObject({
      ok: true,
      user: 'alice@example.com+dev123',
      deviceId: null,
      source: 'none',
      strength: 'weak',
      upstream: { mode: 'passthrough', username: 'alice@example.com+dev123' },
    });
  });
});

describe('certificate identity', () => {
  const laptop = cert({
    subject: { CN: 'dev-42', serialNumber: 'SN-77', O: 'Acme', OU: ['a', 'b'], emailAddress: USER } as unknown as PeerCertificate['subject'],
    subjectaltname: 'DNS:laptop.example, URI:urn:device:abc-9, URI:"urn:device:x\\u002cy"',
    serialNumber: '0A1B',
    fingerprint256: 'AD:5A',
  });

  it('parses Node subjectaltname strings, including JSON-quoted values', () => {
    expect(parseSubjectAltNames('URI:urn:device:abc, email:a@b.c, IP Address:127.0.0.1, URI:"urn:x:a\\u002cb"')).toEqual([
      'URI:urn:device:abc',
      'email:a@b.c',
      'IP Address:127.0.0.1',
      'URI:urn:x:a,b',
    ]);
  });

  it.each([
    ['CN', 'dev-42'],
    ['subject.CN', 'dev-42'],
    ['serialNumber', 'SN-77'],
    ['subjectaltname:URI:urn:device:', 'abc-9'],
    ['cert.serialNumber', '0A1B'],
    ['cert.fingerprint256', 'AD:5A'],
  ])('reads the device id from %s; the password goes upstream as is', async (deviceField, deviceId) => {
    const resolver = await make([{ type: 'certificate', deviceField }]);
    const result = await resolver.resolve({ ...password(USER), peerCertificate: laptop, upstreamLogin: 'master' });
    expect(result).toEqual({
      ok: true,
      user: USER,
      deviceId,
      source: 'certificate',
      strength: 'strong',
      // Without a user field the proxy verified no password: never a master login.
      upstream: { mode: 'passthrough', username: USER, credential: { kind: 'password', username: USER, password: 'hunter2' } },
    });
  });

  it('with a user field: the login name must match, and a master upstream is used when configured', async () => {
    const resolver = await make([{ type: 'certificate', deviceField: 'subject.CN', userField: 'subject.emailAddress' }]);
    expect(await resolver.resolve({ ...password('ALICE@example.com'), peerCertificate: laptop, upstreamLogin: 'master' })).toMatchObject({
      ok: true,
      user: USER,
      deviceId: 'dev-42',
      upstream: { mode: 'master', username: USER },
    });
    const other = await resolver.resolve({ ...password('bob@example.com'), peerCertificate: laptop });
    expect(other).toMatchObject({ ok: false, failure: 'bad-credentials' });
  });

  it('rejects a multi-valued field and a field with CRLF', async () => {
    const ou = await make([{ type: 'certificate', deviceField: 'subject.OU' }]);
    expect(await ou.resolve({ ...password(USER), peerCertificate: laptop })).toMatchObject({ ok: false, failure: 'bad-credentials' });
    const cn = await make([{ type: 'certificate', deviceField: 'subject.CN' }]);
    const evil = cert({ subject: { CN: 'dev\r\n* OK' } as unknown as PeerCertificate['subject'] });
    expect(await cn.resolve({ ...password(USER), peerCertificate: evil })).toMatchObject({ ok: false, failure: 'bad-credentials' });
  });

  it('a certificate without the field, or no certificate, leaves the login to the next source', async () => {
    const resolver = await make([{ type: 'certificate', deviceField: 'subject.UID' }, { type: 'asserted', separator: '+' }]);
    expect(await resolver.resolve({ ...password(`${USER}+d1`), peerCertificate: laptop })).toMatchObject({ source: 'asserted', deviceId: 'd1' });
    expect(await resolver.resolve({ ...password(USER), peerCertificate: cert({}) })).toMatchObject({ source: 'none' });
    expect(await resolver.resolve(password(USER))).toMatchObject({ source: 'none' });
  });

  it('refuses an unknown field name when the resolver is built', async () => {
    await expect(make([{ type: 'certificate', deviceField: 'issuer.CN' }])).rejects.toThrow(/identity.sources\[0\].deviceField/);
  });
});

describe('source order and fallbacks', () => {
  it('the first source that recognises the credential decides', async () => {
    const store = new MemoryDeviceStore();
    const key = await loadAppPasswordKey(undefined, '/nonexistent');
    const { password: appPassword } = await issueAppPassword(store, { user: USER, deviceId: 'enrolled' }, key);
    const context = password(`${USER}+typed`, appPassword);
    const appFirst = await make([{ type: 'app-password' }, { type: 'asserted', separator: '+' }], store);
    // The login name must be the enrolled user: "alice+typed" is not, so app-password refuses it.
    expect(await appFirst.resolve(context)).toMatchObject({ ok: false, failure: 'bad-credentials' });
    expect(await appFirst.resolve(password(USER, appPassword))).toMatchObject({ source: 'app-password', deviceId: 'enrolled' });
    const assertedFirst = await make([{ type: 'asserted', separator: '+' }, { type: 'app-password' }], store);
    expect(await assertedFirst.resolve(context)).toMatchObject({ source: 'asserted', deviceId: 'typed' });
  });

  it('a bearer token without any oauth source: unidentified with a user name, refused without', async () => {
    const resolver = await make([{ type: 'asserted', separator: '+' }]);
    expect(await resolver.resolve({ credential: { kind: 'bearer', username: USER, token: 'abc' } })).toMatchObject({
      ok: true,
      source: 'none',
      upstream: { mode: 'passthrough', credential: { kind: 'bearer', token: 'abc' } },
    });
    expect(await resolver.resolve({ credential: { kind: 'bearer', token: 'abc' } })).toMatchObject({ ok: false, failure: 'bad-credentials' });
  });

  it('a source that throws gives unavailable, never an allow', async () => {
    const resolver = await make([{ type: 'certificate', deviceField: 'subject.CN' }]);
    const exploding = new Proxy({} as PeerCertificate, {
      get: () => {
        throw new Error('boom');
      },
    });
    expect(await resolver.resolve({ ...password(USER), peerCertificate: exploding })).toMatchObject({ ok: false, failure: 'unavailable' });
  });
});
