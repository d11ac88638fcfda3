// The IMAP front end against a fake Gate and a scripted upstream: pre-auth commands, limits,
// decision → reply mapping, upstream login, relay filtering, revocation and shutdown.
import net from 'node:net';
import type { ProtocolService } from '../../src/app/gate';
import { startImapService } from '../../src/imap/service';
import { decision, fakeGate, imapConfig, RawClient, startFakeUpstream, type FakeGate, type FakeUpstream } from './imap-fakes';

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');

let upstream: FakeUpstream;
let gate: FakeGate;
let service: ProtocolService;
const clients: RawClient[] = [];

async function connect(svc: ProtocolService = service): Promise<RawClient> {
  const c = await RawClient.connect(svc.addresses[0]!.port);
  clients.push(c);
  await c.waitFor(/^\* OK .*\r\n/);
  return c;
}

async function loggedIn(user = 'alice@example.com+dev-1'): Promise<RawClient> {
  const c = await connect();
  c.write(`a1 LOGIN "${user}" alice-pw\r\n`);
  await c.waitFor(/a1 OK .*\r\n/);
  return c;
}

beforeEach(async () => {
  upstream = await startFakeUpstream();
  gate = fakeGate();
  service = await startImapService(gate, imapConfig(upstream.port));
});

afterEach(async () => {
  clients.splice(0).forEach((c) => c.close());
  await service.shutdown(0);
  await upstream.close();
});

describe('pre-auth', () => {
  test('greeting and CAPABILITY offer login mechanisms on a plaintext-allowed listener, never IDLE or COMPRESS', async () => {
    const c = await connect();
    expect(c.data).toMatch(/^\* OK \[CAPABILITY IMAP4rev1 SASL-IR LITERAL\+ ID AUTH=PLAIN AUTH=LOGIN\] /);
    c.write('c1 CAPABILITY\r\nc2 NOOP\r\n');
    await c.waitFor(/c2 OK/);
    expect(c.data).toMatch(/\* CAPABILITY IMAP4rev1 SASL-IR LITERAL\+ ID AUTH=PLAIN AUTH=LOGIN\r\nc1 OK/);
    expect(c.data).not.toMatch(/IDLE|COMPRESS|STARTTLS/);
  });

  test('ID is answered locally and its fields become hints for the decision', async () => {
    const c = await connect();
    c.write('i1 ID ("name" "iPhone Mail" "os" "iOS" "version" NIL)\r\n');
    await c.waitFor(/i1 OK/);
    expect(c.data).toContain('* ID ("name" "mailwarden")');
    c.write('a1 LOGIN alice@example.com+dev-1 alice-pw\r\n');
    await c.waitFor(/a1 OK/);
    expect(gate.requests[0]!.hints).toEqual({ name: 'iPhone Mail', os: 'iOS', version: '' });
  });

  test('LOGOUT says BYE and closes', async () => {
    const c = await connect();
    c.write('z LOGOUT\r\n');
    await c.waitClosed();
    expect(c.data).toMatch(/\* BYE .*\r\nz OK LOGOUT completed\r\n$/);
  });

  test('three bad commands end the connection; an invalid tag is not echoed', async () => {
    const c = await connect();
    c.write('GET / HTTP/1.1\r\n');
    await c.waitFor(/GET BAD/);
    c.write('"x" NOOP\r\n');
    await c.waitFor(/\* BAD Invalid tag/);
    c.write('a SELECT INBOX\r\n');
    await c.waitClosed();
    expect(c.data).toMatch(/a BAD .*\r\n\* BYE Too many invalid IMAP commands\.\r\n$/);
    expect(c.data).not.toContain('"x"');
  });

  test('a literal over the limit gets no continuation: BYE and close, nothing read', async () => {
    const c = await connect();
    c.write('a LOGIN {4294967296}\r\n');
    await c.waitClosed();
    expect(c.data).not.toMatch(/^\+/m);
    expect(c.data).toMatch(/\* BYE Literal too large\.\r\n$/);
    expect(gate.contexts).toHaveLength(0);
  });

  test('a 20-digit literal size is refused before any number conversion', async () => {
    const c = await connect();
    c.write('a LOGIN {99999999999999999999+}\r\n');
    await c.waitClosed();
    expect(c.data).toMatch(/\* BYE Literal too large/);
  });

  test('a line over maxLineBytes without CRLF gets BYE', async () => {
    const c = await connect();
    c.write('a NOOP ' + 'x'.repeat(9000));
    await c.waitClosed();
    expect(c.data).toMatch(/\* BYE Line too long\.\r\n$/);
  });

  test('LOGIN with synchronising and non-synchronising literals (LITERAL+)', async () => {
    const c = await connect();
    c.write('a1 LOGIN {23}\r\n');
    await c.waitFor(/\+ Ready/);
    c.write('alice@example.com+dev-1 {8+}\r\nalice-pw\r\n');
    await c.waitFor(/a1 OK \[CAPABILITY /);
    expect(gate.contexts[0]!.credential).toEqual({ kind: 'password', username: 'alice@example.com+dev-1', password: 'alice-pw' });
  });

  test('NUL in a LOGIN literal or CR in a quoted string never reaches the identity layer', async () => {
    const c = await connect();
    c.write('a1 LOGIN {6+}\r\nal\0ice pw\r\n');
    await c.waitFor(/a1 BAD/);
    c.write('a2 LOGIN "ali\rce" pw\r\n');
    await c.waitFor(/a2 BAD/);
    expect(gate.contexts).toHaveLength(0);
  });

  test('LOGIN with invalid UTF-8 in the user name or password is refused, never replaced with U+FFFD', async () => {
    const c = await connect();
    // 0xC3 0x28 is an invalid two-octet sequence; 0xFF never occurs in UTF-8 (RFC 3629 §1).
    c.write(Buffer.concat([Buffer.from('a1 LOGIN "al'), Buffer.from([0xc3, 0x28]), Buffer.from('ice@example.com+dev-1" alice-pw\r\n')]));
    await c.waitFor(/a1 BAD .*UTF-8.*\r\n/);
    c.write(Buffer.concat([Buffer.from('a2 LOGIN alice@example.com+dev-1 {9+}\r\nalice-pw'), Buffer.from([0xff]), Buffer.from('\r\n')]));
    await c.waitFor(/a2 BAD .*UTF-8.*\r\n/);
    expect(gate.contexts).toHaveLength(0);
    // Valid UTF-8 beyond ASCII still logs in (RFC 9051 §6.2.3 with UTF8=ACCEPT clients).
    c.write(Buffer.from('a3 LOGIN "alice@example.com+dev-1" "pässwörd"\r\n', 'utf8'));
    await c.waitFor(/a3 (OK|NO)/);
    expect(gate.contexts[0]!.credential).toEqual({ kind: 'password', username: 'alice@example.com+dev-1', password: 'pässwörd' });
  });

  test('AUTHENTICATE PLAIN with SASL-IR, and without it through a continuation', async () => {
    const c = await connect();
    c.write(`p1 AUTHENTICATE PLAIN ${b64('\0alice@example.com+dev-1\0alice-pw')}\r\n`);
    await c.waitFor(/p1 OK \[CAPABILITY/);
    const d = await connect();
    d.write('p2 AUTHENTICATE PLAIN\r\n');
    await d.waitFor(/^\+ \r\n/m);
    d.write(`${b64('\0alice@example.com+dev-1\0alice-pw')}\r\n`);
    await d.waitFor(/p2 OK \[CAPABILITY/);
  });

  test('AUTHENTICATE LOGIN prompts for user name and password', async () => {
    const c = await connect();
    c.write('l1 AUTHENTICATE LOGIN\r\n');
    await c.waitFor(/\+ VXNlcm5hbWU6\r\n/);
    c.write(`${b64('alice@example.com+dev-1')}\r\n`);
    await c.waitFor(/\+ UGFzc3dvcmQ6\r\n/);
    c.write(`${b64('alice-pw')}\r\n`);
    await c.waitFor(/l1 OK/);
  });

  test('the * abort answers BAD and the session continues; bad base64 is BAD', async () => {
    const c = await connect();
    c.write('x1 AUTHENTICATE PLAIN\r\n');
    await c.waitFor(/^\+ /m);
    c.write('*\r\n');
    await c.waitFor(/x1 BAD Authentication aborted/);
    c.write('x2 AUTHENTICATE PLAIN !!!not-base64==x\r\n');
    await c.waitFor(/x2 BAD Invalid base64/);
    c.write('x3 NOOP\r\n');
    await c.waitFor(/x3 OK/);
  });

  test('an unknown mechanism is NO; OAuth mechanisms are not offered without an oauth source', async () => {
    const c = await connect();
    c.write('m1 AUTHENTICATE CRAM-MD5\r\nm2 AUTHENTICATE XOAUTH2 abc\r\n');
    await c.waitFor(/m2 NO/);
    expect(c.data).toMatch(/m1 NO Unsupported/);
  });

  test('a failed OAUTHBEARER gets the RFC 7628 error challenge, then NO after the dummy response', async () => {
    const oauthGate = fakeGate({ oauth: true });
    const svc = await startImapService(oauthGate, imapConfig(upstream.port));
    try {
      const c = await connect(svc);
      expect(c.data).toContain('AUTH=OAUTHBEARER AUTH=XOAUTH2');
      c.write(`o1 AUTHENTICATE OAUTHBEARER ${b64('n,a=alice@example.com,\x01auth=Bearer bad-token\x01\x01')}\r\n`);
      const [challenge] = await c.waitFor(/^\+ (\S+)\r\n/m);
      expect(JSON.parse(Buffer.from(challenge.slice(2).trim(), 'base64').toString())).toMatchObject({ status: 'invalid_token' });
      expect(c.data).not.toContain('o1 NO');
      c.write('AQ==\r\n');
      await c.waitFor(/o1 NO \[AUTHENTICATIONFAILED\]/);
      c.write(`o2 AUTHENTICATE XOAUTH2 ${b64('user=alice@example.com\x01auth=Bearer good-token\x01\x01')}\r\n`);
      await c.waitFor(/o2 OK/);
      expect(oauthGate.requests[0]).toMatchObject({ user: 'alice@example.com', deviceId: 'dev-oauth' });
    } finally {
      await svc.shutdown(0);
    }
  });

  test('three failed logins end the connection', async () => {
    const c = await connect();
    c.write('a1 LOGIN alice@example.com wrong\r\n');
    await c.waitFor(/a1 NO \[AUTHENTICATIONFAILED\] Authentication failed\./);
    c.write('a2 LOGIN alice@example.com wrong\r\na3 LOGIN alice@example.com wrong\r\n');
    await c.waitClosed();
    expect(c.data).toMatch(/Too many failed logins/);
    expect(gate.requests).toHaveLength(0);
  });

  test('the pre-auth deadline closes an idle connection', async () => {
    const svc = await startImapService(gate, imapConfig(upstream.port, { preAuthTimeoutMs: 200 }));
    try {
      const c = await connect(svc);
      await c.waitClosed(2000);
      expect(c.data).toMatch(/\* BYE Disconnected for inactivity\./);
    } finally {
      await svc.shutdown(0);
    }
  });

  test('a PROXY header from an address not configured for it is refused', async () => {
    const c = await connect();
    c.write('PROXY TCP4 203.0.113.7 127.0.0.1 51234 143\r\n');
    await c.waitClosed();
    expect(c.data).toMatch(/\* BYE PROXY protocol not accepted/);
  });
});

describe('decision → reply', () => {
  test('deny: ALERT with the sentence, then NO [CONTACTADMIN]; no upstream connection', async () => {
    gate.decideWith = () => decision('deny', { message: 'Company mail is blocked because TikTok is installed. Ref REF123.' });
    const c = await connect();
    c.write('a1 LOGIN alice@example.com+dev-1 alice-pw\r\n');
    await c.waitFor(/a1 NO/);
    expect(c.data).toContain(
      '* OK [ALERT] Company mail is blocked because TikTok is installed. Ref REF123.\r\na1 NO [CONTACTADMIN] Company mail is blocked because TikTok is installed. Ref REF123.\r\n',
    );
    expect(upstream.sockets.size).toBe(0);
    expect(gate.requests[0]).toMatchObject({ user: 'alice@example.com', deviceId: 'dev-1', protocol: 'imap', trigger: 'login' });
    expect(gate.counted).toEqual(['onLogin:deny']);
  });

  test('tempfail: NO [UNAVAILABLE]', async () => {
    gate.decideWith = () => decision('tempfail', { message: 'Try again in a minute. Ref R9.' });
    const c = await connect();
    c.write('a1 LOGIN alice@example.com+dev-1 alice-pw\r\n');
    await c.waitFor(/a1 NO \[UNAVAILABLE\] Try again in a minute\. Ref R9\./);
  });

  test('identity store unavailable: NO [UNAVAILABLE], never AUTHENTICATIONFAILED', async () => {
    gate.resolveWith = () => ({ ok: false, failure: 'unavailable', detail: 'redis down' });
    const c = await connect();
    c.write('a1 LOGIN alice@example.com+dev-1 alice-pw\r\n');
    await c.waitFor(/a1 NO \[UNAVAILABLE\]/);
  });

  test('warn / grace: ALERT warning, then the login proceeds', async () => {
    gate.decideWith = () => decision('allow', { warnings: ['Remove TikTok within 24 hours or mail stops. Ref W1.'] });
    const c = await connect();
    c.write('a1 LOGIN alice@example.com+dev-1 alice-pw\r\n');
    await c.waitFor(/a1 OK/);
    expect(c.data).toMatch(/\* OK \[ALERT\] Remove TikTok within 24 hours or mail stops\. Ref W1\.\r\na1 OK \[CAPABILITY/);
  });

  test('a CRLF inside a decision sentence cannot split the reply', async () => {
    gate.decideWith = () => decision('deny', { message: 'line one\r\na2 OK injected' });
    const c = await connect();
    c.write('a1 LOGIN alice@example.com+dev-1 alice-pw\r\n');
    await c.waitFor(/a1 NO/);
    expect(c.data).not.toMatch(/^a2 OK/m);
    expect(c.data).toContain('a1 NO [CONTACTADMIN] line one a2 OK injected');
  });
});

describe('upstream and relay', () => {
  test('the login is forwarded with ID x-originating-ip and the capability list is filtered', async () => {
    const c = await loggedIn();
    expect(c.data).toMatch(/a1 OK \[CAPABILITY IMAP4rev1 IDLE LITERAL\+ MOVE\] Logged in/);
    c.write('a2 CAPABILITY\r\n');
    await c.waitFor(/a2 OK/);
    expect(c.data).toContain('* CAPABILITY IMAP4rev1 IDLE MOVE\r\n');
    expect(c.data).not.toMatch(/COMPRESS|UNAUTHENTICATE/);
  });

  test('COMPRESS and UNAUTHENTICATE are refused locally and never forwarded', async () => {
    const c = await loggedIn();
    c.write('a2 COMPRESS DEFLATE\r\na3 UNAUTHENTICATE\r\na4 NOOP\r\n');
    await c.waitFor(/a4 OK/);
    expect(c.data).toMatch(/a2 NO \[CANNOT\]/);
    expect(c.data).toMatch(/a3 NO \[CANNOT\]/);
    expect(upstream.received).toEqual(['a4 NOOP']);
  });

  test('commands pipelined right after LOGIN are forwarded after the upstream login', async () => {
    const c = await connect();
    c.write('a1 LOGIN alice@example.com+dev-1 alice-pw\r\na2 SELECT INBOX\r\n');
    await c.waitFor(/a2 OK/);
    expect(upstream.received).toEqual(['a2 SELECT INBOX']);
  });

  test('a synchronising literal refused by the upstream is not skipped in the client stream', async () => {
    upstream.handlers.push((tag, cmd, _line, socket) => {
      if (cmd !== 'APPEND') return false;
      socket.write(`${tag} NO [TOOBIG] refused\r\n`);
      return true;
    });
    const c = await loggedIn();
    c.write('a2 APPEND INBOX {30}\r\n');
    await c.waitFor(/a2 NO \[TOOBIG\]/);
    c.write('a3 UNAUTHENTICATE\r\n');
    await c.waitFor(/a3 NO \[CANNOT\]/);
    expect(upstream.received.some((l) => l.includes('UNAUTHENTICATE'))).toBe(false);
  });

  test('upstream refuses the connection: every login gets NO [UNAVAILABLE] and counts an upstream error by reason', async () => {
    await upstream.close();
    const c = await connect();
    for (const t of ['b1', 'b2', 'b3', 'b4']) {
      c.write(`${t} LOGIN alice@example.com+dev-1 alice-pw\r\n`);
      await c.waitFor(new RegExp(`${t} NO \\[UNAVAILABLE\\]`));
    }
    const errors = gate.counted.filter((m) => m.startsWith('onUpstreamError'));
    expect(errors).toHaveLength(4);
    // Refused connects until the breaker trips, then refusals without a try.
    expect(new Set(errors)).toEqual(new Set(['onUpstreamError:connect', 'onUpstreamError:breaker-open']));
    expect(gate.counted.filter((m) => m === 'onUpstreamLogin:error').length).toBe(errors.filter((m) => m.endsWith(':connect')).length);
  });

  test('upstream accepts but never greets: NO [UNAVAILABLE] at the connect timeout, then the breaker fails at once', async () => {
    const silent = net.createServer(() => undefined);
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
    const port = (silent.address() as net.AddressInfo).port;
    const upstreamConfig = { ...imapConfig(0).upstream, port, connectTimeoutMs: 300, circuitBreaker: { failures: 2, resetMs: 60000 } };
    const svc = await startImapService(gate, imapConfig(port, { upstream: upstreamConfig }));
    try {
      const c = await connect(svc);
      const took: number[] = [];
      for (const t of ['a1', 'a2', 'a3']) {
        const started = Date.now();
        c.write(`${t} LOGIN alice@example.com+dev-1 alice-pw\r\n`);
        await c.waitFor(new RegExp(`${t} NO \\[UNAVAILABLE\\]`), 2000);
        took.push(Date.now() - started);
      }
      // Two logins wait for the connect timeout; then the open breaker fails the third at once.
      expect(took[0]).toBeGreaterThanOrEqual(280);
      expect(took[1]).toBeGreaterThanOrEqual(280);
      expect(took[2]).toBeLessThan(200);
    } finally {
      await svc.shutdown(0);
      silent.close();
    }
  });

  test('the upstream rejecting the replayed password is AUTHENTICATIONFAILED', async () => {
    gate.resolveWith = (ctx) => ({
      ok: true,
      user: 'alice@example.com',
      deviceId: null,
      source: 'none',
      strength: 'weak',
      upstream: { mode: 'passthrough', credential: ctx.credential, username: 'alice@example.com' },
    });
    const c = await connect();
    c.write('a1 LOGIN alice@example.com nope\r\n');
    await c.waitFor(/a1 NO \[AUTHENTICATIONFAILED\]/);
  });

  test('the session is registered and unregistered in gate.sessions, and counted in the metrics', async () => {
    const c = await loggedIn();
    expect(gate.sessions.byDevice('dev-1')).toHaveLength(1);
    c.write('z LOGOUT\r\n');
    await c.waitClosed();
    for (let i = 0; i < 20 && gate.sessions.size > 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(gate.sessions.size).toBe(0);
    expect(gate.counted).toEqual(['onUpstreamLogin:ok', 'onLogin:allow', 'sessionDelta:1', 'sessionDelta:-1']);
  });
});

describe('revocation and shutdown', () => {
  test('revoke during IDLE: ALERT and BYE with the sentence, both legs closed', async () => {
    const c = await loggedIn();
    c.write('a2 IDLE\r\n');
    await c.waitFor(/\+ idling/);
    const [session] = gate.sessions.byDevice('dev-1');
    session!.revoke(decision('deny', { message: 'TikTok was found on this iPhone. Ref R7.' }));
    await c.waitClosed();
    expect(c.data).toMatch(/\+ idling\r\n\* OK \[ALERT\] TikTok was found on this iPhone\. Ref R7\.\r\n\* BYE TikTok was found on this iPhone\. Ref R7\.\r\n$/);
    for (let i = 0; i < 20 && upstream.sockets.size > 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(upstream.sockets.size).toBe(0);
  });

  test('revoke while a literal is streaming: BYE only after the literal and its response end', async () => {
    let hold: net.Socket | null = null;
    upstream.handlers.push((tag, cmd, _line, socket) => {
      if (cmd !== 'FETCH') return false;
      socket.write(`* 1 FETCH (BODY[] {20}\r\n0123456789`);
      hold = socket;
      void tag;
      return true;
    });
    const c = await loggedIn();
    c.write('a2 FETCH 1 BODY[]\r\n');
    await c.waitFor(/0123456789/);
    gate.sessions.byDevice('dev-1')[0]!.revoke(decision('deny', { message: 'Blocked. Ref R8.' }));
    await new Promise((r) => setTimeout(r, 100));
    expect(c.data).not.toContain('BYE');
    hold!.write('abcdefghij)\r\na2 OK done\r\n');
    await c.waitClosed();
    expect(c.data).toMatch(/0123456789abcdefghij\)\r\n\* OK \[ALERT\] Blocked\. Ref R8\.\r\n\* BYE Blocked\. Ref R8\.\r\n$/);
  });

  test('shutdown says BYE to pre-auth and idle sessions after the drain time', async () => {
    const pre = await connect();
    const idle = await loggedIn();
    await service.shutdown(100);
    await pre.waitClosed();
    await idle.waitClosed();
    expect(pre.data).toMatch(/\* BYE Server shutting down/);
    expect(idle.data).toMatch(/\* BYE Server shutting down/);
  });
});

describe('quarantine block style', () => {
  test('a denied device logs in to the local mailbox holding the explanation', async () => {
    const svc = await startImapService(gate, imapConfig(upstream.port, { blockStyle: 'quarantine' }));
    gate.decideWith = () => decision('deny', { message: 'Remove TikTok from this iPhone. Ref Q1.' });
    try {
      const c = await connect(svc);
      c.write('a1 LOGIN alice@example.com+dev-1 alice-pw\r\n');
      await c.waitFor(/a1 OK/);
      expect(c.data).toContain('* OK [ALERT] Remove TikTok from this iPhone. Ref Q1.');
      c.write('a2 LIST "" "*"\r\na3 SELECT INBOX\r\na4 UID FETCH 1:* (UID FLAGS BODY.PEEK[])\r\na5 APPEND INBOX {3+}\r\nabc\r\n');
      await c.waitFor(/a5 NO/);
      expect(c.data).toMatch(/\* LIST \(\) "\/" INBOX/);
      expect(c.data).toMatch(/\* 1 EXISTS/);
      expect(c.data).toMatch(/a3 OK \[READ-ONLY\]/);
      expect(c.data).toMatch(/\* 1 FETCH \(UID 1 FLAGS \(\\Seen\) BODY\[\] \{\d+\}\r\nFrom: /);
      expect(c.data).toContain('Remove TikTok from this iPhone. Ref Q1.\r\n');
      c.write('a6 IDLE\r\n');
      await c.waitFor(/\+ idling/);
      c.write('DONE\r\na7 LOGOUT\r\n');
      await c.waitClosed();
      expect(c.data).toMatch(/a6 OK IDLE terminated/);
      expect(upstream.sockets.size).toBe(0);
    } finally {
      await svc.shutdown(0);
    }
  });
});
