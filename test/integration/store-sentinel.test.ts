// Smoke test of RedisDeviceStore in Sentinel mode: a real redis-server master watched by a real
// redis-sentinel, both on free loopback ports; the store finds the master through the sentinel.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { RedisDeviceStore } from '../../src/store/redis/store';
import { findProgram, freePort, waitForPort } from '../harness/ports';
import { cleanupRedis, startRedis, type RedisServer } from '../harness/redis';
import { record } from './store-contract';

let master: RedisServer;
let sentinel: ChildProcess | null = null;
let sentinelPort = 0;

beforeAll(async () => {
  master = await startRedis();
  const bin = findProgram('redis-server');
  if (!bin) throw new Error('redis-server not found');
  sentinelPort = await freePort();
  // Sentinel rewrites its config file, so it gets its own writable copy in the master's temp dir.
  const conf = path.join(master.dir, 'sentinel.conf');
  fs.writeFileSync(conf, [`port ${sentinelPort}`, 'bind 127.0.0.1', `dir ${master.dir}`, `sentinel monitor mymaster 127.0.0.1 ${master.port} 1`, ''].join('\n'));
  sentinel = spawn(bin, [conf, '--sentinel'], { stdio: 'ignore' });
  await waitForPort(sentinelPort);
});

afterAll(async () => {
  const child = sentinel;
  if (child && child.exitCode === null) {
    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
    });
  }
  await cleanupRedis(master);
});

test('the store reaches the master named by the sentinel and works', async () => {
  const store = new RedisDeviceStore({
    redis: { mode: 'sentinel', sentinels: [{ host: '127.0.0.1', port: sentinelPort }], name: 'mymaster', keyPrefix: 'mw:', commandTimeoutMs: 200, connectTimeoutMs: 2000 },
    auditMaxLen: 10,
  });
  try {
    expect(await store.waitReady(10000)).toBe(true);
    expect(await store.putDevice(record('dev-1'), 60)).toBe(true);
    expect((await store.loadFacts('dev-1', 'alice@example.com', [])).device).toEqual({ state: 'found', record: record('dev-1') });
    expect((await store.listDevices()).map((r) => r.deviceId)).toEqual(['dev-1']);
  } finally {
    await store.close();
  }
});
