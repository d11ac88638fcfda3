// `npm run bench:smtp`: in one run, alternating, messages per second of 20 KB messages from 20
// clients directly to the upstream (Postfix smtp-sink, or the capturing sink if it is not installed)
// and through mailwarden; then mailwarden's resident memory while it relays a 50 MB message. The
// proxy runs in a child process so its CPU and RSS are its own.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { startRuntime } from '../src/app/runtime';
import { appPasswordKeyFor, issueAppPassword } from '../src/identity/app-password';
import { silentLogger } from '../src/core/log';
import { startRedis, cleanupRedis } from '../test/harness/redis';
import { findProgram, freePort, tempDir, waitForPort } from '../test/harness/ports';
import { startSmtpSink } from '../test/harness/smtp-sink';
import { writeAppPasswordKey } from '../test/harness/app-password-key';

const CLIENTS = 20;
const MESSAGE_BYTES = 20 * 1024;
const MESSAGES_PER_RUN = Number(process.env.BENCH_MESSAGES ?? 6000);
const RUN_SECONDS = 20;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const BIG_BYTES = 50 * 1000 * 1000;
const DEVICE = 'bench-mac';
const USER = 'alice@example.com';

// ---- child mode: the proxy ----------------------------------------------------------------------

async function runProxy(configFile: string): Promise<void> {
  const runtime = await startRuntime({ configFile, logger: silentLogger(), watch: false });
  const now = new Date().toISOString();
  await runtime.store.putDevice(
    { deviceId: DEVICE, user: USER, platform: 'macos', osVersion: '15.3', managed: true, apps: [], reportedAt: now, source: 'bench', receivedAt: now },
    3600,
  );
  // The iOS Mail path: a device-bound app password, XCLIENT upstream (no password there).
  const key = await appPasswordKeyFor(runtime.config().identity.sources, path.dirname(configFile));
  const { password } = await issueAppPassword(runtime.store, { user: USER, deviceId: DEVICE }, key!);
  process.stdout.write(`${JSON.stringify({ port: runtime.smtp!.addresses[0]!.port, password })}\n`);
  process.on('SIGTERM', () => void runtime.stop(0).then(() => process.exit(0)));
}

function startProxyChild(configFile: string): Promise<{ child: ChildProcess; port: number; password: string }> {
  // BENCH_CPU_PROF=<dir>: write a V8 CPU profile of the proxy there.
  const prof = process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : [];
  const child = spawn(process.execPath, [...prof, __filename, '--proxy', configFile], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const nl = out.indexOf('\n');
      if (nl >= 0) resolve({ child, ...(JSON.parse(out.slice(0, nl)) as { port: number; password: string }) });
    });
    child.once('exit', (code) => reject(new Error(`proxy exited ${code}`)));
  });
}

function rssKb(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
}

/** Read and write system calls so far (/proc/<pid>/io syscr, syscw; writev counts as one write). */
function syscalls(pid: number): { reads: number; writes: number } {
  const io = fs.readFileSync(`/proc/${pid}/io`, 'utf8');
  return { reads: Number(/syscr:\s+(\d+)/.exec(io)?.[1] ?? 0), writes: Number(/syscw:\s+(\d+)/.exec(io)?.[1] ?? 0) };
}

function cpuMs(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
}

// ---- a minimal pipelining SMTP client (cheap, so the load generator is not what is measured) -----

class Client {
  private buffer = '';
  private waiters: ((reply: string) => void)[] = [];

  private constructor(private readonly socket: net.Socket) {
    socket.setNoDelay(true);
    socket.on('data', (d: Buffer) => {
      this.buffer += d.toString('latin1');
      let eol: number;
      while ((eol = this.buffer.indexOf('\r\n')) >= 0) {
        const line = this.buffer.slice(0, eol);
        this.buffer = this.buffer.slice(eol + 2);
        if (line[3] !== '-') this.waiters.shift()?.(line);
      }
    });
  }

  static async open(port: number, auth: { user: string; pass: string } | null): Promise<Client> {
    const socket = net.connect(port, '127.0.0.1');
    const client = new Client(socket);
    const greeting = client.next();
    await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    await client.expect(greeting, '220');
    await client.send('EHLO bench.example\r\n', '250');
    if (auth) await client.send(`AUTH PLAIN ${Buffer.from(`\0${auth.user}\0${auth.pass}`).toString('base64')}\r\n`, '235');
    return client;
  }

  next(): Promise<string> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  async expect(reply: Promise<string>, code: string): Promise<void> {
    const line = await reply;
    if (!line.startsWith(code)) throw new Error(`expected ${code}, got ${line}`);
  }

  async send(bytes: string | Buffer, code: string): Promise<void> {
    const reply = this.next();
    this.socket.write(bytes);
    await this.expect(reply, code);
  }

  /** One message: MAIL, RCPT and DATA pipelined (RFC 2920), then the body and the final dot. */
  async message(body: Buffer): Promise<void> {
    const replies = [this.next(), this.next(), this.next()];
    this.socket.write(`MAIL FROM:<${USER}>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n`);
    await this.expect(replies[0]!, '250');
    await this.expect(replies[1]!, '250');
    await this.expect(replies[2]!, '354');
    await this.send(body, '250');
  }

  /** A message streamed in chunks with backpressure (the 50 MB case). */
  async bigMessage(bytes: number): Promise<void> {
    const replies = [this.next(), this.next(), this.next()];
    this.socket.write(`MAIL FROM:<${USER}>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n`);
    for (const r of replies) await r;
    const chunk = Buffer.from(`${'0123456789'.repeat(7)}\r\n`.repeat(900));
    this.socket.write('Subject: fifty megabytes\r\n\r\n');
    for (let sent = 0; sent < bytes; sent += chunk.length) {
      if (!this.socket.write(chunk)) await new Promise((r) => this.socket.once('drain', r));
    }
    await this.send('.\r\n', '250');
  }

  close(): void {
    this.socket.destroy();
  }
}

function makeBody(): Buffer {
  const line = `${'abcdefghij'.repeat(7)}\r\n`;
  const header = `From: ${USER}\r\nTo: bob@example.com\r\nSubject: bench\r\n\r\n`;
  return Buffer.from(`${header}${line.repeat(Math.floor((MESSAGE_BYTES - header.length) / line.length))}.\r\n`);
}

/** CPU ms per message of each process during one run: load generator (this process), upstream, proxy. */
interface CpuSplit {
  loadgen: number;
  upstream: number;
  proxy: number;
  /** The proxy's read / write system calls per message. */
  proxyReads: number;
  proxyWrites: number;
}

/** Runs throughput() and also returns the CPU each process spent per message (the machine's cores are shared). */
async function measured(port: number, auth: { user: string; pass: string } | null, body: Buffer, pids: { upstream?: number; proxy: number }): Promise<{ rate: number; cpu: CpuSplit }> {
  const own0 = process.cpuUsage();
  const up0 = pids.upstream ? cpuMs(pids.upstream) : 0;
  const proxy0 = cpuMs(pids.proxy);
  const io0 = syscalls(pids.proxy);
  const started = Date.now();
  const rate = await throughput(port, auth, body);
  const messages = rate * ((Date.now() - started) / 1000);
  const own = process.cpuUsage(own0);
  const io = syscalls(pids.proxy);
  return {
    rate,
    cpu: {
      loadgen: (own.user + own.system) / 1000 / messages,
      upstream: pids.upstream ? (cpuMs(pids.upstream) - up0) / messages : NaN,
      proxy: (cpuMs(pids.proxy) - proxy0) / messages,
      proxyReads: (io.reads - io0.reads) / messages,
      proxyWrites: (io.writes - io0.writes) / messages,
    },
  };
}

/** messages/s with CLIENTS connections sharing MESSAGES_PER_RUN messages (bounded by RUN_SECONDS). */
async function throughput(port: number, auth: { user: string; pass: string } | null, body: Buffer): Promise<number> {
  const clients = await Promise.all(Array.from({ length: CLIENTS }, () => Client.open(port, auth)));
  let remaining = MESSAGES_PER_RUN;
  let done = 0;
  const started = Date.now();
  const deadline = started + RUN_SECONDS * 1000;
  await Promise.all(
    clients.map(async (c) => {
      while (remaining > 0 && Date.now() < deadline) {
        remaining -= 1;
        await c.message(body);
        done += 1;
      }
    }),
  );
  const seconds = (Date.now() - started) / 1000;
  for (const c of clients) c.close();
  return done / seconds;
}

async function startUpstream(): Promise<{ port: number; name: string; pid?: number; stop(): Promise<void> }> {
  const sinkBin = findProgram('smtp-sink');
  if (sinkBin) {
    const port = await freePort();
    const args = [...(process.getuid?.() === 0 ? ['-u', 'nobody'] : []), `127.0.0.1:${port}`, '1000'];
    const child = spawn(sinkBin, args, { stdio: 'ignore' });
    await waitForPort(port);
    return {
      port,
      name: 'Postfix smtp-sink',
      pid: child.pid,
      stop: () =>
        new Promise<void>((resolve) => {
          child.once('exit', () => resolve());
          child.kill('SIGTERM');
        }),
    };
  }
  const sink = await startSmtpSink();
  return { port: sink.port, name: 'capturing sink (smtp-sink not installed)', stop: () => sink.stop() };
}

const fmt = (n: number, d = 0): string => n.toFixed(d);

async function main(): Promise<void> {
  if (process.argv[2] === '--proxy') return runProxy(process.argv[3]!);
  const redis = await startRedis();
  const upstream = await startUpstream();
  const dir = tempDir('bench-smtp');
  fs.copyFileSync(path.join(__dirname, '../../config/policy.yaml'), path.join(dir, 'policy.yaml'));
  const config = {
    instanceName: 'bench-smtp',
    policyFile: 'policy.yaml',
    store: { type: 'redis', redis: { mode: 'standalone', host: redis.host, port: redis.port } },
    identity: { sources: [{ type: 'app-password', hmacKeyFile: writeAppPasswordKey(dir) }] },
    smtp: {
      listeners: [{ host: '127.0.0.1', port: 0, tls: 'none' }],
      upstream: { host: '127.0.0.1', port: upstream.port, tls: 'none', login: 'master', xclient: true },
      maxMessageBytes: 52428800,
      hostname: 'mailwarden.bench',
    },
    logging: { level: 'error' },
  };
  const configFile = path.join(dir, 'mailwarden.yaml');
  fs.writeFileSync(configFile, JSON.stringify(config));
  const proxy = await startProxyChild(configFile);
  const pid = proxy.child.pid!;
  try {
    console.log(`smtp bench: upstream ${upstream.name}; ${CLIENTS} clients, ${MESSAGE_BYTES / 1024} KB messages, ≤ ${MESSAGES_PER_RUN} messages or ${RUN_SECONDS} s per run, ${ROUNDS} rounds alternating`);
    const body = makeBody();
    const auth = { user: USER, pass: proxy.password };
    await throughput(upstream.port, null, body); // warm-up
    await throughput(proxy.port, auth, body);
    const direct: number[] = [];
    const viaProxy: number[] = [];
    const directCpu: CpuSplit[] = [];
    const proxyCpu: CpuSplit[] = [];
    const pids = { upstream: upstream.pid, proxy: pid };
    const split = (c: CpuSplit): string => `load generator ${fmt(c.loadgen, 3)} + upstream ${fmt(c.upstream, 3)} + proxy ${fmt(c.proxy, 3)} ms`;
    for (let round = 0; round < ROUNDS; round++) {
      const d = await measured(upstream.port, null, body, pids);
      const p = await measured(proxy.port, auth, body, pids);
      direct.push(d.rate);
      viaProxy.push(p.rate);
      directCpu.push(d.cpu);
      proxyCpu.push(p.cpu);
      console.log(`  round ${round + 1}: direct ${fmt(d.rate)} msg/s   mailwarden ${fmt(p.rate)} msg/s`);
      console.log(`    CPU per message, direct: ${split(d.cpu)};  through mailwarden: ${split(p.cpu)}`);
      console.log(`    proxy system calls per message: ${fmt(p.cpu.proxyReads, 1)} reads, ${fmt(p.cpu.proxyWrites, 1)} writes`);
    }
    const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const d = median(direct);
    const p = median(viaProxy);
    const proxyCpuPerMessage = median(proxyCpu.map((c) => c.proxy));
    const total = (cs: CpuSplit[]): number => median(cs.map((c) => c.loadgen + (Number.isNaN(c.upstream) ? 0 : c.upstream) + c.proxy));
    console.log(`  median: direct ${fmt(d)} msg/s   mailwarden ${fmt(p)} msg/s   ratio ${fmt(p / d, 2)}×   proxy CPU ≈ ${fmt(proxyCpuPerMessage, 3)} ms/message`);
    // Each process is single-threaded: 1000 / (its ms per message) is its ceiling; the sum must also fit the cores.
    const sinkCpu = median(directCpu.map((c) => c.upstream));
    console.log(
      `  all processes' CPU per message: direct ${fmt(total(directCpu), 3)} ms (${fmt((total(directCpu) * d) / 1000, 2)} cores busy), through mailwarden ${fmt(total(proxyCpu), 3)} ms (${fmt((total(proxyCpu) * p) / 1000, 2)} cores); one-core ceilings: upstream ${fmt(1000 / sinkCpu)} msg/s, mailwarden ${fmt(1000 / proxyCpuPerMessage)} msg/s`,
    );

    // BENCH_SKIP_BIG=1: throughput only (quicker A/B runs while tuning).
    if (process.env.BENCH_SKIP_BIG === '1') return;
    console.log(`\nmailwarden RSS while relaying a ${BIG_BYTES / 1e6} MB message (two in a row; sampled every 10 ms)`);
    const big: { baselineMb: number; peakMb: number }[] = [];
    for (let i = 0; i < 2; i++) {
      const client = await Client.open(proxy.port, auth);
      const baseline = rssKb(pid);
      let peak = baseline;
      const timer = setInterval(() => (peak = Math.max(peak, rssKb(pid))), 10);
      await client.bigMessage(BIG_BYTES);
      clearInterval(timer);
      client.close();
      big.push({ baselineMb: baseline / 1024, peakMb: peak / 1024 });
      console.log(`  relay ${i + 1}: RSS before ${fmt(baseline / 1024, 1)} MB, peak ${fmt(peak / 1024, 1)} MB, growth ${fmt((peak - baseline) / 1024, 1)} MB (${fmt(((peak - baseline) / 1024 / (BIG_BYTES / 1048576)) * 100, 1)}% of the message)`);
    }
    console.log(JSON.stringify({ upstream: upstream.name, directPerSecond: d, proxyPerSecond: p, ratio: p / d, proxyCpuMsPerMessage: proxyCpuPerMessage, big }));
  } finally {
    proxy.child.kill('SIGTERM');
    await upstream.stop();
    await cleanupRedis(redis);
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
