// `npm run bench`: decisions per second and p50/p99 decision latency of the policy decider, with a
// warm in-process cache and with every lookup a cache miss against a real redis-server (started
// here on a free loopback port). Bounded: a fixed number of decisions per phase, and a time cap.
import path from 'node:path';
import { loadAll } from '../src/core/config';
import type { MailwardenConfig } from '../src/core/config-types';
import { silentLogger } from '../src/core/log';
import { compilePolicy } from '../src/policy/compile';
import { Decider } from '../src/policy/decider';
import type { DecisionRequest } from '../src/policy/decision';
import { CachedDeviceStore } from '../src/store/cached-store';
import { RedisDeviceStore } from '../src/store/redis/store';
import type { DeviceStore } from '../src/store/device-store';
import { startRedis, cleanupRedis } from '../test/harness/redis';

const DEVICES = 5000;
const DECISIONS = Number(process.env.BENCH_DECISIONS ?? 50000);
/** 1 caller shows the latency of one decision; 50 callers, the throughput under load. */
const CONCURRENCY_LEVELS = [1, 50];
const TIME_CAP_MS = 60000;

interface PhaseResult {
  readonly name: string;
  readonly decisions: number;
  readonly perSecond: number;
  readonly p50ms: number;
  readonly p99ms: number;
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

function requestFor(i: number): DecisionRequest {
  const n = i % DEVICES;
  return { user: `u${n}@example.com`, deviceId: `d${n}`, protocol: 'imap', identitySource: 'app-password', identityStrength: 'strong' };
}

async function phase(name: string, decider: Decider, count: number, concurrency: number): Promise<PhaseResult> {
  const latencies: number[] = [];
  let next = 0;
  const started = performance.now();
  const deadline = started + TIME_CAP_MS;
  async function worker(): Promise<void> {
    while (next < count && performance.now() < deadline) {
      const i = next++;
      const t0 = performance.now();
      const decision = await decider.decide(requestFor(i));
      latencies.push(performance.now() - t0);
      if (decision.action === 'tempfail') throw new Error(`${name}: unexpected tempfail (${decision.reasonCode})`);
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker));
  const seconds = (performance.now() - started) / 1000;
  await decider.idle();
  latencies.sort((a, b) => a - b);
  return { name, decisions: latencies.length, perSecond: latencies.length / seconds, p50ms: percentile(latencies, 50), p99ms: percentile(latencies, 99) };
}

async function main(): Promise<void> {
  const root = path.resolve(__dirname, '..', '..');
  const loaded = await loadAll(path.join(root, 'config', 'mailwarden.yaml'));
  const policy = await compilePolicy(loaded.policy, loaded.policySource, { pluginDirs: [] });
  const redis = await startRedis();
  const log = silentLogger();
  const redisConfig = {
    mode: 'standalone' as const,
    host: redis.host,
    port: redis.port,
    keyPrefix: 'mw:',
    commandTimeoutMs: 500,
    connectTimeoutMs: 2000,
  };
  const config: MailwardenConfig = { ...loaded.config, store: { ...loaded.config.store, type: 'redis', redis: redisConfig } };
  const inner = new RedisDeviceStore({ redis: redisConfig, auditMaxLen: 10000, log });
  await inner.waitReady(2000);
  try {
    const now = new Date().toISOString();
    for (let i = 0; i < DEVICES; i++) {
      const mobile = i % 2 === 0;
      await inner.putDevice(
        {
          deviceId: `d${i}`,
          user: `u${i}@example.com`,
          platform: mobile ? 'ios' : 'macos',
          osVersion: '17.5',
          managed: true,
          apps: i % 10 === 0 ? ['com.zhiliaoapp.musically', 'com.apple.mobilemail'] : ['com.apple.mobilemail'],
          reportedAt: now,
          source: 'bench',
          receivedAt: now,
        },
        3600,
      );
    }
    const makeDecider = (store: DeviceStore) =>
      new Decider({ store, log, getPolicy: () => policy, getConfig: () => config });

    const warmStore = new CachedDeviceStore(inner, { maxEntries: DEVICES * 2, maxAgeMs: 600000, outageLastKnownMaxSeconds: 0 });
    await warmStore.start();
    const warm = makeDecider(warmStore);
    await phase('warm-up', warm, DEVICES, 50); // fills the cache
    // The miss phases use the uncached store: every decision is one pipelined round trip to Redis.
    const cold = makeDecider(inner);
    const results: PhaseResult[] = [];
    for (const concurrency of CONCURRENCY_LEVELS) {
      results.push(await phase(`warm cache, ${concurrency} caller(s)`, warm, DECISIONS, concurrency));
      results.push(await phase(`cache miss (redis), ${concurrency} caller(s)`, cold, Math.min(DECISIONS, 20000), concurrency));
    }
    await warmStore.close();

    console.log(`decisions: ${DEVICES} devices, example policy, every decision audited to the Redis stream`);
    console.log('| phase | decisions | decisions/s | p50 ms | p99 ms |');
    console.log('|---|---|---|---|---|');
    for (const r of results) {
      console.log(`| ${r.name} | ${r.decisions} | ${r.perSecond.toFixed(0)} | ${r.p50ms.toFixed(3)} | ${r.p99ms.toFixed(3)} |`);
    }
  } finally {
    await inner.close().catch(() => undefined);
    await cleanupRedis(redis);
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.stack : err);
  process.exitCode = 1;
});
