// The core slice end to end against a real redis-server: signed report → admin API → store →
// decision; TTL expiry, exemption expiry, grace period, blast-radius refusal, hot reload (good then
// bad), Redis killed mid-test, and no secret anywhere in what the suite logged.
import fs from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import winston from 'winston';
import { startRuntime, type Runtime } from '../../src/app/runtime';
import { createLogger } from '../../src/core/log';
import type { DecisionRequest } from '../../src/policy/decision';
import { buildReport, makeReporterKeys, signReport, pushReport, enrollDevice } from '../../src/kit';
import { startRedis, cleanupRedis, type RedisServer } from '../harness/redis';
import { tempDir } from '../harness/ports';
import { writeAppPasswordKey } from '../harness/app-password-key';

const ADMIN_TOKEN = 'core-test-admin-token-5f1c2b';
const TIKTOK = 'com.zhiliaoapp.musically';

/** Everything logged during the suite (as written, after redaction), to grep for secrets at the end. */
function captureTransport(): { transport: winston.transport; lines: string[] } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  return { transport: new winston.transports.Stream({ stream }), lines };
}

function policyYaml(opts: { mode?: string; graceHours?: number; maxNewlyDeniedPercent?: number } = {}): string {
  return `
reportOnly: false
helpdesk: "helpdesk@example.com"
blastRadius: { maxNewlyDeniedPercent: ${opts.maxNewlyDeniedPercent ?? 100}, maxNewlyDeniedCount: 100000 }
brake: { enabled: false }
checks:
  - id: require-device
    plugin: require-device
    mode: enforce
    message: "Enrol this device. Ref {refId}."
  - id: no-tiktok
    plugin: banned-apps
    mode: ${opts.mode ?? 'enforce'}
    onUnknown: pass
    graceHours: ${opts.graceHours ?? 0}
    scope: { platforms: [ios, ipados, android] }
    options:
      apps: { ios: [${TIKTOK}], android: [${TIKTOK}] }
      names: { ${TIKTOK}: TikTok }
    message: "Mail is blocked on this {platform} device because {app} is installed. Remove {app}. Ref {refId}."
`;
}

function configYaml(redis: RedisServer, outageSeconds: number): string {
  return `
instanceName: core-test
policyFile: policy.yaml
store:
  type: redis
  redis: { mode: standalone, host: ${redis.host}, port: ${redis.port}, keyPrefix: "mwtest:", commandTimeoutMs: 150, connectTimeoutMs: 1000 }
  cache: { maxEntries: 1000, maxAgeMs: 30000 }
  outageLastKnownMaxSeconds: ${outageSeconds}
reports:
  jwksFile: reporters.jwks.json
  algorithms: [ES256]
admin:
  listen: { host: 127.0.0.1, port: 0 }
  tokens: [${ADMIN_TOKEN}]
identity:
  sources:
    - type: app-password
      hmacKeyFile: app-password.key
logging: { level: debug }
`;
}

describe('core runtime with a real redis-server', () => {
  let redis: RedisServer;
  let dir: string;
  let runtime: Runtime;
  let privateJwk: Awaited<ReturnType<typeof makeReporterKeys>>['privateJwk'];
  const capture = captureTransport();
  const secrets: string[] = [ADMIN_TOKEN];
  let adminUrl: string;

  const login = (deviceId: string | null, user = 'alice@example.com'): DecisionRequest => ({
    user,
    deviceId,
    protocol: 'imap',
    identitySource: deviceId ? 'app-password' : 'none',
    identityStrength: deviceId ? 'strong' : 'weak',
  });

  async function report(deviceId: string, platform: string, apps: string[], user = 'alice@example.com'): Promise<void> {
    const jws = await signReport(buildReport({ deviceId, user, platform, osVersion: '17.5', apps, managed: true }), privateJwk);
    secrets.push(jws);
    const result = await pushReport(adminUrl, ADMIN_TOKEN, jws);
    expect(result).toMatchObject({ ok: true });
  }

  async function waitFor<T>(probe: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 5000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = await probe();
      if (ok(value) || Date.now() > deadline) return value;
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  beforeAll(async () => {
    redis = await startRedis();
    dir = tempDir('core');
    const keys = await makeReporterKeys({ kid: 'mdm-1', alg: 'ES256' });
    privateJwk = keys.privateJwk;
    fs.writeFileSync(path.join(dir, 'reporters.jwks.json'), JSON.stringify(keys.publicJwks));
    fs.writeFileSync(path.join(dir, 'mailwarden.yaml'), configYaml(redis, 2));
    writeAppPasswordKey(dir);
    fs.writeFileSync(path.join(dir, 'policy.yaml'), policyYaml());
    runtime = await startRuntime({
      configFile: path.join(dir, 'mailwarden.yaml'),
      logger: createLogger({ level: 'debug', silent: true, transports: [capture.transport] }),
      listeners: false,
    });
    adminUrl = `http://127.0.0.1:${runtime.admin!.address.port}`;
  });

  afterAll(async () => {
    await runtime?.stop(0);
    await cleanupRedis(redis);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('signed report → store → decision: iPhone with TikTok denied with the app named, laptop allowed', async () => {
    await report('iphone-1', 'ios', [TIKTOK, 'com.apple.mobilemail']);
    await report('mac-1', 'macos', [TIKTOK]);
    const phone = await runtime.gate.decide(login('iphone-1'));
    expect(phone.action).toBe('deny');
    expect(phone.reasonCode).toBe('BANNED_APP');
    expect(phone.message).toContain('TikTok');
    expect(phone.message).toContain(phone.refId);
    const laptop = await runtime.gate.decide(login('mac-1'));
    expect(laptop.action).toBe('allow');

    // The same answer through the admin API ("why is this device blocked?").
    const res = await fetch(`${adminUrl}/v1/devices/iphone-1`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    expect(res.status).toBe(200);
    expect(JSON.stringify(await res.json())).toContain('BANNED_APP');

    // The phone reports again without TikTok: allowed (the change event drops the cached record).
    await report('iphone-1', 'ios', ['com.apple.mobilemail']);
    const again = await waitFor(() => runtime.gate.decide(login('iphone-1')), (d) => d.action === 'allow');
    expect(again.action).toBe('allow');
  });

  test('a report with a bad signature gets 401 and nothing is written', async () => {
    const other = await makeReporterKeys({ kid: 'mdm-1', alg: 'ES256' });
    const jws = await signReport(buildReport({ deviceId: 'forged-1', user: 'mallory@example.com', platform: 'ios', osVersion: '17.5', apps: [], managed: true }), other.privateJwk);
    const res = await fetch(`${adminUrl}/v1/reports`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/jose' },
      body: jws,
    });
    expect(res.status).toBe(401);
    const body = (await res.json()) as { error: { code: string } };
    expect(body.error.code).toBe('BAD_SIGNATURE');
    expect((await runtime.store.getDevice('forged-1')).state).toBe('missing');
  });

  test('TTL expiry → the device is unknown and denied as such', async () => {
    const now = new Date().toISOString();
    await runtime.store.putDevice(
      { deviceId: 'ttl-1', user: 'alice@example.com', platform: 'ios', osVersion: '17.5', managed: true, apps: [], reportedAt: now, receivedAt: now, source: 'test' },
      1,
    );
    expect((await runtime.gate.decide(login('ttl-1'))).action).toBe('allow');
    await new Promise((r) => setTimeout(r, 1300));
    runtime.store.clear(); // no change event for an expiry: the cache's max age would catch it; do not wait 30 s
    const later = await runtime.gate.decide(login('ttl-1'));
    expect(later.action).toBe('deny');
    expect(later.reasonCode).toBe('UNKNOWN_DEVICE');
  });

  test('an exemption allows until it expires', async () => {
    await report('iphone-ex', 'ios', [TIKTOK]);
    expect((await runtime.gate.decide(login('iphone-ex'))).action).toBe('deny');
    const expiresAt = new Date(Date.now() + 1500).toISOString();
    const res = await fetch(`${adminUrl}/v1/exemptions/device/iphone-ex`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ expiresAt, note: 'CEO travelling, ticket 4711' }),
    });
    expect(res.status).toBeLessThan(300);
    const exempt = await waitFor(() => runtime.gate.decide(login('iphone-ex')), (d) => d.action === 'allow');
    expect(exempt.action).toBe('allow');
    expect(exempt.checks.some((c) => c.outcome === 'exempt')).toBe(true);
    await new Promise((r) => setTimeout(r, 1700));
    runtime.store.clear();
    expect((await runtime.gate.decide(login('iphone-ex'))).action).toBe('deny');
  });

  test('unidentified logins get the unidentified rule', async () => {
    const d = await runtime.gate.decide(login(null));
    expect(d.action).toBe('deny');
    expect(d.reasonCode).toBe('UNIDENTIFIED');
  });

  test('app passwords are issued once and only their hash is stored', async () => {
    const { password } = await enrollDevice(adminUrl, ADMIN_TOKEN, { user: 'alice@example.com', deviceId: 'mac-1' });
    secrets.push(password);
    const result = await runtime.gate.identity.resolve({ credential: { kind: 'password', username: 'alice@example.com', password } });
    expect(result).toMatchObject({ ok: true, deviceId: 'mac-1', source: 'app-password' });
    const [id] = password.split('.');
    const stored = await runtime.store.getAppPassword(id!);
    expect(JSON.stringify(stored)).not.toContain(password.split('.')[1]);
  });

  test('grace period: allowed with a warning, then denied once it has passed', async () => {
    fs.writeFileSync(path.join(dir, 'policy.yaml'), policyYaml({ graceHours: 2 }));
    expect((await runtime.reload()).result).toBe('ok');
    await report('iphone-grace', 'ios', [TIKTOK]);
    const first = await runtime.gate.decide(login('iphone-grace'));
    expect(first.action).toBe('allow');
    expect(first.warnings.join(' ')).toMatch(/TikTok/);
    await runtime.decider.idle();
    // First seen three hours ago → the grace period is over.
    await runtime.store.clearFirstSeenNoncompliant('iphone-grace', 'no-tiktok');
    await runtime.store.markFirstSeenNoncompliant('iphone-grace', 'no-tiktok', Date.now() - 3 * 3600 * 1000);
    const later = await runtime.gate.decide(login('iphone-grace'));
    expect(later.action).toBe('deny');
  });

  test('hot reload: a good file takes effect; a bad one is refused and the good policy stays', async () => {
    fs.writeFileSync(path.join(dir, 'policy.yaml'), policyYaml({ mode: 'report' }));
    // The watcher reloads by itself (debounced); wait for the report-mode policy to be in force.
    const reported = await waitFor(async () => runtime.policy().checks.find((c) => c.id === 'no-tiktok')!.config.mode, (m) => m === 'report');
    expect(reported).toBe('report');
    const inReport = await runtime.gate.decide(login('iphone-ex'));
    expect(inReport.action).toBe('allow');
    expect(inReport.checks.find((c) => c.checkId === 'no-tiktok')).toMatchObject({ outcome: 'fail', effectiveMode: 'report' });

    const goodVersion = runtime.policy().version;
    fs.writeFileSync(path.join(dir, 'policy.yaml'), policyYaml({ mode: 'enforced' }));
    const outcome = await runtime.reload();
    expect(outcome.result).toBe('invalid');
    expect(outcome.result === 'invalid' && outcome.error).toMatch(/policy\.yaml:\d+: checks\[1\]\.mode/);
    expect(runtime.policy().version).toBe(goodVersion);
    expect((await runtime.gate.decide(login('iphone-ex'))).action).toBe('allow');
  });

  test('blast-radius guard: a policy that would newly deny too many devices is not activated unless forced', async () => {
    for (let i = 0; i < 5; i++) await report(`blast-${i}`, 'android', [], `user${i}@example.com`);
    // A check no policy in force lately had (going back to one is never blocked: see policy-file-safety).
    const noAndroid = '  - id: no-android\n    plugin: platforms\n    mode: enforce\n    options: { deny: [android] }\n    message: "No Android. Ref {refId}."\n';
    fs.writeFileSync(path.join(dir, 'policy.yaml'), policyYaml({ mode: 'enforce', maxNewlyDeniedPercent: 1 }) + noAndroid);
    const refused = await runtime.reload();
    expect(refused.result).toBe('blast-radius');
    expect(refused.result === 'blast-radius' && refused.error).toMatch(/no-android/);
    expect(runtime.policy().checks.find((c) => c.id === 'no-tiktok')!.config.mode).toBe('report');
    expect((await runtime.gate.decide(login('blast-0', 'user0@example.com'))).action).toBe('allow');

    const forced = await runtime.reload({ force: true });
    expect(forced.result).toBe('ok');
    expect((await runtime.gate.decide(login('blast-0', 'user0@example.com'))).action).toBe('deny');
  });

  test('kill switch on one instance puts every check in report on another instance sharing Redis', async () => {
    const dir2 = tempDir('core-b');
    fs.copyFileSync(path.join(dir, 'reporters.jwks.json'), path.join(dir2, 'reporters.jwks.json'));
    fs.copyFileSync(path.join(dir, 'app-password.key'), path.join(dir2, 'app-password.key'));
    fs.writeFileSync(path.join(dir2, 'mailwarden.yaml'), configYaml(redis, 2));
    fs.writeFileSync(path.join(dir2, 'policy.yaml'), policyYaml());
    const other = await startRuntime({ configFile: path.join(dir2, 'mailwarden.yaml'), logger: createLogger({ silent: true, transports: [capture.transport] }), listeners: false, watch: false });
    try {
      await report('iphone-ks', 'ios', [TIKTOK]);
      expect((await other.gate.decide(login('iphone-ks'))).action).toBe('deny'); // cached on instance B now
      const on = await fetch(`${adminUrl}/v1/kill-switch`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ on: true }),
      });
      expect(on.status).toBeLessThan(300);
      const t0 = Date.now();
      const relaxed = await waitFor(() => other.gate.decide(login('iphone-ks')), (d) => d.action === 'allow', 3000);
      expect(relaxed.action).toBe('allow');
      expect(Date.now() - t0).toBeLessThan(2000);
      expect(relaxed.checks.find((c) => c.checkId === 'no-tiktok')).toMatchObject({ outcome: 'fail', effectiveMode: 'report' });
      // Readable on the other instance too: its gauge, read from the shared store at scrape time.
      expect(await other.metrics.text()).toMatch(/^mailwarden_kill_switch_enabled 1$/m);
      const state = await fetch(`${adminUrl}/v1/kill-switch`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
      expect(await state.json()).toMatchObject({ on: true, by: 'admin.tokens[0]', since: expect.any(String) });
      await fetch(`${adminUrl}/v1/kill-switch`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ on: false }),
      });
      const back = await waitFor(() => other.gate.decide(login('iphone-ks')), (d) => d.action === 'deny', 3000);
      expect(back.action).toBe('deny');
    } finally {
      await other.stop(0);
      fs.rmSync(dir2, { recursive: true, force: true });
    }
  });

  test('Redis killed: last-known state within the bound, then tempfail within 250 ms; service returns with Redis', async () => {
    runtime.store.clear();
    expect((await runtime.gate.decide(login('mac-1'))).action).toBe('allow'); // cached now
    await redis.stop();
    const cached = await runtime.gate.decide(login('mac-1'));
    expect(cached.action).toBe('allow'); // last-known, within outageLastKnownMaxSeconds (2 s)
    await new Promise((r) => setTimeout(r, 2200));
    for (const id of ['mac-1', 'iphone-1', 'never-seen']) {
      const t0 = performance.now();
      const d = await runtime.gate.decide(login(id));
      const ms = performance.now() - t0;
      expect(d.action).toBe('tempfail');
      expect(d.reasonCode).toBe('STORE_UNAVAILABLE');
      expect(ms).toBeLessThan(250);
    }
    await redis.start();
    const back = await waitFor(() => runtime.gate.decide(login('never-seen')), (d) => d.action !== 'tempfail', 10000);
    expect(back.reasonCode).toBe('UNKNOWN_DEVICE'); // the store answers again (empty, it was restarted)
  });

  test('no secret used by this suite appears in anything it logged', () => {
    expect(capture.lines.length).toBeGreaterThan(10);
    const all = capture.lines.join('\n');
    for (const secret of secrets) expect(all).not.toContain(secret);
  });
});
