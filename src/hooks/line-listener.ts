// The TCP listener of line-protocol hooks (Postfix policy delegation): requests of `name=value`
// lines ended by an empty line on persistent connections, with limits on connections, line length,
// attributes per request and idle time. A handler answer of null closes the connection unanswered.
import net from 'node:net';
import type { Logger } from '../core/log';
import { errorText } from '../core/errors';
import { listenHook, type HookListener } from './listening';

export interface LineHookLimits {
  readonly maxConnections: number;
  /** One `name=value` line, without its LF. */
  readonly maxLineBytes: number;
  readonly maxAttributes: number;
  /** A connection that sends nothing for this long is closed (Postfix reconnects on its next request). */
  readonly idleTimeoutMs: number;
}

export const DEFAULT_LINE_HOOK_LIMITS: LineHookLimits = {
  maxConnections: 256,
  maxLineBytes: 2048,
  maxAttributes: 64,
  idleTimeoutMs: 300000,
};

/** One request's attributes; a name sent twice keeps its last value (Postfix never does). */
export type Attributes = ReadonlyMap<string, string>;


export interface LineHookOptions {
  readonly host: string;
  readonly port: number;
  readonly limits: LineHookLimits;
  readonly log: Logger;
  readonly name: string;
  /** Client addresses served; a connection from any other is closed at once (the protocol has no secret). */
  readonly allowFrom: () => readonly string[];
  /**
   * Called once per connection; returns that connection's request handler, which answers the reply
   * text without the final empty line, or null: log, send nothing, close.
   */
  readonly connect: () => (attributes: Attributes) => Promise<string | null>;
}

export type LineHookServer = HookListener;

/** Splits a stream into requests; reports the first limit a client breaks. */
export class AttributeReader {
  private buffer: Buffer = Buffer.alloc(0);
  private current = new Map<string, string>();

  constructor(private readonly limits: Pick<LineHookLimits, 'maxLineBytes' | 'maxAttributes'>) {}

  /** Requests completed by this chunk, or the problem that ends the connection. */
  push(chunk: Buffer): { requests: Attributes[]; problem: string | null } {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    const requests: Attributes[] = [];
    for (;;) {
      const lf = this.buffer.indexOf(0x0a);
      if (lf < 0) {
        if (this.buffer.length > this.limits.maxLineBytes) return { requests, problem: `line longer than ${this.limits.maxLineBytes} bytes` };
        return { requests, problem: null };
      }
      if (lf > this.limits.maxLineBytes) return { requests, problem: `line longer than ${this.limits.maxLineBytes} bytes` };
      // Postfix ends lines with LF; a CR before it is tolerated (telnet tests).
      const end = lf > 0 && this.buffer[lf - 1] === 0x0d ? lf - 1 : lf;
      const line = this.buffer.subarray(0, end).toString('utf8');
      this.buffer = this.buffer.subarray(lf + 1);
      if (line === '') {
        if (this.current.size === 0) return { requests, problem: 'empty request' };
        requests.push(this.current);
        this.current = new Map();
        continue;
      }
      const eq = line.indexOf('=');
      if (eq <= 0) return { requests, problem: 'a line without name=value' };
      if (/[\u0000-\u001f\u007f]/.test(line)) return { requests, problem: 'control characters in an attribute' };
      this.current.set(line.slice(0, eq), line.slice(eq + 1));
      if (this.current.size > this.limits.maxAttributes) return { requests, problem: `more than ${this.limits.maxAttributes} attributes` };
    }
  }
}

export async function startLineHookServer(options: LineHookOptions): Promise<LineHookServer> {
  const { limits, log, name } = options;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    const peer = socket.remoteAddress?.replace(/^::ffff:(?=\d+\.)/, '');
    if (peer === undefined || !options.allowFrom().includes(peer)) {
      log.warn(`${name}: connection from an address not in allowFrom closed`, { remoteAddress: peer });
      socket.destroy();
      return;
    }
    sockets.add(socket);
    const handler = options.connect();
    const reader = new AttributeReader(limits);
    const queue: Attributes[] = [];
    let working = false;
    const drop = (why: string): void => {
      // "In case of trouble the policy server must not send a reply" (SMTPD_POLICY_README).
      log.warn(`${name}: closing the connection without a reply`, { reason: why, remoteAddress: socket.remoteAddress });
      socket.destroy();
    };
    const work = async (): Promise<void> => {
      if (working) return;
      working = true;
      while (queue.length > 0 && !socket.destroyed) {
        const request = queue.shift()!;
        let reply: string | null;
        try {
          reply = await handler(request);
        } catch (err) {
          reply = null;
          log.error(`${name}: handler failed`, { error: errorText(err) });
        }
        if (reply === null) return drop('no answer for this request');
        socket.write(`${reply}\n\n`);
      }
      working = false;
    };
    socket.setTimeout(limits.idleTimeoutMs, () => socket.destroy());
    socket.on('data', (chunk: Buffer) => {
      const { requests, problem } = reader.push(chunk);
      queue.push(...requests);
      void work();
      if (problem) drop(problem);
    });
    socket.on('error', () => socket.destroy());
    socket.on('close', () => sockets.delete(socket));
  });
  server.maxConnections = limits.maxConnections;
  return listenHook(server, sockets, options.host, options.port);
}
