// Device-bound app passwords: issue once, store only a keyed hash, verify in constant time.
import fs from 'node:fs';
import path from 'node:path';
import { createHmac } from 'node:crypto';
import {
  appPasswordKeyFor,
  hashAppPasswordSecret,
  issueAppPassword,
  loadAppPasswordKey,
  parseAppPassword,
} from '../../src/identity/app-password';
import { createIdentityResolver } from '../../src/identity/resolver';
import { InvalidIdentifierError } from '../../src/identity/validate';
import type { IdentityResolver } from '../../src/identity/types';
import { MemoryDeviceStore } from '../../src/store/memory-store';
import { StoreUnavailableError, type DeviceStore } from '../../src/store/device-store';
import { silentLogger } from '../../src/core/log';
import { tempDir } from '../harness/ports';

const USER = 'alice@example.com';
const DEVICE = 'iphone-7f3a';
const SHAPE = /^[0-9a-hjkmnp-tv-z]{8}\.[0-9a-hjkmnp-tv-z]{26}$/;

let dir: string;
let store: MemoryDeviceStore;
let key: Buffer;
let resolver: IdentityResolver;

const login = (username: string, password: string) => resolver.resolve({ credential: { kind: 'password', username, password } });

beforeAll(() => {
  dir = tempDir('identity-app-password');
  fs.writeFileSync(path.join(dir, 'hmac.key'), 'k'.repeat(48) + '\n');
  fs.writeFileSync(path.join(dir, 'short.key'), 'short');
});

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

beforeEach(async () => {
  store = new MemoryDeviceStore();
  key = await loadAppPasswordKey('hmac.key', dir);
  resolver = await createIdentityResolver([{ type: 'app-password', hmacKeyFile: 'hmac.key' }], {
    store,
    log: silentLogger(),
    configDir: dir,
  });
});

describe('app passwords', () => {
  it('issues <id>.<secret> in an unambiguous lower-case alphabet, ≥128 bits of secret', async () => {
    for (let i = 0; i < 50; i++) {
      const { password, credentialId } = await issueAppPassword(store, { user: USER, deviceId: DEVICE }, key);
      expect(password).toMatch(SHAPE);
      expect(password.startsWith(`${credentialId}.`)).toBe(true);
      expect(password.split('.')[1]!.length * 5).toBeGreaterThanOrEqual(128);
    }
  });

  it('stores only the HMAC-SHA-256 of the secret, never the password', async () => {
    const { password, credentialId } = await issueAppPassword(store, { user: USER, deviceId: DEVICE }, key, new Date('2025-01-31T09:00:00Z'));
    const stored = await store.getAppPassword(credentialId);
    const secret = password.split('.')[1]!;
    expect(stored).toEqual({
      credentialId,
      user: USER,
      deviceId: DEVICE,
      hash: createHmac('sha256', key).update(secret).digest('hex'),
      createdAt: '2025-01-31T09:00:00.000Z',
    });
    expect(JSON.stringify(stored)).not.toContain(secret);
    expect(hashAppPasswordSecret(key, secret)).toBe(stored!.hash);
  });

  it('verifies: the device id from the credential, strong, master login upstream', async () => {
    const { password } = await issueAppPassword(store, { user: USER, deviceId: DEVICE }, key);
    expect(await login(USER, password)).toEqual({
      ok: true,
      user: USER,
      deviceId: DEVICE,
      source: 'app-password',
      strength: 'strong',
      upstream: { mode: 'master', username: USER },
    });
    // Typed in upper case on a phone keyboard: still the same password.
    expect(await login('ALICE@example.com', password.toUpperCase())).toMatchObject({ ok: true, user: USER });
  });

  it.each([
    ['a wrong secret', (p: string) => p.replace(/.$/, (c) => (c === 'a' ? 'b' : 'a')), USER, /does not match/],
    ['another user', (p: string) => p, 'bob@example.com', /not the user/],
    ['an unknown id', (p: string) => `zzzzzzzz${p.slice(8)}`, USER, /unknown id/],
  ])('rejects %s as bad-credentials', async (_name, mutate, username, detail) => {
    const { password } = await issueAppPassword(store, { user: USER, deviceId: DEVICE }, key);
    const result = await login(username, mutate(password));
    expect(result).toMatchObject({ ok: false, failure: 'bad-credentials' });
    if (!result.ok) {
      expect(result.detail).toMatch(detail);
      expect(result.detail).not.toContain(password.split('.')[1]);
    }
  });

  it('rejects a password issued under another HMAC key', async () => {
    const other = await loadAppPasswordKey(undefined, dir);
    const { password } = await issueAppPassword(store, { user: USER, deviceId: DEVICE }, other);
    expect(await login(USER, password)).toMatchObject({ ok: false, failure: 'bad-credentials' });
  });

  it('leaves passwords of another shape to the next source (here: none)', async () => {
    expect(await login(USER, 'correct horse battery staple')).toMatchObject({ ok: true, source: 'none', deviceId: null });
    expect(parseAppPassword('abcdefgh.0123456789abcdefghjkmnpqrs')).not.toBeNull();
    expect(parseAppPassword('abcdefgi.0123456789abcdefghjkmnpqrs')).toBeNull(); // i is not in the alphabet
  });

  it('answers unavailable when the store is down', async () => {
    const { password } = await issueAppPassword(store, { user: USER, deviceId: DEVICE }, key);
    const down = Object.create(store) as DeviceStore;
    down.getAppPassword = () => Promise.reject(new StoreUnavailableError('redis down'));
    const downResolver = await createIdentityResolver([{ type: 'app-password', hmacKeyFile: 'hmac.key' }], {
      store: down,
      log: silentLogger(),
      configDir: dir,
    });
    const result = await downResolver.resolve({ credential: { kind: 'password', username: USER, password } });
    expect(result).toMatchObject({ ok: false, failure: 'unavailable' });
  });

  it('refuses to issue for a device id or user with control characters', async () => {
    await expect(issueAppPassword(store, { user: USER, deviceId: 'dev\r\n' }, key)).rejects.toThrow(InvalidIdentifierError);
    await expect(issueAppPassword(store, { user: USER, deviceId: 'dev\r\n' }, key)).rejects.toThrow(/deviceId/);
    await expect(issueAppPassword(store, { user: 'a\0b', deviceId: DEVICE }, key)).rejects.toThrow(/user/);
  });

  it('loads the key file, refuses a short one, and finds the configured source key', async () => {
    await expect(loadAppPasswordKey('short.key', dir)).rejects.toThrow(/at least 32 bytes/);
    await expect(loadAppPasswordKey('nope.key', dir)).rejects.toThrow(/nope.key/);
    expect(await appPasswordKeyFor([{ type: 'asserted', separator: '+' }], dir)).toBeNull();
    expect((await appPasswordKeyFor([{ type: 'app-password', hmacKeyFile: 'hmac.key' }], dir))!.equals(key)).toBe(true);
  });
});
