// The upstream leg on its own: reply parsing, broken and hostile upstreams (bad greeting, silence,
// STARTTLS response injection, certificates), and each way of logging in (passthrough PLAIN and
// XOAUTH2, proxy credential with authzid, XCLIENT LOGIN).
import net from 'node:net';
import { Readable } from 'node:stream';
import { SMTPServer } from 'smtp-server';
import fs from 'node:fs';
import { silentLogger } from '../../src/core/log';
import type { UpstreamLogin } from '../../src/identity/types';
import { Upstream, xtext, type UpstreamSettings } from '../../src/smtp/upstream';
import { UpstreamClient } from '../../src/smtp/upstream-client';
import { startSmtpSink, type SmtpSink } from '../harness/smtp-sink';
import { makeTestPki } from '../harness/tls';
import { scripted, smtpConfig } from './smtp-fakes';

function settings(port: number, overrides: Partial<UpstreamSettings> = {}): UpstreamSettings {
  return { ...smtpConfig(port).upstream, ...overrides };
}

function relayFor(upstream: UpstreamSettings): Upstream {
  return new Upstream(silentLogger(), () => ({ upstream, hostname: 'mailwarden.test' }));
}

const PASSWORD_LOGIN: UpstreamLogin = {
  mode: 'passthrough',
  credential: { kind: 'password', username: 'alice@example.com+phone', password: 'alice-pw' },
  username: 'alice@example.com',
};

describe('UpstreamClient', () => {
  it('parses multi-line replies and the EHLO extensions', async () => {
    const up = await scripted('220-first\r\n220 ready\r\n', (line, s) => {
      if (line.startsWith('EHLO')) s.write('250-up.test\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250 XCLIENT ADDR LOGIN\r\n');
      if (line === 'NOOP') s.write('250 2.0.0 Ok\r\n');
    });
    const client = await UpstreamClient.connect({ host: '127.0.0.1', port: up.port, tls: 'none', rejectUnauthorized: true, connectTimeoutMs: 1000, ehloName: 'me' });
    expect([...client.extensions]).toEqual([
      ['PIPELINING', ''],
      ['SIZE', '1000'],
      ['XCLIENT', 'ADDR LOGIN'],
    ]);
    expect(await client.command('NOOP')).toEqual({ code: 250, lines: ['2.0.0 Ok'] });
    client.close();
    await up.close();
  });

  it.each([
    ['a 554 greeting', '554 no service here\r\n'],
    ['an IMAP greeting', '* OK IMAP4rev1 ready\r\n'],
    ['silence', null],
  ])('treats %s as an unavailable upstream', async (_name, greeting) => {
    const up = await scripted(greeting);
    const result = await relayFor(settings(up.port, { connectTimeoutMs: 300 })).open(PASSWORD_LOGIN, {});
    expect(result).toMatchObject({ ok: false, failure: 'unavailable' });
    await up.close();
  });

  it('refuses an upstream that sends bytes after its STARTTLS 220 (response injection)', async () => {
    const up = await scripted('220 up\r\n', (line, s) => {
      if (line.startsWith('EHLO')) s.write('250-up\r\n250 STARTTLS\r\n');
      if (line === 'STARTTLS') s.write('220 go ahead\r\n250 injected\r\n');
    });
    const result = await relayFor(settings(up.port, { tls: 'starttls' })).open(PASSWORD_LOGIN, {});
    expect(result).toMatchObject({ ok: false, failure: 'unavailable' });
    expect((result as { detail: string }).detail).toMatch(/response injection/);
    await up.close();
  });
});

describe('upstream TLS', () => {
  const pki = makeTestPki();
  afterAll(() => pki.cleanup());

  async function tlsUpstream(secure: boolean): Promise<{ port: number; server: SMTPServer }> {
    const server = new SMTPServer({
      secure,
      key: fs.readFileSync(pki.serverKey),
      cert: fs.readFileSync(pki.serverCert),
      authOptional: true,
      logger: false,
      onData(stream, _s, cb) {
        stream.resume();
        stream.on('end', () => cb(null, 'ok'));
      },
    });
    server.on('error', () => undefined);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return { port: (server.server.address() as net.AddressInfo).port, server };
  }

  it.each([
    ['implicit', true],
    ['starttls', false],
  ] as const)('%s TLS to the upstream works, and an unknown certificate is refused when verification is on', async (mode, secure) => {
    const { port, server } = await tlsUpstream(secure);
    const login: UpstreamLogin = { mode: 'master', username: 'alice@example.com' };
    const open = await relayFor(settings(port, { tls: mode, rejectUnauthorized: false })).open(login, {});
    expect(open.ok).toBe(true);
    if (open.ok) await open.session.quit();
    const verified = await relayFor(settings(port, { tls: mode, rejectUnauthorized: true })).open(login, {});
    expect(verified).toMatchObject({ ok: false, failure: 'unavailable' });
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
});

describe('logging in upstream', () => {
  let sink: SmtpSink;
  beforeEach(async () => {
    sink = await startSmtpSink({
      auth: { users: { 'alice@example.com': 'alice-pw', 'mw-proxy': 'proxy-pw' }, tokens: { 'alice@example.com': 'good-token' } },
      xclient: true,
    });
  });
  afterEach(() => sink.stop());

  async function sendOne(upstream: UpstreamSettings, login: UpstreamLogin): Promise<void> {
    const open = await relayFor(upstream).open(login, { remoteAddress: '::ffff:198.51.100.9', remotePort: 40000, helo: 'phone.local' });
    if (!open.ok) throw new Error(open.detail);
    expect(await open.session.mailFrom('alice@example.com', {})).toBeNull();
    expect(await open.session.rcptTo('bob@example.com')).toBeNull();
    const outcome = await open.session.data(Readable.from([Buffer.from('Subject: x\r\n\r\nhi\r\n')]), { maxBytes: 1000 });
    expect(outcome.delivered).toBe(true);
    await open.session.quit();
  }

  it('passthrough with a password: AUTH PLAIN as the user (no +device)', async () => {
    await sendOne(settings(sink.port), PASSWORD_LOGIN);
    expect(sink.messages[0]!.login).toEqual({ method: 'PLAIN', user: 'alice@example.com' });
  });

  it('passthrough with a bearer token: AUTH XOAUTH2', async () => {
    await sendOne(settings(sink.port), { mode: 'passthrough', credential: { kind: 'bearer', token: 'good-token' }, username: 'alice@example.com' });
    expect(sink.messages[0]!.login).toEqual({ method: 'XOAUTH2', user: 'alice@example.com' });
  });

  it('a wrong passthrough token or password is reported as the client credentials being rejected', async () => {
    const relay = relayFor(settings(sink.port));
    const bearer = await relay.open({ mode: 'passthrough', credential: { kind: 'bearer', token: 'bad' }, username: 'alice@example.com' }, {});
    expect(bearer).toMatchObject({ ok: false, failure: 'auth-rejected' });
    const password = await relay.open({ ...PASSWORD_LOGIN, credential: { kind: 'password', username: 'alice@example.com', password: 'x' } }, {});
    expect(password).toMatchObject({ ok: false, failure: 'auth-rejected' });
  });

  it('master mode with a proxy credential: AUTH PLAIN with the user as authzid (RFC 4616)', async () => {
    await sendOne(settings(sink.port, { login: 'master', masterUser: 'mw-proxy', masterPassword: 'proxy-pw' }), { mode: 'master', username: 'alice@example.com' });
    expect(sink.messages[0]!.login).toEqual({ method: 'PLAIN', user: 'mw-proxy', authzid: 'alice@example.com' });
  });

  it('master mode with XCLIENT: LOGIN= and the client address, no password upstream', async () => {
    await sendOne(settings(sink.port, { login: 'master', xclient: true }), { mode: 'master', username: 'alice@example.com' });
    const [got] = sink.messages;
    expect(got!.login).toEqual({ method: 'XCLIENT', user: 'alice@example.com' });
    expect(got!.xclient).toMatchObject({ ADDR: '198.51.100.9', PORT: '40000', HELO: 'phone.local', LOGIN: 'alice@example.com' });
  });

  it('any 2xx to AUTH is success, as for Postfix’s SMTP client (smtp-sink answers 250); a 454 is not', async () => {
    for (const [authReply, ok] of [['250 2.0.0 Ok', true], ['454 4.7.0 Try later', false]] as const) {
      const upstream = await scripted('220 sink ESMTP\r\n', (line, socket) => {
        if (line.startsWith('EHLO')) socket.write('250-sink\r\n250 AUTH PLAIN LOGIN\r\n');
        else if (line.startsWith('AUTH PLAIN')) socket.write(`${authReply}\r\n`);
        else if (line === 'QUIT') socket.end('221 Bye\r\n');
      });
      const open = await relayFor(settings(upstream.port)).open(PASSWORD_LOGIN, {});
      expect(open.ok).toBe(ok);
      if (open.ok) await open.session.quit();
      else expect(open).toMatchObject({ failure: 'unavailable' });
      await upstream.close();
    }
  });

  it('master mode with XCLIENT refuses an upstream that does not offer it', async () => {
    const plain = await startSmtpSink();
    const result = await relayFor(settings(plain.port, { login: 'master', xclient: true })).open({ mode: 'master', username: 'alice@example.com' }, {});
    expect(result).toMatchObject({ ok: false, failure: 'unavailable' });
    expect((result as { detail: string }).detail).toMatch(/XCLIENT/);
    await plain.stop();
  });
});

it('xtext-encodes XCLIENT values (RFC 3461 §4)', () => {
  expect(xtext('a+b=c d')).toBe('a+2Bb+3Dc+20d');
  expect(xtext('IPV6:2001:db8::1')).toBe('IPV6:2001:db8::1');
});
