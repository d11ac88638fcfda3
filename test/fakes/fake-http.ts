// The part every fake MDM API shares: a loopback HTTP server, a request log, bearer tokens with a
// lifetime (an expired one gets 401), opaque page tokens, and faults the test injects per request
// (a 429 with or without Retry-After, a 5xx on page 3, a slow answer).
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';

export interface FakeRequest {
  readonly method: string;
  readonly path: string;
  readonly query: URLSearchParams;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: string;
}

export interface FakeResponse {
  readonly status: number;
  readonly headers?: Readonly<Record<string, string>>;
  /** An object is sent as JSON; a string as is. */
  readonly body?: unknown;
  /** Wait this long before answering. */
  readonly delayMs?: number;
}

export type Route = (request: FakeRequest) => FakeResponse | undefined | Promise<FakeResponse | undefined>;

interface Fault {
  readonly match: (request: FakeRequest) => boolean;
  readonly response: FakeResponse;
  remaining: number;
}

export class FakeHttpServer {
  readonly requests: FakeRequest[] = [];
  private readonly faults: Fault[] = [];
  private readonly tokens = new Map<string, number>();
  private server: http.Server | null = null;
  url = '';
  /** Added before every answer (a slow API, so a sync outlives a token). */
  latencyMs = 0;
  /** Lifetime of the tokens issued from now on, in seconds. */
  tokenLifetimeSeconds = 3599;
  /** Requests that arrived with an expired or unknown token. */
  rejectedTokens = 0;
  tokensIssued = 0;

  constructor(private readonly route: Route) {}

  async start(): Promise<this> {
    this.server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => void this.answer(req, Buffer.concat(chunks).toString('utf8'), res));
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Answer the next `times` requests that match with `response` instead of the route. */
  fail(match: (request: FakeRequest) => boolean, response: FakeResponse, times = 1): void {
    this.faults.push({ match, response, remaining: times });
  }

  /** A new bearer token valid for tokenLifetimeSeconds. */
  issueToken(): { access_token: string; expires_in: number; token_type: 'Bearer' } {
    const token = randomBytes(18).toString('base64url');
    this.tokens.set(token, Date.now() + this.tokenLifetimeSeconds * 1000);
    this.tokensIssued++;
    return { token_type: 'Bearer', expires_in: this.tokenLifetimeSeconds, access_token: token };
  }

  /** Run `action` once, just before the first request that matches is answered (a token revoked mid-sync). */
  once(match: (request: FakeRequest) => boolean, action: () => void): void {
    let done = false;
    this.fail(
      (request) => {
        if (!done && match(request)) {
          done = true;
          action();
        }
        return false;
      },
      { status: 200 },
    );
  }

  /** Makes every issued token invalid at once (a revoked secret, a rotated key). */
  revokeTokens(): void {
    this.tokens.clear();
  }

  /** True when the request carries a live token; otherwise counts it. */
  authorized(request: FakeRequest): boolean {
    const match = /^Bearer (.+)$/.exec(request.headers.authorization ?? '');
    const expires = match ? this.tokens.get(match[1]!) : undefined;
    if (expires !== undefined && expires > Date.now()) return true;
    this.rejectedTokens++;
    return false;
  }

  /** Requests whose path matches. */
  count(pattern: RegExp): number {
    return this.requests.filter((r) => pattern.test(r.path)).length;
  }

  private async answer(req: http.IncomingMessage, body: string, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://fake');
    const request: FakeRequest = { method: req.method ?? 'GET', path: decodeURIComponent(url.pathname), query: url.searchParams, headers: req.headers, body };
    this.requests.push(request);
    let response: FakeResponse | undefined;
    const fault = this.faults.find((f) => f.remaining > 0 && f.match(request));
    if (fault) {
      fault.remaining--;
      response = fault.response;
    } else {
      try {
        response = await this.route(request);
      } catch (err) {
        response = { status: 500, body: { error: (err as Error).message } };
      }
    }
    response ??= { status: 404, body: { error: { code: 'NotFound', message: `no route for ${request.method} ${request.path}` } } };
    const delay = this.latencyMs + (response.delayMs ?? 0);
    if (delay > 0) await new Promise((r) => setTimeout(r, delay));
    const text = typeof response.body === 'string' ? response.body : JSON.stringify(response.body ?? {});
    if (res.destroyed) return;
    res.writeHead(response.status, { 'content-type': 'application/json', ...response.headers });
    res.end(text);
  }
}

/** Opaque page tokens (the client must follow them, not compute them). */
export const pageToken = {
  encode: (offset: number): string => Buffer.from(`o:${offset}:${randomBytes(4).toString('hex')}`).toString('base64url'),
  decode: (token: string | null): number => {
    if (!token) return 0;
    const match = /^o:(\d+):/.exec(Buffer.from(token, 'base64url').toString('utf8'));
    if (!match) throw new Error('bad page token');
    return Number(match[1]);
  },
};

/** A request is for this path (and, optionally, has this page token offset / page number). */
export const on = (pattern: RegExp) => (request: FakeRequest) => pattern.test(request.path);
