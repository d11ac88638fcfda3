// The SMTP proxy end to end in one process: nodemailer (and a raw client for byte sequences no real
// client sends) → mailwarden's SMTP service with a stub Gate → the capturing sink as upstream.
import net from 'node:net';
import nodemailer from 'nodemailer';
import type { ProtocolService } from '../../src/app/gate';
import type { SmtpConfig } from '../../src/core/config-types';
import { startSmtpService } from '../../src/smtp/service';
import { startSmtpSink, type SmtpSink } from '../harness/smtp-sink';
import { decision, fakeGate, type FakeGate } from './imap-fakes';
import { flagStore, RawClient, smtpConfig } from './smtp-fakes';

const SENTENCE = 'Company mail is blocked on this ios device because TikTok is installed. Remove TikTok. Ref REF123.';

let sink: SmtpSink;
let gate: FakeGate;
let service: ProtocolService | null;

beforeEach(async () => {
  sink = await startSmtpSink({ auth: { users: { 'alice@example.com': 'alice-pw', 'bob@example.com': 'bob-pw' } } });
  gate = fakeGate();
  gate.decideWith = (req) =>
    decision(req.deviceId === 'phone' ? 'deny' : 'allow', { message: SENTENCE, protocol: 'smtp', user: req.user, deviceId: req.deviceId });
  service = null;
});

afterEach(async () => {
  await service?.shutdown(0);
  await sink.stop();
});

async function start(overrides: Partial<SmtpConfig> = {}, upstream: Partial<SmtpConfig['upstream']> = {}, store?: ReturnType<typeof flagStore>): Promise<number> {
  const config = smtpConfig(sink.port, overrides, upstream);
  service = await startSmtpService(gate, config, store ? { store } : {});
  return service.addresses[0]!.port;
}

function client(port: number, user = 'alice@example.com+laptop', pass = 'alice-pw') {
  return nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true, auth: { user, pass } });
}

const MESSAGE = Buffer.from(
  'From: alice@example.com\r\nTo: bob@example.com\r\nSubject: hi\r\nX-Mailer: iPhone Mail (22C161)\r\n\r\n' +
    '.leading dot line\r\n..two dots\r\n.\r\nlatin: \xe9\r\nlast line\r\n',
  'latin1',
);

describe('allowed device', () => {
  it('relays the message byte for byte, logged in upstream as the user without +device', async () => {
    const port = await start();
    const info = await client(port).sendMail({ envelope: { from: 'alice@example.com', to: ['bob@example.com'] }, raw: MESSAGE });
    expect(info.response).toMatch(/^250 2\.0\.0 Ok: queued as SINK1/);
    const [got] = await sink.waitForMessages(1);
    expect(got!.raw.equals(MESSAGE)).toBe(true);
    expect(got!.login).toEqual({ method: 'PLAIN', user: 'alice@example.com' });
    expect(got!.rcptTo).toEqual(['bob@example.com']);
  });

  it('passes BODY=8BITMIME and SMTPUTF8 on to the upstream', async () => {
    const port = await start();
    const c = await RawClient.connect(port);
    expect(await c.login('alice@example.com+laptop', 'alice-pw')).toMatch(/^235/);
    expect(await c.command('MAIL FROM:<alice@example.com> BODY=8BITMIME SMTPUTF8')).toMatch(/^250/);
    expect(await c.command('RCPT TO:<bob@example.com>')).toMatch(/^250/);
    expect(await c.command('DATA')).toMatch(/^354/);
    c.write('Subject: caf\xc3\xa9\r\n\r\nbody\r\n.\r\n');
    expect(await c.reply()).toMatch(/^250/);
    c.close();
    const [got] = await sink.waitForMessages(1);
    expect(got!.mailArgs).toMatchObject({ BODY: '8BITMIME', SMTPUTF8: true });
  });

  it('records X-Mailer from the header block in the session hints', async () => {
    const port = await start();
    await client(port, 'alice@example.com+laptop').sendMail({ envelope: { from: 'alice@example.com', to: ['bob@example.com'] }, raw: MESSAGE });
    await sink.waitForMessages(1);
    // The session is gone once nodemailer quit; the next login's request carries no header hints,
    // so look at the live session while one is open.
    const c = await RawClient.connect(port);
    await c.login('alice@example.com+laptop', 'alice-pw');
    await c.startData();
    c.write(MESSAGE);
    c.write('.\r\n');
    expect(await c.reply()).toMatch(/^250/);
    const [live] = gate.sessions.byDevice('laptop');
    expect(live!.hints['x-mailer']).toBe('iPhone Mail (22C161)');
    c.close();
  });
});

describe('warn and grace', () => {
  it('a warn decision is allowed: the message is delivered (the warning is in the decision audit)', async () => {
    gate.decideWith = (req) =>
      decision('allow', { protocol: 'smtp', user: req.user, deviceId: req.deviceId, warnings: ['Warning: remove TikTok within 24 hours. Ref REF123.'] });
    const port = await start();
    await client(port, 'alice@example.com+phone').sendMail({ envelope: { from: 'alice@example.com', to: ['bob@example.com'] }, raw: MESSAGE });
    expect(await sink.waitForMessages(1)).toHaveLength(1);
  });
});

describe('refused device', () => {
  it('AUTH succeeds, MAIL FROM gets 550 5.7.1 with the sentence, nothing reaches the upstream', async () => {
    const port = await start();
    const err = await client(port, 'alice@example.com+phone')
      .sendMail({ envelope: { from: 'alice@example.com', to: ['bob@example.com'] }, raw: MESSAGE })
      .catch((e: { responseCode?: number; response?: string; command?: string }) => e);
    expect(err).toMatchObject({ responseCode: 550, command: 'MAIL FROM' });
    expect((err as { response: string }).response).toBe(`550 5.7.1 ${SENTENCE}`);
    expect(sink.transactions).toBe(0);
    expect(sink.messages).toHaveLength(0);
  });

  it('a wrong password never sees the sentence: 535 5.7.8', async () => {
    const port = await start();
    const err = await client(port, 'alice@example.com+phone', 'nope').verify().catch((e: { response?: string }) => e);
    expect((err as { response: string }).response).toBe('535 5.7.8 Authentication credentials invalid');
  });

  it('with passthrough, the upstream judges the password before AUTH succeeds for a refused device', async () => {
    gate.resolveWith = (ctx) => ({
      ok: true,
      user: 'alice@example.com',
      deviceId: 'phone',
      source: 'asserted',
      strength: 'weak',
      upstream: { mode: 'passthrough', credential: ctx.credential, username: 'alice@example.com' },
    });
    const port = await start();
    const c = await RawClient.connect(port);
    expect(await c.login('alice@example.com+phone', 'not-the-upstream-password')).toBe('535 5.7.8 Authentication credentials invalid');
    c.close();
  });

  it('a policy tempfail gets 451 4.7.1 at MAIL FROM', async () => {
    gate.decideWith = () => decision('tempfail', { message: 'Try again soon. Ref REF123.', reasonCode: 'BANNED_APP', decidedBy: 'x' });
    const port = await start();
    const c = await RawClient.connect(port);
    expect(await c.login('alice@example.com+laptop', 'alice-pw')).toMatch(/^235/);
    expect(await c.command('MAIL FROM:<alice@example.com>')).toBe('451 4.7.1 Try again soon. Ref REF123.');
    c.close();
  });

  it('the store being down is a 454 4.7.0 at AUTH', async () => {
    gate.decideWith = () => decision('tempfail', { reasonCode: 'STORE_UNAVAILABLE', message: 'Mail is temporarily unavailable. Ref REF123.' });
    const port = await start();
    const c = await RawClient.connect(port);
    expect(await c.login('alice@example.com+laptop', 'alice-pw')).toBe('454 4.7.0 Temporary authentication failure: Mail is temporarily unavailable. Ref REF123.');
    c.close();
  });

  it('MAIL FROM without AUTH is 530 5.7.0 and opens nothing upstream', async () => {
    const port = await start();
    const c = await RawClient.connect(port);
    await c.command('EHLO x');
    expect(await c.command('MAIL FROM:<a@example.com>')).toBe('530 5.7.0 Authentication required');
    c.close();
    expect(sink.connections).toBe(0);
  });
});

describe('revocation', () => {
  it('a revoked session gets 550 5.7.1 with the sentence at its next MAIL FROM', async () => {
    const port = await start();
    const c = await RawClient.connect(port);
    await c.login('alice@example.com+laptop', 'alice-pw');
    expect(await c.command('MAIL FROM:<alice@example.com>')).toMatch(/^250/);
    expect(await c.command('RSET')).toMatch(/^250/);
    const [live] = gate.sessions.byDevice('laptop');
    live!.revoke(decision('deny', { message: SENTENCE }));
    expect(await c.command('MAIL FROM:<alice@example.com>')).toBe(`550 5.7.1 ${SENTENCE}`);
    c.close();
  });

  it('a session revoked while its message streams is refused before the final dot', async () => {
    const port = await start();
    const c = await RawClient.connect(port);
    await c.login('alice@example.com+laptop', 'alice-pw');
    await c.startData();
    c.write('Subject: x\r\n\r\nfirst part\r\n');
    await new Promise((r) => setTimeout(r, 50));
    gate.sessions.byDevice('laptop')[0]!.revoke(decision('deny', { message: SENTENCE }));
    c.write('second part\r\n.\r\n');
    expect(await c.reply()).toBe(`550 5.7.1 ${SENTENCE}`);
    c.close();
    await new Promise((r) => setTimeout(r, 100));
    expect(sink.messages).toHaveLength(0);
    expect(sink.abortedData).toBe(1);
  });

  it('the session leaves the registry when the client disconnects, and is counted while it lasts', async () => {
    const port = await start();
    const c = await RawClient.connect(port);
    await c.login('alice@example.com+laptop', 'alice-pw');
    expect(gate.sessions.byDevice('laptop')).toHaveLength(1);
    expect(gate.counted.filter((m) => !m.startsWith('onUpstream'))).toEqual(['onLogin:allow', 'sessionDelta:1']);
    await c.command('QUIT');
    c.close();
    await new Promise((r) => setTimeout(r, 100));
    expect(gate.sessions.size).toBe(0);
    expect(gate.counted.filter((m) => m.startsWith('sessionDelta'))).toEqual(['sessionDelta:1', 'sessionDelta:-1']);
  });
});

describe('upstream faults', () => {
  it('a recipient the upstream refuses is refused to the client at its RCPT; the others get the message', async () => {
    sink.rejectRecipient('nobody@example.com');
    const port = await start();
    const info = await client(port).sendMail({ envelope: { from: 'alice@example.com', to: ['bob@example.com', 'nobody@example.com'] }, raw: MESSAGE });
    expect(info.rejected).toEqual(['nobody@example.com']);
    expect(info.rejectedErrors?.[0]?.response).toBe('550 5.1.1 <nobody@example.com>: Recipient address rejected: User unknown');
    const [got] = await sink.waitForMessages(1);
    expect(got!.rcptTo).toEqual(['bob@example.com']);
  });

  it('the upstream dying mid-DATA gives the client a 451; its retry delivers exactly once', async () => {
    sink.failNext(1, { kind: 'close-mid-data' });
    const port = await start();
    const transport = client(port);
    const big = Buffer.concat([Buffer.from('Subject: big\r\n\r\n'), Buffer.alloc(12 * 50_000, 'abcdefghij\r\n')]);
    const err = await transport.sendMail({ envelope: { from: 'alice@example.com', to: ['bob@example.com'] }, raw: big }).catch((e: { responseCode?: number; response?: string }) => e);
    expect(err).toMatchObject({ responseCode: 451 });
    expect((err as { response: string }).response).toMatch(/^451 4\.4\.2/);
    const info = await transport.sendMail({ envelope: { from: 'alice@example.com', to: ['bob@example.com'] }, raw: big });
    expect(info.response).toMatch(/^250/);
    await sink.waitForMessages(1);
    await new Promise((r) => setTimeout(r, 100));
    expect(sink.messages).toHaveLength(1);
    expect(sink.messages[0]!.raw.equals(big)).toBe(true);
  });

  it('the upstream dropping the connection after the final dot is a 451, never a 250', async () => {
    sink.failNext(1, { kind: 'close-after-data' });
    const port = await start();
    const transport = client(port);
    const err = await transport.sendMail({ envelope: { from: 'alice@example.com', to: ['bob@example.com'] }, raw: MESSAGE }).catch((e: { responseCode?: number }) => e);
    expect(err).toMatchObject({ responseCode: 451 });
    await transport.sendMail({ envelope: { from: 'alice@example.com', to: ['bob@example.com'] }, raw: MESSAGE });
    expect(sink.messages).toHaveLength(1);
  });

  it("the upstream's refusal of the message is passed on as it is", async () => {
    sink.failNext(1, { kind: 'reply', code: 554, text: '5.7.0 Message rejected: spam' });
    const port = await start();
    const err = await client(port).sendMail({ envelope: { from: 'alice@example.com', to: ['bob@example.com'] }, raw: MESSAGE }).catch((e: { response?: string }) => e);
    expect((err as { response: string }).response).toBe('554 5.7.0 Message rejected: spam');
  });

  it('an unreachable upstream is a 454 4.7.0 at AUTH, and after repeated failures it is not even tried', async () => {
    // An "upstream" that accepts and hangs up at once: each attempt is a failed greeting.
    let attempts = 0;
    const dead = net.createServer((socket) => {
      attempts += 1;
      socket.destroy();
    });
    await new Promise<void>((resolve) => dead.listen(0, '127.0.0.1', resolve));
    const config = smtpConfig((dead.address() as net.AddressInfo).port, {}, { circuitBreaker: { failures: 2, resetMs: 60000 } });
    service = await startSmtpService(gate, config);
    for (let i = 0; i < 4; i++) {
      const c = await RawClient.connect(service.addresses[0]!.port);
      expect(await c.login('alice@example.com+laptop', 'alice-pw')).toMatch(/^454 4\.7\.0/);
      c.close();
    }
    expect(attempts).toBe(2);
    await new Promise<void>((resolve) => dead.close(() => resolve()));
  });
});

describe('message size', () => {
  it('advertises SIZE and refuses a larger message with 552 5.3.4, delivering nothing', async () => {
    const port = await start({ maxMessageBytes: 10_000 });
    const c = await RawClient.connect(port);
    const ehlo = await c.command('EHLO x');
    expect(ehlo).toContain('SIZE 10000');
    await c.command(`AUTH PLAIN ${Buffer.from('\0alice@example.com+laptop\0alice-pw').toString('base64')}`);
    await c.startData();
    c.write(Buffer.concat([Buffer.from('Subject: big\r\n\r\n'), Buffer.alloc(21_000, 'x\r\n')]));
    c.write('.\r\n');
    expect(await c.reply()).toBe('552 5.3.4 Message size exceeds fixed maximum message size of 10000 bytes');
    c.close();
    expect(sink.messages).toHaveLength(0);
  });
});

describe('SMTP smuggling', () => {
  // failure-catalogue §1.2 / rows 42–45: every non-CRLF end-of-data lookalike.
  const SEQUENCES: Record<string, string> = {
    'LF.LF': '\n.\n',
    'LF.CRLF': '\n.\r\n',
    'CR.CR': '\r.\r',
    'CRLF.CR': '\r\n.\r',
    'CRLF.LF': '\r\n.\n',
    'CR.CRLF': '\r.\r\n',
    'CRCRLF.CRCRLF': '\r\r\n.\r\r\n',
    'CRLF.CRx': '\r\n.\rx',
    'LF.CR': '\n.\r',
    'bare LF in a header': '\nX-Injected: yes',
    'bare CR in a header': '\rX-Injected: yes',
  };

  it.each(Object.entries(SEQUENCES))('%s is refused with 550 5.5.2 and the upstream sees no second message', async (_name, sequence) => {
    const port = await start();
    const c = await RawClient.connect(port);
    await c.login('alice@example.com+laptop', 'alice-pw');
    await c.startData();
    c.write(`Subject: smuggle\r\n\r\nhello${sequence}MAIL FROM:<ceo@example.com>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n\r\nspoofed\r\n.\r\n`);
    expect(await c.reply()).toBe('550 5.5.2 Message refused: bare CR or LF in message data (lines must end with CRLF)');
    // The session stays usable for a correct message afterwards.
    await c.startData();
    c.write('Subject: fine\r\n\r\nok\r\n.\r\n');
    expect(await c.reply()).toMatch(/^250/);
    c.close();
    const messages = await sink.waitForMessages(1);
    await new Promise((r) => setTimeout(r, 50));
    expect(messages).toHaveLength(1);
    expect(messages[0]!.raw.toString()).toBe('Subject: fine\r\n\r\nok\r\n');
    // Two transactions reached the upstream (the refused one, aborted before its dot, and the good one).
    expect(sink.transactions).toBe(2);
    expect(sink.abortedData).toBe(1);
  });
});

describe('shutdown', () => {
  it('lets a message in flight finish within the drain time, then closes idle sessions with 421', async () => {
    const port = await start();
    const busy = await RawClient.connect(port);
    await busy.login('alice@example.com+laptop', 'alice-pw');
    const idle = await RawClient.connect(port);
    await idle.login('alice@example.com+laptop', 'alice-pw');
    await busy.startData();
    busy.write('Subject: during shutdown\r\n\r\nfirst\r\n');
    const stopping = service!.shutdown(400);
    await new Promise((r) => setTimeout(r, 100));
    busy.write('second\r\n.\r\n');
    expect(await busy.reply()).toMatch(/^250 /);
    expect(await idle.reply()).toBe('421 4.3.2 Service shutting down, try again later');
    await stopping;
    service = null;
    expect(sink.messages).toHaveLength(1);
    await expect(RawClient.connect(port)).rejects.toThrow();
    busy.close();
    idle.close();
  });
});

describe('user notification', () => {
  it('mails the user once per interval when a device is denied', async () => {
    const store = flagStore();
    const notifyUser = { enabled: true, intervalHours: 24, from: 'mailwarden@example.com', subject: 'Mail blocked on {deviceId}', body: 'Hello {user}: {message}' };
    const port = await start({ notifyUser }, {}, store);
    for (let i = 0; i < 2; i++) {
      const c = await RawClient.connect(port);
      expect(await c.login('alice@example.com+phone', 'alice-pw')).toMatch(/^235/);
      c.close();
    }
    const [note] = await sink.waitForMessages(1);
    await new Promise((r) => setTimeout(r, 200));
    expect(sink.messages).toHaveLength(1);
    expect(note!.mailFrom).toBe('mailwarden@example.com');
    expect(note!.rcptTo).toEqual(['alice@example.com']);
    const text = note!.raw.toString();
    expect(text).toContain('Subject: Mail blocked on phone');
    expect(text).toContain('Auto-Submitted: auto-generated');
    expect(text).toContain('TikTok is installed');
    expect(store.flags.has('notified:phone')).toBe(true);
  });

  it('sends again after the interval, and gives the claim back when delivery fails', async () => {
    const store = flagStore();
    store.flags.set('notified:phone', String(Date.now() - 25 * 3600_000));
    const notifyUser = { enabled: true, intervalHours: 24, from: 'mailwarden@example.com', subject: 'Blocked', body: '{message}' };
    sink.rejectRecipient('alice@example.com', 450, '4.2.1 Mailbox busy');
    const port = await start({ notifyUser }, {}, store);
    const c = await RawClient.connect(port);
    expect(await c.login('alice@example.com+phone', 'alice-pw')).toMatch(/^235/);
    c.close();
    // The delivery is refused: the old time is put back so the next denial tries again.
    for (let i = 0; i < 50 && sink.transactions === 0; i++) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 100));
    expect(Number(store.flags.get('notified:phone'))).toBeLessThan(Date.now() - 24 * 3600_000);
    expect(sink.messages).toHaveLength(0);
  });
});
