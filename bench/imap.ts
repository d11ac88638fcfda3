// `npm run bench:imap`: in one run, alternating, directly to Dovecot and through mailwarden — login
// rate and p50/p99 latency with 50 clients, bulk FETCH throughput, and proxy memory per idle IDLE
// session (plain and TLS). The proxy runs in a child process so its CPU and RSS are its own.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import Redis from 'ioredis';
import { startRuntime } from '../src/app/runtime';
import { silentLogger } from '../src/core/log';
import { startDovecot, makeMessage, type DovecotServer } from '../test/harness/dovecot';
import { startRedis, cleanupRedis, type RedisServer } from '../test/harness/redis';
import { tempDir } from '../test/harness/ports';
import { makeTestPki, type TestPki } from '../test/harness/tls';

const LOGIN_CLIENTS = 50;
const LOGINS_PER_RUN = Number(process.env.BENCH_LOGINS ?? 1000);
const RUN_SECONDS = 15;
const FETCH_MESSAGES = Number(process.env.BENCH_MESSAGES ?? 2000);
const MESSAGE_BYTES = 50 * 1024;
const FETCH_PASSES = Number(process.env.BENCH_PASSES ?? 5);
const IDLE_TARGET = Number(process.env.BENCH_IDLE ?? 10000);
/** `BENCH_ONLY=fetch` runs only the FETCH phase (for tuning the relay); `BENCH_ROUNDS` alternating rounds of it. */
const ONLY_FETCH = process.env.BENCH_ONLY === 'fetch';
const FETCH_ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const DEVICE = 'bench-mac';
const BOB = { user: 'bob@example.com', password: 'bob-pw' };
const ALICE = { user: 'alice@example.com', password: 'alice-pw' };

/** Dovecot in its high-performance shape (shared login and imap processes), same for both columns. */
const DOVECOT_TUNING = `
default_client_limit = 20000
default_vsz_limit = 2G
service imap-login {
  service_count = 0
  client_limit = 10000
  process_min_avail = 2
  process_limit = 4
}
service imap {
  service_count = 0
  client_limit = 2000
  process_limit = 50
}
`;

// ---- child mode: the proxy ----------------------------------------------------------------------

async function runProxy(configFile: string): Promise<void> {
  const runtime = await startRuntime({ configFile, logger: silentLogger(), watch: false });
  const now = new Date().toISOString();
  for (const user of [BOB.user, ALICE.user]) {
    await runtime.store.putDevice(
      { deviceId: `${DEVICE}-${user.split('@')[0]}`, user, platform: 'macos', osVersion: '15.3', managed: true, apps: [], reportedAt: now, source: 'bench', receivedAt: now },
      3600,
    );
  }
  const [plain, implicit] = runtime.imap!.addresses.map((a) => a.port);
  process.stdout.write(`${JSON.stringify({ plain, implicit })}\n`);
  process.on('SIGTERM', () => void runtime.stop(0).then(() => process.exit(0)));
}

// ---- measuring helpers --------------------------------------------------------------------------

function procStat(pid: number): { cpuMs: number; rssKb: number } {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  const rss = /VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return { cpuMs: (ticks * 1000) / 100, rssKb: Number(rss?.[1] ?? 0) };
}

/** CPU ms of `root` and its children (Dovecot: master, imap-login, imap, auth …). */
function treeCpuMs(root: number): number {
  let total = 0;
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(entry) === root || Number(fields[1]) === root) total += ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
    } catch {
      // the process exited meanwhile
    }
  }
  return total;
}

/** Idle and total jiffies of the whole machine (the first line of /proc/stat). */
function machineIdle(): { idle: number; total: number } {
  const cpu = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  return { idle: cpu[3]! + cpu[4]!, total: cpu.reduce((a, b) => a + b, 0) };
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

interface Conn {
  readonly socket: net.Socket;
  /** Resolves with everything received once `pattern` matches the received text. */
  until(pattern: RegExp): Promise<string>;
}

function connect(port: number, secure: boolean): Promise<Conn> {
  return new Promise((resolve, reject) => {
    const socket: net.Socket = secure ? tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false }) : net.connect(port, '127.0.0.1');
    let text = '';
    let waiter: { pattern: RegExp; resolve: (s: string) => void; reject: (e: Error) => void } | null = null;
    const check = (): void => {
      if (waiter && waiter.pattern.test(text)) {
        const w = waiter;
        waiter = null;
        const got = text;
        text = '';
        w.resolve(got);
      }
    };
    socket.setNoDelay(true);
    socket.on('data', (d: Buffer) => {
      text += d.toString('latin1');
      check();
    });
    socket.on('error', (err) => waiter?.reject(err));
    socket.on('close', () => waiter?.reject(new Error(`closed: ${text.slice(0, 200)}`)));
    socket.once(secure ? 'secureConnect' : 'connect', () =>
      resolve({
        socket,
        until: (pattern) =>
          new Promise((res, rej) => {
            waiter = { pattern, resolve: res, reject: rej };
            check();
          }),
      }),
    );
    socket.once('error', reject);
  });
}

async function login(port: number, user: string, password: string, secure = false): Promise<Conn> {
  const c = await connect(port, secure);
  await c.until(/^\* OK.*\r\n/);
  c.socket.write(`a LOGIN ${user} ${password}\r\n`);
  const reply = await c.until(/^a (OK|NO|BAD).*\r\n/m);
  if (!/^a OK/m.test(reply)) throw new Error(`login refused: ${reply.trim()}`);
  return c;
}

// ---- the three measurements ---------------------------------------------------------------------

interface LoginRun {
  readonly rate: number;
  readonly p50: number;
  readonly p99: number;
  readonly count: number;
}

async function loginRun(port: number, user: string, password: string, clients = LOGIN_CLIENTS, total = LOGINS_PER_RUN): Promise<LoginRun> {
  const latencies: number[] = [];
  let started = 0;
  const deadline = Date.now() + RUN_SECONDS * 1000;
  const t0 = Date.now();
  const worker = async (): Promise<void> => {
    while (started < total && Date.now() < deadline) {
      started++;
      const t = process.hrtime.bigint();
      const c = await login(port, user, password);
      latencies.push(Number(process.hrtime.bigint() - t) / 1e6);
      c.socket.end('b LOGOUT\r\n');
    }
  };
  await Promise.all(Array.from({ length: clients }, worker));
  const seconds = (Date.now() - t0) / 1000;
  latencies.sort((a, b) => a - b);
  return { rate: latencies.length / seconds, p50: percentile(latencies, 50), p99: percentile(latencies, 99), count: latencies.length };
}

/** MB/s of `passes` back-to-back `FETCH 1:* BODY.PEEK[]` over one session (one pass is too short to time). */
async function fetchRun(port: number, user: string, password: string, passes = FETCH_PASSES): Promise<number> {
  const c = await login(port, user, password);
  c.socket.write('s SELECT INBOX\r\n');
  await c.until(/^s OK.*\r\n/m);
  c.socket.removeAllListeners('data');
  let bytes = 0;
  const t0 = process.hrtime.bigint();
  for (let pass = 0; pass < passes; pass++) {
    let tail = '';
    await new Promise<void>((resolve) => {
      c.socket.removeAllListeners('data');
      c.socket.on('data', (d: Buffer) => {
        bytes += d.length;
        tail = (tail + d.toString('latin1', Math.max(0, d.length - 256))).slice(-256);
        if (/\r\nf (OK|NO|BAD)[^\r\n]*\r\n$/.test(tail)) resolve();
      });
      c.socket.write('f FETCH 1:* BODY.PEEK[]\r\n');
    });
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  c.socket.destroy();
  return bytes / 1e6 / seconds;
}

async function idleRun(port: number, pid: number, count: number, secure: boolean): Promise<{ open: number; answering: number; kbPerSession: number }> {
  const before = procStat(pid).rssKb;
  const conns: Conn[] = [];
  const deadline = Date.now() + 180000;
  for (let i = 0; i < count && Date.now() < deadline; i += 100) {
    const batch = await Promise.allSettled(
      Array.from({ length: Math.min(100, count - i) }, async () => {
        const c = await login(port, `${BOB.user}+${DEVICE}-bob`, BOB.password, secure);
        c.socket.write('s SELECT INBOX\r\ni IDLE\r\n');
        await c.until(/^\+ idling\r\n/m);
        return c;
      }),
    );
    for (const r of batch) if (r.status === 'fulfilled') conns.push(r.value);
    if (batch.some((r) => r.status === 'rejected')) {
      console.error(`  stopped at ${conns.length} sessions: ${(batch.find((r) => r.status === 'rejected') as PromiseRejectedResult).reason}`);
      break;
    }
  }
  await new Promise((r) => setTimeout(r, 3000));
  const after = procStat(pid).rssKb;
  const answers = await Promise.allSettled(
    conns.map((c) => {
      c.socket.write('DONE\r\n');
      return Promise.race([c.until(/^i OK.*\r\n/m), new Promise((_, rej) => setTimeout(() => rej(new Error('timeout')), 60000))]);
    }),
  );
  for (const c of conns) c.socket.destroy();
  await new Promise((r) => setTimeout(r, 1000));
  return { open: conns.length, answering: answers.filter((a) => a.status === 'fulfilled').length, kbPerSession: (after - before) / Math.max(1, conns.length) };
}

// ---- main ---------------------------------------------------------------------------------------

function startProxyChild(configFile: string): Promise<{ child: ChildProcess; plain: number; implicit: number }> {
  // A proxied session holds two sockets: raise the soft fd limit up to the hard one for the child.
  const prof = process.env.BENCH_CPU_PROF ? `--cpu-prof --cpu-prof-dir="${process.env.BENCH_CPU_PROF}"` : '';
  const script = `ulimit -n "$(ulimit -Hn)"; exec "${process.execPath}" ${prof} "${__filename}" --proxy "${configFile}"`;
  const child = spawn('bash', ['-c', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const nl = out.indexOf('\n');
      if (nl >= 0) resolve({ child, ...(JSON.parse(out.slice(0, nl)) as { plain: number; implicit: number }) });
    });
    child.once('exit', (code) => reject(new Error(`proxy exited ${code}`)));
  });
}

function fdLimit(): number {
  const line = /Max open files\s+(\d+)\s+(\d+)/.exec(fs.readFileSync('/proc/self/limits', 'utf8'));
  return Math.min(Number(line?.[1] ?? 1024), Number(line?.[2] ?? 1024));
}

const fmt = (n: number, d = 1): string => n.toFixed(d);

interface Column {
  readonly dovecot: DovecotServer;
  readonly child: ChildProcess;
  readonly pid: number;
  readonly direct: { port: number; bob: readonly [string, string]; alice: readonly [string, string] };
  readonly proxy: { port: number; tlsPort: number; bob: readonly [string, string]; alice: readonly [string, string] };
}

/** One Dovecot and one mailwarden child in front of it. */
async function startColumn(name: string, tuning: string, redis: RedisServer, pki: TestPki, dir: string): Promise<Column> {
  const dovecot = await startDovecot({ extraConfig: tuning });
  const config = {
    instanceName: `bench-${name}`,
    policyFile: 'policy.yaml',
    tls: { cert: pki.serverCert, key: pki.serverKey },
    store: { type: 'redis', redis: { mode: 'standalone', host: redis.host, port: redis.port } },
    identity: { sources: [{ type: 'asserted', separator: '+' }] },
    imap: {
      listeners: [
        { host: '127.0.0.1', port: 0, tls: 'none' },
        { host: '127.0.0.1', port: 0, tls: 'implicit' },
      ],
      upstream: { host: dovecot.host, port: dovecot.port, tls: 'none', login: 'passthrough' },
      // Every bench client comes from 127.0.0.1: lift the per-address and listener caps (defaults
      // 100 and 4000) so the IDLE phase measures memory per session, not the cap.
      maxConnections: IDLE_TARGET * 2,
      maxConnectionsPerAddress: IDLE_TARGET * 2,
    },
    logging: { level: 'error' },
  };
  const configFile = path.join(dir, `mailwarden-${name}.yaml`);
  fs.writeFileSync(configFile, JSON.stringify(config));
  const proxy = await startProxyChild(configFile);
  return {
    dovecot,
    child: proxy.child,
    pid: proxy.child.pid!,
    direct: { port: dovecot.port, bob: [BOB.user, BOB.password], alice: [ALICE.user, ALICE.password] },
    proxy: { port: proxy.plain, tlsPort: proxy.implicit, bob: [`${BOB.user}+${DEVICE}-bob`, BOB.password], alice: [`${ALICE.user}+${DEVICE}-alice`, ALICE.password] },
  };
}

const best = (runs: LoginRun[]): LoginRun => runs.reduce((a, b) => (b.rate > a.rate ? b : a));

/** Alternating direct / proxied login runs; the proxy's and Redis's CPU is counted during proxied runs. */
async function loginComparison(column: Column, redisPid: number, clients: number, total: number): Promise<{ d: LoginRun; p: LoginRun; cpuMs: number }> {
  await loginRun(column.direct.port, ...column.direct.bob, clients, Math.min(total, 50));
  await loginRun(column.proxy.port, ...column.proxy.bob, clients, Math.min(total, 50));
  const direct: LoginRun[] = [];
  const proxied: LoginRun[] = [];
  const cpu: number[] = [];
  for (let round = 0; round < 2; round++) {
    direct.push(await loginRun(column.direct.port, ...column.direct.bob, clients, total));
    const cpu0 = procStat(column.pid).cpuMs + procStat(redisPid).cpuMs;
    const run = await loginRun(column.proxy.port, ...column.proxy.bob, clients, total);
    proxied.push(run);
    cpu.push((procStat(column.pid).cpuMs + procStat(redisPid).cpuMs - cpu0) / run.count);
  }
  const d = best(direct);
  const p = best(proxied);
  console.log(`  direct : ${fmt(d.rate)} logins/s  p50 ${fmt(d.p50, 2)} ms  p99 ${fmt(d.p99, 2)} ms`);
  console.log(`  proxy  : ${fmt(p.rate)} logins/s  p50 ${fmt(p.p50, 2)} ms  p99 ${fmt(p.p99, 2)} ms`);
  console.log(`  ratio  : rate ${fmt(p.rate / d.rate, 2)}×, p50 ${p.p50 >= d.p50 ? '+' : ''}${fmt(p.p50 - d.p50, 2)} ms; proxy+Redis CPU ${fmt(Math.min(...cpu), 2)} ms/login`);
  return { d, p, cpuMs: Math.min(...cpu) };
}

/** Alternating direct / proxied bulk FETCH runs; best of each and the proxy's CPU per MB relayed. */
async function fetchComparison(column: Column): Promise<{ fd: number; fp: number; proxyCpuPerMB: number }> {
  const { direct, proxy, pid } = column;
  console.log(`\nFETCH 1:* BODY.PEEK[] over ${FETCH_MESSAGES} × ${MESSAGE_BYTES / 1024} KB, ${FETCH_PASSES} passes per run, ${FETCH_ROUNDS} rounds alternating`);
  await fetchRun(direct.port, ...direct.alice, 1); // indexes the maildir and warms the page cache
  const fetch = { direct: [] as number[], proxy: [] as number[] };
  let cpuMs = 0;
  // Where the two cores go during a run, in ms per MB: this client, Dovecot, the proxy, idle.
  const dovecotPid = column.dovecot.pid ?? -1;
  const measured = async (port: number, user: string, password: string): Promise<{ rate: number; cpu: string; proxyMs: number }> => {
    const c0 = process.cpuUsage();
    const d0 = treeCpuMs(dovecotPid);
    const p0 = procStat(pid).cpuMs;
    const m0 = machineIdle();
    const t0 = Date.now();
    const rate = await fetchRun(port, user, password);
    const mb = (rate * (Date.now() - t0)) / 1000;
    const c = process.cpuUsage(c0);
    const proxyMs = procStat(pid).cpuMs - p0;
    const m1 = machineIdle();
    const idlePct = (100 * (m1.idle - m0.idle)) / Math.max(1, m1.total - m0.total);
    const cpu = `client ${fmt((c.user + c.system) / 1000 / mb, 2)} dovecot ${fmt((treeCpuMs(dovecotPid) - d0) / mb, 2)} proxy ${fmt(proxyMs / mb, 2)} ms/MB, machine idle ${fmt(idlePct, 0)}%`;
    return { rate, cpu, proxyMs };
  };
  for (let round = 0; round < FETCH_ROUNDS; round++) {
    const d = await measured(direct.port, ...direct.alice);
    fetch.direct.push(d.rate);
    const p = await measured(proxy.port, ...proxy.alice);
    fetch.proxy.push(p.rate);
    cpuMs += p.proxyMs;
    if (process.env.BENCH_VERBOSE) console.log(`  direct ${fmt(d.rate)} MB/s (${d.cpu})\n  proxy  ${fmt(p.rate)} MB/s (${p.cpu})`);
  }
  const proxyCpuPerMB = cpuMs / ((FETCH_ROUNDS * FETCH_PASSES * FETCH_MESSAGES * MESSAGE_BYTES) / 1e6);
  const fd = Math.max(...fetch.direct);
  const fp = Math.max(...fetch.proxy);
  const med = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  console.log(`  runs   : direct ${fetch.direct.map((x) => fmt(x)).join(' ')}   proxy ${fetch.proxy.map((x) => fmt(x)).join(' ')} MB/s`);
  console.log(`  median : direct ${fmt(med(fetch.direct))} MB/s   proxy ${fmt(med(fetch.proxy))} MB/s   ratio ${fmt(med(fetch.proxy) / med(fetch.direct), 2)}×`);
  console.log(`  best   : direct ${fmt(fd)} MB/s   proxy : ${fmt(fp)} MB/s   ratio ${fmt(fp / fd, 2)}×   proxy CPU ${fmt(proxyCpuPerMB, 3)} ms/MB`);
  return { fd, fp, proxyCpuPerMB };
}

async function main(): Promise<void> {
  if (process.argv[2] === '--proxy') return runProxy(process.argv[3]!);
  const started = Date.now();
  console.log('imap bench: redis-server, two Dovecots (Debian default service settings / high-performance) and a mailwarden child in front of each');
  const redis = await startRedis();
  const pki = makeTestPki();
  const dir = tempDir('bench-imap');
  fs.copyFileSync(path.join(__dirname, '../../config/policy.yaml'), path.join(dir, 'policy.yaml'));
  const columns: Column[] = [];
  try {
    // Default Dovecot (a process per login, as the anchors' rig in bench/rig.ts runs it) for logins; the tuned one for FETCH and IDLE.
    const plainColumn = ONLY_FETCH ? null : await startColumn('default', '', redis, pki, dir);
    if (plainColumn) columns.push(plainColumn);
    const column = await startColumn('tuned', DOVECOT_TUNING, redis, pki, dir);
    columns.push(column);
    const body = Buffer.alloc(MESSAGE_BYTES - 400, 'x').toString().replace(/x{76}/g, (m) => `${m}\r\n`);
    column.dovecot.fillMailbox(ALICE.user, Array.from({ length: FETCH_MESSAGES }, (_, i) => makeMessage(`bulk ${i}`, 300) + body));
    const redisClient = new Redis(redis.port, redis.host);
    const redisPid = Number(/process_id:(\d+)/.exec(await redisClient.info('server'))?.[1]);
    redisClient.disconnect();
    const pid = column.pid;
    const direct = column.direct;
    const viaProxy = column.proxy;

    if (ONLY_FETCH || !plainColumn) {
      console.log(`proxy pid ${pid}`);
      await fetchComparison(column);
      return;
    }
    console.log(`\nlogin latency, 1 client, sequential, default Dovecot`);
    const single = await loginComparison(plainColumn, redisPid, 1, Math.min(200, LOGINS_PER_RUN));
    console.log(`\nlogins: ${LOGIN_CLIENTS} clients, ≤ ${LOGINS_PER_RUN} logins or ${RUN_SECONDS} s per run, default Dovecot`);
    const many = await loginComparison(plainColumn, redisPid, LOGIN_CLIENTS, LOGINS_PER_RUN);
    console.log(`\nlogins: ${LOGIN_CLIENTS} clients, high-performance Dovecot (the proxy's own cost dominates)`);
    const manyTuned = await loginComparison(column, redisPid, LOGIN_CLIENTS, LOGINS_PER_RUN);
    const d = many.d;
    const p = many.p;

    const { fd, fp, proxyCpuPerMB } = await fetchComparison(column);

    // Each proxied session holds two fds in the proxy, one in this process and one in Dovecot.
    const limit = Math.min(fdLimit(), Number(/Max open files\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/limits`, 'utf8'))?.[1] ?? 1024) / 2) - 300;
    const count = Math.max(100, Math.min(IDLE_TARGET, limit));
    console.log(`\nidle IDLE sessions through the proxy (target ${IDLE_TARGET}, fd limits allow ${count})`);
    const plainIdle = await idleRun(viaProxy.port, pid, count, false);
    console.log(`  plain  : ${plainIdle.open} open, ${plainIdle.answering} answering DONE, ${fmt(plainIdle.kbPerSession)} KB/session proxy RSS`);
    const tlsIdle = await idleRun(viaProxy.tlsPort, pid, count, true);
    console.log(`  TLS    : ${tlsIdle.open} open, ${tlsIdle.answering} answering DONE, ${fmt(tlsIdle.kbPerSession)} KB/session proxy RSS`);
    console.log(`\nimap bench done in ${fmt((Date.now() - started) / 1000, 0)} s`);
    console.log(
      JSON.stringify({
        logins: {
          oneClient: { direct: single.d, proxy: single.p, p50DeltaMs: single.p.p50 - single.d.p50, cpuMsPerLogin: single.cpuMs },
          defaultDovecot: { direct: d, proxy: p, rateRatio: p.rate / d.rate, p50DeltaMs: p.p50 - d.p50, cpuMsPerLogin: many.cpuMs },
          tunedDovecot: { direct: manyTuned.d, proxy: manyTuned.p, rateRatio: manyTuned.p.rate / manyTuned.d.rate, cpuMsPerLogin: manyTuned.cpuMs },
        },
        fetch: { directMBs: fd, proxyMBs: fp, ratio: fp / fd, proxyCpuMsPerMB: proxyCpuPerMB },
        idle: { plain: plainIdle, tls: tlsIdle },
      }),
    );
  } finally {
    for (const c of columns) {
      if (c.pid) process.kill(c.pid, 'SIGTERM');
      await c.dovecot.cleanup();
    }
    await cleanupRedis(redis);
    pki.cleanup();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  () => {
    if (process.argv[2] !== '--proxy') process.exit(0);
  },
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
