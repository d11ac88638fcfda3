// `npm run bench:hooks`: what each gateway hook adds, through the real daemons, in one run with the
// baselines alternating (the perf rig's bench.js rotates the targets inside every repetition):
//   IMAP logins (LOGIN + LOGOUT): Dovecot directly; nginx mail with the perf rig's auth_http peer
//   (a Node service doing one Redis lookup); the same nginx with mailwarden's auth_http hook;
//   Dovecot with mailwarden as its auth policy server.
//   SMTP submission (AUTH PLAIN through Dovecot SASL + one message): Postfix without and with
//   mailwarden's policy service (check_policy_service, as docs/hooks.md places it).
// mailwarden runs in a child process (`startRuntime`, which starts the hooks as `mailwarden start`
// does), so its CPU is its own; CPU per login is read per process tree. Loopback only; bounded:
// BENCH_SECONDS per run, BENCH_REPS repetitions, BENCH_CONCURRENCY client counts (default 1 and 50).
// The mailwarden child uses the default device cache; BENCH_CPU_PROF=<dir> profiles it.
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { startRuntime } from '../src/app/runtime';
import { createLogger, silentLogger } from '../src/core/log';
import { startRedis, cleanupRedis } from '../test/harness/redis';
import { startDovecot } from '../test/harness/dovecot';
import { startNginx } from '../test/harness/nginx';
import { startPostfix } from '../test/harness/postfix';
import { freePort, tempDir, waitForPort, stopProcess } from '../test/harness/ports';
import { docBlock, substitute } from '../test/integration/doc-blocks';
import { findRig } from './perf-rig';

const execFileP = promisify(execFile);
const USERS = 50;
const PASSWORD = 'benchpass';
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const REPS = Number(process.env.BENCH_REPS ?? 3);
const CONCURRENCIES = (process.env.BENCH_CONCURRENCY ?? '1 50').split(/\s+/).map(Number);
const SECRET = 'bench-nginx-secret';
const POLICY_KEY = 'bench-dovecot-key';
const ROOT = path.resolve(__dirname, '../..');
const TIKTOK = 'com.zhiliaoapp.musically';

// ---- child mode: mailwarden with its hooks -------------------------------------------------------

async function runMailwarden(configFile: string): Promise<void> {
  const logger = process.env.BENCH_LOG ? createLogger({ level: 'info' }) : silentLogger();
  const runtime = await startRuntime({ configFile, logger, watch: false });
  const now = new Date().toISOString();
  const device = (deviceId: string, user: string, apps: string[]) =>
    runtime.store.putDevice({ deviceId, user, platform: 'ios', osVersion: '18.2', managed: true, apps, reportedAt: now, source: 'bench', receivedAt: now }, 3600);
  for (let i = 0; i < USERS; i++) await device(`d${i}`, `u${i}`, ['com.apple.mobilemail']);
  await device('dbad', 'u1', [TIKTOK]);
  const { nginx, dovecot, postfix } = runtime.hooks()!.addresses;
  process.stdout.write(`PORTS ${JSON.stringify({ nginx: nginx!.port, dovecot: dovecot!.port, postfix: postfix!.port })}\n`);
  process.on('SIGTERM', () => void runtime.stop(0).then(() => process.exit(0)));
}

function startChild(args: string[]): Promise<{ child: ChildProcess; line: string }> {
  // BENCH_CPU_PROF=<dir>: a V8 CPU profile of mailwarden (written when it stops), as bench:imap does.
  const profile = process.env.BENCH_CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', path.resolve(process.env.BENCH_CPU_PROF)] : [];
  const child = spawn(process.execPath, [...profile, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      // BENCH_LOG=1 puts log lines on stdout too.
      const ports = /^PORTS (.*)$/m.exec(out);
      if (ports) resolve({ child, line: ports[1]! });
      else if (process.env.BENCH_LOG) process.stderr.write(d);
    });
    child.once('exit', (code) => reject(new Error(`${args[0]} exited ${code}`)));
  });
}

// ---- the run -------------------------------------------------------------------------------------

interface RunRecord {
  phase: string;
  target: string;
  concurrency: number;
  logins_per_s?: number;
  logins_total?: number;
  p50_ms?: number;
  p99_ms?: number;
  msgs_per_s?: number;
  messages_total?: number;
  msg_p50_ms?: number;
  msg_p99_ms?: number;
  errors: number;
  cpu: Record<string, { cpu_s: number }>;
}

const median = (values: number[]): number => {
  const s = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

async function main(): Promise<void> {
  if (process.argv[2] === '--mailwarden') return runMailwarden(process.argv[3]!);
  const rig = path.join(findRig(), 'node');
  const dir = tempDir('bench-hooks');
  const redis = await startRedis();
  const users = Array.from({ length: USERS }, (_, i) => ({ user: `u${i}`, password: PASSWORD }));
  // One Dovecot for direct IMAP logins, the nginx backends and Postfix's SASL; a second one asks mailwarden.
  const backend = await startDovecot({ users, extraConfig: 'service auth {\n  unix_listener auth-postfix {\n    mode = 0666\n  }\n}\n' });
  const children: ChildProcess[] = [];
  const cleanups: (() => Promise<void>)[] = [];
  try {
    // Asserted `u<i>+d<i>` names through nginx (the peer's login form): a device decision per login;
    // `u1+dbad` has TikTok and is refused (the rig's sanity check). The Dovecot and Postfix hooks see
    // the plain user name Dovecot verified: no device, so require-device only reports (audited) and
    // banned-apps passes an unknown device; each login still runs the policy and writes its audit event.
    fs.writeFileSync(
      path.join(dir, 'policy.yaml'),
      JSON.stringify({
        unidentified: { action: 'allow' },
        brake: { enabled: false },
        checks: [
          { id: 'require-device', plugin: 'require-device', mode: 'report' },
          { id: 'no-tiktok', plugin: 'banned-apps', onUnknown: 'pass', options: { apps: { ios: [TIKTOK] } } },
        ],
      }),
    );
    const config = {
      instanceName: 'bench-hooks',
      policyFile: 'policy.yaml',
      // The default device cache (30 s, emptied by the change feed when a report lands), as shipped.
      store: { type: 'redis', redis: { mode: 'standalone', host: redis.host, port: redis.port, keyPrefix: 'mwb:' } },
      identity: { sources: [{ type: 'asserted', separator: '+' }] },
      hooks: {
        nginx: { listen: { host: '127.0.0.1', port: 0 }, secret: SECRET, backends: { imap: { host: '127.0.0.1', port: backend.port } } },
        dovecot: { listen: { host: '127.0.0.1', port: 0 }, apiKey: POLICY_KEY },
        postfix: { listen: { host: '127.0.0.1', port: 0 }, allowFrom: ['127.0.0.1'] },
      },
      logging: { level: 'error' },
    };
    fs.writeFileSync(path.join(dir, 'mailwarden.yaml'), JSON.stringify(config));
    const ours = await startChild([__filename, '--mailwarden', path.join(dir, 'mailwarden.yaml')]);
    children.push(ours.child);
    const hookPorts = JSON.parse(ours.line) as { nginx: number; dovecot: number; postfix: number };

    // The perf rig's peer: device:<id> = compliant in Redis (its ioredis is ours: the rig has no node_modules).
    await execFileP('redis-cli', ['-p', String(redis.port), 'MSET', ...Array.from({ length: USERS }, (_, i) => [`device:d${i}`, 'compliant']).flat()]);
    const peerPort = await freePort();
    const peer = spawn(
      process.execPath,
      [path.join(rig, 'auth-http.js'), '--port', String(peerPort), '--redis', `127.0.0.1:${redis.port}`, '--imap', `127.0.0.1:${backend.port}`, '--smtp', `127.0.0.1:${backend.port}`],
      { stdio: 'ignore', env: { ...process.env, NODE_PATH: path.join(ROOT, 'node_modules') } },
    );
    children.push(peer);
    await waitForPort(peerPort);

    // One nginx, two plain-IMAP mail servers that differ only in their auth_http service.
    const nginx = await startNginx({
      ports: ['ours', 'peer'],
      mail: (ports) => `mail {
    server_name bench.test;
    auth_http_timeout 10s;
    proxy_pass_error_message on;
    imap_auth login plain;
    server {
        listen 127.0.0.1:${ports.ours};
        protocol imap;
        auth_http 127.0.0.1:${hookPorts.nginx}/nginx/auth;
        auth_http_header X-Mailwarden-Key "${SECRET}";
    }
    server {
        listen 127.0.0.1:${ports.peer};
        protocol imap;
        auth_http 127.0.0.1:${peerPort}/auth;
    }
}`,
    });
    cleanups.push(() => nginx.cleanup());

    // Dovecot asking mailwarden: the documented policy settings (the oauth2 passdb and doveadm parts
    // are left out: no app passwords here).
    const policyBlock = docBlock('dovecot-conf').split("# mailwarden's device-bound app passwords")[0]!;
    const gated = await startDovecot({
      users,
      extraConfig: `${substitute(policyBlock, [['127.0.0.1:9200', `127.0.0.1:${hookPorts.dovecot}`], ['change-me-dovecot-policy-key', POLICY_KEY]])}\n`,
    });
    cleanups.push(() => gated.cleanup());

    // Postfix: two submission services on one instance, without and with the policy check (the
    // documented restriction lists, over plain SMTP: AUTH without TLS on loopback). Mail goes to discard.
    const [plainPort, policyPort] = [await freePort(), await freePort()];
    const postfix = await startPostfix({
      mailboxes: ['sink@rig.test'],
      saslSocket: path.join(backend.dir, 'run', 'auth-postfix'),
      extraMainCf: `virtual_mailbox_domains = example.com, rig.test
virtual_transport = discard:bench
bench_plain_restrictions = permit_sasl_authenticated, reject
bench_policy_restrictions =
    check_policy_service { inet:127.0.0.1:${hookPorts.postfix}, timeout=5s, { default_action = 451 4.7.1 Compliance check unavailable } },
    permit_sasl_authenticated, reject
`,
      extraMasterCf: [
        [plainPort, 'plain'],
        [policyPort, 'policy'],
      ]
        .map(([port, name]) => `127.0.0.1:${port} inet n - n - - smtpd\n  -o syslog_name=postfix/${name}\n  -o smtpd_sasl_auth_enable=yes\n  -o smtpd_sender_restrictions=$bench_${name}_restrictions\n  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject\n`)
        .join(''),
      waitForPort: policyPort,
    });
    cleanups.push(() => postfix.cleanup());

    const results = path.join(dir, 'results.jsonl');
    const redisPid = /process_id:(\d+)/.exec((await execFileP('redis-cli', ['-p', String(redis.port), 'INFO', 'server'])).stdout)?.[1];
    const groups = `mailwarden=${ours.child.pid} peer=${peer.pid} redis=${redisPid} nginx=${nginx.pid}`;
    const run = async (phase: 'check' | 'login' | 'smtp', targets: string[], concurrency: number, label: string = phase): Promise<void> => {
      const args = [path.join(rig, 'bench.js'), phase, '--label', label, '--targets', targets.join(' '), '--users', String(USERS), '--pass', PASSWORD, '--concurrency', String(concurrency), '--reps', String(REPS), '--duration', String(SECONDS), '--groups', groups, '--out', results];
      if (phase === 'smtp') args.push('--msgs', '1', '--size', '2000');
      await execFileP(process.execPath, args, { timeout: (SECONDS + 4) * (REPS + 1) * targets.length * 1000 + 60000 });
    };
    const imapTargets = [`direct=127.0.0.1:${backend.port}`, `nginx_peer=127.0.0.1:${nginx.ports.peer}/dev`, `nginx_mailwarden=127.0.0.1:${nginx.ports.ours}/dev`, `dovecot_policy=127.0.0.1:${gated.port}`];
    const smtpTargets = [`postfix=127.0.0.1:${plainPort}`, `postfix_policy=127.0.0.1:${policyPort}`];
    // Before measuring: every target logs in (and sends), and nginx refuses the device `dbad`.
    try {
      await run('check', imapTargets, 1, 'imap');
      await run('check', smtpTargets, 1, 'smtp');
    } catch (err) {
      throw new Error(`sanity check failed: ${(err as { stdout?: string }).stdout ?? String(err)}\nDovecot (policy) log:\n${fs.readFileSync(gated.logFile, 'utf8').slice(-3000)}\nPostfix log:\n${postfix.log().slice(-3000)}`);
    }
    const started = Date.now();
    const loadBefore = os.loadavg()[0]!;
    for (const concurrency of CONCURRENCIES) {
      await run('login', imapTargets, concurrency);
      await run('smtp', smtpTargets, concurrency);
    }
    const records = fs.readFileSync(results, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as RunRecord);
    console.log(report(records, { seconds: (Date.now() - started) / 1000, loadBefore, loadAfter: os.loadavg()[0]! }));
  } finally {
    for (const c of children) await stopProcess(c);
    for (const c of cleanups) await c();
    await backend.cleanup();
    await cleanupRedis(redis);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

// ---- the report ----------------------------------------------------------------------------------

interface Figures {
  rate: number;
  p50: number;
  p99: number;
  /** ms of CPU per operation of each process group. */
  cpu: Record<string, number>;
  errors: number;
}

function figures(records: RunRecord[], target: string, concurrency: number): Figures {
  const runs = records.filter((r) => r.target === target && r.concurrency === concurrency && r.cpu);
  const ops = (r: RunRecord) => Math.max(1, r.logins_total ?? r.messages_total ?? 0);
  const cpu: Record<string, number> = {};
  for (const group of ['mailwarden', 'peer', 'redis', 'nginx']) cpu[group] = median(runs.map((r) => (1000 * (r.cpu[group]?.cpu_s ?? NaN)) / ops(r)));
  return {
    rate: median(runs.map((r) => r.logins_per_s ?? r.msgs_per_s ?? NaN)),
    p50: median(runs.map((r) => r.p50_ms ?? r.msg_p50_ms ?? NaN)),
    p99: median(runs.map((r) => r.p99_ms ?? r.msg_p99_ms ?? NaN)),
    cpu,
    errors: runs.reduce((n, r) => n + r.errors, 0),
  };
}

function report(records: RunRecord[], run: { seconds: number; loadBefore: number; loadAfter: number }): string {
  const f2 = (n: number) => (Number.isFinite(n) ? n.toFixed(2) : '-');
  const out: string[] = [
    `bench:hooks: ${REPS} runs of ${SECONDS} s per target and client count, targets alternating, medians; ${USERS} users; ` +
      `${os.cpus().length} cores, load average ${run.loadBefore.toFixed(2)} before / ${run.loadAfter.toFixed(2)} after (${run.seconds.toFixed(0)} s)`,
    '',
    '| clients | target | ops/s | p50 ms | p99 ms | hook CPU ms/op | Redis CPU ms/op | errors |',
    '|---|---|---|---|---|---|---|---|',
  ];
  const targets = ['direct', 'nginx_peer', 'nginx_mailwarden', 'dovecot_policy', 'postfix', 'postfix_policy'];
  const hookGroup = (t: string) => (t === 'nginx_peer' ? 'peer' : ['direct', 'postfix'].includes(t) ? null : 'mailwarden');
  for (const concurrency of CONCURRENCIES) {
    for (const target of targets) {
      const f = figures(records, target, concurrency);
      const group = hookGroup(target);
      out.push(`| ${concurrency} | ${target} | ${f.rate.toFixed(0)} | ${f2(f.p50)} | ${f2(f.p99)} | ${group ? f2(f.cpu[group]!) : '-'} | ${f2(f.cpu.redis!)} | ${f.errors} |`);
    }
  }
  out.push('', 'Ratios and added latency (same run):');
  for (const concurrency of CONCURRENCIES) {
    const get = (t: string) => figures(records, t, concurrency);
    const [direct, peer, ours, dovecot, postfix, policy] = targets.map(get) as [Figures, Figures, Figures, Figures, Figures, Figures];
    out.push(
      `- ${concurrency} client(s), nginx: mailwarden vs the peer: CPU per login ${f2(ours.cpu.mailwarden! / peer.cpu.peer!)}x ` +
        `(with Redis ${f2((ours.cpu.mailwarden! + ours.cpu.redis!) / (peer.cpu.peer! + peer.cpu.redis!))}x), ` +
        `p50 ${f2(ours.p50 - peer.p50)} ms, p99 ${f2(ours.p99 - peer.p99)} ms, logins/s ${f2(ours.rate / peer.rate)}x ` +
        `(nginx with mailwarden adds ${f2(ours.p50 - direct.p50)} ms p50 over direct Dovecot)`,
      `- ${concurrency} client(s), Dovecot policy: adds ${f2(dovecot.p50 - direct.p50)} ms p50, ${f2(dovecot.p99 - direct.p99)} ms p99; ` +
        `logins/s ${f2(dovecot.rate / direct.rate)}x of direct; mailwarden CPU ${f2(dovecot.cpu.mailwarden!)} ms/login`,
      `- ${concurrency} client(s), Postfix policy: adds ${f2(policy.p50 - postfix.p50)} ms p50, ${f2(policy.p99 - postfix.p99)} ms p99 per message; ` +
        `messages/s ${f2(policy.rate / postfix.rate)}x of plain Postfix; mailwarden CPU ${f2(policy.cpu.mailwarden!)} ms/message`,
    );
  }
  return out.join('\n');
}

void main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
