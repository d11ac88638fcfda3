// `npm run -s build && node dist/bench/login-path.js`: which of our source files run during ONE IMAP
// login (plain listener, asserted identity, Redis store, the example policy), counted with V8's precise
// coverage: warm up, reset the counters (v8.takeCoverage), log in once, collect — every file under src/
// or plugins/ with a function that ran in that window. The same script, with its imports pointed at the
// older layout, counts an older tree the same way (issue 9 asks for the count before and after).
// Also: calls into each npm package in that window (LOGIN_PATH_FUNCTIONS=winston lists one package's).
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import v8 from 'node:v8';
import { spawnSync } from 'node:child_process';
import Redis from 'ioredis';
import { startRuntime } from '../src/app/runtime';
import { silentLogger } from '../src/core/log';
import { startDovecot } from '../test/harness/dovecot';
import { startRedis, cleanupRedis } from '../test/harness/redis';
import { tempDir } from '../test/harness/ports';

const WARM_UP_LOGINS = 50;
const USER = 'bob@example.com';
const DEVICE = 'path-iphone';

function login(port: number, tag: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let text = '';
    let sent = false;
    const timer = setTimeout(() => reject(new Error(`no answer: ${text}`)), 10000);
    socket.on('data', (d) => {
      text += d.toString('latin1');
      if (!sent && text.includes('\r\n')) {
        sent = true;
        socket.write(`${tag} LOGIN ${USER}+${DEVICE} bob-pw\r\n`);
      }
      const done = new RegExp(`^${tag} (OK|NO|BAD)`, 'm').exec(text);
      if (done) {
        clearTimeout(timer);
        socket.destroy();
        if (done[1] === 'OK') resolve();
        else reject(new Error(text));
      }
    });
    socket.on('error', reject);
  });
}

/** Redis's own count of each command it ran (INFO commandstats), to diff around the login. */
async function commandCounts(redis: Redis): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (const m of (await redis.info('commandstats')).matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) counts.set(m[1]!, Number(m[2]));
  return counts;
}

function newestCoverageFile(dir: string): string {
  const files = fs.readdirSync(dir).map((f) => path.join(dir, f));
  return files.sort((a, b) => fs.statSync(b).mtimeMs - fs.statSync(a).mtimeMs)[0]!;
}

async function measure(coverageDir: string): Promise<void> {
  const repo = path.resolve(__dirname, '../..');
  const redis = await startRedis();
  const dovecot = await startDovecot({});
  const dir = tempDir('login-path');
  fs.copyFileSync(path.join(repo, 'config/policy.yaml'), path.join(dir, 'policy.yaml'));
  const configFile = path.join(dir, 'mailwarden.yaml');
  fs.writeFileSync(
    configFile,
    JSON.stringify({
      instanceName: 'login-path',
      policyFile: 'policy.yaml',
      store: { type: 'redis', redis: { mode: 'standalone', host: redis.host, port: redis.port } },
      identity: { sources: [{ type: 'asserted', separator: '+' }] },
      imap: { listeners: [{ host: '127.0.0.1', port: 0, tls: 'none' }], upstream: { host: dovecot.host, port: dovecot.port, tls: 'none', login: 'passthrough' } },
      logging: { level: 'info' },
    }),
  );
  const runtime = await startRuntime({ configFile, logger: silentLogger(), watch: false });
  try {
    const now = new Date().toISOString();
    await runtime.store.putDevice({ deviceId: DEVICE, user: USER, platform: 'ios', osVersion: '18.3', managed: true, apps: [], reportedAt: now, source: 'bench', receivedAt: now }, 3600);
    const port = runtime.imap!.addresses[0]!.port;
    for (let i = 0; i < WARM_UP_LOGINS; i++) await login(port, `w${i}`);
    await new Promise((r) => setTimeout(r, 200)); // the warm-up's audit batches and timers settle
    const counter = new Redis(redis.port, redis.host);
    const before = await commandCounts(counter);
    v8.takeCoverage(); // resets the counters
    await new Promise((r) => setTimeout(r, 5));
    await login(port, 'a');
    v8.takeCoverage();
    await new Promise((r) => setTimeout(r, 200)); // the login's audit batch is written
    const after = await commandCounts(counter);
    counter.disconnect();
    // The counter's own INFO call is in the diff once: take it out.
    const commands = [...after].map(([c, n]) => [c, n - (before.get(c) ?? 0) - (c === 'info' ? 1 : 0)] as const).filter(([, n]) => n > 0);
    const coverage = JSON.parse(fs.readFileSync(newestCoverageFile(coverageDir), 'utf8')) as {
      result: { url: string; functions: { functionName: string; ranges: { count: number }[] }[] }[];
    };
    const ran = new Map<string, number>();
    const packageCalls = new Map<string, number>();
    for (const script of coverage.result) {
      const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)\/(.*)$/.exec(script.url);
      if (pkg) {
        const calls = script.functions.reduce((sum, f) => sum + f.ranges[0]!.count, 0);
        if (calls > 0) packageCalls.set(pkg[1]!, (packageCalls.get(pkg[1]!) ?? 0) + calls);
        if (process.env.LOGIN_PATH_FUNCTIONS === pkg[1]) {
          for (const f of script.functions) if (f.ranges[0]!.count > 0) console.log(`    ${pkg[2]} ${f.functionName || '(anonymous)'} ×${f.ranges[0]!.count}`);
        }
      }
      const m = /\/dist\/((?:src|plugins)\/.*)\.js$/.exec(script.url);
      if (!m) continue;
      const functions = script.functions.filter((f) => f.ranges[0]!.count > 0).length;
      if (functions > 0) ran.set(`${m[1]}.ts`, functions);
    }
    const files = [...ran.keys()].sort();
    console.log(`source files with code that ran during one IMAP login: ${files.length}`);
    for (const f of files) console.log(`  ${f} (${ran.get(f)} functions)`);
    console.log(`function calls into npm packages: ${[...packageCalls].sort((a, b) => b[1] - a[1]).map(([p, n]) => `${p} ${n}`).join(', ')}`);
    console.log(`Redis commands for that login (its audit batch included): ${commands.map(([c, n]) => `${c} ${n}`).join(', ')}`);
  } finally {
    await runtime.stop(0);
    await dovecot.stop();
    await cleanupRedis(redis);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

if (process.env.NODE_V8_COVERAGE) {
  measure(process.env.NODE_V8_COVERAGE).then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
} else {
  // Precise coverage must be on from the start: run this file again with NODE_V8_COVERAGE set.
  const coverageDir = tempDir('login-path-coverage');
  const child = spawnSync(process.execPath, [__filename], { stdio: 'inherit', env: { ...process.env, NODE_V8_COVERAGE: coverageDir } });
  fs.rmSync(coverageDir, { recursive: true, force: true });
  process.exit(child.status ?? 1);
}
