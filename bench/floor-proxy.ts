// The floor for the rig's third column (`MW_PROXY=floor`, bench/rig.ts): the least a Node.js proxy does
// for the rig's logins — greeting, read the login, one Redis GET of the device record, log in upstream,
// then pipe both ways. No policy, audit, throttle, metrics or logs. What mailwarden costs above this
// figure is mailwarden's own work; what this costs above nginx + auth_http is Node's.
import net from 'node:net';
import tls from 'node:tls';
import type Redis from 'ioredis';
import { redisKeys } from '../src/store/redis/layout';

export interface FloorOptions {
  readonly redis: Redis;
  readonly keyPrefix: string;
  /** An app id whose presence in the record refuses the login (the rig's `dbad` has it). */
  readonly bannedApp: string;
  readonly imapUpstreamPort: number;
  readonly smtpUpstreamPort: number;
  readonly tls: { cert: string; key: string };
}

/** Reads CRLF-ended lines until `done(line)` says the reply is complete; hands back what followed. */
function readReply(socket: net.Socket, done: (line: string) => boolean): Promise<{ text: string; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    let buffered: Buffer = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      let start = 0;
      for (let nl = buffered.indexOf(10, start); nl >= 0; nl = buffered.indexOf(10, start)) {
        const line = buffered.toString('latin1', start, nl + 1);
        start = nl + 1;
        if (done(line)) {
          socket.off('data', onData).off('error', reject).off('close', onClose);
          resolve({ text: buffered.toString('latin1', 0, start), rest: buffered.subarray(start) });
          return;
        }
      }
    };
    const onClose = () => reject(new Error('closed'));
    socket.on('data', onData).once('error', reject).once('close', onClose);
  });
}

/** The device's record allows a login: it exists and does not list the banned app. */
async function deviceAllowed(options: FloorOptions, deviceId: string): Promise<boolean> {
  const record = await options.redis.get(redisKeys(options.keyPrefix).device(deviceId));
  return record !== null && !record.includes(options.bannedApp);
}

function splitAsserted(login: string): { user: string; device: string } | null {
  const plus = login.lastIndexOf('+');
  return plus > 0 ? { user: login.slice(0, plus), device: login.slice(plus + 1) } : null;
}

function pipeBoth(client: net.Socket, upstream: net.Socket, rest: Buffer): void {
  if (rest.length > 0) upstream.write(rest);
  client.pipe(upstream);
  upstream.pipe(client);
  const end = () => { client.destroy(); upstream.destroy(); };
  client.once('close', end).on('error', end);
  upstream.once('close', end).on('error', end);
}

async function imapSession(options: FloorOptions, client: net.Socket): Promise<void> {
  client.setNoDelay(true);
  client.write('* OK floor ready\r\n');
  const login = await readReply(client, () => true);
  const m = /^(\S+) LOGIN (\S+) (\S+)\r\n$/i.exec(login.text);
  const asserted = m ? splitAsserted(m[2]!) : null;
  if (!m || !asserted || !(await deviceAllowed(options, asserted.device))) {
    client.end(`${m?.[1] ?? '*'} NO refused\r\n`);
    return;
  }
  const upstream = net.connect({ host: '127.0.0.1', port: options.imapUpstreamPort, noDelay: true });
  await readReply(upstream, () => true);
  upstream.write(`${m[1]} LOGIN ${asserted.user} ${m[3]}\r\n`);
  const reply = await readReply(upstream, (line) => line.startsWith(`${m[1]} `));
  client.write(reply.text);
  pipeBoth(client, upstream, Buffer.concat([login.rest, reply.rest]));
}

async function smtpSession(options: FloorOptions, client: net.Socket): Promise<void> {
  client.setNoDelay(true);
  client.write('220 floor ESMTP\r\n');
  await readReply(client, () => true); // EHLO
  client.write('250-floor\r\n250 AUTH PLAIN\r\n');
  const auth = await readReply(client, () => true);
  const m = /^AUTH PLAIN (\S+)\r\n$/i.exec(auth.text);
  const [, login, password] = m ? Buffer.from(m[1]!, 'base64').toString('utf8').split('\0') : [];
  const asserted = login ? splitAsserted(login) : null;
  if (!asserted || password === undefined || !(await deviceAllowed(options, asserted.device))) {
    client.end('535 5.7.8 refused\r\n');
    return;
  }
  const upstream = net.connect({ host: '127.0.0.1', port: options.smtpUpstreamPort, noDelay: true });
  await readReply(upstream, (line) => line[3] === ' ');
  upstream.write('EHLO floor\r\n');
  await readReply(upstream, (line) => line[3] === ' ');
  upstream.write(`AUTH PLAIN ${Buffer.from(`\0${asserted.user}\0${password}`).toString('base64')}\r\n`);
  await readReply(upstream, (line) => line[3] === ' ');
  client.write('235 2.7.0 ok\r\n');
  pipeBoth(client, upstream, auth.rest);
}

/** Listens on the rig's three ports; resolves to a function that closes them. */
export async function serveFloor(options: FloorOptions, ports: { imap: number; imaps: number; smtp: number }): Promise<() => void> {
  const guard = (session: (socket: net.Socket) => Promise<void>) => (socket: net.Socket) => {
    socket.on('error', () => socket.destroy());
    session(socket).catch(() => socket.destroy());
  };
  const servers = [
    net.createServer(guard((s) => imapSession(options, s))).listen(ports.imap, '127.0.0.1'),
    tls.createServer({ cert: options.tls.cert, key: options.tls.key }, guard((s) => imapSession(options, s))).listen(ports.imaps, '127.0.0.1'),
    net.createServer(guard((s) => smtpSession(options, s))).listen(ports.smtp, '127.0.0.1'),
  ];
  await Promise.all(servers.map((s) => new Promise((resolve) => s.once('listening', resolve))));
  return () => servers.forEach((s) => s.close());
}
