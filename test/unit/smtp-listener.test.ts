// SMTP listeners: implicit TLS and STARTTLS (with the plaintext-injection defence), no AUTH in
// plaintext on a STARTTLS port, the PROXY protocol from a configured balancer, the greeting delay.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import nodemailer from 'nodemailer';
import type { MailwardenConfig, ProtocolListener } from '../../src/core/config-types';
import type { ProtocolService } from '../../src/app/gate';
import { greetingDelayPatched } from '../../src/smtp/listener';
import { startSmtpService } from '../../src/smtp/service';
import { startSmtpSink, type SmtpSink } from '../harness/smtp-sink';
import { makeTestPki, type TestPki } from '../harness/tls';
import { decision, fakeGate, type FakeGate } from './imap-fakes';
import { RawClient, smtpConfig } from './smtp-fakes';

let pki: TestPki;
let sink: SmtpSink;
let gate: FakeGate;
let service: ProtocolService | null = null;

beforeAll(() => {
  pki = makeTestPki();
});
afterAll(() => pki.cleanup());

beforeEach(async () => {
  sink = await startSmtpSink({ auth: { users: { 'alice@example.com': 'alice-pw' } }, xclient: true });
  gate = fakeGate();
  gate.decideWith = (req) => decision('allow', { protocol: 'smtp', user: req.user, deviceId: req.deviceId });
  const base = gate.config();
  gate.config = () => ({ ...base, tls: { cert: pki.serverCert, key: pki.serverKey } }) as MailwardenConfig;
});

afterEach(async () => {
  await service?.shutdown(0);
  service = null;
  await sink.stop();
});

async function start(listener: Partial<ProtocolListener>, xclient = false): Promise<number> {
  service = await startSmtpService(gate, smtpConfig(sink.port, { listeners: [{ host: '127.0.0.1', port: 0, tls: 'none', ...listener }] }, { xclient }));
  return service.addresses[0]!.port;
}

const MESSAGE = Buffer.from('Subject: tls\r\n\r\nover TLS\r\n');

it('implicit TLS (465-style): nodemailer delivers over TLS; STARTTLS is not offered', async () => {
  const port = await start({ tls: 'implicit' });
  const c = await RawClient.connect(port, { tls: true });
  expect(await c.command('EHLO x')).not.toContain('STARTTLS');
  c.close();
  const transport = nodemailer.createTransport({
    host: '127.0.0.1',
    port,
    secure: true,
    tls: { rejectUnauthorized: false },
    auth: { user: 'alice@example.com+laptop', pass: 'alice-pw' },
  });
  await transport.sendMail({ envelope: { from: 'alice@example.com', to: ['alice@example.com'] }, raw: MESSAGE });
  const [got] = await sink.waitForMessages(1);
  expect(got!.raw.equals(MESSAGE)).toBe(true);
});

it('STARTTLS (587-style): AUTH before STARTTLS is refused, nodemailer upgrades and delivers', async () => {
  const port = await start({ tls: 'starttls' });
  const c = await RawClient.connect(port);
  const ehlo = await c.command('EHLO x');
  expect(ehlo).toContain('STARTTLS');
  expect(ehlo).not.toContain('AUTH');
  expect(await c.command(`AUTH PLAIN ${Buffer.from('\0alice@example.com\0alice-pw').toString('base64')}`)).toMatch(/^5/);
  expect(await c.command('MAIL FROM:<alice@example.com>')).toBe('530 5.7.0 Authentication required');
  c.close();
  const transport = nodemailer.createTransport({
    host: '127.0.0.1',
    port,
    secure: false,
    requireTLS: true,
    tls: { rejectUnauthorized: false },
    auth: { user: 'alice@example.com+laptop', pass: 'alice-pw' },
  });
  await transport.sendMail({ envelope: { from: 'alice@example.com', to: ['alice@example.com'] }, raw: MESSAGE });
  expect(await sink.waitForMessages(1)).toHaveLength(1);
});

it('commands pipelined behind STARTTLS in plaintext are discarded, not run after the handshake', async () => {
  const port = await start({ tls: 'starttls' });
  const c = await RawClient.connect(port);
  await c.command('EHLO x');
  // CVE-2011-0411: an attacker appends AUTH to the client's STARTTLS in the same segment.
  c.write(`STARTTLS\r\nAUTH PLAIN ${Buffer.from('\0alice@example.com+laptop\0alice-pw').toString('base64')}\r\n`);
  expect(await c.reply()).toMatch(/^220/);
  await c.startTls();
  // The first reply after the handshake answers our EHLO; nothing answered the injected AUTH.
  expect(await c.command('EHLO x')).toMatch(/^250-/);
  expect(await c.command('MAIL FROM:<alice@example.com>')).toBe('530 5.7.0 Authentication required');
  c.close();
  expect(gate.contexts).toHaveLength(0);
});

it('PROXY protocol from a configured balancer: the real client address is used and forwarded with XCLIENT', async () => {
  gate.resolveWith = (ctx) => ({
    ok: true,
    user: 'alice@example.com',
    deviceId: 'laptop',
    source: 'app-password',
    strength: 'strong',
    upstream: { mode: 'master', username: ctx.credential.username ?? '' },
  });
  const port = await start({ tls: 'none', proxyProtocolFrom: ['127.0.0.1'] }, true);
  const socket = net.connect(port, '127.0.0.1');
  await new Promise((r) => socket.once('connect', r));
  socket.write('PROXY TCP4 203.0.113.7 127.0.0.1 51234 587\r\n');
  const lines: string[] = [];
  socket.setEncoding('latin1');
  const next = (): Promise<string> =>
    new Promise((resolve) => {
      const onData = (d: string): void => {
        lines.push(d);
        if (/^\d{3} /m.test(d)) {
          socket.off('data', onData);
          resolve(lines.splice(0).join(''));
        }
      };
      socket.on('data', onData);
    });
  expect(await next()).toMatch(/^220/);
  socket.write('EHLO client.example\r\n');
  await next();
  socket.write(`AUTH PLAIN ${Buffer.from('\0alice@example.com\0pw').toString('base64')}\r\n`);
  expect(await next()).toMatch(/^235/);
  socket.write('MAIL FROM:<alice@example.com>\r\nRCPT TO:<alice@example.com>\r\nDATA\r\n');
  await next();
  socket.write('Subject: via balancer\r\n\r\nhi\r\n.\r\nQUIT\r\n');
  const [got] = await sink.waitForMessages(1);
  socket.destroy();
  expect(gate.contexts[0]!.remoteAddress).toBe('203.0.113.7');
  expect(got!.xclient).toMatchObject({ ADDR: '203.0.113.7', PORT: '51234', HELO: 'client.example', LOGIN: 'alice@example.com' });
  expect(got!.login).toEqual({ method: 'XCLIENT', user: 'alice@example.com' });
});

it('a client certificate from the MDM CA reaches the identity resolver; one from elsewhere does not', async () => {
  const base = gate.config();
  gate.config = () => ({ ...base, tls: { cert: pki.serverCert, key: pki.serverKey, clientCa: pki.caCert } }) as MailwardenConfig;
  const port = await start({ tls: 'implicit' });
  const device = pki.clientCert('dev-cert-1');
  const send = (tlsOptions: object) =>
    nodemailer
      .createTransport({ host: '127.0.0.1', port, secure: true, tls: { rejectUnauthorized: false, ...tlsOptions }, auth: { user: 'alice@example.com+laptop', pass: 'alice-pw' } })
      .sendMail({ envelope: { from: 'alice@example.com', to: ['alice@example.com'] }, raw: MESSAGE });
  await send({ cert: fs.readFileSync(device.cert), key: fs.readFileSync(device.key) });
  expect(gate.contexts[0]!.peerCertificate?.subject.CN).toBe('dev-cert-1');
  const other = makeTestPki();
  try {
    const stranger = other.clientCert('dev-cert-1');
    await send({ cert: fs.readFileSync(stranger.cert), key: fs.readFileSync(stranger.key) });
  } finally {
    other.cleanup();
  }
  await send({});
  expect(gate.contexts.slice(1).map((c) => c.peerCertificate)).toEqual([undefined, undefined]);
});

it('a listener with TLS but no certificate configured refuses to start', async () => {
  const base = fakeGate().config();
  gate.config = () => base;
  await expect(start({ tls: 'implicit' })).rejects.toThrow(/tls\.cert/);
});

/** Connects and sends EHLO before the greeting could arrive; resolves with the first `count` replies' last lines. */
function talkFirst(port: number, count: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.write('EHLO early.test\r\n'); // queued: leaves with the connection, before any reply
    const finals: string[] = [];
    let buffer = '';
    socket.on('data', (chunk: Buffer) => {
      buffer += chunk.toString('latin1');
      for (let eol = buffer.indexOf('\r\n'); eol >= 0; eol = buffer.indexOf('\r\n')) {
        const line = buffer.slice(0, eol);
        buffer = buffer.slice(eol + 2);
        if (/^\d{3} /.test(line)) finals.push(line);
        if (finals.length === count) {
          socket.destroy();
          return resolve(finals);
        }
      }
    });
    socket.on('error', reject);
    socket.on('close', () => resolve(finals));
  });
}

// smtp-server hard-codes a 100 ms wait before its greeting; patches/smtp-server+<version>.patch (applied
// by `npm ci` through patch-package) turns it into the greetingDelay option. If the patch stops
// applying, the first test fails: the early EHLO is then refused as "You talk too soon".
it('greetingDelayMs 0 (the default): the greeting goes out at once and a client that talks first is served', async () => {
  service = await startSmtpService(gate, smtpConfig(sink.port, { listeners: [{ host: '127.0.0.1', port: 0, tls: 'none' }], greetingDelayMs: 0 }));
  const [greeting, ehlo] = await talkFirst(service.addresses[0]!.port, 2);
  expect(greeting).toMatch(/^220 /);
  expect(ehlo).toMatch(/^250 /);
});

it('greetingDelayMs > 0 keeps smtp-server\'s early-talker check: EHLO before the greeting is refused', async () => {
  service = await startSmtpService(gate, smtpConfig(sink.port, { listeners: [{ host: '127.0.0.1', port: 0, tls: 'none' }], greetingDelayMs: 5000 }));
  const [first] = await talkFirst(service.addresses[0]!.port, 1);
  expect(first).toMatch(/^421 .*You talk too soon/);
});

it('the smtp-server patch matches the installed smtp-server version (package.json pins it exactly)', () => {
  const root = path.join(__dirname, '../..');
  const installed = (JSON.parse(fs.readFileSync(path.join(root, 'node_modules/smtp-server/package.json'), 'utf8')) as { version: string }).version;
  const pinned = (JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { dependencies: Record<string, string> }).dependencies['smtp-server'];
  expect(pinned).toBe(installed);
  expect(fs.existsSync(path.join(root, `patches/smtp-server+${installed}.patch`))).toBe(true);
  expect(greetingDelayPatched()).toBe(true);
});

it('a client that leaves before AUTH has its pre-auth deadline cleared, so its session is not held until then (issue 8 item 12)', async () => {
  const PRE_AUTH_MS = 54_321;
  const realSetTimeout = global.setTimeout;
  const deadlines: NodeJS.Timeout[] = [];
  const set = jest.spyOn(global, 'setTimeout').mockImplementation(((fn: () => void, ms?: number) => {
    const timer = realSetTimeout(fn, ms);
    if (ms === PRE_AUTH_MS) deadlines.push(timer);
    return timer;
  }) as unknown as typeof setTimeout);
  const cleared = jest.spyOn(global, 'clearTimeout');
  try {
    service = await startSmtpService(gate, smtpConfig(sink.port, { preAuthTimeoutMs: PRE_AUTH_MS }));
    const c = await RawClient.connect(service.addresses[0]!.port);
    expect(await c.command('EHLO client.test')).toMatch(/^250/);
    expect(deadlines).toHaveLength(1);
    c.close();
    const isCleared = (): boolean => cleared.mock.calls.some(([t]) => t === deadlines[0]);
    for (const until = Date.now() + 3000; !isCleared() && Date.now() < until; ) await new Promise((r) => realSetTimeout(r, 20));
    expect(isCleared()).toBe(true);
  } finally {
    set.mockRestore();
    cleared.mockRestore();
  }
});
