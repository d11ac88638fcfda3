// Issue 8 item 7: connections cannot be hoarded. Thousands of idle sockets (bounded: 1,000 per
// listener from one address, then enough from others to fill a listener) leave another address able
// to log in and the admin listener answering; a full listener refuses at once; SMTP clients that
// trickle bytes are closed; an IMAP session idle after login is logged out.
import net from 'node:net';
import { ADMIN_TOKEN, ALICE, imapClient, startRig, type Rig } from './imap-rig';
import { startSmtpSink, type SmtpSink } from '../harness/smtp-sink';
import { RawClient } from '../unit/imap-fakes';

let rig: Rig;
let sink: SmtpSink;
let smtpPort: number;
const opened: net.Socket[] = [];

/** A rig with SMTP listening too, in front of the capturing sink. */
async function startLimitsRig(smtp: Record<string, unknown>): Promise<void> {
  sink = await startSmtpSink();
  rig = await startRig({
    imap: { maxConnections: 300, maxConnectionsPerAddress: 100, idleTimeoutMs: 1500 },
    extraConfig: {
      smtp: {
        listeners: [{ host: '127.0.0.1', port: 0, tls: 'none' }],
        upstream: { host: '127.0.0.1', port: sink.port, login: 'master', masterUser: 'mw', masterPassword: 'mw-pw' },
        maxConnections: 300,
        maxConnectionsPerAddress: 100,
        ...smtp,
      },
    },
  });
  smtpPort = rig.runtime.smtp!.addresses[0]!.port;
  await rig.report('conn-mac', 'macos', []);
}

async function stopLimitsRig(): Promise<void> {
  for (const s of opened.splice(0)) s.destroy();
  await rig?.stop();
  await sink?.stop();
}

interface Idle {
  readonly socket: net.Socket;
  text: string;
  closed: boolean;
}

/** `count` sockets from `localAddress` that never send anything; settled once each is greeted or closed. */
async function hoard(port: number, localAddress: string, count: number): Promise<Idle[]> {
  const idle = await Promise.all(
    Array.from({ length: count }, () => new Promise<Idle>((resolve) => {
      const socket = net.connect({ port, host: '127.0.0.1', localAddress });
      opened.push(socket);
      const entry: Idle = { socket, text: '', closed: false };
      socket.on('data', (d: Buffer) => {
        entry.text += d.toString('latin1');
        resolve(entry);
      });
      socket.on('close', () => {
        entry.closed = true;
        resolve(entry);
      });
      socket.on('error', () => undefined);
    })),
  );
  await new Promise((r) => setTimeout(r, 300));
  return idle;
}

const stillOpen = (idle: readonly Idle[]): number => idle.filter((i) => !i.closed).length;

/** Close the sockets and give mailwarden a moment to see them go (their slots are released on close). */
async function release(idle: readonly Idle[]): Promise<void> {
  for (const i of idle) i.socket.destroy();
  await new Promise((r) => setTimeout(r, 500));
}

async function readyz(): Promise<number> {
  const response = await fetch(`http://127.0.0.1:${rig.runtime.admin!.address.port}/readyz`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
  return response.status;
}

async function smtpGreeting(localAddress: string): Promise<string> {
  const raw = await RawClient.connect(smtpPort, '127.0.0.1', localAddress);
  try {
    return (await raw.waitFor(/^\d{3}[ -].*\r\n/, 3000))[0];
  } catch (err) {
    return (err as Error).message;
  } finally {
    raw.close();
  }
}

describe('under a connection flood (pre-auth deadline long enough for the flood to settle)', () => {
  beforeAll(() => startLimitsRig({}));
  afterAll(stopLimitsRig);

test('one address holding 1,000 idle sockets per listener keeps only its share; others log in; admin answers', async () => {
  const [imapIdle, smtpIdle] = await Promise.all([hoard(rig.ports.plain, '127.0.2.1', 1000), hoard(smtpPort, '127.0.2.1', 1000)]);
  expect(stillOpen(imapIdle)).toBe(100);
  expect(stillOpen(smtpIdle)).toBe(100);
  const refused = [...imapIdle, ...smtpIdle].filter((i) => i.closed).map((i) => i.text.replace(/\r\n/g, ''));
  expect(new Set(refused)).toEqual(
    new Set(['* BYE [UNAVAILABLE] Too many connections from your address, try again later.', '421 4.7.0 Too many connections from your address, try again later']),
  );
  expect(refused).toHaveLength(1800);
  expect(await readyz()).toBe(200);
  const client = imapClient(rig.ports.plain, { user: `${ALICE.user}+conn-mac`, pass: ALICE.password });
  await client.connect();
  await client.logout();
  expect(await smtpGreeting('127.0.0.1')).toMatch(/^220 /);
  await release([...imapIdle, ...smtpIdle]);
}, 60_000);

test('a full listener refuses new connections at once, and the admin listener still answers', async () => {
  const holders = await Promise.all(['127.0.3.1', '127.0.3.2', '127.0.3.3'].flatMap((a) => [hoard(rig.ports.plain, a, 100), hoard(smtpPort, a, 100)]));
  expect(holders.reduce((n, h) => n + stillOpen(h), 0)).toBe(600);
  const [late] = await hoard(rig.ports.plain, '127.0.3.4', 1);
  expect(late!.text).toMatch(/^\* BYE \[UNAVAILABLE\] Too many connections/);
  expect(await smtpGreeting('127.0.3.4')).toMatch(/^421 /);
  expect(await readyz()).toBe(200);
  await release(holders.flat());
}, 60_000);

});

describe('deadlines', () => {
  beforeAll(() => startLimitsRig({ preAuthTimeoutMs: 3000, lineTimeoutMs: 1000 }));
  afterAll(stopLimitsRig);

/** Sends `text` one byte every `everyMs`; resolves with the seconds until mailwarden closed the socket. */
async function trickle(text: string, everyMs: number, giveUpMs: number): Promise<number | null> {
  const raw = await RawClient.connect(smtpPort);
  const started = Date.now();
  await raw.waitFor(/^220 /);
  for (let i = 0; !raw.closed && Date.now() - started < giveUpMs; i++) {
    raw.write(text[i % text.length]!);
    await new Promise((r) => setTimeout(r, everyMs));
  }
  const seconds = raw.closed ? (Date.now() - started) / 1000 : null;
  raw.close();
  return seconds;
}

test('SMTP: a command trickled one byte at a time is cut by the line deadline (minimum progress)', async () => {
  expect(await trickle('EHLO trickle.example\r\n', 300, 8000)).toBeLessThan(2.5);
});

test('SMTP: whole commands trickled slowly are cut by the pre-auth deadline', async () => {
  const raw = await RawClient.connect(smtpPort);
  const started = Date.now();
  await raw.waitFor(/^220 /);
  for (let i = 0; !raw.closed && Date.now() - started < 8000; i++) {
    raw.write('NOOP\r\n');
    await new Promise((r) => setTimeout(r, 700));
  }
  expect(raw.closed).toBe(true);
  expect(raw.data).toMatch(/421 4\.4\.2 Timeout: no authentication in time.*\r\n$/);
  expect((Date.now() - started) / 1000).toBeLessThan(5);
  raw.close();
});

test('IMAP: a session idle after login is logged out (imap.idleTimeoutMs)', async () => {
  const raw = await RawClient.connect(rig.ports.plain);
  await raw.waitFor(/^\* OK .*\r\n/);
  raw.write(`a1 LOGIN "${ALICE.user}+conn-mac" "${ALICE.password}"\r\n`);
  await raw.waitFor(/^a1 OK .*\r\n/m);
  raw.write('a2 NOOP\r\n');
  await raw.waitFor(/^a2 OK .*\r\n/m);
  await raw.waitFor(/^\* BYE .*idle.*\r\n/im, 4000);
  await new Promise((r) => setTimeout(r, 300));
  expect(raw.closed).toBe(true);
});
});
