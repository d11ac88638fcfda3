// `npm run bench:connectors`: a fake Intune (in a child process) with 100,000 devices and 2,000
// detected apps, synced into a real redis-server: time and peak RSS of the first full sync and of
// a sync in which 1% of the devices changed, and Redis write commands per changed device. The
// baseline, measured in the same run, is the listing alone (fetch + map, nothing stored), in a
// process of its own so that its heap does not count in the syncs' RSS; the fake's CPU time per
// phase says how much of the two cores it took from the sync.
import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { Redis } from 'ioredis';
import { loadAll } from '../src/core/config';
import { compilePolicy } from '../src/policy/compile';
import { policyJudge } from '../src/app/connectors';
import { RedisDeviceStore } from '../src/store/redis/store';
import { RedisConnectorState } from '../src/store/redis/connector-state';
import { HttpClient } from '../src/connectors/http';
import { intuneConnector } from '../src/connectors/intune';
import { clientCredentialsToken } from '../src/connectors/tokens';
import { SyncEngine, type SyncReport } from '../src/connectors/sync';
import { silentLogger } from '../src/core/log';
import { startRedis, cleanupRedis } from '../test/harness/redis';
import { graphDevice, startFakeIntune } from '../test/fakes/intune';

const DEVICES = Number(process.env.BENCH_DEVICES ?? 100_000);
const APPS = Number(process.env.BENCH_APPS ?? 2_000);
const APPS_PER_DEVICE = 5;
const CHANGED_SHARE = 0.01;

// ---- child mode: the fake Graph ----------------------------------------------------------------

async function runFake(): Promise<void> {
  const devices = Array.from({ length: DEVICES }, (_, i) =>
    graphDevice(`dev-${i}`, { userPrincipalName: `user${i % 40_000}@example.com`, operatingSystem: i % 3 === 0 ? 'Android' : 'iOS', osVersion: '17.5.1' }),
  );
  const apps = Array.from({ length: APPS }, (_, a) => ({ id: `app-${a}`, displayName: a === 0 ? 'TikTok' : `App ${a}`, deviceIds: [] as string[] }));
  for (let i = 0; i < DEVICES; i++) for (let k = 0; k < APPS_PER_DEVICE; k++) apps[(i * 7 + k * 389) % APPS]!.deviceIds.push(`dev-${i}`);
  const fake = await startFakeIntune({ devices, apps, pageSize: 1000 });
  process.on('message', (m: { change?: number; cpu?: boolean }) => {
    if (m.cpu) {
      const { user, system } = process.cpuUsage();
      process.send!({ seconds: (user + system) / 1e6 });
      return;
    }
    // Change the OS version of every (1/share)-th device: a content change the sync must write.
    if (m.change) for (let i = 0; i < DEVICES; i += Math.round(1 / m.change)) fake.devices[i] = { ...fake.devices[i]!, osVersion: '17.6' };
    process.send!({ ok: true });
  });
  process.send!({ graphUrl: fake.graphUrl, tokenUrl: fake.tokenUrl, clientId: fake.clientId, clientSecret: fake.clientSecret });
}

type FakeAddress = { graphUrl: string; tokenUrl: string; clientId: string; clientSecret: string };

function benchConnector(fake: FakeAddress) {
  const http = new HttpClient({ requestTimeoutMs: 30_000 });
  const token = clientCredentialsToken(http, { tokenUrl: fake.tokenUrl, clientId: fake.clientId, clientSecret: fake.clientSecret, scope: 'https://graph.microsoft.com/.default' });
  return intuneConnector({ name: 'bench', http, token, graphUrl: fake.graphUrl, deviceId: 'mdm', userField: 'upn' });
}

// ---- child mode: the baseline, the listing alone in a fresh process ------------------------------

async function runListing(): Promise<void> {
  const fake = await request<FakeAddress>(process as unknown as ChildProcess);
  const connector = benchConnector(fake);
  const listing = await measured(async () => (await connector.listDevices({ signal: new AbortController().signal })).devices.length);
  process.send!({ seconds: listing.seconds, peakMb: listing.peakMb, devices: listing.value });
}

// ---- parent -------------------------------------------------------------------------------------

function request<T>(child: ChildProcess, message?: object): Promise<T> {
  return new Promise((resolve) => {
    child.once('message', (m) => resolve(m as T));
    if (message) child.send(message);
  });
}

/** Peak RSS of this process while `fn` runs (sampled every 20 ms), in MB. */
async function measured<T>(fn: () => Promise<T>): Promise<{ value: T; seconds: number; peakMb: number }> {
  let peak = process.memoryUsage().rss;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
  const started = process.hrtime.bigint();
  try {
    const value = await fn();
    return { value, seconds: Number(process.hrtime.bigint() - started) / 1e9, peakMb: Math.max(peak, process.memoryUsage().rss) / 1e6 };
  } finally {
    clearInterval(sampler);
  }
}

/** Write commands Redis counted so far (INFO commandstats; commands run inside scripts count too). */
const WRITE_COMMANDS = ['set', 'del', 'sadd', 'expire', 'pexpire', 'hset', 'hdel', 'publish', 'srem', 'unlink'];
async function redisWrites(client: Redis): Promise<{ writes: number; records: number }> {
  const info = await client.info('commandstats');
  let writes = 0;
  let records = 0;
  for (const match of info.matchAll(/^cmdstat_([a-z|]+):calls=(\d+)/gm)) {
    if (WRITE_COMMANDS.includes(match[1]!)) writes += Number(match[2]);
    // putDevice is one script call per record written.
    if (match[1] === 'evalsha' || match[1] === 'eval') records += Number(match[2]);
  }
  return { writes, records };
}
const delta = (a: { writes: number; records: number }, b: { writes: number; records: number }) => ({ writes: b.writes - a.writes, records: b.records - a.records });

async function main(): Promise<void> {
  const started = Date.now();
  const child = fork(__filename, ['--fake'], { stdio: 'inherit' });
  const redisServer = await startRedis();
  const client = new Redis({ host: redisServer.host, port: redisServer.port, lazyConnect: false });
  const redisConfig = { mode: 'standalone' as const, host: redisServer.host, port: redisServer.port, keyPrefix: 'mwb:', commandTimeoutMs: 5000, connectTimeoutMs: 2000 };
  const store = new RedisDeviceStore({ redis: redisConfig, auditMaxLen: 1000 });
  const state = new RedisConnectorState(redisConfig, store);
  try {
    const fake = await request<FakeAddress>(child);
    const connector = benchConnector(fake);
    // The example policy (TikTok on phones banned): the guard judges every changed device with it.
    const { config, policy, policySource } = await loadAll(path.resolve(__dirname, '../../config/mailwarden.yaml'));
    await store.waitReady(2000);
    const compiled = await compilePolicy(policy, policySource, { pluginDirs: config.pluginDirs });
    const engine = new SyncEngine({
      connector,
      state,
      settings: () => ({ removeAfterAbsentSyncs: 3, recordTtlSeconds: 7 * 86400, syncTimeoutMs: 600_000, maxRemovedPercent: 10, maxInventoryLostPercent: 10 }),
      blastRadius: () => compiled.config.blastRadius,
      isDenied: policyJudge(() => compiled, () => config, () => undefined),
      log: silentLogger(),
    });

    const fakeCpu = async () => (await request<{ seconds: number }>(child, { cpu: true })).seconds;
    const lister = fork(__filename, ['--listing'], { stdio: 'inherit' });
    const listingCpu = await fakeCpu();
    const listing = await request<{ seconds: number; peakMb: number; devices: number }>(lister, fake);
    lister.kill('SIGTERM');
    const fullCpu = await fakeCpu();
    const floorMb = process.memoryUsage().rss / 1e6;
    const full = await measured(() => engine.sync());
    const unchangedCpu = await fakeCpu();
    const beforeUnchanged = await redisWrites(client);
    const unchanged = await measured(() => engine.sync());
    const unchangedWrites = delta(beforeUnchanged, await redisWrites(client));
    await request(child, { change: CHANGED_SHARE });
    const changedCpu = await fakeCpu();
    const beforeChanged = await redisWrites(client);
    const changed = await measured(() => engine.sync());
    const changedWrites = delta(beforeChanged, await redisWrites(client));
    const endCpu = await fakeCpu();
    const fakeShare = (from: number, to: number) => `fake Graph CPU ${(to - from).toFixed(1)} s`;

    const check = (r: SyncReport, what: string) => {
      if (r.result !== 'applied') throw new Error(`${what}: ${r.result} ${r.error ?? r.heldBecause.join('; ')}`);
    };
    check(full.value, 'full sync');
    check(unchanged.value, 'unchanged sync');
    check(changed.value, '1% sync');
    const changedDevices = changed.value.total.changed;
    const perChanged = (changedWrites.writes - unchangedWrites.writes) / changedDevices;
    const lines = [
      `bench:connectors — fake Intune with ${DEVICES} devices, ${APPS} detected apps (${APPS_PER_DEVICE} per device), redis-server, ${new Date().toISOString()}`,
      '',
      `baseline: listing only (fetch + map, own process)   ${listing.seconds.toFixed(1)} s   peak RSS ${listing.peakMb.toFixed(0)} MB   ${listing.devices} devices   ${fakeShare(listingCpu, fullCpu)}`,
      `sync process before the first sync (node, modules, policy, Redis clients): RSS ${floorMb.toFixed(0)} MB`,
      `full sync (${full.value.total.created} created)            ${full.seconds.toFixed(1)} s   peak RSS ${full.peakMb.toFixed(0)} MB   ${(full.seconds / listing.seconds).toFixed(2)}x baseline   ${fakeShare(fullCpu, unchangedCpu)}   target <= 60 s, <= 300 MB`,
      `unchanged sync                         ${unchanged.seconds.toFixed(1)} s   peak RSS ${unchanged.peakMb.toFixed(0)} MB   Redis writes ${unchangedWrites.writes}, records written ${unchangedWrites.records}`,
      `1% changed sync (${changedDevices} changed)       ${changed.seconds.toFixed(1)} s   peak RSS ${changed.peakMb.toFixed(0)} MB   Redis writes ${changedWrites.writes}, records written ${changedWrites.records}   ${fakeShare(changedCpu, endCpu)}`,
      `Redis write commands per changed device: ${perChanged.toFixed(2)} (1% sync minus the unchanged sync's fixed ${unchangedWrites.writes})`,
      `verdict: full sync ${full.seconds <= 60 && full.peakMb <= 300 ? 'within' : 'OUTSIDE'} the targets; 1% sync wrote ${changedWrites.records === changedDevices && unchangedWrites.records === 0 ? 'only' : 'NOT only'} the ${changedDevices} changed records`,
      `total bench time ${((Date.now() - started) / 1000).toFixed(0)} s`,
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    child.kill('SIGTERM');
    await state.close();
    await store.close();
    client.disconnect();
    await cleanupRedis(redisServer);
  }
}

if (process.argv.includes('--fake')) void runFake();
else if (process.argv.includes('--listing')) void runListing().finally(() => process.exit(0));
else main().catch((err: unknown) => {
  process.stderr.write(`bench:connectors failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
});
