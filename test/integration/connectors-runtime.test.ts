// `mailwarden start` runs the configured connectors: two runtime instances on one real redis-server
// and a fake Intune. Exactly one instance syncs the connector per interval (the lease and the shared
// status), both show the same status (admin API, the built CLI, /readyz, /metrics), a lease left by
// a holder that died blocks syncs only until it expires, and a reload that disables the connector
// stops its syncs.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { startRuntime, type Runtime } from '../../src/app/runtime';
import { silentLogger } from '../../src/core/log';
import { startRedis, cleanupRedis, type RedisServer } from '../harness/redis';
import { tempDir } from '../harness/ports';
import { writeAppPasswordKey } from '../harness/app-password-key';
import { graphDevice, startFakeIntune, type FakeIntune } from '../fakes/intune';

const CLI = path.resolve(__dirname, '../../dist/src/cli/index.js');
const TOKEN = 'connectors-runtime-admin-token-8d2e';
const INTERVAL_MS = 1500;
const LEASE_MS = 1500;

const POLICY = `
reportOnly: false
helpdesk: "helpdesk@example.com"
blastRadius: { maxNewlyDeniedPercent: 100, maxNewlyDeniedCount: 100000 }
brake: { enabled: false }
checks:
  - id: require-device
    plugin: require-device
    mode: enforce
    message: "Enrol this device. Ref {refId}."
`;

function configYaml(instance: string, redis: RedisServer, fake: FakeIntune, enabled = true): string {
  return `
instanceName: ${instance}
policyFile: policy.yaml
store:
  type: redis
  redis: { mode: standalone, host: ${redis.host}, port: ${redis.port}, keyPrefix: "mwcr:", commandTimeoutMs: 500, connectTimeoutMs: 1000 }
admin:
  listen: { host: 127.0.0.1, port: 0 }
  tokens: [${TOKEN}]
identity:
  sources:
    - type: app-password
      hmacKeyFile: app-password.key
connectors:
  - type: intune
    name: intune
    enabled: ${enabled}
    tenantId: ${fake.tenantId}
    clientId: ${fake.clientId}
    clientSecret: { file: intune.secret }
    tokenUrl: ${fake.tokenUrl}
    graphUrl: ${fake.graphUrl}
`;
}

let redis: RedisServer;
let fake: FakeIntune;
const dirs: Record<string, string> = {};
const runtimes: Record<string, Runtime> = {};

async function start(instance: string): Promise<Runtime> {
  const dir = (dirs[instance] ??= tempDir(`conn-${instance}`));
  fs.writeFileSync(path.join(dir, 'mailwarden.yaml'), configYaml(instance, redis, fake));
  fs.writeFileSync(path.join(dir, 'policy.yaml'), POLICY);
  fs.writeFileSync(path.join(dir, 'intune.secret'), `${fake.clientSecret}\n`);
  writeAppPasswordKey(dir);
  const runtime = await startRuntime({
    configFile: path.join(dir, 'mailwarden.yaml'),
    logger: silentLogger(),
    listeners: false,
    watch: false,
    connectorTiming: { leaseMs: LEASE_MS, startDelayMs: 50, intervalMs: INTERVAL_MS, statusPollMs: 200 },
  });
  runtimes[instance] = runtime;
  return runtime;
}

const adminUrl = (runtime: Runtime) => `http://127.0.0.1:${runtime.admin!.address.port}`;
async function get(runtime: Runtime, route: string): Promise<{ status: number; text: string }> {
  const response = await fetch(`${adminUrl(runtime)}${route}`, { headers: { authorization: `Bearer ${TOKEN}` } });
  return { status: response.status, text: await response.text() };
}

/** Syncs that listed the inventory: each begins with the first page of managedDevices. */
const syncs = () => fake.server.requests.filter((r) => r.path === '/v1.0/deviceManagement/managedDevices' && !r.query.has('$skiptoken')).length;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(probe: () => boolean | Promise<boolean>, timeoutMs = 8000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error('timed out');
    await sleep(25);
  }
}

beforeAll(async () => {
  redis = await startRedis();
  fake = await startFakeIntune({
    pageSize: 2,
    devices: [
      graphDevice('iphone-1', { userPrincipalName: 'alice@example.com' }),
      graphDevice('mac-1', { userPrincipalName: 'alice@example.com', operatingSystem: 'macOS', osVersion: '14.5', model: 'MacBook Pro' }),
      graphDevice('pixel-1', { userPrincipalName: 'bob@example.com', operatingSystem: 'Android', osVersion: '14' }),
    ],
    apps: [{ id: 'outlook', displayName: 'Outlook', deviceIds: ['iphone-1', 'pixel-1'] }],
  });
  await Promise.all([start('a'), start('b')]);
});

afterAll(async () => {
  await Promise.all(Object.values(runtimes).map((r) => r.stop(0)));
  await fake?.stop();
  await cleanupRedis(redis);
  for (const dir of Object.values(dirs)) fs.rmSync(dir, { recursive: true, force: true });
});

test('both instances start the connector; exactly one syncs it per interval, and both show the same status', async () => {
  const { a, b } = runtimes;
  await until(() => syncs() >= 1);
  const first = syncs();
  const window = 3 * INTERVAL_MS + 500;
  await sleep(window);
  const during = syncs() - first;
  // One sync per interval across both instances (2 or 3 in 3⅓ intervals); two schedulers each
  // syncing once per interval would make about 6.
  expect(during).toBeGreaterThanOrEqual(2);
  expect(during).toBeLessThanOrEqual(3);

  const [viewA, viewB] = await Promise.all([get(a!, '/v1/connectors'), get(b!, '/v1/connectors')]);
  expect(viewA.status).toBe(200);
  const statusA = JSON.parse(viewA.text).connectors[0];
  expect(statusA).toMatchObject({ name: 'intune', type: 'intune', enabled: true, stale: false, held: false, status: { result: 'applied', devicesSeen: 3 } });
  expect(['a', 'b']).toContain(statusA.status.instance);
  expect(JSON.parse(viewB.text).connectors[0].status.lastSuccessAt).toBeDefined();

  // The records went through the device store: the MacBook is known to the decider.
  const mac = await a!.gate.decide({ user: 'alice@example.com', deviceId: 'mac-1', protocol: 'imap', identitySource: 'app-password', identityStrength: 'strong' });
  expect(mac.action).toBe('allow');

  const ready = await get(b!, '/readyz');
  expect(ready.status).toBe(200);
  expect(JSON.parse(ready.text)).toMatchObject({ status: 'ready', connectors: { intune: 'ok' } });
  const metrics = await get(b!, '/metrics');
  expect(metrics.text).toMatch(/^mailwarden_connector_last_success_timestamp_seconds\{connector="intune"\} \d+/m);
  expect(metrics.text).toMatch(/^mailwarden_connector_source_stale\{connector="intune"\} 0$/m);
  expect(metrics.text).toMatch(/^mailwarden_connector_devices\{connector="intune"\} 3$/m);
});

test('the built CLI against a running instance: status, and a dry run', async () => {
  const run = promisify(execFile);
  const target = ['--url', adminUrl(runtimes.b!), '--token', TOKEN];
  const status = await run(process.execPath, [CLI, 'connector', 'status', ...target]);
  expect(status.stdout).toMatch(/intune\s.*ok/);
  const dry = await run(process.execPath, [CLI, 'connector', 'sync', 'intune', '--dry-run', ...target]);
  expect(dry.stdout).toMatch(/connector intune: dry run, nothing written/);
  expect(dry.stdout).toMatch(/^all\s+3\s+0\s+0\s+0\s+0\s+0$/m);
  // A dry run is not an attempt: the shared status keeps the last real sync.
  expect(JSON.parse((await get(runtimes.b!, '/v1/connectors')).text).connectors[0].status.result).toBe('applied');
});

test('a lease left by a holder that died blocks syncs until it expires; then the live instance syncs', async () => {
  await runtimes.a!.stop(0);
  delete runtimes.a;
  // What a killed instance leaves behind: its lease, with the lifetime it last renewed.
  const raw = new Redis({ host: redis.host, port: redis.port });
  await until(async () => (await raw.set('mwcr:connector:{intune}:lease', 'a:killed', 'PX', LEASE_MS, 'NX')) === 'OK');
  const planted = Date.now();
  const before = syncs();
  await until(async () => (await raw.exists('mwcr:connector:{intune}:lease')) === 0, LEASE_MS + 1000);
  // Nobody synced while the dead holder's lease lived.
  expect(syncs()).toBe(before);
  expect(Date.now() - planted).toBeGreaterThanOrEqual(LEASE_MS - 50);
  raw.disconnect();
  const status = async () => JSON.parse((await get(runtimes.b!, '/v1/connectors')).text).connectors[0].status;
  await until(async () => Date.parse((await status())?.lastAttemptAt ?? '0') > planted, 2 * INTERVAL_MS + 1000);
  expect(syncs()).toBeGreaterThan(before);
  expect(await status()).toMatchObject({ instance: 'b', result: 'applied' });
});

test('a reload that disables the connector stops its syncs', async () => {
  const b = runtimes.b!;
  fs.writeFileSync(path.join(dirs.b!, 'mailwarden.yaml'), configYaml('b', redis, fake, false));
  expect(await b.reload()).toMatchObject({ result: 'ok' });
  await sleep(200);
  const before = syncs();
  await sleep(2 * INTERVAL_MS);
  expect(syncs()).toBe(before);
  expect(JSON.parse((await get(b, '/readyz')).text).connectors).toEqual({ intune: 'disabled' });
});
