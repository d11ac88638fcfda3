// RFC 2920 reply grouping in the listener: a pipelined MAIL/RCPT/DATA group gets its replies in order,
// each being its own command's reply, written together once the last MAIL/RCPT handler answered.
import net from 'node:net';
import { silentLogger } from '../../src/core/log';
import { startListener, type RunningListener, type SmtpHandlers } from '../../src/smtp/listener';
import { smtpConfig } from './smtp-fakes';

let running: RunningListener | null = null;
afterEach(async () => {
  await running?.close(0);
  running = null;
});

/** Handlers whose RCPT answers only when the test releases it; RCPT <bad@…> is refused. */
function handlers(): { handlers: SmtpHandlers; rcptEntered: Promise<void>; releaseRcpt: () => void } {
  let entered!: () => void;
  let release!: () => void;
  const rcptEntered = new Promise<void>((r) => (entered = r));
  const released = new Promise<void>((r) => (release = r));
  return {
    rcptEntered,
    releaseRcpt: release,
    handlers: {
      secure: () => undefined,
      auth: async (credential) => ({ ok: true, user: credential.username ?? '' }),
      mailFrom: async () => null,
      rcptTo: async (address) => {
        entered();
        await released;
        return address.address.startsWith('bad@') ? { code: 550, text: '5.1.1 no such user' } : null;
      },
      data: async (stream) => {
        for await (const _ of stream) void _;
        return { code: 250, text: 'queued' };
      },
      close: () => undefined,
    },
  };
}

async function session(port: number): Promise<{ socket: net.Socket; received: () => string; waitFor: (re: RegExp) => Promise<string> }> {
  const socket = net.connect(port, '127.0.0.1');
  let text = '';
  const waiters: (() => void)[] = [];
  socket.on('data', (d: Buffer) => {
    text += d.toString('latin1');
    for (const w of waiters.splice(0)) w();
  });
  const waitFor = async (re: RegExp): Promise<string> => {
    while (!re.test(text)) await new Promise<void>((r) => waiters.push(r));
    return text;
  };
  await waitFor(/^220 /m);
  socket.write(`EHLO client.test\r\nAUTH PLAIN ${Buffer.from('\0alice@example.com\0pw').toString('base64')}\r\n`);
  await waitFor(/^235 /m);
  text = '';
  return { socket, received: () => text, waitFor };
}

async function listen(h: SmtpHandlers): Promise<number> {
  running = await startListener({ listener: { host: '127.0.0.1', port: 0, tls: 'none' }, hostname: 'mw.test', maxMessageBytes: 1_000_000, limits: smtpConfig(0) }, h, silentLogger());
  return running.address.port;
}

it('pipelined MAIL, RCPT, RCPT, DATA: the MAIL reply waits for the RCPT replies, then all come in order', async () => {
  const h = handlers();
  const c = await session(await listen(h.handlers));
  c.socket.write('MAIL FROM:<alice@example.com>\r\nRCPT TO:<bad@example.com>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n');
  await h.rcptEntered;
  // Several turns of the event loop: the MAIL reply is held while its RCPT is still pending.
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
  expect(c.received()).toBe('');
  h.releaseRcpt();
  const replies = (await c.waitFor(/^354 /m)).split('\r\n').filter(Boolean);
  expect(replies.map((l) => l.slice(0, 3))).toEqual(['250', '550', '250', '354']);
  expect(replies[1]).toBe('550 5.1.1 no such user');
  c.socket.write('Subject: x\r\n\r\nbody\r\n.\r\n');
  expect(await c.waitFor(/^250 queued/m)).toMatch(/^250 queued/m);
  c.socket.destroy();
});

it('a MAIL not followed by pipelined commands is answered at once', async () => {
  const h = handlers();
  const c = await session(await listen(h.handlers));
  c.socket.write('MAIL FROM:<alice@example.com>\r\n');
  expect(await c.waitFor(/^250 /m)).toMatch(/^250 /);
  c.socket.write('RCPT TO:<bob@example.com>\r\n');
  await h.rcptEntered;
  h.releaseRcpt();
  expect(await c.waitFor(/^250 [\s\S]*^250 /m)).toMatch(/250/);
  c.socket.destroy();
});
