// `mailwarden device …`, `kill-switch` (on, off, status) and `audit tail` against a real admin listener in-process
// (fake services, in-memory store), through the CLI's own entry points.
import fs from 'node:fs';
import path from 'node:path';
import { buildProgram, main } from '../../src/cli/index';
import { freePort, tempDir } from '../harness/ports';
import { TIKTOK, TOKEN, fakeJws, record, report, startFakeAdmin } from './admin-fakes';

type Admin = Awaited<ReturnType<typeof startFakeAdmin>>;
let admin: Admin;
let dir: string;
let configFile: string;
let stdout: string[];
let stderr: string[];

beforeEach(async () => {
  admin = await startFakeAdmin();
  dir = tempDir('cli');
  configFile = path.join(dir, 'mailwarden.yaml');
  fs.writeFileSync(configFile, `admin:\n  listen: { host: 127.0.0.1, port: ${admin.server.address.port} }\n  tokens: [${TOKEN}]\n`);
  stdout = [];
  stderr = [];
  jest.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => stdout.push(String(chunk)) > 0);
  jest.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => stderr.push(String(chunk)) > 0);
});
afterEach(async () => {
  jest.restoreAllMocks();
  await admin.server.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const run = (...args: string[]) => buildProgram().parseAsync(['node', 'mailwarden', ...args, '--config', configFile]);
const out = () => stdout.join('');

describe('device show', () => {
  test('answers "why is this device blocked?": record, exemption, decision and every check', async () => {
    await admin.store.putDevice(record(report({ deviceId: 'iphone-7', apps: [TIKTOK, 'com.apple.mobilemail'] })), 3600);
    await run('device', 'exempt', 'iphone-7', '--hours', '2', '--note', 'ticket 42', '--check', 'min-os-version');
    stdout.length = 0;
    await run('device', 'show', 'iphone-7');
    const text = out();
    expect(text).toMatch(/^user +alice@example\.com$/m);
    expect(text).toContain(`apps      2: ${TIKTOK}, com.apple.mobilemail`);
    expect(text).toMatch(/exemption: device iphone-7 from checks min-os-version until .*"ticket 42" \(by cli:/);
    expect(text).toContain('decision now (imap login): DENY BANNED_APP by check banned-apps, policy v-test');
    expect(text).toContain('user sees: Remove TikTok to sync company mail (ref REF-1234).');
    // The dry run's fresh reference id is labelled, so nobody takes it for the one the user quotes.
    expect(text).toContain("(REF-1234 is a preview id from this dry run; find the user's own with: mailwarden audit search --ref MW-…)");
    expect(text).toMatch(/^banned-apps +banned-apps +enforce +fail +BANNED_APP +banned app installed: com\.zhiliaoapp\.musically$/m);
    expect(text).toMatch(/^require-device +require-device +enforce +pass$/m);
  });

  test('--json prints the API answer; an unknown device fails with one line', async () => {
    await admin.store.putDevice(record(report()), 3600);
    await run('device', 'show', 'dev-1', '--json', '--protocol', 'smtp');
    expect(JSON.parse(out())).toMatchObject({ deviceId: 'dev-1', decision: { protocol: 'smtp', action: 'allow' } });
    await expect(run('device', 'show', 'ghost')).rejects.toThrow(/no report stored for device ghost .*\(404 DEVICE_NOT_FOUND\)/);
  });
});

test('device list, all and by user, as a table or JSON lines', async () => {
  await admin.store.putDevice(record(report({ deviceId: 'a1' })), 3600);
  await admin.store.putDevice(record(report({ deviceId: 'b1', user: 'bob@example.com', platform: 'android', apps: undefined })), 3600);
  await run('device', 'list');
  const lines = out().trim().split('\n');
  expect(lines[0]).toMatch(/^DEVICE +USER +PLATFORM +OS +MANAGED +APPS +REPORTED$/);
  expect(lines[1]).toMatch(/^a1 +alice@example\.com +ios +17\.4 +yes +1 +/);
  expect(lines[2]).toMatch(/^b1 +bob@example\.com +android +17\.4 +yes +- +/);
  stdout.length = 0;
  await run('device', 'list', '--user', 'bob@example.com', '--json');
  expect(out().trim().split('\n').map((l) => JSON.parse(l).deviceId)).toEqual(['b1']);
});

describe('device report', () => {
  test('posts the JWS in FILE and says whether it was stored', async () => {
    const file = path.join(dir, 'report.jws');
    fs.writeFileSync(file, `${fakeJws(report({ deviceId: 'r1' }))}\n`);
    await run('device', 'report', file);
    expect(out()).toBe('stored: report for device r1\n');
    expect((await admin.store.getDevice('r1')).state).toBe('found');
  });

  test('a rejected report exits non-zero with the 4xx named, and nothing is stored', async () => {
    const file = path.join(dir, 'forged.jws');
    fs.writeFileSync(file, fakeJws(report({ deviceId: 'r2' }), 'forged'));
    const code = await main(['node', 'mailwarden', 'device', 'report', file, '--config', configFile]);
    expect(code).not.toBe(0);
    expect(stderr.join('')).toBe(
      'mailwarden: report rejected: the signature does not verify with key mdm-key-1 (401 BAD_SIGNATURE)\n',
    );
    expect(await admin.store.listDevices()).toEqual([]);
    await expect(run('device', 'report', path.join(dir, 'missing.jws'))).rejects.toThrow(/cannot read .*missing\.jws: no such file/);
  });
});

test('device enroll prints the app password once; unenroll removes it', async () => {
  // dev-3 was never reported: refused, unless --force (the test's token is an admin).
  await expect(run('device', 'enroll', 'dev-3', '--user', 'alice@example.com')).rejects.toThrow(/DEVICE_NOT_REPORTED/);
  await run('device', 'enroll', 'dev-3', '--user', 'alice@example.com', '--force');
  expect(out()).toContain('App password for alice@example.com on device dev-3 (credential cred-dev-3):');
  expect(out().match(/cred-dev-3\.s3cret-app-password/g)).toHaveLength(1);
  expect(await admin.store.getAppPassword('cred-dev-3')).not.toBeNull();
  stdout.length = 0;
  await run('device', 'unenroll', 'dev-3');
  expect(out()).toBe('removed 1 app password(s) of device dev-3\n');
  await expect(run('device', 'enroll', 'dev-3')).rejects.toThrow(/--user/);
});

test('a device id or user outside the identifier grammar is a usage error before any request', async () => {
  await expect(run('device', 'enroll', '{x}', '--user', 'alice@example.com')).rejects.toThrow(/deviceId: contains "\{" or "\}"/);
  await expect(run('device', 'enroll', 'dev-1', '--user', 'a{b}@example.com')).rejects.toThrow(/user: contains "\{" or "\}"/);
  await expect(run('device', 'exempt', '--user', 'al\rice', '--hours', '1', '--note', 'n')).rejects.toThrow(/user: contains a control/);
  await expect(run('device', 'show', ' dev-1')).rejects.toThrow(/deviceId: has leading or trailing white space/);
  expect(await admin.store.getAppPassword('cred-dev-1')).toBeNull();
});

describe('device exempt / unexempt', () => {
  test('a user exemption with --until, then removed', async () => {
    const until = new Date(Date.now() + 3_600_000).toISOString();
    await run('device', 'exempt', '--user', 'bob@example.com', '--until', until, '--note', 'travelling');
    expect(out()).toContain(`exempted user bob@example.com from every check until ${until}: "travelling"`);
    expect(await admin.store.listExemptions()).toMatchObject([{ scope: 'user', subject: 'bob@example.com' }]);
    await run('device', 'unexempt', '--user', 'bob@example.com');
    expect(await admin.store.listExemptions()).toEqual([]);
  });

  test.each([
    [['device', 'exempt', 'd1', '--hours', '2'], /--note is required/],
    [['device', 'exempt', 'd1', '--note', 'x'], /--hours N or --until TIME/],
    [['device', 'exempt', 'd1', '--user', 'u', '--hours', '1', '--note', 'x'], /either a device id or --user/],
    [['device', 'exempt', 'd1', '--hours', 'soon', '--note', 'x'], /--hours must be a positive number/],
    [['device', 'exempt', 'd1', '--hours', '100000', '--note', 'x'], /at most \d+ hours.*\(400 BAD_REQUEST\)/],
    [['device', 'unexempt'], /either a device id or --user/],
  ])('%j fails with a clear reason', async (args, message) => {
    await expect(run(...args)).rejects.toThrow(message);
    expect(await admin.store.listExemptions()).toEqual([]);
  });
});

test('kill-switch on|off is a top-level command', async () => {
  await run('kill-switch', 'on');
  expect(out()).toContain('kill switch ON');
  expect(admin.calls.killSwitch).toEqual([true]);
  await run('kill-switch', 'off');
  expect(admin.calls.killSwitch).toEqual([true, false]);
  await expect(run('kill-switch', 'maybe')).rejects.toThrow(/Allowed choices are on, off, status/);
});

test('kill-switch status says on/off, since when, by whom and the note; --json the API answer', async () => {
  await run('kill-switch', 'status');
  expect(out()).toBe('kill switch off: the policy is enforced as configured\n');
  await run('kill-switch', 'on', '--note', 'v42 denies every iPad');
  stdout.length = 0;
  await run('kill-switch', 'status');
  expect(out()).toMatch(/^kill switch ON: every check is in report mode on every instance \(since \d{4}-\d\d-\d\dT\S+Z by cli(:\S+)?: "v42 denies every iPad"\)\n$/);
  stdout.length = 0;
  await run('kill-switch', 'status', '--json');
  expect(JSON.parse(out())).toMatchObject({ on: true, note: 'v42 denies every iPad', by: expect.stringMatching(/^cli/) });
});

describe('audit tail', () => {
  test('prints the newest N events as JSON lines', async () => {
    for (let i = 1; i <= 5; i++) await admin.store.appendAudit({ n: i });
    await run('audit', 'tail', '--count', '2', '--json');
    const lines = out().trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.map((l) => l.n)).toEqual([4, 5]);
    expect(lines[0].id).toEqual(expect.any(String));
  });

  test('--follow prints new events until Ctrl-C', async () => {
    await admin.store.appendAudit({ n: 1 });
    const following = run('audit', 'tail', '--follow', '--interval', '20', '--json');
    await waitFor(() => out().includes('"n":1'));
    await admin.store.appendAudit({ n: 2 });
    await waitFor(() => out().includes('"n":2'));
    process.emit('SIGINT');
    await following;
    expect(out().trim().split('\n').map((l) => JSON.parse(l).n)).toEqual([1, 2]);
    expect(process.listenerCount('SIGINT')).toBe(0);
  });
});

describe('audit search and the column view', () => {
  test('--ref finds the event of the reference id a user quotes, in columns', async () => {
    await admin.store.appendAudit({ msg: 'decision', at: '2026-12-03T08:00:00.000Z', action: 'allow', reasonCode: 'OK', protocol: 'imap', user: 'bob@example.com', deviceId: 'd2', refId: 'MW-AAAA1111' });
    await admin.store.appendAudit({ msg: 'decision', at: '2026-12-03T08:01:00.000Z', action: 'deny', reasonCode: 'BANNED_APP', protocol: 'smtp', user: 'alice@example.com', deviceId: 'd1', refId: 'MW-BBBB2222' });
    await run('audit', 'search', '--ref', 'mw-bbbb2222');
    expect(out().trim().split('\n')).toEqual([
      'TIME                  EVENT            PROTO  USER               DEVICE  REF',
      '2026-12-03 08:01:00Z  DENY BANNED_APP  smtp   alice@example.com  d1      MW-BBBB2222',
    ]);
    stdout.length = 0;
    await run('audit', 'search', '--user', 'bob@example.com', '--json');
    expect(JSON.parse(out()).refId).toBe('MW-AAAA1111');
  });

  test('audit tail without --json is a column view', async () => {
    await admin.store.appendAudit({ msg: 'admin', at: '2026-12-03T09:00:00.000Z', operation: 'kill-switch' });
    await run('audit', 'tail');
    expect(out()).toMatch(/^TIME +EVENT +PROTO +USER +DEVICE +REF\n2026-12-03 09:00:00Z +admin kill-switch\n$/);
  });
});

describe('reaching the admin API', () => {
  test('server down: one line naming the URL, non-zero exit', async () => {
    const port = await freePort();
    const code = await main(['node', 'mailwarden', 'kill-switch', 'on', '--url', `http://127.0.0.1:${port}`, '--token', 't']);
    expect(code).not.toBe(0);
    expect(stderr.join('')).toBe(`mailwarden: cannot reach the admin API at http://127.0.0.1:${port}: connection refused\n`);
  });

  test('--url and --token override the config; a wrong token is a 401 line', async () => {
    await buildProgram().parseAsync(['node', 'mailwarden', 'kill-switch', 'on', '--config', '/nonexistent.yaml', '--url', admin.url, '--token', TOKEN]);
    expect(admin.calls.killSwitch).toEqual([true]);
    await expect(run('kill-switch', 'on', '--token', 'wrong')).rejects.toThrow(/the bearer token is not valid \(401 UNAUTHORIZED\)/);
  });

  test('a missing config file or admin section is named', async () => {
    await expect(buildProgram().parseAsync(['node', 'mailwarden', 'device', 'list', '--config', path.join(dir, 'nope.yaml')])).rejects.toThrow(
      /cannot read .*nope\.yaml: no such file \(give --config FILE, or --url and --token\)/,
    );
    fs.writeFileSync(configFile, 'instanceName: x\n');
    await expect(run('device', 'list')).rejects.toThrow(/admin\.listen \{ host, port \} is not set/);
  });
});

async function waitFor(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}
