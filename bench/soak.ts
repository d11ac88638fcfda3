// `npm run soak` (not a test): a bounded soak of mailwarden in a child process against a real
// redis-server, Dovecot and an SMTP sink — rounds of IMAP logins, IDLE sessions, SMTP submissions,
// signed reports, policy reloads, Redis restarts and random bytes — sampling the child's RSS and heap
// (after GC) each round, and reporting start/end ratios and growth per 10,000 logins.
// Bounds: SOAK_LOGINS (default 20000) and SOAK_SECONDS (default 600), whichever comes first.
// SOAK_HEAP_DIR=dir writes a heap snapshot after the warm-up round and at the end (bench/heap-diff.ts).
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import v8 from 'node:v8';
import { startRuntime } from '../src/app/runtime';
import { silentLogger } from '../src/core/log';
import { buildReport, makeReporterKeys, pushReport, signReport } from '../src/kit';
import { startDovecot } from '../test/harness/dovecot';
import { cleanupRedis, startRedis } from '../test/harness/redis';
import { startSmtpSink } from '../test/harness/smtp-sink';
import { tempDir } from '../test/harness/ports';

const env = (name: string, fallback: number): number => Number(process.env[name] ?? fallback);
const SOAK_LOGINS = env('SOAK_LOGINS', 20000);
const SOAK_SECONDS = env('SOAK_SECONDS', 600);
const ROUND_LOGINS = env('SOAK_ROUND_LOGINS', 2000);
const CLIENTS = env('SOAK_CLIENTS', 20);
const IDLE_SESSIONS = env('SOAK_IDLE', 50);
const SMTP_PER_ROUND = env('SOAK_SMTP', 200);
const REPORTS_PER_ROUND = env('SOAK_REPORTS', 100);
const FUZZ_PER_ROUND = env('SOAK_FUZZ', 300);
const REDIS_RESTART_EVERY = env('SOAK_REDIS_EVERY', 3);
const DEVICES = env('SOAK_DEVICES', 200);
const ADMIN_TOKEN = 'soak-admin-token-3b8e0f2a';
const TIKTOK = 'com.zhiliaoapp.musically';
const USERS = [
  { user: 'alice@example.com', password: 'alice-pw' },
  { user: 'bob@example.com', password: 'bob-pw' },
];

/** Device i: its user, and whether the example policy denies it (an iPhone with TikTok, every tenth). */
const device = (i: number) => ({ id: `soak-${i}`, ...USERS[i % 2]!, denied: i % 10 === 9 });

// ---- child mode: the proxy, answering the parent over IPC ---------------------------------------

interface Sample {
  readonly heapUsed: number;
  readonly rss: number;
  readonly external: number;
  readonly sessions: number;
}

async function runProxy(configFile: string): Promise<void> {
  const runtime = await startRuntime({ configFile, logger: silentLogger(), watch: false });
  const send = (message: object): void => void process.send!(message);
  process.on('message', (message: { op: string; file?: string }) => {
    void (async () => {
      if (message.op === 'sample') {
        // Two passes: the first can leave objects whose finalisers free more.
        global.gc!();
        global.gc!();
        const m = process.memoryUsage();
        send({ op: 'sample', heapUsed: m.heapUsed, rss: m.rss, external: m.external, sessions: runtime.gate.sessions.size });
      } else if (message.op === 'snapshot') {
        global.gc!();
        send({ op: 'snapshot', file: v8.writeHeapSnapshot(message.file) });
      } else if (message.op === 'reload') {
        send({ op: 'reload', result: (await runtime.reload()).result });
      } else if (message.op === 'stop') {
        await runtime.stop(0);
        process.exit(0);
      }
    })();
  });
  send({
    op: 'ready',
    imap: runtime.imap!.addresses[0]!.port,
    smtp: runtime.smtp!.addresses[0]!.port,
    admin: runtime.admin!.address.port,
  });
}

class Child {
  private waiting = new Map<string, (m: Record<string, unknown>) => void>();
  constructor(readonly process: ChildProcess) {
    process.on('message', (m: Record<string, unknown>) => {
      const w = this.waiting.get(m.op as string);
      this.waiting.delete(m.op as string);
      w?.(m);
    });
  }
  ask<T>(op: string, extra: object = {}): Promise<T> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`child did not answer ${op} in 120 s`)), 120_000);
      this.waiting.set(op, (m) => (clearTimeout(timer), resolve(m as T)));
      this.process.send({ op, ...extra });
    });
  }
}

// ---- clients --------------------------------------------------------------------------------------

/** A socket that collects text and resolves when a pattern appears; rejects on close or after 10 s. */
function dial(port: number): Promise<{ socket: net.Socket; until(p: RegExp): Promise<string> }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let text = '';
    let waiter: { p: RegExp; res: (s: string) => void; rej: (e: Error) => void; t: NodeJS.Timeout } | null = null;
    const check = (): void => {
      if (waiter && waiter.p.test(text)) {
        const w = waiter;
        waiter = null;
        clearTimeout(w.t);
        const got = text;
        text = '';
        w.res(got);
      }
    };
    socket.on('data', (d: Buffer) => ((text += d.toString('latin1')), check()));
    socket.on('error', () => undefined);
    socket.on('close', () => waiter?.rej(new Error(`closed after: ${text.slice(0, 120)}`)));
    socket.once('connect', () =>
      resolve({
        socket,
        until: (p) =>
          new Promise((res, rej) => {
            waiter = { p, res, rej, t: setTimeout(() => rej(new Error(`timeout waiting for ${p}`)), 10_000) };
            check();
          }),
      }),
    );
    socket.once('error', reject);
  });
}

interface Counts {
  logins: number;
  allowed: number;
  refused: number;
  tempfail: number;
  errors: number;
  deniedAllowed: number;
}

/** IMAP LOGIN, SELECT, LOGOUT as device i. */
async function imapLogin(port: number, i: number, counts: Counts): Promise<void> {
  const d = device(i);
  counts.logins++;
  try {
    const c = await dial(port);
    await c.until(/^\* OK.*\r\n/);
    c.socket.write(`a LOGIN "${d.user}+${d.id}" ${d.password}\r\n`);
    const reply = await c.until(/^a (OK|NO|BAD).*\r\n/m);
    if (/^a OK/m.test(reply)) {
      counts.allowed++;
      if (d.denied) counts.deniedAllowed++;
      c.socket.write('s SELECT INBOX\r\n');
      await c.until(/^s (OK|NO|BAD).*\r\n/m);
      c.socket.write('z LOGOUT\r\n');
      await c.until(/^z OK.*\r\n/m).catch(() => undefined);
    } else if (/UNAVAILABLE/.test(reply)) counts.tempfail++;
    else counts.refused++;
    c.socket.destroy();
  } catch {
    counts.errors++;
  }
}

async function idleSession(port: number, i: number): Promise<(() => Promise<void>) | null> {
  const d = device(i);
  try {
    const c = await dial(port);
    await c.until(/^\* OK.*\r\n/);
    c.socket.write(`a LOGIN "${d.user}+${d.id}" ${d.password}\r\ns SELECT INBOX\r\n`);
    await c.until(/^s OK.*\r\n/m);
    c.socket.write('i IDLE\r\n');
    await c.until(/^\+ .*\r\n/m);
    return async () => {
      c.socket.write('DONE\r\nz LOGOUT\r\n');
      await c.until(/^z OK.*\r\n/m).catch(() => undefined);
      c.socket.destroy();
    };
  } catch {
    return null;
  }
}

/** One submission: EHLO, AUTH PLAIN, one message, QUIT. Returns whether the message was accepted. */
async function smtpSession(port: number, i: number): Promise<boolean> {
  const d = device(i);
  try {
    const c = await dial(port);
    await c.until(/^220 .*\r\n/m);
    const step = async (line: string, code: RegExp): Promise<boolean> => {
      c.socket.write(`${line}\r\n`);
      return code.test(await c.until(/^\d{3} .*\r\n/m));
    };
    const auth = Buffer.from(`\0${d.user}+${d.id}\0${d.password}`).toString('base64');
    const ok =
      (await step('EHLO soak.test', /^250/m)) &&
      (await step(`AUTH PLAIN ${auth}`, /^235/m)) &&
      (await step(`MAIL FROM:<${d.user}>`, /^250/m)) &&
      (await step(`RCPT TO:<${d.user}>`, /^250/m)) &&
      (await step('DATA', /^354/m)) &&
      (await step(`Subject: soak ${i}\r\n\r\nsoak\r\n.`, /^250/m));
    c.socket.end('QUIT\r\n');
    return ok;
  } catch {
    return false;
  }
}

/** Random bytes, sometimes after a plausible command prefix, then close. */
async function fuzzConnection(port: number): Promise<void> {
  try {
    const c = await dial(port);
    const prefix = ['', 'a LOGIN ', 'a AUTHENTICATE PLAIN ', 'EHLO x\r\nAUTH PLAIN ', 'a1 {99}\r\n'][Math.floor(Math.random() * 5)]!;
    c.socket.write(Buffer.concat([Buffer.from(prefix), randomBytes(Math.floor(Math.random() * 512))]));
    await new Promise((r) => setTimeout(r, 5));
    c.socket.destroy();
  } catch {
    // refused connections count as nothing here; the next sample shows whether the proxy held
  }
}

async function pool(count: number, concurrency: number, job: (n: number) => Promise<unknown>, deadline: number): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count && Date.now() < deadline) await job(next++);
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}

// ---- the soak -------------------------------------------------------------------------------------

const MB = (bytes: number): string => (bytes / 1048576).toFixed(1);

async function main(): Promise<void> {
  const started = Date.now();
  const deadline = started + SOAK_SECONDS * 1000;
  const dir = tempDir('soak');
  const redis = await startRedis();
  const dovecot = await startDovecot();
  const sink = await startSmtpSink({ auth: { users: Object.fromEntries(USERS.map((u) => [u.user, u.password])) } });
  const keys = await makeReporterKeys({ kid: 'soak-mdm', outDir: dir });
  const policyFile = path.join(dir, 'policy.yaml');
  const policyText = fs.readFileSync(path.join(__dirname, '../../config/policy.yaml'), 'utf8');
  fs.writeFileSync(policyFile, policyText);
  const config = {
    instanceName: 'soak',
    policyFile: 'policy.yaml',
    store: { type: 'redis', redis: { mode: 'standalone', host: redis.host, port: redis.port, keyPrefix: 'soak:' } },
    reports: { jwksFile: 'reporters.jwks.json', algorithms: ['ES256'] },
    admin: { listen: { host: '127.0.0.1', port: 0 }, tokens: [ADMIN_TOKEN] },
    identity: { sources: [{ type: 'asserted', separator: '+' }] },
    imap: { listeners: [{ host: '127.0.0.1', port: 0, tls: 'none' }], upstream: { host: dovecot.host, port: dovecot.port, tls: 'none', login: 'passthrough' } },
    smtp: { listeners: [{ host: '127.0.0.1', port: 0, tls: 'none' }], upstream: { host: sink.host, port: sink.port, tls: 'none', login: 'passthrough' } },
    logging: { level: 'error' },
  };
  const configFile = path.join(dir, 'mailwarden.yaml');
  fs.writeFileSync(configFile, JSON.stringify(config));

  const proc = spawn(process.execPath, ['--expose-gc', __filename, '--proxy', configFile], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const child = new Child(proc);
  const ports = await new Promise<{ imap: number; smtp: number; admin: number }>((resolve, reject) => {
    proc.once('message', (m: { op: string; imap: number; smtp: number; admin: number }) => resolve(m));
    proc.once('exit', (code) => reject(new Error(`proxy exited ${code} before it was ready`)));
  });
  const adminUrl = `http://127.0.0.1:${ports.admin}`;

  /** Signed reports for `count` devices from `from`: compliant Macs, and every tenth an iPhone with TikTok. */
  const report = async (from: number, count: number): Promise<number> => {
    let ok = 0;
    for (let i = from; i < from + count; i++) {
      const d = device(i % DEVICES);
      const payload = buildReport(
        d.denied
          ? { deviceId: d.id, user: d.user, platform: 'ios', osVersion: '17.4', managed: true, apps: [TIKTOK] }
          : { deviceId: d.id, user: d.user, platform: 'macos', osVersion: '15.3', managed: true, apps: ['com.apple.mail'] },
      );
      const result = await pushReport(adminUrl, ADMIN_TOKEN, await signReport(payload, keys.privateJwk)).catch(() => null);
      if (result?.ok) ok++;
    }
    return ok;
  };
  await report(0, DEVICES);

  const totals: Counts = { logins: 0, allowed: 0, refused: 0, tempfail: 0, errors: 0, deniedAllowed: 0 };
  const other = { smtpSent: 0, smtpSessions: 0, reports: 0, reloads: {} as Record<string, number>, redisRestarts: 0, fuzz: 0 };
  const samples: Array<Sample & { round: number; logins: number; seconds: number }> = [];
  const sample = async (round: number): Promise<void> => {
    const s = await child.ask<Sample>('sample');
    samples.push({ ...s, round, logins: totals.logins, seconds: Math.round((Date.now() - started) / 1000) });
    console.log(
      `round ${String(round).padStart(2)}  ${String(Math.round((Date.now() - started) / 1000)).padStart(4)} s  logins ${String(totals.logins).padStart(6)}  ` +
        `heap ${MB(s.heapUsed)} MB  rss ${MB(s.rss)} MB  external ${MB(s.external)} MB  live sessions ${s.sessions}`,
    );
  };

  const heapDir = process.env.SOAK_HEAP_DIR;
  if (heapDir) fs.mkdirSync(heapDir, { recursive: true });
  // Warm-up round (JIT, pools, caches filled) before the first sample that counts.
  await pool(Math.min(500, ROUND_LOGINS), CLIENTS, (n) => imapLogin(ports.imap, n % DEVICES, totals), deadline);
  await pool(Math.min(50, SMTP_PER_ROUND), 5, (n) => smtpSession(ports.smtp, n % DEVICES), deadline);
  await sample(0);
  const baseline = samples[0]!;
  if (heapDir) console.log(`heap snapshot: ${(await child.ask<{ file: string }>('snapshot', { file: path.join(heapDir, 'start.heapsnapshot') })).file}`);

  for (let round = 1; totals.logins - baseline.logins < SOAK_LOGINS && Date.now() < deadline; round++) {
    const roundDeadline = Math.min(deadline, Date.now() + 300_000);
    const idle = (await Promise.all(Array.from({ length: IDLE_SESSIONS }, (_, k) => idleSession(ports.imap, (round * 7 + k) % DEVICES)))).filter((x) => x !== null);
    const loginsBefore = totals.logins;
    await Promise.all([
      pool(ROUND_LOGINS, CLIENTS, (n) => imapLogin(ports.imap, (loginsBefore + n) % DEVICES, totals), roundDeadline),
      pool(SMTP_PER_ROUND, 5, async (n) => {
        other.smtpSessions++;
        if (await smtpSession(ports.smtp, (round * 13 + n) % DEVICES)) other.smtpSent++;
      }, roundDeadline),
      report(round * REPORTS_PER_ROUND, REPORTS_PER_ROUND).then((n) => (other.reports += n)),
      pool(FUZZ_PER_ROUND, 5, async (n) => {
        other.fuzz++;
        await fuzzConnection(n % 2 === 0 ? ports.imap : ports.smtp);
      }, roundDeadline),
    ]);
    // A reload with a changed policy text (a new version, same checks), as an operator's edit would be.
    fs.writeFileSync(policyFile, `${policyText}\n# soak round ${round}\n`);
    const reload = await child.ask<{ result: string }>('reload');
    other.reloads[reload.result] = (other.reloads[reload.result] ?? 0) + 1;
    await Promise.all(idle.map((close) => close()));
    if (round % REDIS_RESTART_EVERY === 0) {
      // Restarted empty (no persistence): logins tempfail or deny until the reports are sent again.
      await redis.stop();
      await pool(100, 10, (n) => imapLogin(ports.imap, n % DEVICES, totals), roundDeadline);
      await redis.start();
      other.redisRestarts++;
      await new Promise((r) => setTimeout(r, 1000));
      await report(0, DEVICES);
    }
    await sample(round);
  }
  if (heapDir) console.log(`heap snapshot: ${(await child.ask<{ file: string }>('snapshot', { file: path.join(heapDir, 'end.heapsnapshot') })).file}`);

  const end = samples[samples.length - 1]!;
  const per10k = (bytes: number): string => MB((bytes / Math.max(1, end.logins - baseline.logins)) * 10000);
  console.log('');
  console.log(`logins ${totals.logins} (allowed ${totals.allowed}, refused ${totals.refused}, tempfail ${totals.tempfail}, client errors ${totals.errors}); denied devices allowed: ${totals.deniedAllowed}`);
  console.log(`smtp sessions ${other.smtpSessions} (messages accepted ${other.smtpSent}); reports stored ${other.reports}; reloads ${JSON.stringify(other.reloads)}; redis restarts ${other.redisRestarts}; fuzz connections ${other.fuzz}`);
  console.log(`heap after GC: ${MB(baseline.heapUsed)} → ${MB(end.heapUsed)} MB (×${(end.heapUsed / baseline.heapUsed).toFixed(2)}), ${per10k(end.heapUsed - baseline.heapUsed)} MB per 10,000 logins`);
  console.log(`rss:           ${MB(baseline.rss)} → ${MB(end.rss)} MB (×${(end.rss / baseline.rss).toFixed(2)}), ${per10k(end.rss - baseline.rss)} MB per 10,000 logins`);
  // The second half shows whether growth levels off once the bounded structures (the console's
  // audit ring, caches) are full; the whole-run figure includes filling them.
  const mid = samples[Math.floor((samples.length - 1) / 2)]!;
  const perHalf = (bytes: number): string => MB((bytes / Math.max(1, end.logins - mid.logins)) * 10000);
  console.log(`second half (from round ${mid.round}): heap ${MB(mid.heapUsed)} → ${MB(end.heapUsed)} MB, ${perHalf(end.heapUsed - mid.heapUsed)} MB per 10,000 logins; rss ${MB(mid.rss)} → ${MB(end.rss)} MB`);
  console.log(`live sessions at the end: ${end.sessions} (all clients closed)`);

  await new Promise<void>((resolve) => {
    proc.once('exit', () => resolve());
    proc.send({ op: 'stop' });
  });
  await sink.stop();
  await dovecot.cleanup();
  await cleanupRedis(redis);
  fs.rmSync(dir, { recursive: true, force: true });
}

if (process.argv[2] === '--proxy') {
  void runProxy(process.argv[3]!).catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
} else {
  void main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
