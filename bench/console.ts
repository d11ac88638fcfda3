// `npm run bench:console`: time to first byte of the console's overview and audit pages (and the
// audit page filtered, and a reference-id lookup) with 100,000 audit entries of the last day and
// 10,000 devices in a real redis-server, served by the real runtime's admin listener. Target:
// ≤ 200 ms (issue 14). Reported: the first overview right after start, how long until the charts
// have counted the day, then p50/p95/max of BENCH_REPS views of each page.
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { hashToken } from '../src/admin/roles';
import { startRuntime } from '../src/app/runtime';
import { loadAll } from '../src/core/config';
import { silentLogger } from '../src/core/log';
import { createStore } from '../src/store/create-store';
import type { DeviceRecord } from '../src/store/device-store';
import { startRedis, cleanupRedis } from '../test/harness/redis';
import { tempDir } from '../test/harness/ports';

const DEVICES = Number(process.env.BENCH_DEVICES ?? 10_000);
const AUDIT = Number(process.env.BENCH_AUDIT ?? 100_000);
const REPS = Number(process.env.BENCH_REPS ?? 40);
const TARGET_MS = 200;
const TOKEN = 'bench-console-viewer-token-4e1b7a';
const TIKTOK = 'com.zhiliaoapp.musically';
const PLATFORMS = ['ios', 'android', 'macos', 'windows'] as const;

// JSON is YAML: the policy file as the decider would read it (two checks, so the overview has two series).
const POLICY = JSON.stringify({
  reportOnly: false,
  helpdesk: 'the IT helpdesk',
  blastRadius: { maxNewlyDeniedPercent: 100, maxNewlyDeniedCount: 1_000_000 },
  brake: { enabled: false },
  checks: [
    { id: 'require-device', plugin: 'require-device', mode: 'enforce', message: 'Enrol this device. Ref {refId}.' },
    {
      id: 'no-tiktok',
      plugin: 'banned-apps',
      mode: 'enforce',
      scope: { platforms: ['ios', 'android'] },
      options: { apps: { ios: [TIKTOK], android: [TIKTOK] }, names: { [TIKTOK]: 'TikTok' } },
      message: 'Remove {app}. Ref {refId}.',
    },
  ],
});

function configYaml(port: number): string {
  return `
instanceName: bench-console
policyFile: policy.yaml
store:
  type: redis
  redis: { mode: standalone, host: 127.0.0.1, port: ${port}, keyPrefix: "mwbc:", commandTimeoutMs: 2000, connectTimeoutMs: 2000 }
admin:
  listen: { host: 127.0.0.1, port: 0 }
  accessTokens: [{ name: bench-viewer, role: viewer, sha256: ${hashToken(TOKEN)} }]
  console: { enabled: true }
identity:
  sources: [{ type: asserted, separator: "+" }]
logging: { level: error }
`;
}

function device(i: number, now: string): DeviceRecord {
  const platform = PLATFORMS[i % PLATFORMS.length]!;
  return {
    deviceId: `dev-${i}`,
    user: `user${i % 4000}@example.com`,
    platform,
    osVersion: '17.5',
    managed: true,
    apps: i % 10 === 0 ? [TIKTOK, 'com.apple.mobilemail'] : ['com.apple.mobilemail'],
    reportedAt: now,
    receivedAt: now,
    source: i % 3 === 0 ? 'intune' : 'mdm-1',
  };
}

/** A reference id (MW- and 8 Crockford base32 characters, as the decider makes them) numbered i. */
function refIdOf(i: number): string {
  const alphabet = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
  let out = '';
  for (let n = i, k = 0; k < 8; k++, n = Math.floor(n / 32)) out = alphabet[n % 32] + out;
  return `MW-${out}`;
}

/** A decision event as the decider writes it, at `at` (spread over the last day). */
function decision(i: number, at: number): Record<string, unknown> {
  const d = i % DEVICES;
  const denied = d % 10 === 0 && d % PLATFORMS.length < 2;
  const refId = refIdOf(i);
  return {
    msg: 'decision',
    user: `user${d % 4000}@example.com`,
    deviceId: `dev-${d}`,
    identitySource: 'asserted',
    identityStrength: 'weak',
    protocol: i % 5 === 0 ? 'smtp' : 'imap',
    checks: [
      { checkId: 'require-device', plugin: 'require-device', mode: 'enforce', effectiveMode: 'enforce', outcome: 'pass', ms: 0.01 },
      { checkId: 'no-tiktok', plugin: 'banned-apps', mode: 'enforce', effectiveMode: 'enforce', outcome: denied ? 'fail' : 'pass', ...(denied ? { code: 'BANNED_APP', reason: 'TikTok is installed' } : {}), ms: 0.02 },
    ],
    action: denied ? 'deny' : 'allow',
    reasonCode: denied ? 'BANNED_APP' : 'OK',
    ...(denied ? { decidedBy: 'no-tiktok' } : {}),
    refId,
    policyVersion: 'bench',
    trigger: 'login',
    at: new Date(at).toISOString(),
  };
}

interface Timed {
  readonly status: number;
  readonly ttfbMs: number;
  readonly totalMs: number;
  readonly bytes: number;
  readonly body: string;
}

function get(base: string, route: string, cookie: string): Promise<Timed> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const req = http.get(`${base}${route}`, { headers: { cookie } }, (res) => {
      const ttfbMs = Number(process.hrtime.bigint() - started) / 1e6;
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode ?? 0, ttfbMs, totalMs: Number(process.hrtime.bigint() - started) / 1e6, bytes: Buffer.byteLength(body), body });
      });
    });
    req.on('error', reject);
    req.setTimeout(30_000, () => req.destroy(new Error(`${route}: no answer in 30 s`)));
  });
}

async function signIn(base: string): Promise<string> {
  const login = await fetch(`${base}/console/login`);
  const pre = login.headers.getSetCookie().map((c) => c.split(';')[0]!).join('; ');
  const csrf = /name="_csrf" value="([^"]+)"/.exec(await login.text())![1]!;
  const res = await fetch(`${base}/console/login`, {
    method: 'POST',
    headers: { cookie: pre, 'content-type': 'application/x-www-form-urlencoded', origin: base },
    body: new URLSearchParams({ _csrf: csrf, token: TOKEN }),
    redirect: 'manual',
  });
  if (res.status !== 303) throw new Error(`sign-in refused: ${res.status}`);
  return res.headers.getSetCookie().map((c) => c.split(';')[0]!).join('; ');
}

const percentile = (sorted: readonly number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
const ms = (n: number) => `${n.toFixed(1)} ms`;

async function main(): Promise<void> {
  const redis = await startRedis();
  const dir = tempDir('bench-console');
  const configFile = path.join(dir, 'mailwarden.yaml');
  fs.writeFileSync(configFile, configYaml(redis.port));
  fs.writeFileSync(path.join(dir, 'policy.yaml'), POLICY);
  try {
    // Seed through the store's own writes, so the layout is the real one.
    const { config } = await loadAll(configFile);
    const seeder = await createStore(config.store, silentLogger());
    const seedStart = Date.now();
    const now = new Date().toISOString();
    for (let i = 0; i < DEVICES; i += 500) {
      await Promise.all(Array.from({ length: Math.min(500, DEVICES - i) }, (_, k) => seeder.putDevice(device(i + k, now), 86_400)));
    }
    const dayAgo = Date.now() - 86_400_000 + 60_000;
    for (let i = 0; i < AUDIT; i += 2000) {
      await Promise.all(Array.from({ length: Math.min(2000, AUDIT - i) }, (_, k) => seeder.appendAudit(decision(i + k, dayAgo + ((i + k) * (86_400_000 - 120_000)) / AUDIT))));
    }
    await seeder.close();
    console.log(`seeded ${DEVICES} devices and ${AUDIT} audit entries (last 24 h) in ${((Date.now() - seedStart) / 1000).toFixed(1)} s`);

    const started = Date.now();
    const runtime = await startRuntime({ configFile, logger: silentLogger(), listeners: false, watch: false });
    const base = `http://127.0.0.1:${runtime.admin!.address.port}`;
    try {
      const cookie = await signIn(base);
      const first = await get(base, '/console/overview', cookie);
      console.log(`first overview after start: TTFB ${ms(first.ttfbMs)} (start ${Date.now() - started} ms ago; ${first.body.includes('Still counting') ? 'charts still counting' : 'charts ready'})`);
      const firstAudit = await get(base, '/console/audit', cookie);
      console.log(`first audit page after start: TTFB ${ms(firstAudit.ttfbMs)} (start ${Date.now() - started} ms ago)`);
      const readyDeadline = Date.now() + 120_000;
      let view = first;
      while (view.body.includes('Still counting') && Date.now() < readyDeadline) {
        await new Promise((r) => setTimeout(r, 100));
        view = await get(base, '/console/overview', cookie);
      }
      console.log(`charts counted the day ${((Date.now() - started) / 1000).toFixed(1)} s after start`);

      const refId = refIdOf(AUDIT - 7);
      // One far older than the entries the console keeps in memory: found by reading the stream.
      const oldRefId = refIdOf(7);
      const pages: Record<string, string | ((rep: number) => string)> = {
        overview: '/console/overview',
        audit: '/console/audit',
        'audit ?check=no-tiktok&since=1h': '/console/audit?check=no-tiktok&since=1h',
        'audit ?user=user7@example.com': '/console/audit?user=user7%40example.com',
        'decision (recent ref id)': `/console/decisions/${refId}`,
        'decision (ref id of 24 h ago)': `/console/decisions/${oldRefId}`,
        // A new unknown id each time: a repeated one is remembered as unknown for a minute.
        'decision (unknown ref id: 404 after reading the stream)': (rep) => `/console/decisions/${refIdOf(AUDIT + 1000 + rep)}`,
        device: '/console/devices/dev-10',
      };
      const times: Record<string, { ttfb: number[]; total: number[]; bytes: number }> = {};
      for (const name of Object.keys(pages)) times[name] = { ttfb: [], total: [], bytes: 0 };
      // Alternate the pages, so a slow moment of the machine falls on all of them alike.
      for (let rep = 0; rep < REPS; rep++) {
        for (const [name, page] of Object.entries(pages)) {
          const route = typeof page === 'string' ? page : page(rep);
          const t = await get(base, route, cookie);
          if (t.status !== (name.includes('404') ? 404 : 200)) throw new Error(`${route}: HTTP ${t.status}: ${t.body.slice(0, 300)}`);
          times[name]!.ttfb.push(t.ttfbMs);
          times[name]!.total.push(t.totalMs);
          times[name]!.bytes = t.bytes;
        }
      }
      console.log(`\n${REPS} views of each page (alternating), time to first byte; the target (≤ ${TARGET_MS} ms) is the overview's and the audit page's:`);
      console.log('| page | p50 | p95 | max | total p95 | bytes | target |');
      console.log('|---|---|---|---|---|---|---|');
      for (const [name, t] of Object.entries(times)) {
        const sorted = [...t.ttfb].sort((a, b) => a - b);
        const total = [...t.total].sort((a, b) => a - b);
        const p95 = percentile(sorted, 95);
        const verdict = !/^(overview|audit)/.test(name) ? '—' : p95 <= TARGET_MS ? 'met' : 'MISSED';
        console.log(`| ${name} | ${ms(percentile(sorted, 50))} | ${ms(p95)} | ${ms(sorted[sorted.length - 1]!)} | ${ms(percentile(total, 95))} | ${t.bytes} | ${verdict} |`);
      }
      console.log(`\nload average: ${fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`);
    } finally {
      await runtime.stop(0);
    }
  } finally {
    await cleanupRedis(redis);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
