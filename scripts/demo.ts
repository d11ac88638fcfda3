// `npm run demo`: a rehearsal on a bare machine. Starts, in a scratch folder and on free loopback
// ports, a real Dovecot (IMAP upstream) and a real Postfix (submission upstream; the test harness's
// capturing SMTP server when not root), mailwarden on the embedded store with the example policy,
// a fake reporter key and three fake devices, then prints the commands that show one device
// refused and others allowed. Ctrl-C stops everything it started and removes the scratch folder.
// Nothing tracked in the repository is written; nothing is installed.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildReport, enrollDevice, makeReporterKeys, pushReport, signReport } from '../src/kit';
import { startDovecot, type DovecotServer } from '../test/harness/dovecot';
import { startPostfix, type PostfixServer } from '../test/harness/postfix';
import { startSmtpSink, type SmtpSink } from '../test/harness/smtp-sink';
import { findProgram, freePort, stopProcess } from '../test/harness/ports';

const ROOT = path.resolve(__dirname, '../..');
const CLI = path.join(ROOT, 'dist/src/cli/index.js');
const TIKTOK = 'com.zhiliaoapp.musically';
const ALICE = { user: 'alice@example.com', password: 'alice-pw' };
const MASTER = { user: 'mailwarden', password: 'demo-master-pw' };

/** The three fake devices: what each reports, and what the example policy makes of it. */
const DEVICES = [
  { id: 'iphone-tiktok', what: "alice's iPhone, TikTok installed", platform: 'ios', os: '17.5', apps: [TIKTOK] },
  { id: 'iphone-clean', what: "alice's iPhone, no TikTok", platform: 'ios', os: '17.5', apps: ['com.apple.mobilemail'] },
  { id: 'macbook-tiktok', what: "alice's MacBook, TikTok installed", platform: 'macos', os: '14.5', apps: [TIKTOK] },
] as const;

/** One command the demo prints, and what it must show (the demo's test runs each one). */
export interface DemoStep {
  readonly title: string;
  readonly command: string;
  readonly exitCode: number;
  readonly shows: string;
}

interface Started {
  dovecot?: DovecotServer;
  postfix?: PostfixServer;
  sink?: SmtpSink;
  mailwarden?: ChildProcess;
}

const say = (line = ''): void => void process.stdout.write(`${line}\n`);
const quote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

/** The Debian packages the demo needs and lacks; it installs nothing itself. */
function missingPackages(): string[] {
  const need: string[] = [];
  if (!findProgram('dovecot') || !fs.existsSync('/usr/lib/dovecot/imap')) need.push('dovecot-imapd');
  if (process.getuid?.() === 0 && !fs.existsSync('/usr/lib/postfix/sbin/master')) need.push('postfix');
  if (!fs.existsSync(CLI)) throw new Error(`${CLI} is missing: run "npm run build" first (npm run demo does)`);
  return need;
}

function demoConfig(ports: { imap: number; smtp: number; admin: number }, upstreams: { imap: number; smtp: number }, token: string) {
  return {
    instanceName: 'mailwarden-demo',
    policyFile: 'policy.yaml',
    store: { type: 'memory' },
    reports: { jwksFile: 'reporters.jwks.json' },
    admin: { listen: { host: '127.0.0.1', port: ports.admin }, tokens: [token] },
    identity: { sources: [{ type: 'app-password' }] },
    imap: {
      listeners: [{ host: '127.0.0.1', port: ports.imap, tls: 'none' }],
      upstream: { host: '127.0.0.1', port: upstreams.imap, tls: 'none', login: 'master', masterUser: MASTER.user, masterPassword: MASTER.password },
    },
    smtp: {
      listeners: [{ host: '127.0.0.1', port: ports.smtp, tls: 'none' }],
      // App-password devices reach the upstream with XCLIENT LOGIN=: it never sees the app password.
      upstream: { host: '127.0.0.1', port: upstreams.smtp, tls: 'none', login: 'master', xclient: true },
      hostname: 'mailwarden.demo',
    },
    logging: { level: 'info', format: 'text' },
  };
}

async function waitForAdmin(url: string, child: ChildProcess, logFile: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`mailwarden exited with status ${child.exitCode}:\n${tail(logFile)}`);
    const ok = await fetch(`${url}/readyz`).then((r) => r.ok, () => false);
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`mailwarden did not become ready within 20 s:\n${tail(logFile)}`);
}

const tail = (file: string): string => (fs.existsSync(file) ? fs.readFileSync(file, 'utf8').split('\n').slice(-20).join('\n') : '');

async function stopAll(started: Started, scratch: string): Promise<void> {
  await stopProcess(started.mailwarden ?? null);
  await Promise.all([started.dovecot?.cleanup(), started.postfix?.cleanup(), started.sink?.stop()]);
  fs.rmSync(scratch, { recursive: true, force: true });
}

export async function runDemo(): Promise<void> {
  const missing = missingPackages();
  if (missing.length > 0) {
    say(`The demo runs a real Dovecot${missing.includes('postfix') ? ' and Postfix' : ''}; install ${missing.length > 1 ? 'them' : 'it'} first (the demo installs nothing):`);
    say(`  sudo apt-get install ${missing.join(' ')}`);
    process.exitCode = 1;
    return;
  }
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'mailwarden-demo-'));
  const started: Started = {};
  let stopping: Promise<void> | null = null;
  const stop = (): Promise<void> => (stopping ??= stopAll(started, scratch));
  const onSignal = (): void => {
    say();
    say('stopping: mailwarden, Dovecot, the SMTP upstream; removing the scratch folder');
    void stop().then(() => say('demo stopped'));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  try {
    started.dovecot = await startDovecot({ users: [ALICE, { user: 'bob@example.com', password: 'bob-pw' }], master: MASTER });
    const asRoot = process.getuid?.() === 0;
    // Postfix's master(8) must start as root; otherwise the harness's capturing SMTP server stands in.
    if (asRoot) started.postfix = await startPostfix({ xclientHosts: ['127.0.0.1'] });
    else started.sink = await startSmtpSink({ xclient: true });
    const smtpUpstream = (started.postfix ?? started.sink) as { port: number };

    const ports = { imap: await freePort(), smtp: await freePort(), admin: await freePort() };
    const token = `demo-${Math.random().toString(36).slice(2, 12)}`;
    const reporter = await makeReporterKeys({ kid: 'demo-mdm', outDir: scratch });
    fs.copyFileSync(path.join(ROOT, 'config/policy.yaml'), path.join(scratch, 'policy.yaml'));
    const candidateFile = path.join(scratch, 'candidate.yaml');
    fs.writeFileSync(candidateFile, candidatePolicy(fs.readFileSync(path.join(ROOT, 'config/policy.yaml'), 'utf8')));
    const configFile = path.join(scratch, 'mailwarden.yaml');
    fs.writeFileSync(configFile, `${JSON.stringify(demoConfig(ports, { imap: started.dovecot.port, smtp: smtpUpstream.port }, token), null, 2)}\n`);

    const logFile = path.join(scratch, 'mailwarden.log');
    const log = fs.openSync(logFile, 'a');
    started.mailwarden = spawn(process.execPath, [CLI, 'start', '--config', configFile], { stdio: ['ignore', log, log] });
    fs.closeSync(log);
    const adminUrl = `http://127.0.0.1:${ports.admin}`;
    await waitForAdmin(adminUrl, started.mailwarden, logFile);

    const passwords = new Map<string, string>();
    for (const d of DEVICES) {
      const report = buildReport({ deviceId: d.id, user: ALICE.user, platform: d.platform, osVersion: d.os, managed: true, apps: d.apps });
      const pushed = await pushReport(adminUrl, token, await signReport(report, reporter.privateJwk));
      if (!pushed.ok) throw new Error(`report for ${d.id} refused: ${pushed.code} ${pushed.message}`);
      passwords.set(d.id, (await enrollDevice(adminUrl, token, { user: ALICE.user, deviceId: d.id })).password);
    }
    if (stopping) return;

    const steps = demoSteps({ ports, passwords, configFile, candidateFile });
    say('mailwarden demo: running. Ctrl-C stops everything and removes the scratch folder.');
    say();
    say(`  Dovecot          IMAP upstream on 127.0.0.1:${started.dovecot.port} (pid ${started.dovecot.pid}), master user "${MASTER.user}"`);
    say(
      started.postfix
        ? `  Postfix          submission upstream on 127.0.0.1:${started.postfix.port}, XCLIENT allowed from 127.0.0.1`
        : `  SMTP upstream    the test harness's capturing SMTP server on 127.0.0.1:${smtpUpstream.port} (Postfix needs root)`,
    );
    say(`  mailwarden       IMAP 127.0.0.1:${ports.imap}, SMTP submission 127.0.0.1:${ports.smtp}, admin ${adminUrl} (pid ${started.mailwarden.pid})`);
    say('  store            the embedded in-memory store (one instance, forgotten at exit)');
    say('  policy           config/policy.yaml: phones with TikTok lose company mail; laptops are not affected');
    say(`  scratch folder   ${scratch} (config, keys, candidate.yaml, log: mailwarden.log)`);
    say();
    say('  devices (signed reports from a fake MDM key, app passwords issued by mailwarden):');
    for (const d of DEVICES) say(`    ${d.id.padEnd(15)} ${d.what.padEnd(36)} app password ${passwords.get(d.id)}`);
    say();
    say('Try these in another terminal:');
    for (const s of steps) {
      say();
      say(`# ${s.title} (expect exit ${s.exitCode} and "${s.shows}")`);
      say(s.command);
    }
    say();
    say('demo ready');
    await new Promise<void>((resolve) => {
      const wait = setInterval(() => {
        if (stopping || started.mailwarden?.exitCode !== null) {
          clearInterval(wait);
          resolve();
        }
      }, 200);
    });
    if (!stopping) say(`mailwarden exited:\n${tail(logFile)}`);
  } catch (err) {
    process.exitCode = 1;
    process.stderr.write(`demo: ${(err as Error).message}\n`);
  } finally {
    await stop();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/** The printed commands, in the order a person would try them. */
export function demoSteps(input: { ports: { imap: number; smtp: number }; passwords: ReadonlyMap<string, string>; configFile: string; candidateFile: string }): DemoStep[] {
  const { imap, smtp } = input.ports;
  const pw = (id: string): string => input.passwords.get(id) ?? '';
  const curl = (id: string) => `curl -sS -v ${quote(`imap://127.0.0.1:${imap}/`)} --user ${quote(`${ALICE.user}:${pw(id)}`)}`;
  const swaks = (id: string) =>
    `swaks --server 127.0.0.1:${smtp} --auth PLAIN --auth-user ${ALICE.user} --auth-password ${quote(pw(id))} --from ${ALICE.user} --to bob@example.com --h-Subject ${quote(`demo from ${id}`)}`;
  const cli = (args: string) => `node ${quote(CLI)} ${args} --config ${quote(input.configFile)}`;
  return [
    { title: 'refused: the iPhone with TikTok, over IMAP', command: curl('iphone-tiktok'), exitCode: 67, shows: 'NO [CONTACTADMIN] Company mail is blocked on this iOS device because TikTok is installed' },
    { title: 'allowed: the clean iPhone, over IMAP (its mailbox list)', command: curl('iphone-clean'), exitCode: 0, shows: 'INBOX' },
    { title: 'allowed: the MacBook with TikTok (laptops are not affected), over IMAP', command: curl('macbook-tiktok'), exitCode: 0, shows: 'INBOX' },
    { title: 'refused: the iPhone with TikTok, over SMTP submission (at MAIL FROM)', command: swaks('iphone-tiktok'), exitCode: 23, shows: '550 5.7.1 Company mail is blocked' },
    { title: 'allowed: the MacBook with TikTok, over SMTP submission', command: swaks('macbook-tiktok'), exitCode: 0, shows: '250 2.0.0' },
    { title: '"why is this device blocked?"', command: cli('device show iphone-tiktok'), exitCode: 0, shows: 'DENY BANNED_APP' },
    { title: 'the decisions just made, newest last', command: cli('audit tail -n 10'), exitCode: 0, shows: 'iphone-tiktok' },
    {
      title: 'rehearse a change before it bites: candidate.yaml also bans TikTok on macOS; who would it newly deny?',
      command: cli(`policy simulate ${quote(input.candidateFile)}`),
      exitCode: 0,
      shows: 'macbook-tiktok',
    },
  ];
}

/**
 * The example policy with macOS added to the TikTok ban: the candidate the demo's simulate step
 * rehearses (written to the scratch folder; the tracked config/policy.yaml is only read).
 */
export function candidatePolicy(example: string): string {
  const out = example
    .replace('platforms: [ios, ipados, android]', 'platforms: [ios, ipados, android, macos]')
    .replace('        ipados: [com.zhiliaoapp.musically]\n', '        ipados: [com.zhiliaoapp.musically]\n        macos: [com.zhiliaoapp.musically]\n');
  if (!out.includes('macos: [com.zhiliaoapp.musically]')) throw new Error('config/policy.yaml changed: the demo candidate no longer applies');
  return out;
}

if (require.main === module) void runDemo();
