// Property-based test (fast-check) of the SMTP front end (smtp-server behind our listener and
// session handlers) on a real loopback socket: any sequence of commands and junk lines gets only
// well-formed replies (RFC 5321 §4.2), nothing is relayed without a successful AUTH, no name with
// CR/LF/NUL reaches a decision (the real identity resolver), and the listener still greets after every session.
import net from 'node:net';
import fc from 'fast-check';
import type { ProtocolService } from '../../src/app/gate';
import { startSmtpService } from '../../src/smtp/service';
import { startSmtpSink, type SmtpSink } from '../harness/smtp-sink';
import { decision, fakeGate, type FakeGate } from './imap-fakes';
import { smtpConfig } from './smtp-fakes';
import { silentLogger } from '../../src/core/log';
import { createIdentityResolver } from '../../src/identity/resolver';
import { MemoryDeviceStore } from '../../src/store/memory-store';
import { fuzzRuns } from './fuzz-runs';

let sink: SmtpSink;
let gate: FakeGate;
let service: ProtocolService;
let port: number;

beforeAll(async () => {
  sink = await startSmtpSink({ auth: { users: { 'alice@example.com': 'alice-pw' } } });
  gate = fakeGate();
  const resolver = await createIdentityResolver([{ type: 'asserted', separator: '+' }], { store: new MemoryDeviceStore(), log: silentLogger(), configDir: '.' });
  gate.resolveWith = (ctx) => resolver.resolve(ctx);
  gate.decideWith = (req) => decision(req.deviceId === 'denied' ? 'deny' : 'allow', { protocol: 'smtp', user: req.user, deviceId: req.deviceId });
  service = await startSmtpService(gate, smtpConfig(sink.port, { maxMessageBytes: 4096, preAuthTimeoutMs: 10_000, lineTimeoutMs: 5000 }));
  port = service.addresses[0]!.port;
});
afterAll(async () => {
  await service.shutdown(0);
  await sink.stop();
});

/** A line-oriented client that collects whole replies and notices when the server closes. */
class Client {
  private buffer = '';
  private lines: string[] = [];
  readonly replies: string[][] = [];
  readonly badLines: string[] = [];
  closed = false;
  private wake: (() => void) | null = null;

  constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.buffer += chunk.toString('latin1');
      for (let eol = this.buffer.indexOf('\r\n'); eol >= 0; eol = this.buffer.indexOf('\r\n')) {
        const line = this.buffer.slice(0, eol);
        this.buffer = this.buffer.slice(eol + 2);
        if (!/^[2-5]\d\d([ -]|$)/.test(line)) this.badLines.push(line);
        this.lines.push(line);
        if (!/^\d{3}-/.test(line)) this.replies.push(this.lines.splice(0));
      }
      this.wake?.();
    });
    socket.on('close', () => ((this.closed = true), this.wake?.()));
    socket.on('error', () => undefined);
  }

  static connect(): Promise<Client> {
    return new Promise((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1', () => resolve(new Client(s)));
      s.once('error', reject);
    });
  }

  /** The next reply's code, or null when the server closed or stayed silent for `ms`. */
  async next(seen: number, ms = 1000): Promise<string | null> {
    const deadline = Date.now() + ms;
    while (this.replies.length <= seen && !this.closed && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.max(1, deadline - Date.now()));
        this.wake = () => (clearTimeout(t), resolve());
      });
    }
    return this.replies[seen]?.[this.replies[seen]!.length - 1]?.slice(0, 3) ?? null;
  }

  send(text: string | Buffer): void {
    if (!this.closed) this.socket.write(typeof text === 'string' ? Buffer.from(text, 'latin1') : text);
  }
}

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');
const user = fc.constantFrom('alice@example.com+laptop', 'alice@example.com+denied', 'alice@example.com', 'mallory@example.com+x', 'al\r\nice+x', 'a\0b+c');
const pass = fc.constantFrom('alice-pw', 'wrong', '', 'pw\r\nRSET');
const junk = fc.string({ unit: 'binary-ascii', maxLength: 80 }).map((s) => s.replace(/[\r\n]/g, ''));
const address = fc.oneof({ weight: 3, arbitrary: fc.constantFrom('alice@example.com', 'bob@example.com') }, fc.constantFrom('', '<>', 'a@[127.0.0.1]'), junk);

type Step = { line: string; data?: true };
const step: fc.Arbitrary<Step> = fc.oneof(
  fc.constantFrom('EHLO client.test', 'HELO client.test', 'NOOP', 'RSET', 'HELP', 'VRFY alice', 'STARTTLS', 'AUTH LOGIN', 'AUTH XOAUTH2', 'BDAT 10', 'QUIT').map((line) => ({ line })),
  fc.tuple(user, pass).map(([u, p]) => ({ line: `AUTH PLAIN ${b64(`\0${u}\0${p}`)}` })),
  fc.tuple(fc.constantFrom('AUTH PLAIN ', 'AUTH LOGIN ', 'AUTH PLAIN'), junk).map(([c, j]) => ({ line: c + j })),
  address.map((a) => ({ line: `MAIL FROM:<${a}>` })),
  address.map((a) => ({ line: `RCPT TO:<${a}>` })),
  fc.constant({ line: 'DATA', data: true as const }),
  junk.map((line) => ({ line })),
  fc.nat(3000).map((n) => ({ line: `NOOP ${'x'.repeat(n)}` })),
);

test('any command sequence: well-formed replies, no relay without AUTH, no control characters upstream, still greeting', async () => {
  // Half the sessions start logged in, so the commands after AUTH (and the relay) are reached too.
  const login: Step[] = [{ line: 'EHLO client.test' }, { line: `AUTH PLAIN ${b64('\0alice@example.com+laptop\0alice-pw')}` }];
  const session = fc.tuple(fc.boolean(), fc.array(step, { minLength: 1, maxLength: 8 })).map(([loggedIn, rest]) => (loggedIn ? [...login, ...rest] : rest));
  await fc.assert(fc.asyncProperty(session, async (steps) => {
    const delivered = sink.messages.length;
    const c = await Client.connect();
    let seen = 0;
    expect(await c.next(seen++, 5000)).toBe('220');
    let authenticated = false;
    let acceptedData = false;
    for (const s of steps) {
      c.send(`${s.line}\r\n`);
      const code = await c.next(seen++);
      if (code === null) break;
      if (s.line.startsWith('AUTH') && code === '235') authenticated = true;
      if (s.data && code === '354') {
        c.send('Subject: fuzz\r\n\r\nbody\r\n.\r\n');
        const end = await c.next(seen++);
        if (end === null) break;
        if (end === '250') acceptedData = true;
      }
    }
    c.socket.destroy();
    expect(c.badLines).toEqual([]);
    if (!authenticated) {
      expect(acceptedData).toBe(false);
      expect(sink.messages.length).toBe(delivered);
    }
    for (const req of gate.requests) expect(`${req.user}|${req.deviceId ?? ''}`).not.toMatch(/[\0\r\n]/);
    const fresh = await Client.connect();
    expect(await fresh.next(0, 5000)).toBe('220');
    fresh.socket.destroy();
  }), fuzzRuns(25, 0.05));
}, 120_000);
