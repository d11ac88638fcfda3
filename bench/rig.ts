// mailwarden as the third column of ../shared/perf-rig. `node dist/bench/rig.js` is the rig's EXTRA_CMD:
// it writes a config for the rig's Redis, Dovecot and smtp-sink, seeds the rig's devices through the
// store API, then runs the proxy in the foreground until SIGTERM. `node dist/bench/rig.js run-anchors`
// runs the whole rig with that column (a copy whose SMTP sanity check mailwarden can pass, see
// patchedRig). Usage and the full command line: bench/README.md.
import { execFileSync, spawn } from 'node:child_process';
import cluster from 'node:cluster';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfigFile } from '../src/core/config';
import Redis from 'ioredis';
import { findRig } from './perf-rig';
import { serveFloor } from './floor-proxy';
import { createLogger } from '../src/core/log';
import { startRuntime } from '../src/app/runtime';
import { runPrimary } from '../src/app/workers';
import { createStore } from '../src/store/create-store';
import type { DeviceRecord } from '../src/store/device-store';

/** The rig's users u0..u<NUSERS-1> log in with devices d0..; `bulk` uses dbulk; `dbad` must be refused. */
const TIKTOK_IOS = 'com.zhiliaoapp.musically';
const SEED_TTL_SECONDS = 24 * 3600; // longer than any rig run
const DEFAULT_PORTS = { imap: 12143, imaps: 12993, smtp: 12587 };
/** More than the rig's idle phase can open under its fd limit ((20000 - 1000) / 2 sessions). */
const IDLE_SESSIONS_MAX = 12000;

function envPort(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`${name}=${raw}: not a TCP port`);
  return port;
}

function requiredPort(name: string): number {
  if (!process.env[name]) throw new Error(`${name} is not set: run this as EXTRA_CMD of ../shared/perf-rig/run-anchors.sh (or export it)`);
  return envPort(name, 0);
}

/** mailwarden's own listener ports: MW_IMAP_PORT, MW_IMAPS_PORT, MW_SMTP_PORT or the defaults. */
function ourPorts(): typeof DEFAULT_PORTS {
  return {
    imap: envPort('MW_IMAP_PORT', DEFAULT_PORTS.imap),
    imaps: envPort('MW_IMAPS_PORT', DEFAULT_PORTS.imaps),
    smtp: envPort('MW_SMTP_PORT', DEFAULT_PORTS.smtp),
  };
}

type Settings = ReturnType<typeof readSettings>;

/** The rig's exported ports (run-anchors.sh), ours, and the store knobs. */
function readSettings() {
  return {
    redisPort: requiredPort('REDIS_PORT'),
    dovecotPort: requiredPort('DOVECOT_IMAP_PORT'),
    sinkPort: requiredPort('SINK_PORT'),
    ports: ourPorts(),
    users: Number(process.env.NUSERS ?? 1000),
    keyPrefix: process.env.MW_KEY_PREFIX ?? 'mwrig:',
    // Off by default: every login then costs one Redis round trip, as nginx's auth_http lookup does.
    cache: process.env.MW_CACHE === '1',
    // The `workers` setting (1: one process; the rig's nginx runs worker_processes auto).
    workers: Number(process.env.MW_WORKERS ?? 1),
    // `floor`: a bare Node.js proxy (bench/floor-proxy.ts) in this column instead of mailwarden.
    proxy: process.env.MW_PROXY === 'floor' ? 'floor' : 'mailwarden',
  };
}

function selfSignedCert(dir: string): { cert: string; key: string } {
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '30', '-subj', '/CN=mailwarden.rig.test', '-keyout', key, '-out', cert],
    { stdio: 'ignore' },
  );
  return { cert, key };
}

function writeConfig(dir: string, settings: Settings): string {
  fs.copyFileSync(path.join(__dirname, '../../config/policy.yaml'), path.join(dir, 'policy.yaml'));
  const upstream = { host: '127.0.0.1', tls: 'none', login: 'passthrough' } as const;
  const config = {
    instanceName: 'perf-rig',
    workers: settings.workers,
    policyFile: 'policy.yaml',
    tls: selfSignedCert(dir),
    store: {
      type: 'redis',
      redis: { mode: 'standalone', host: '127.0.0.1', port: settings.redisPort, keyPrefix: settings.keyPrefix },
      cache: settings.cache ? { maxEntries: 50000, maxAgeMs: 30000 } : { maxEntries: 0, maxAgeMs: 0 },
    },
    identity: { sources: [{ type: 'asserted', separator: '+' }] },
    imap: {
      listeners: [
        { host: '127.0.0.1', port: settings.ports.imap, tls: 'none' },
        { host: '127.0.0.1', port: settings.ports.imaps, tls: 'implicit' },
      ],
      upstream: { ...upstream, port: settings.dovecotPort },
      drainMs: 1000,
      // Every rig client comes from 127.0.0.1: lift the per-address and listener caps (defaults 100
      // and 4000) so the idle phase measures sessions, not the cap; the rig's fd limit (20000) bounds it.
      maxConnections: IDLE_SESSIONS_MAX,
      maxConnectionsPerAddress: IDLE_SESSIONS_MAX,
    },
    smtp: {
      listeners: [{ host: '127.0.0.1', port: settings.ports.smtp, tls: 'none' }],
      // Asserted identities are always passthrough: AUTH PLAIN with the client's password upstream.
      upstream: { ...upstream, port: settings.sinkPort, xclient: false },
      hostname: 'mailwarden.rig.test',
    },
    logging: { level: 'warn' },
  };
  const file = path.join(dir, 'mailwarden.yaml');
  fs.writeFileSync(file, JSON.stringify(config, null, 2)); // JSON is YAML
  return file;
}

function device(deviceId: string, user: string, apps: string[], now: string): DeviceRecord {
  return { deviceId, user, platform: 'ios', osVersion: '18.3', managed: true, apps, reportedAt: now, source: 'perf-rig', receivedAt: now };
}

/** d0..d<users-1> and dbulk compliant iOS devices, dbad an iOS device with TikTok. */
async function seedDevices(configFile: string, settings: Settings): Promise<void> {
  const config = await loadConfigFile(configFile);
  const store = await createStore(config.store, createLogger({ level: 'warn' }));
  try {
    await store.ping();
    const now = new Date().toISOString();
    const records = [
      ...Array.from({ length: settings.users }, (_, i) => device(`d${i}`, `u${i}`, [], now)),
      device('dbulk', 'bulk', [], now),
      device('dbad', 'u1', [TIKTOK_IOS], now),
    ];
    for (let i = 0; i < records.length; i += 100) {
      await Promise.all(records.slice(i, i + 100).map((r) => store.putDevice(r, SEED_TTL_SECONDS)));
    }
  } finally {
    await store.close();
  }
}

async function serve(): Promise<void> {
  const settings = readSettings();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mailwarden-rig-'));
  try {
    const configFile = writeConfig(dir, settings);
    await seedDevices(configFile, settings);
    if (settings.proxy === 'floor') return await runFloor(configFile, settings);
    if (settings.workers > 1) {
      // Each worker runs `mailwarden start` on this config, as a deployment with `workers` does.
      cluster.setupPrimary({ exec: path.join(__dirname, '../src/cli/index.js'), args: ['start', '--config', configFile], silent: false });
      process.stderr.write(`mailwarden rig: ${settings.workers} workers\n`);
      await runPrimary(settings.workers, createLogger({ level: 'warn' }), 1000);
      return;
    }
    const runtime = await startRuntime({ configFile, watch: false });
    process.stderr.write(
      `mailwarden rig: imap 127.0.0.1:${settings.ports.imap}, imaps ${settings.ports.imaps}, smtp ${settings.ports.smtp}; ` +
        `redis :${settings.redisPort} prefix ${settings.keyPrefix} cache ${settings.cache ? 'on' : 'off'}; ${settings.users + 2} devices seeded\n`,
    );
    await untilSignal();
    await runtime.stop(1000);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function untilSignal(): Promise<void> {
  return new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
}

/** The floor column: the same seeded devices and certificate, the bare proxy of bench/floor-proxy.ts. */
async function runFloor(configFile: string, settings: Settings): Promise<void> {
  const config = await loadConfigFile(configFile);
  const redis = new Redis({ host: '127.0.0.1', port: settings.redisPort });
  const tlsFiles = { cert: fs.readFileSync(config.tls!.cert, 'utf8'), key: fs.readFileSync(config.tls!.key, 'utf8') };
  const close = await serveFloor(
    { redis, keyPrefix: settings.keyPrefix, bannedApp: TIKTOK_IOS, imapUpstreamPort: settings.dovecotPort, smtpUpstreamPort: settings.sinkPort, tls: tlsFiles },
    settings.ports,
  );
  process.stderr.write(`mailwarden rig: FLOOR proxy (bench/floor-proxy.ts) on imap ${settings.ports.imap}, imaps ${settings.ports.imaps}, smtp ${settings.ports.smtp}\n`);
  await untilSignal();
  close();
  redis.disconnect();
}

const SMTP_BAD_DEVICE_CHECK = "smtpSession(t, 'u1+dbad', 0)";

/**
 * The rig's SMTP sanity check logs in as `u1+dbad` and sends no message, so it sees a refusal only at
 * AUTH (nginx: 535). docs/smtp.md has mailwarden accept AUTH and refuse at MAIL FROM with 550 5.7.1 (clients
 * show that sentence and keep the password), which that check reads as "let in". The copy sends one
 * message instead, so a refusal at AUTH or at MAIL FROM both count, and a proxy that lets the message
 * through still fails. Nothing else in the rig changes. Returns null when the rig already does that.
 */
function patchedRig(rig: string): string | null {
  const benchJs = fs.readFileSync(path.join(rig, 'node', 'bench.js'), 'utf8');
  if (!benchJs.includes(SMTP_BAD_DEVICE_CHECK)) return null;
  const copy = fs.mkdtempSync(path.join(os.tmpdir(), 'perf-rig-copy-'));
  fs.cpSync(rig, copy, { recursive: true });
  execFileSync('chmod', ['-R', 'u+w', copy]); // the shared rig is read-only
  fs.writeFileSync(path.join(copy, 'node', 'bench.js'), benchJs.replace(SMTP_BAD_DEVICE_CHECK, "smtpSession(t, 'u1+dbad', 1)"));
  return copy;
}

/** Runs run-anchors.sh with mailwarden as the third column; every rig knob (PHASES, REPS, …) passes through. */
async function runAnchors(): Promise<number> {
  const rig = findRig();
  const copy = patchedRig(rig);
  const ports = ourPorts();
  const env = {
    EXTRA_CMD: `${process.execPath} ${__filename}`,
    EXTRA_WAIT_PORT: String(ports.imap),
    EXTRA_IMAP_TARGET: `ours=127.0.0.1:${ports.imap}/dev`,
    EXTRA_IMAPS_TARGET: `ours=127.0.0.1:${ports.imaps}/tls,dev`,
    EXTRA_SMTP_TARGET: `ours=127.0.0.1:${ports.smtp}/dev`,
    ...process.env,
  };
  process.stderr.write(`mailwarden rig: running ${copy ? `a copy of ${rig} (SMTP bad-device check sends one message)` : rig}\n`);
  try {
    const child = spawn('bash', [path.join(copy ?? rig, 'run-anchors.sh')], { env, stdio: 'inherit' });
    const forward = (signal: NodeJS.Signals) => child.kill(signal);
    process.on('SIGTERM', forward);
    process.on('SIGINT', forward);
    return await new Promise<number>((resolve) => child.once('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1))));
  } finally {
    if (copy) fs.rmSync(copy, { recursive: true, force: true });
  }
}

async function main(): Promise<number> {
  if (process.argv[2] === 'run-anchors') return runAnchors();
  if (process.argv[2] !== undefined) throw new Error(`unknown argument ${process.argv[2]} (none: serve as EXTRA_CMD; run-anchors: run the rig)`);
  await serve();
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`mailwarden rig: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
