// `workers: 2` (node:cluster, src/app/workers.ts): the built `mailwarden start` forks two workers on
// the same listening port, in front of a real Dovecot and a real redis-server. Logins are shared
// between the workers, a device report revokes the sessions of both, SIGTERM stops all three processes.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { freePort, tempDir } from '../harness/ports';
import { startRedis, cleanupRedis, type RedisServer } from '../harness/redis';
import { startDovecot, type DovecotServer } from '../harness/dovecot';
import { RawClient } from '../unit/imap-fakes';
import { createStore } from '../../src/store/create-store';
import type { CachedDeviceStore } from '../../src/store/cached-store';
import { loadConfigFile } from '../../src/core/config';
import { createLogger } from '../../src/core/log';

const ROOT = path.resolve(__dirname, '../..');
const CLI = path.join(ROOT, 'dist/src/cli/index.js');
const TIKTOK = 'com.zhiliaoapp.musically';
const TOKEN = 'workers-test-admin-token';

let redis: RedisServer;
let dovecot: DovecotServer;
let store: CachedDeviceStore;
let dir: string;
let imapPort: number;
let adminPort: number;
let child: ChildProcess;
let output = '';

function writeConfig(): string {
  const config = YAML.parse(fs.readFileSync(path.join(ROOT, 'config/mailwarden.yaml'), 'utf8'));
  config.workers = 2;
  config.store = { type: 'redis', redis: { mode: 'standalone', host: '127.0.0.1', port: redis.port, keyPrefix: 'mwworkers:' }, cache: { maxEntries: 0, maxAgeMs: 0 } };
  config.admin.listen = { host: '127.0.0.1', port: adminPort };
  config.admin.tokens = [TOKEN];
  config.admin.console.enabled = false;
  config.identity = { sources: [{ type: 'asserted', separator: '+' }] };
  config.imap.listeners = [{ host: '127.0.0.1', port: imapPort, tls: 'none' }];
  config.imap.upstream = { host: '127.0.0.1', port: dovecot.port, tls: 'none', login: 'passthrough' };
  config.imap.drainMs = 500;
  delete config.smtp;
  // info: the primary's "every worker is serving" line, which the tests wait for.
  config.logging = { level: 'info', format: 'json' };
  fs.copyFileSync(path.join(ROOT, 'config/policy.yaml'), path.join(dir, 'policy.yaml'));
  const file = path.join(dir, 'mailwarden.yaml');
  fs.writeFileSync(file, YAML.stringify(config));
  return file;
}

async function report(deviceId: string, apps: string[]): Promise<void> {
  const now = new Date().toISOString();
  await store.putDevice({ deviceId, user: 'alice@example.com', platform: 'ios', osVersion: '18.3', managed: true, apps, reportedAt: now, source: 'test', receivedAt: now }, 3600);
}

/** The primary's children: its workers' PIDs. */
function workerPids(): number[] {
  try {
    return execFileSync('pgrep', ['-P', String(child.pid)], { encoding: 'utf8' }).trim().split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** Live IMAP sessions of the worker that serves the admin API (the first). */
async function firstWorkerSessions(): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).text();
  return Number(/^mailwarden_sessions_active\{protocol="imap"\} (\d+)$/m.exec(text)?.[1] ?? 0);
}

async function until(what: string, check: () => boolean | Promise<boolean>, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`${what} did not happen; output:\n${output}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

beforeAll(async () => {
  [redis, dovecot] = await Promise.all([startRedis(), startDovecot()]);
  dir = tempDir('workers');
  [imapPort, adminPort] = [await freePort(), await freePort()];
  const configFile = writeConfig();
  store = await createStore((await loadConfigFile(configFile)).store, createLogger({ level: 'error' }));
  await report('alice-phone', []);
  child = spawn(process.execPath, [CLI, 'start', '--config', configFile], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  // Both workers serving: before that, the primary hands connections only to the one already listening.
  // Three Node processes load the whole program: under the full suite's load that took over 15 s.
  await until('two workers serving', async () => workerPids().length === 2 && output.includes('every worker is serving') && (await fetch(`http://127.0.0.1:${adminPort}/healthz`).then(() => true, () => false)), 60_000);
}, 90_000);

afterAll(async () => {
  if (child && child.exitCode === null) child.kill('SIGKILL');
  await store?.close();
  await dovecot?.cleanup();
  if (redis) await cleanupRedis(redis);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('logins are shared by the two workers, and a report for the device ends the sessions in both', async () => {
  const clients: RawClient[] = [];
  for (let i = 0; i < 4; i++) {
    const raw = await RawClient.connect(imapPort);
    await raw.waitFor(/^\* OK/);
    raw.write(`a1 LOGIN alice@example.com+alice-phone alice-pw\r\na2 SELECT INBOX\r\na3 IDLE\r\n`);
    await raw.waitFor(/\+ idling/);
    clients.push(raw);
  }
  // Round robin: the first worker holds some of the four sessions, the other worker the rest.
  const onFirst = await firstWorkerSessions();
  expect(onFirst).toBeGreaterThan(0);
  expect(onFirst).toBeLessThan(4);

  await report('alice-phone', [TIKTOK]);
  await Promise.all(clients.map((c) => c.waitClosed()));
  for (const c of clients) expect(c.data).toMatch(/\* BYE Company mail is blocked on this iOS device because TikTok is installed\./);
});

test('SIGTERM stops the workers and the primary with status 0', async () => {
  const pids = workerPids();
  expect(pids).toHaveLength(2);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.kill('SIGTERM');
  expect(await exited).toBe(0);
  const alive = pids.filter((pid) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  });
  expect(alive).toEqual([]);
}, 30_000);
