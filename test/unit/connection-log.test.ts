// One logger per connection: every IMAP, SMTP and admin log line carries the connection's fields
// under the same names (protocol, sessionId, remoteAddress; user and deviceId once the login named
// them), so one query finds a connection's lines whatever the protocol.
import { Writable } from 'node:stream';
import nodemailer from 'nodemailer';
import winston from 'winston';
import type { ProtocolService } from '../../src/app/gate';
import { createLogger } from '../../src/core/log';
import { startImapService } from '../../src/imap/service';
import { startSmtpService } from '../../src/smtp/service';
import { startSmtpSink } from '../harness/smtp-sink';
import { startFakeAdmin, TOKEN } from './admin-fakes';
import { decision, fakeGate, imapConfig, RawClient, startFakeUpstream } from './imap-fakes';
import { smtpConfig } from './smtp-fakes';

function capture(): { log: winston.Logger; lines: () => Record<string, unknown>[] } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      chunks.push(chunk.toString());
      done();
    },
  });
  const log = createLogger({ silent: true, transports: [new winston.transports.Stream({ stream })] });
  const lines = () => chunks.join('').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
  return { log, lines };
}

const services: ProtocolService[] = [];
afterEach(async () => {
  for (const s of services.splice(0)) await s.shutdown(0);
});

test('IMAP: the login line carries protocol, sessionId, remoteAddress, user and deviceId', async () => {
  const upstream = await startFakeUpstream();
  const { log, lines } = capture();
  const gate = Object.assign(fakeGate(), { log });
  const service = await startImapService(gate, imapConfig(upstream.port));
  services.push(service);
  const c = await RawClient.connect(service.addresses[0]!.port);
  try {
    await c.waitFor(/^\* OK .*\r\n/);
    c.write('a1 LOGIN "alice@example.com+dev-1" alice-pw\r\n');
    await c.waitFor(/a1 OK .*\r\n/);
    const line = lines().find((l) => l.message === 'imap: logged in');
    expect(line).toMatchObject({ protocol: 'imap', remoteAddress: '127.0.0.1', user: 'alice@example.com', deviceId: 'dev-1' });
    expect(line?.sessionId).toMatch(/^[0-9a-f]{16}$/);
    expect(line).not.toHaveProperty('session');
  } finally {
    c.close();
    await upstream.close();
  }
});

test('SMTP: the message line carries the same fields', async () => {
  const sink = await startSmtpSink({ auth: { users: { 'alice@example.com': 'alice-pw' } } });
  const { log, lines } = capture();
  const gate = Object.assign(fakeGate(), { log });
  gate.decideWith = (req) => decision('allow', { protocol: 'smtp', user: req.user, deviceId: req.deviceId });
  try {
    const service = await startSmtpService(gate, smtpConfig(sink.port), {});
    services.push(service);
    const transport = nodemailer.createTransport({
      host: '127.0.0.1',
      port: service.addresses[0]!.port,
      secure: false,
      ignoreTLS: true,
      auth: { user: 'alice@example.com+laptop', pass: 'alice-pw' },
    });
    await transport.sendMail({ envelope: { from: 'alice@example.com', to: ['bob@example.com'] }, raw: 'Subject: hi\r\n\r\nhello\r\n' });
    transport.close();
    const line = lines().find((l) => l.message === 'smtp message');
    expect(line).toMatchObject({ protocol: 'smtp', remoteAddress: '127.0.0.1', user: 'alice@example.com', deviceId: 'laptop' });
    expect(line?.sessionId).toEqual(expect.stringMatching(/^smtp-/));
  } finally {
    await sink.stop();
  }
});

test('admin: the request line carries protocol and remoteAddress', async () => {
  const admin = await startFakeAdmin();
  try {
    const answer = await fetch(`${admin.url}/v1/devices/nope`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(answer.status).toBe(404);
    const line = admin.logs.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.message === 'admin request');
    expect(line).toMatchObject({ protocol: 'admin', remoteAddress: '127.0.0.1', status: 404 });
  } finally {
    await admin.server.close();
  }
});
