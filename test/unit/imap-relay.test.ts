// The relay over loopback socket pairs: byte transparency under arbitrary splits, capability lines
// split across reads, and BYE injected only at response boundaries.
import net from 'node:net';
import fc from 'fast-check';
import { Relay } from '../../src/imap/relay';
import { UpstreamReads } from '../../src/imap/read-buffer';

interface Pair {
  /** The test's end of the client leg (what a mail client would hold). */
  readonly client: net.Socket;
  /** The test's end of the upstream leg (what Dovecot would hold). */
  readonly server: net.Socket;
  readonly relay: Relay;
  readonly toClient: Buffer[];
  readonly toServer: Buffer[];
  readonly closed: Promise<void>;
}

async function socketPair(): Promise<[net.Socket, net.Socket, () => void]> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as net.AddressInfo).port;
  const accepted = new Promise<net.Socket>((r) => server.once('connection', r));
  const a = net.connect(port, '127.0.0.1');
  const b = await accepted;
  await new Promise<void>((r) => (a.connecting ? a.once('connect', () => r()) : r()));
  return [a, b, () => server.close()];
}

const cleanups: (() => void)[] = [];
afterEach(() => cleanups.splice(0).forEach((f) => f()));

async function relayPair(): Promise<Pair> {
  const [client, proxyClientSide, close1] = await socketPair();
  const [proxyUpstreamSide, server, close2] = await socketPair();
  let onClose!: () => void;
  const closed = new Promise<void>((r) => (onClose = r));
  const relay = new Relay({ client: proxyClientSide, upstream: proxyUpstreamSide, clientBytes: Buffer.alloc(0), upstreamBytes: Buffer.alloc(0), onClose });
  const toClient: Buffer[] = [];
  const toServer: Buffer[] = [];
  client.on('data', (d: Buffer) => toClient.push(d));
  server.on('data', (d: Buffer) => toServer.push(d));
  for (const s of [client, server]) s.on('error', () => undefined);
  cleanups.push(() => {
    client.destroy();
    server.destroy();
    close1();
    close2();
  });
  return { client, server, relay, toClient, toServer, closed };
}

async function until(f: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Write pieces with a pause between, so each arrives as its own read. */
async function writeSplit(socket: net.Socket, data: Buffer, cuts: number[]): Promise<void> {
  let from = 0;
  for (const p of [...new Set(cuts)].sort((a, b) => a - b).concat(data.length)) {
    if (p > from) socket.write(data.subarray(from, p));
    from = p;
    await new Promise((r) => setTimeout(r, 2));
  }
}

const RESPONSES = Buffer.from(
  '* 1 FETCH (UID 7 BODY[] {26}\r\n* CAPABILITY fake\r\n{3}\r\nabc)\r\n' +
    '* CAPABILITY IMAP4rev1 COMPRESS=DEFLATE IDLE UNAUTHENTICATE\r\n' +
    'a1 OK [CAPABILITY IMAP4rev1 UNAUTHENTICATE MOVE] done\r\n* 2 EXISTS\r\n',
);
const FILTERED =
  '* 1 FETCH (UID 7 BODY[] {26}\r\n* CAPABILITY fake\r\n{3}\r\nabc)\r\n' +
  '* CAPABILITY IMAP4rev1 IDLE\r\n' +
  'a1 OK [CAPABILITY IMAP4rev1 MOVE] done\r\n* 2 EXISTS\r\n';

test('responses: literal contents are never rewritten, capability lines are, under any split', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(fc.integer({ min: 1, max: RESPONSES.length - 1 }), { maxLength: 6 }), async (cuts) => {
      const p = await relayPair();
      await writeSplit(p.server, RESPONSES, cuts);
      await until(() => Buffer.concat(p.toClient).length >= FILTERED.length);
      await new Promise((r) => setTimeout(r, 10));
      expect(Buffer.concat(p.toClient).toString('latin1')).toBe(FILTERED);
      cleanups.splice(0).forEach((f) => f());
    }),
    { numRuns: 15 },
  );
});

test('commands: an APPEND literal containing "x COMPRESS" is forwarded untouched, a real COMPRESS is not', async () => {
  const p = await relayPair();
  const data = Buffer.from('a1 APPEND INBOX {15+}\r\nx COMPRESS yes\r\na2 COMPRESS DEFLATE\r\na3 NOOP\r\n');
  await writeSplit(p.client, data, [5, 22, 30]);
  await until(() => Buffer.concat(p.toServer).toString().includes('a3 NOOP'));
  expect(Buffer.concat(p.toServer).toString()).toBe('a1 APPEND INBOX {15+}\r\nx COMPRESS yes\r\na3 NOOP\r\n');
  await until(() => Buffer.concat(p.toClient).toString().includes('a2 NO [CANNOT]'));
});

test('end() waits for the end of a large literal, then BYE and both legs close', async () => {
  const p = await relayPair();
  const body = Buffer.alloc(200000, 0x78);
  p.server.write(`* 1 FETCH (BODY[] {${body.length}}\r\n`);
  p.server.write(body.subarray(0, 1000));
  await until(() => Buffer.concat(p.toClient).length > 500);
  p.relay.end('* BYE revoked\r\n');
  p.server.write(body.subarray(1000));
  p.server.write(')\r\n* 3 EXISTS\r\n');
  await p.closed;
  await until(() => Buffer.concat(p.toClient).toString('latin1').endsWith('* BYE revoked\r\n'));
  const text = Buffer.concat(p.toClient).toString('latin1');
  expect(text.indexOf('* BYE')).toBe(text.indexOf(')\r\n') + 3);
  expect(text).not.toContain('* 3 EXISTS');
});

test('a refused COMPRESS carrying a literal ends the session; its literal never reaches the upstream', async () => {
  const p = await relayPair();
  p.client.write('a1 NOOP\r\na2 COMPRESS {12+}\r\nb LOGOUT\r\n\r\n');
  await p.closed;
  await until(() => Buffer.concat(p.toClient).toString().includes('a2 NO [CANNOT]'));
  await new Promise((r) => setTimeout(r, 50));
  expect(Buffer.concat(p.toServer).toString()).toBe('a1 NOOP\r\n');
});

test('upstream reads into a reused buffer: a large FETCH to a client that stalls arrives intact, login bytes come as data events', async () => {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as net.AddressInfo).port;
  const accepted = new Promise<net.Socket>((r) => server.once('connection', r));
  const reads = new UpstreamReads();
  const upstream = net.connect({ port, host: '127.0.0.1', onread: reads.onread });
  reads.attach(upstream);
  const dovecot = await accepted;
  const [client, proxyClientSide, close1] = await socketPair();
  cleanups.push(() => {
    client.destroy();
    dovecot.destroy();
    upstream.destroy();
    server.close();
    close1();
  });
  // Before the relay takes over (login phase), chunks are ordinary 'data' events.
  const greeting = new Promise<string>((r) => upstream.once('data', (d: Buffer) => r(d.toString())));
  dovecot.write('* OK ready\r\n');
  expect(await greeting).toBe('* OK ready\r\n');
  upstream.pause();
  const relay = new Relay({ client: proxyClientSide, upstream, clientBytes: Buffer.alloc(0), upstreamBytes: Buffer.alloc(0), upstreamReads: reads, onClose: () => undefined });
  // Every byte differs from its neighbours, so a chunk overwritten by a later read would show.
  const body = Buffer.alloc(6 * 1024 * 1024);
  for (let i = 0; i < body.length; i++) body[i] = (i * 7 + (i >> 12)) & 0xff;
  const response = Buffer.concat([Buffer.from(`* 1 FETCH (BODY[] {${body.length}}\r\n`), body, Buffer.from(')\r\nf OK done\r\n')]);
  client.pause(); // the client stalls: the proxy's writes to it stay unfinished and backpressure engages
  dovecot.write(response);
  await new Promise((r) => setTimeout(r, 200));
  const got: Buffer[] = [];
  client.on('data', (d: Buffer) => got.push(d));
  client.resume();
  await until(() => got.reduce((n, b) => n + b.length, 0) >= response.length, 5000);
  expect(Buffer.concat(got).equals(response)).toBe(true);
  expect(relay.isClosed).toBe(false);
});
