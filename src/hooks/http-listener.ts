// The small HTTP listener every HTTP gateway hook sits on (nginx auth_http, Dovecot auth policy and
// passdb introspection): a shared-secret header compared in constant time, and limits on
// connections, header and body size and time, so bad input is answered or cut, never a crash.
import http from 'node:http';
import type { Socket } from 'node:net';
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Logger } from '../core/log';
import { errorText } from '../core/errors';
import { listenHook, type HookListener } from './listening';

export interface HttpHookLimits {
  /** Open connections at once; more are closed at accept. */
  readonly maxConnections: number;
  /** All request headers together (node:http answers 431 above it). */
  readonly maxHeaderBytes: number;
  readonly maxBodyBytes: number;
  /** The whole request, from the first byte to the last (slowloris). */
  readonly requestTimeoutMs: number;
  /** An idle keep-alive connection is closed after this. */
  readonly idleTimeoutMs: number;
}

export const DEFAULT_HTTP_HOOK_LIMITS: HttpHookLimits = {
  maxConnections: 1024,
  maxHeaderBytes: 8192,
  maxBodyBytes: 16384,
  requestTimeoutMs: 5000,
  idleTimeoutMs: 30000,
};

export interface HookHttpRequest {
  readonly method: string;
  /** Path without the query string. */
  readonly path: string;
  readonly query: URLSearchParams;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: Buffer;
  readonly remoteAddress: string | undefined;
}

export interface HookHttpResponse {
  readonly status: number;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: string;
}

export type HookHttpHandler = (request: HookHttpRequest) => Promise<HookHttpResponse>;

export interface HookHttpOptions {
  readonly host: string;
  readonly port: number;
  readonly limits: HttpHookLimits;
  readonly log: Logger;
  /** For log lines: which hook this listener serves. */
  readonly name: string;
  /** Answers for a request that is refused before the handler (bad secret, too big, bad path...). */
  readonly refuse: (status: number, message: string) => HookHttpResponse;
  readonly handler: HookHttpHandler;
}

export type HookHttpServer = HookListener;

const sha256 = (value: string | Buffer): Buffer => createHash('sha256').update(value).digest();

/**
 * Constant-time comparison of a presented secret with the configured one: hashing both gives
 * timingSafeEqual equal-length inputs, so neither the length nor a matching prefix shows in the time.
 */
export function sameSecret(presented: string | undefined, expected: string): boolean {
  return timingSafeEqual(sha256(presented ?? ''), sha256(expected)) && presented !== undefined;
}

/** The one value of a header; undefined when absent or sent more than once (ambiguous). */
export function singleHeader(headers: http.IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name.toLowerCase()];
  return typeof value === 'string' ? value : undefined;
}

class RequestProblem extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function readBody(req: http.IncomingMessage, max: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > max) return reject(new RequestProblem(413, `body larger than ${max} bytes`));
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > max) {
        reject(new RequestProblem(413, `body larger than ${max} bytes`));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

export async function startHookHttpServer(options: HookHttpOptions): Promise<HookHttpServer> {
  const { limits, log, name } = options;
  const server = http.createServer({
    maxHeaderSize: limits.maxHeaderBytes,
    requestTimeout: limits.requestTimeoutMs,
    headersTimeout: Math.min(limits.requestTimeoutMs, 60000),
    keepAliveTimeout: limits.idleTimeoutMs,
    // Node checks the two timeouts above on this interval; its default (30 s) is too coarse for them.
    connectionsCheckingInterval: Math.min(1000, limits.requestTimeoutMs),
  });
  server.maxConnections = limits.maxConnections;
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    // Malformed request line or headers, headers too large, or a timeout: answer if we still can.
    log.info(`${name}: bad HTTP request`, { error: err.code ?? errorText(err), remoteAddress: socket.remoteAddress });
    if (!socket.writable) return void socket.destroy();
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
    const answer = options.refuse(status, err.code ?? 'bad request');
    const head = Object.entries(answer.headers ?? {}).map(([k, v]) => `${k}: ${v}\r\n`).join('');
    const body = answer.body ?? '';
    socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? 'Error'}\r\n${head}Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
  });
  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    const send = (answer: HookHttpResponse): void => {
      if (res.headersSent || res.destroyed) return;
      const body = answer.body ?? '';
      res.writeHead(answer.status, { ...answer.headers, 'Content-Length': String(Buffer.byteLength(body)) });
      res.end(body);
    };
    void (async () => {
      try {
        const url = new URL(req.url ?? '/', 'http://hook.invalid');
        const body = await readBody(req, limits.maxBodyBytes);
        send(
          await options.handler({
            method: req.method ?? 'GET',
            path: url.pathname,
            query: url.searchParams,
            headers: req.headers,
            body,
            remoteAddress: req.socket.remoteAddress,
          }),
        );
      } catch (err) {
        const status = err instanceof RequestProblem ? err.status : 500;
        if (status === 500) log.error(`${name}: request failed`, { error: errorText(err) });
        else log.info(`${name}: request refused`, { status, error: errorText(err) });
        send(options.refuse(status, errorText(err)));
        if (status === 413) res.once('finish', () => req.socket.destroy());
      }
    })();
  });

  return listenHook(server, sockets, options.host, options.port);
}
