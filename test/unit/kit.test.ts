// The fake-device kit and its CLI, end to end against the real admin listener (in-process, on
// loopback) wired to the real report verifier, app-password issuance and identity resolver.
import fs from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';
import {
  buildReport,
  enrollDevice,
  loginDetails,
  makeReporterKeys,
  pushReport,
  readPrivateJwk,
  signReport,
} from '../../src/kit';
import { createReportVerifier } from '../../src/admin/reports';
import { issueAppPassword, loadAppPasswordKey } from '../../src/identity/app-password';
import { createIdentityResolver } from '../../src/identity/resolver';
import { registerFakeDeviceCommands } from '../../src/cli/fake-device';
import { silentLogger } from '../../src/core/log';
import type { MemoryDeviceStore } from '../../src/store/memory-store';
import { freePort, tempDir } from '../harness/ports';
import { startFakeAdmin, TOKEN, TIKTOK } from './admin-fakes';

type Admin = Awaited<ReturnType<typeof startFakeAdmin>>;

const USER = 'alice@example.com';
let dir: string;
let admin: Admin;
let hmacKey: Buffer;

beforeAll(async () => {
  dir = tempDir('kit');
  await makeReporterKeys({ kid: 'rehearsal', outDir: dir });
  const verifier = await createReportVerifier(
    { jwksFile: 'reporters.jwks.json', algorithms: ['ES256'], maxAgeSeconds: 3600, maxSkewSeconds: 60, maxBodyBytes: 4096 },
    dir,
  );
  hmacKey = await loadAppPasswordKey(undefined, dir);
  let store: MemoryDeviceStore | undefined;
  admin = await startFakeAdmin({
    verifyReport: (jws) => verifier.verify(jws),
    issueAppPassword: (user, deviceId) => issueAppPassword(store!, { user, deviceId }, hmacKey),
  });
  store = admin.store;
});

afterAll(async () => {
  await admin.server.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('fake-device kit', () => {
  it('writes the private key (mode 600) and merges public keys into one JWKS', async () => {
    const second = await makeReporterKeys({ kid: 'second', outDir: dir });
    const jwks = JSON.parse(fs.readFileSync(path.join(dir, 'reporters.jwks.json'), 'utf8')) as { keys: { kid: string; d?: string }[] };
    expect(jwks.keys.map((k) => k.kid).sort()).toEqual(['rehearsal', 'second']);
    expect(jwks.keys.some((k) => 'd' in k)).toBe(false);
    expect(fs.statSync(second.files!.privateKey).mode & 0o777).toBe(0o600);
    expect((await readPrivateJwk(second.files!.privateKey)).kid).toBe('second');
    fs.writeFileSync(path.join(dir, 'public.json'), JSON.stringify(jwks.keys[0]));
    await expect(readPrivateJwk(path.join(dir, 'public.json'))).rejects.toThrow(/private JWK/);
  });

  it('buildReport applies the server schema and names the bad field', () => {
    expect(() => buildReport({ deviceId: 'd\r\n', user: USER, platform: 'ios', osVersion: '17', managed: true })).toThrow(/deviceId/);
    expect(() => buildReport({ deviceId: 'd', user: USER, platform: 'iOS', osVersion: '17', managed: true })).toThrow(/platform/);
  });

  it('round trip: sign → push → stored; enrol → the app password logs in as that device', async () => {
    const key = await readPrivateJwk(path.join(dir, 'rehearsal.private.jwk.json'));
    const report = buildReport({ deviceId: 'iphone-1', user: USER, platform: 'ios', osVersion: '17.4', managed: true, apps: [TIKTOK] });
    expect(await pushReport(admin.url, TOKEN, await signReport(report, key))).toEqual({ ok: true, status: 202, stored: true, deviceId: 'iphone-1' });
    const stored = await admin.store.getDevice('iphone-1');
    expect(stored).toMatchObject({ state: 'found', record: { apps: [TIKTOK], source: 'rehearsal' } });

    const { password } = await enrollDevice(admin.url, TOKEN, { user: USER, deviceId: 'iphone-1' });
    const details = loginDetails({ user: USER, deviceId: 'iphone-1', appPassword: password, imap: '127.0.0.1:1143' });
    expect(details).toMatchObject({ username: USER, password, imap: '127.0.0.1:1143' });
    expect(details.text).toContain(`password:  ${password}`);

    const resolver = await createIdentityResolver([{ type: 'app-password' }], { store: admin.store, log: silentLogger(), configDir: dir });
    expect(await resolver.resolve({ credential: { kind: 'password', username: details.username, password: details.password! } })).toMatchObject({
      ok: true,
      source: 'app-password',
      deviceId: 'iphone-1',
    });
  });

  it('a refused report is a result naming the code; nothing is stored', async () => {
    const stranger = (await makeReporterKeys({ kid: 'rehearsal' })).privateJwk;
    const report = buildReport({ deviceId: 'forged-1', user: USER, platform: 'ios', osVersion: '17.4', managed: true, apps: [] });
    expect(await pushReport(admin.url, TOKEN, await signReport(report, stranger))).toMatchObject({ ok: false, status: 401, code: 'BAD_SIGNATURE' });
    expect(await admin.store.getDevice('forged-1')).toEqual({ state: 'missing' });
    expect(await pushReport(admin.url, 'wrong-token', 'a.b.c')).toMatchObject({ ok: false, status: 401 });
  });

  it('asserted login details, and an unreachable admin API throws', async () => {
    expect(loginDetails({ user: USER, deviceId: 'lap-1', separator: '+' })).toMatchObject({ username: `${USER}+lap-1` });
    expect(loginDetails({ user: USER, deviceId: 'lap-1' }).password).toBeUndefined();
    const port = await freePort();
    await expect(pushReport(`http://127.0.0.1:${port}`, TOKEN, 'a.b.c')).rejects.toThrow(/cannot reach/);
  });
});

describe('mailwarden fake-device', () => {
  async function run(...args: string[]): Promise<string> {
    const program = new Command('mailwarden').exitOverride();
    registerFakeDeviceCommands(program);
    let out = '';
    const spy = jest.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      out += chunk.toString();
      return true;
    });
    try {
      await program.parseAsync(['node', 'mailwarden', 'fake-device', ...args]);
    } finally {
      spy.mockRestore();
    }
    return out;
  }

  it('keys → report --push → enroll, each printing what the next step needs', async () => {
    const keysDir = path.join(dir, 'cli');
    const keysOut = await run('keys', '--out', keysDir, '--kid', 'cli-key');
    expect(keysOut).toContain(`reports.jwksFile: ${path.join(keysDir, 'reporters.jwks.json')}`);
    expect(keysOut).toContain('fake-device report --key');
    // The listener trusts the keys in `dir`, not this new folder: here the new key only has to be well-formed.
    const cliKey = await readPrivateJwk(path.join(keysDir, 'cli-key.private.jwk.json'));
    expect(cliKey.alg).toBe('ES256');

    const keyFile = path.join(dir, 'rehearsal.private.jwk.json');
    const reportOut = await run(
      'report', '--key', keyFile, '--device', 'pixel-9', '--user', USER, '--platform', 'android', '--os', '14',
      '--app', TIKTOK, '--app', 'com.google.android.gm', '--unmanaged', '--push', admin.url, '--token', TOKEN,
    );
    expect(reportOut).toContain('stored: report for device pixel-9');
    expect(reportOut).toContain('fake-device enroll');
    expect(await admin.store.getDevice('pixel-9')).toMatchObject({
      state: 'found',
      record: { managed: false, platform: 'android', apps: [TIKTOK, 'com.google.android.gm'] },
    });

    const enrollOut = await run('enroll', '--url', admin.url, '--token', TOKEN, '--device', 'pixel-9', '--user', USER, '--imap', '127.0.0.1:1143');
    expect(enrollOut).toMatch(/password: {2}[0-9a-hjkmnp-tv-z]{8}\.[0-9a-hjkmnp-tv-z]{26}/);
    expect(enrollOut).toContain('IMAP:      127.0.0.1:1143');
  });

  it('report --out writes a JWS; --no-inventory leaves the apps out; a rejection is an error', async () => {
    const keyFile = path.join(dir, 'rehearsal.private.jwk.json');
    const file = path.join(dir, 'r.jws');
    await run('report', '--key', keyFile, '--device', 'mac-1', '--user', USER, '--platform', 'macos', '--os', '14.5', '--no-inventory', '--out', file);
    const jws = fs.readFileSync(file, 'utf8').trim();
    const payload = JSON.parse(Buffer.from(jws.split('.')[1]!, 'base64url').toString('utf8'));
    expect(payload).toMatchObject({ deviceId: 'mac-1', platform: 'macos', managed: true });
    expect('apps' in payload).toBe(false);

    await expect(
      run('report', '--key', keyFile, '--device', 'mac-1', '--user', USER, '--platform', 'macos', '--os', '14.5',
        '--reported-at', '2001-01-01T00:00:00Z', '--push', admin.url, '--token', TOKEN),
    ).rejects.toThrow(/report rejected: .*REPORT_TOO_OLD/);
  });
});
