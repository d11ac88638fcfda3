// `mailwarden start` (the built command) tells the person who started it, first and in plain words,
// what is listening, which store it uses, and whether each upstream answers; a service (JSON logs)
// gets the same facts as log entries. One upstream here answers, the other does not.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import YAML from 'yaml';
import { freePort, tempDir } from '../harness/ports';

const ROOT = path.resolve(__dirname, '../..');
const CLI = path.join(ROOT, 'dist/src/cli/index.js');

let dir: string;
let upstream: net.Server;
let imapUpstreamPort: number;
let deadSmtpPort: number;

beforeAll(async () => {
  upstream = net.createServer((socket) => socket.end());
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  imapUpstreamPort = (upstream.address() as net.AddressInfo).port;
  deadSmtpPort = await freePort();
});
afterAll(async () => {
  await new Promise<void>((resolve) => upstream.close(() => resolve()));
});
beforeEach(() => {
  dir = tempDir('cli-start');
  fs.copyFileSync(path.join(ROOT, 'config/policy.yaml'), path.join(dir, 'policy.yaml'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

/** The example configuration on free ports, with the two upstreams above and the given log format. */
function writeConfig(format: string): string {
  const config = YAML.parse(fs.readFileSync(path.join(ROOT, 'config/mailwarden.yaml'), 'utf8'));
  config.admin.listen = { host: '127.0.0.1', port: 0 };
  config.imap.listeners = [{ host: '127.0.0.1', port: 0, tls: 'none' }];
  config.imap.upstream.port = imapUpstreamPort;
  config.smtp.listeners = [{ host: '127.0.0.1', port: 0, tls: 'none' }];
  config.smtp.upstream.port = deadSmtpPort;
  config.logging = { level: 'info', format };
  const file = path.join(dir, 'mailwarden.yaml');
  fs.writeFileSync(file, YAML.stringify(config));
  return file;
}

/** Starts the command, collects stdout until `until` matches, stops it with SIGTERM and waits for its exit. */
async function startUntil(configFile: string, until: RegExp): Promise<{ stdout: string; status: number | null }> {
  const child: ChildProcess = spawn(process.execPath, [CLI, 'start', '--config', configFile], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stdout += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const deadline = Date.now() + 15_000;
  while (!until.test(stdout) && Date.now() < deadline && child.exitCode === null) await new Promise((r) => setTimeout(r, 50));
  child.kill('SIGTERM');
  return { stdout, status: await exited };
}

test('text (a terminal or logging.format text): the banner first, the store warning loud, each upstream answers or not; then the log lines', async () => {
  const { stdout, status } = await startUntil(writeConfig('text'), /INFO +mailwarden started/);
  expect(status).toBe(0);
  const lines = stdout.split('\n');
  expect(lines[0]).toMatch(/^mailwarden \d+\.\d+\.\d+\S* is running \(instance mailwarden-1, .*mailwarden\.yaml, policy \w+ with \d+ checks\)$/);
  expect(lines[1]).toMatch(/^ {2}listening IMAP +127\.0\.0\.1:\d+ +no TLS$/);
  expect(lines[2]).toMatch(/^ {12}SMTP +127\.0\.0\.1:\d+ +no TLS$/);
  expect(lines[3]).toMatch(/^ {12}admin API +http:\/\/127\.0\.0\.1:\d+ /);
  expect(lines[4]).toBe('  store     the embedded in-memory store');
  expect(stdout).toContain('!!! WARNING: IN-MEMORY STORE.');
  const upstreamAt = lines.findIndex((l) => l.startsWith('  upstream  '));
  expect(lines[upstreamAt]).toBe(`  upstream  IMAP  127.0.0.1:${imapUpstreamPort}  answers`);
  expect(lines[upstreamAt + 1]).toBe(`            SMTP  127.0.0.1:${deadSmtpPort}  DOES NOT ANSWER (connection refused): SMTP logins get a temporary failure until it does`);
  // Every log line, the start-up ones included, comes after the banner, in text, never JSON.
  const firstLog = lines.findIndex((l) => /^\d{4}-\d\d-\d\dT\S+Z (INFO|WARN) /.test(l));
  expect(firstLog).toBeGreaterThan(upstreamAt + 1);
  expect(lines.filter((l) => l.startsWith('{'))).toEqual([]);
  expect(stdout).toMatch(/WARN +embedded in-memory store/);
});

test('json (a service: systemd, Docker, a pipe with logging.format auto): JSON lines only, the probes as log entries', async () => {
  const { stdout, status } = await startUntil(writeConfig('auto'), /upstream does not answer/);
  expect(status).toBe(0);
  const entries = stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  expect(entries).toContainEqual(expect.objectContaining({ level: 'info', message: 'upstream answers', protocol: 'imap', port: imapUpstreamPort }));
  expect(entries).toContainEqual(
    expect.objectContaining({ level: 'warn', message: expect.stringMatching(/^upstream does not answer/), protocol: 'smtp', port: deadSmtpPort, reason: 'connection refused' }),
  );
});
