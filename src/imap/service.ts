// The IMAP front end as the runtime drives it: one TCP listener per configured address (implicit
// TLS, STARTTLS or plaintext), PROXY protocol from configured balancers, graceful shutdown.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { Duplex } from 'node:stream';
import tls from 'node:tls';
import type { ImapConfig, MailwardenConfig, ProtocolListener } from '../core/config-types';
import type { Gate, ProtocolService } from '../app/gate';
import { addressKey } from '../core/client-address';
import { ConnectionLimits, type ConnectionSlot } from '../core/connection-limits';
import { isTrusted, readProxyHeader, trustedProxies, type ProxiedAddress } from './proxy-protocol';
import { ImapConnection, type ConnectionContext } from './session';
import { HANDSHAKE_MS, serverTls } from './tls';
import { Upstream } from './upstream';


function resolvePath(config: MailwardenConfig, file: string): string {
  return path.resolve(path.dirname(config.configFile), file);
}

/** The listener certificate (config `tls`), or null when no listener needs TLS. */
function secureContextFor(config: MailwardenConfig, listeners: readonly ProtocolListener[]): { context: tls.SecureContext; requestCert: boolean } | null {
  if (!listeners.some((l) => l.tls !== 'none')) return null;
  const files = config.tls;
  if (!files) throw new Error('imap: a listener uses TLS but the configuration has no tls.cert / tls.key');
  const read = (file: string): Buffer => fs.readFileSync(resolvePath(config, file));
  const context = tls.createSecureContext({
    cert: read(files.cert),
    key: read(files.key),
    ...(files.clientCa ? { ca: read(files.clientCa) } : {}),
    minVersion: 'TLSv1.2',
  });
  return { context, requestCert: files.clientCa !== undefined };
}

/**
 * A readable that yields `head` first, then the socket's own bytes: for bytes that arrived together
 * with a PROXY header and belong to the TLS handshake (a TLSSocket over a net.Socket reads its handle
 * directly and would miss them).
 */
function prepend(socket: net.Socket, head: Buffer): Duplex {
  const duplex = new Duplex({
    read() {
      socket.resume();
    },
    write(chunk: Buffer, _enc, cb) {
      socket.write(chunk, cb);
    },
    final(cb) {
      socket.end(cb);
    },
    destroy(err, cb) {
      socket.destroy(err ?? undefined);
      cb(err);
    },
  });
  duplex.push(head);
  socket.on('data', (d: Buffer) => {
    if (!duplex.push(d)) socket.pause();
  });
  socket.on('end', () => duplex.push(null));
  socket.on('close', () => duplex.destroy());
  socket.on('error', (err) => duplex.destroy(err));
  return duplex;
}

export async function startImapService(gate: Gate, config: ImapConfig): Promise<ProtocolService> {
  const secure = secureContextFor(gate.config(), config.listeners);
  const upstream = new Upstream(config.upstream, gate.breakers, gate.metrics);
  const connections = new Set<ImapConnection>();
  const sockets = new Set<net.Socket>();
  const servers: net.Server[] = [];
  const addresses: { host: string; port: number; tls: 'implicit' | 'starttls' | 'none' }[] = [];
  let accepting = true;

  const track = (c: ImapConnection): (() => void) => {
    connections.add(c);
    return () => connections.delete(c);
  };

  for (const listener of config.listeners) {
    const proxies = trustedProxies(listener.proxyProtocolFrom);
    const limits = new ConnectionLimits(config);
    /** Refused at once: a plaintext BYE where the client reads plaintext; a TLS client is just closed. */
    const refuse = (socket: net.Socket, slot: Exclude<ConnectionSlot, { ok: true }>): void => {
      if (listener.tls !== 'implicit') {
        const from = slot.reason === 'address-full' ? ' from your address' : '';
        socket.end(`* BYE [UNAVAILABLE] Too many connections${from}, try again later.\r\n`);
        setTimeout(() => socket.destroy(), 1000).unref();
      } else socket.destroy();
    };
    const ctx: ConnectionContext = {
      gate,
      config,
      listener,
      secureContext: secure?.context ?? null,
      requestCert: secure?.requestCert ?? false,
      upstream,
      track,
    };

    const open = (socket: net.Socket, proxied: ProxiedAddress | null, head: Buffer, listenerSlot: () => void): void => {
      const peer = proxied?.address
        ? proxied
        : { address: socket.remoteAddress, port: socket.remotePort, localAddress: socket.localAddress, localPort: socket.localPort };
      // Counted against the client's own address, known only now behind a balancer.
      listenerSlot();
      const slot = limits.acquire(addressKey(peer.address) ?? undefined);
      if (!slot.ok) return refuse(socket, slot);
      socket.on('close', slot.release);
      if (listener.tls !== 'implicit') {
        if (head.length > 0) socket.unshift(head);
        new ImapConnection(ctx, socket, peer).start();
        return;
      }
      serverTls(head.length > 0 ? prepend(socket, head) : socket, secure!.context, secure!.requestCert, (tlsSocket) =>
        new ImapConnection(ctx, tlsSocket, peer).start(),
      );
    };

    const server = net.createServer({ noDelay: true }, (socket) => {
      if (!accepting) return void socket.destroy();
      sockets.add(socket);
      // 'close' is emitted once: `on` spares every idle session once()'s wrapper and bound function.
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => socket.destroy());
      if (!isTrusted(proxies, socket.remoteAddress)) return open(socket, null, Buffer.alloc(0), () => {});
      // A balancer's connection holds a listener slot while its PROXY header is read.
      const pending = limits.acquire(undefined);
      if (!pending.ok) return refuse(socket, pending);
      socket.on('close', pending.release);
      // From a configured balancer the header is mandatory: without it the real client is unknown.
      readProxyHeader(socket, HANDSHAKE_MS).then(
        ({ header, rest }) => open(socket, header, rest, pending.release),
        (err: Error) => {
          gate.log.warn('imap: PROXY header refused', { remoteAddress: socket.remoteAddress, error: err.message });
          socket.destroy();
        },
      );
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(listener.port, listener.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => gate.log.error('imap: listener error', { error: err.message }));
    const bound = server.address() as net.AddressInfo;
    addresses.push({ host: listener.host, port: bound.port, tls: listener.tls });
    servers.push(server);
    gate.log.info('imap: listening', { host: listener.host, port: bound.port, tls: listener.tls, proxyProtocol: proxies !== null });
  }

  return {
    addresses,
    async shutdown(drainMs: number): Promise<void> {
      accepting = false;
      // close() resolves only once every connection is gone, so it is awaited last.
      const closed = Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
      const deadline = Date.now() + drainMs;
      while (connections.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      for (const c of [...connections]) c.shutdown();
      // BYE goes out at a response boundary (bounded inside the relay); then whatever is left is cut.
      const hard = Date.now() + 2500;
      while (connections.size > 0 && Date.now() < hard) await new Promise((r) => setTimeout(r, 50));
      for (const c of [...connections]) c.destroy();
      for (const s of sockets) s.destroy();
      await closed;
    },
  };
}
