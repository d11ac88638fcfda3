// `npm run -s build && node dist/bench/store-loadfacts.js`: round-trip latency of RedisDeviceStore.loadFacts
// (the one pipeline a login decision needs) against a real redis-server on a free loopback port.
// Bounded: a fixed number of calls per phase and a time cap.
import { RedisDeviceStore } from '../src/store/redis/store';
import { cleanupRedis, startRedis } from '../test/harness/redis';

const DEVICES = 1000;
const CALLS = Number(process.env.BENCH_CALLS ?? 5000);
const TIME_CAP_MS = 30000;
const CHECKS = ['banned-apps', 'require-device', 'min-os-version'];

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

async function phase(name: string, store: RedisDeviceStore, concurrency: number): Promise<void> {
  const latencies: number[] = [];
  let next = 0;
  const started = performance.now();
  const deadline = started + TIME_CAP_MS;
  const worker = async (): Promise<void> => {
    while (next < CALLS && performance.now() < deadline) {
      const n = next++ % DEVICES;
      const t0 = performance.now();
      const facts = await store.loadFacts(`d${n}`, `u${n}@example.com`, CHECKS);
      latencies.push(performance.now() - t0);
      if (facts.device?.state !== 'found') throw new Error(`device d${n} not found`);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const ms = (v: number): string => v.toFixed(3);
  console.log(
    `${name}: ${latencies.length} calls, ${Math.round(latencies.length / seconds)}/s, p50 ${ms(percentile(latencies, 50))} ms, p99 ${ms(percentile(latencies, 99))} ms, max ${ms(latencies.at(-1) ?? 0)} ms`,
  );
}

async function main(): Promise<void> {
  const server = await startRedis();
  const store = new RedisDeviceStore({
    redis: { mode: 'standalone', host: server.host, port: server.port, keyPrefix: 'bench:', commandTimeoutMs: 200, connectTimeoutMs: 2000 },
    auditMaxLen: 1000,
  });
  try {
    if (!(await store.waitReady(5000))) throw new Error('redis not ready');
    const now = new Date().toISOString();
    for (let n = 0; n < DEVICES; n++) {
      await store.putDevice(
        { deviceId: `d${n}`, user: `u${n}@example.com`, platform: 'ios', osVersion: '17.4', managed: true, apps: ['com.apple.mobilemail'], reportedAt: now, source: 'bench', receivedAt: now },
        3600,
      );
      if (n % 3 === 0) await store.markFirstSeenNoncompliant(`d${n}`, 'banned-apps', Date.now());
    }
    await phase('warm-up', store, 1);
    await phase('loadFacts, 1 in flight', store, 1);
    await phase('loadFacts, 50 in flight', store, 50);
  } finally {
    await store.close();
    await cleanupRedis(server);
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
