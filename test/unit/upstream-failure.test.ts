// Both upstream legs tell the runtime's metrics how each login attempt went: its time (ok,
// bad-credentials, error) and, on failure, why (connect, timeout, tls, protocol, login-refused,
// breaker-open), against scripted upstreams on loopback.
import { CircuitBreakers } from '../../src/core/circuit-breaker';
import { silentLogger } from '../../src/core/log';
import type { UpstreamObserver } from '../../src/core/upstream-failure';
import { Upstream as ImapUpstream, type UpstreamLoginRequest } from '../../src/imap/upstream';
import { Upstream as SmtpUpstream } from '../../src/smtp/upstream';
import { freePort } from '../harness/ports';
import { imapConfig } from './imap-fakes';
import { scripted, smtpConfig } from './smtp-fakes';

function observed(): { observer: UpstreamObserver; seen: string[] } {
  const seen: string[] = [];
  return {
    seen,
    observer: {
      onUpstreamLogin: (protocol, result, seconds) => {
        expect(seconds).toBeGreaterThanOrEqual(0);
        seen.push(`${protocol} login ${result}`);
      },
      onUpstreamError: (protocol, reason) => void seen.push(`${protocol} error ${reason}`),
    },
  };
}

/** A scripted upstream that answers each line with `reply(line)` (null: says nothing). */
const answering = (greeting: string, reply: (line: string) => string | null) =>
  scripted(greeting, (line, socket) => {
    const answer = reply(line);
    if (answer !== null) socket.write(answer);
  });

const IMAP_LOGIN: UpstreamLoginRequest = {
  login: { mode: 'master', username: 'alice@example.com' },
  clientId: {},
  sessionId: 's1',
  secure: false,
};

describe('IMAP leg', () => {
  test('refused connects, then the breaker: connect ×2 (timed), breaker-open (not timed); the shared breakers see the address', async () => {
    const port = await freePort();
    const { observer, seen } = observed();
    const breakers = new CircuitBreakers();
    const upstream = new ImapUpstream({ ...imapConfig(port).upstream, circuitBreaker: { failures: 2, resetMs: 60_000 } }, breakers, observer);
    for (let i = 0; i < 3; i++) expect(await upstream.login(IMAP_LOGIN)).toMatchObject({ ok: false, failure: 'unavailable' });
    expect(seen).toEqual(['imap login error', 'imap error connect', 'imap login error', 'imap error connect', 'imap error breaker-open']);
    expect(breakers.states()).toEqual([{ service: 'imap', upstream: `127.0.0.1:${port}`, tripped: true }]);
  });

  test('a silent upstream is a timeout; the master login refused is login-refused; a good login is ok', async () => {
    const silent = await scripted(null);
    const refusing = await answering('* OK ready\r\n', (line) => (line.startsWith('I ') ? 'I OK\r\n' : line.startsWith('L ') ? 'L NO [AUTHENTICATIONFAILED] no\r\n' : null));
    const good = await answering('* OK ready\r\n', (line) => (line.startsWith('I ') ? 'I OK\r\n' : line.startsWith('L ') ? 'L OK [CAPABILITY IMAP4rev1] in\r\n' : null));
    try {
      const { observer, seen } = observed();
      const login = (port: number) => new ImapUpstream({ ...imapConfig(port).upstream, connectTimeoutMs: 200 }, undefined, observer).login(IMAP_LOGIN);
      expect(await login(silent.port)).toMatchObject({ ok: false, reason: 'timeout' });
      expect(await login(refusing.port)).toMatchObject({ ok: false, failure: 'unavailable', reason: 'login-refused' });
      const ok = await login(good.port);
      expect(ok.ok).toBe(true);
      if (ok.ok) ok.session.socket.destroy();
      expect(seen).toEqual(['imap login error', 'imap error timeout', 'imap login error', 'imap error login-refused', 'imap login ok']);
    } finally {
      await Promise.all([silent.close(), refusing.close(), good.close()]);
    }
  });
});

describe('SMTP leg', () => {
  const relay = (port: number, observer: UpstreamObserver, breakers?: CircuitBreakers) =>
    new SmtpUpstream(silentLogger(), () => ({ upstream: { ...smtpConfig(port).upstream, login: 'passthrough' as const, xclient: false }, hostname: 'mw.test' }), breakers, observer);
  const login = { mode: 'passthrough' as const, credential: { kind: 'password' as const, username: 'alice@example.com', password: 'pw' }, username: 'alice@example.com' };

  test('refused connect is connect; a bad greeting is protocol; a 535 is the client’s bad credentials, not an upstream error', async () => {
    const closed = await freePort();
    const badGreeting = await answering('554 go away\r\n', () => null);
    const wrongPassword = await answering('220 sink ESMTP\r\n', (line) => (line.startsWith('EHLO') ? '250-sink\r\n250 AUTH PLAIN\r\n' : line.startsWith('AUTH') ? '535 5.7.8 no\r\n' : line === 'QUIT' ? '221 bye\r\n' : null));
    try {
      const { observer, seen } = observed();
      const breakers = new CircuitBreakers();
      expect(await relay(closed, observer, breakers).open(login, {})).toMatchObject({ ok: false, reason: 'connect' });
      expect(await relay(badGreeting.port, observer).open(login, {})).toMatchObject({ ok: false, reason: 'protocol' });
      expect(await relay(wrongPassword.port, observer).open(login, {})).toMatchObject({ ok: false, failure: 'auth-rejected' });
      expect(seen).toEqual(['smtp login error', 'smtp error connect', 'smtp login error', 'smtp error protocol', 'smtp login bad-credentials']);
      expect(breakers.states()).toEqual([{ service: 'smtp', upstream: `127.0.0.1:${closed}`, tripped: false }]);
    } finally {
      await Promise.all([badGreeting.close(), wrongPassword.close()]);
    }
  });
});
