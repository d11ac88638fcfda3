// The admin HTTP listener's transport: routing, percent-decoding of path parameters, bearer-token
// auth, the error envelope { error: { code, message } }, replies and request logging. The routes
// themselves are in src/admin/routes/, the operations behind them in src/admin/services.ts.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ListenAddress } from '../core/config-types';
import { plainAddress } from '../core/client-address';
import { validateKeyName } from '../core/identifiers';
import { connectionLogger, type Logger } from '../core/log';
import { errorText } from '../core/errors';
import { StoreUnavailableError } from '../store/device-store';
import { AdminError, AdminErrorCodes } from './errors';
import { ADMIN_LIMITS, type Reply, type Route } from './route';
import { mayCall, type Principal } from './roles';
import type { AdminServices } from './services';
import { appPasswordRoutes } from './routes/app-passwords';
import { auditRoutes } from './routes/audit';
import { connectorRoutes } from './routes/connectors';
import { deviceRoutes } from './routes/devices';
import { exemptionRoutes } from './routes/exemptions';
import { healthRoutes } from './routes/health';
import { killSwitchRoutes } from './routes/kill-switch';
import { policyRoutes } from './routes/policy';
import { reportRoutes } from './routes/reports';

export interface AdminServer {
  readonly address: { host: string; port: number };
  close(): Promise<void>;
}

/**
 * Answers a request before the API's routes (the web console under /console/ and /my/); false = not
 * its path. It writes its own reply, errors included.
 */
export type PageHandler = (req: http.IncomingMessage, res: http.ServerResponse, url: URL) => Promise<boolean>;

export async function startAdminServer(listen: ListenAddress, services: AdminServices, pages?: PageHandler): Promise<AdminServer> {
  const routes: Route[] = [
    ...healthRoutes(services),
    ...reportRoutes(services),
    ...deviceRoutes(services),
    ...appPasswordRoutes(services),
    ...exemptionRoutes(services),
    ...auditRoutes(services),
    ...policyRoutes(services),
    ...killSwitchRoutes(services),
    ...connectorRoutes(services),
  ];
  const server = http.createServer({ requestTimeout: 30_000, headersTimeout: 10_000 }, (req, res) => {
    serveOrPage(routes, services, pages, req, res).catch((err: unknown) => {
      // A bug in serve itself must not become an unhandled rejection (the process would exit).
      services.log.error('admin request failed', { error: errorText(err) });
      res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port, listen.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err) => services.log.error('admin listener error', { error: err.message }));
  const bound = server.address() as AddressInfo;
  services.log.info('admin API listening', { host: bound.address, port: bound.port });
  return {
    address: { host: bound.address, port: bound.port },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function serveOrPage(
  routes: readonly Route[],
  services: AdminServices,
  pages: PageHandler | undefined,
  req: http.IncomingMessage,
  res: http.ServerResponse,
): Promise<void> {
  if (pages && /^\/(console|my)(\/|$|\?)/.test(req.url ?? '')) {
    let url: URL | null = null;
    try {
      url = new URL(req.url ?? '/', 'http://admin.invalid');
    } catch {
      // Left to serve(): it answers a 400 for an unparseable target.
    }
    if (url && (await pages(req, res, url))) return;
  }
  return serve(routes, services, req, res);
}

async function serve(
  routes: readonly Route[],
  services: AdminServices,
  req: http.IncomingMessage,
  res: http.ServerResponse,
): Promise<void> {
  const started = process.hrtime.bigint();
  // The same connection fields as IMAP and SMTP lines (src/core/log.ts).
  const log = connectionLogger(services.log, { protocol: 'admin', remoteAddress: plainAddress(req.socket.remoteAddress) });
  // The parser refuses some request targets llhttp lets through ("http://["): a 400, never a throw
  // here, which would be an unhandled rejection (the process would exit).
  let url: URL | null = null;
  let reply: Reply;
  let quiet = false;
  try {
    try {
      url = new URL(req.url ?? '/', 'http://admin.invalid');
    } catch {
      throw new AdminError('BAD_REQUEST', 'the request target is not a valid URL');
    }
    const match = matchRoute(routes, req.method ?? 'GET', url.pathname);
    quiet = match.route?.quiet ?? false;
    // Authenticated before "no such endpoint": an unauthenticated caller gets the same 401 for an
    // unknown path as for a known one, so it cannot map the API.
    const principal = match.route?.public ? undefined : authenticate(req, services);
    if (!match.route) {
      if (match.allowed.length === 0) throw new AdminError('NOT_FOUND', `no such endpoint: ${url.pathname}`);
      throw new AdminError('METHOD_NOT_ALLOWED', `${req.method} is not allowed on ${url.pathname}`, {
        allow: match.allowed.join(', '),
      });
    }
    if (principal && !mayCall(principal, match.route.method, match.route.path)) {
      throw new AdminError('FORBIDDEN', `token ${principal.name} (role ${principal.role}) may not call ${match.route.method} ${url.pathname}`);
    }
    reply = await match.route.handle({ req, params: match.params, query: url.searchParams, principal });
  } catch (err) {
    reply = errorReply(err, log, req.method, url?.pathname ?? '(unparseable)');
  }
  const status = send(res, reply, log);
  // Only method, path and status: never headers (the token) nor bodies (reports, passwords).
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  const entry = { method: req.method, path: url?.pathname ?? '(unparseable)', status, ms: Math.round(ms * 10) / 10 };
  if (quiet) log.debug('admin request', entry);
  else log.info('admin request', entry);
}

function matchRoute(
  routes: readonly Route[],
  method: string,
  pathname: string,
): { route?: Route; params: string[]; allowed: string[] } {
  const segments = pathname.replace(/\/+$/, '').split('/').slice(1);
  const allowed: string[] = [];
  for (const route of routes) {
    const params = matchPath(route.path, segments);
    if (!params) continue;
    if (route.method === method) return { route, params, allowed };
    allowed.push(route.method);
  }
  return { params: [], allowed };
}

function matchPath(pattern: readonly string[], segments: readonly string[]): string[] | null {
  if (pattern.length !== segments.length) return null;
  const params: string[] = [];
  for (let i = 0; i < pattern.length; i++) {
    if (pattern[i] === ':') {
      params.push(decodeSegment(segments[i]));
    } else if (pattern[i] !== segments[i]) {
      return null;
    }
  }
  return params;
}

function decodeSegment(segment: string): string {
  let value: string;
  try {
    value = decodeURIComponent(segment);
  } catch {
    throw new AdminError('BAD_REQUEST', `path segment is not valid percent-encoding: ${segment}`);
  }
  if (value === '' || value.length > ADMIN_LIMITS.idMaxChars) {
    throw new AdminError('BAD_REQUEST', `path parameter must be 1 to ${ADMIN_LIMITS.idMaxChars} characters`);
  }
  // Every parameter is a device id, a user name or a scope word: the one grammar (src/core/identifiers.ts)
  // keeps braces (Redis hash tags), CR/LF and NUL away from the store.
  const invalid = validateKeyName(value, 'path parameter');
  if (invalid) throw new AdminError('INVALID_IDENTIFIER', invalid);
  return value;
}

/** Bearer token (RFC 6750), checked against the configured tokens in constant time (src/admin/roles.ts). */
function authenticate(req: http.IncomingMessage, services: AdminServices): Principal {
  const header = req.headers.authorization ?? '';
  const match = /^Bearer +(\S+) *$/i.exec(header);
  if (!match) {
    throw new AdminError('UNAUTHORIZED', 'a bearer token is required (Authorization: Bearer <token>)', {
      'www-authenticate': 'Bearer realm="mailwarden-admin"',
    });
  }
  const principal = services.principalFor(match[1]);
  if (!principal) {
    throw new AdminError('UNAUTHORIZED', 'the bearer token is not valid', {
      'www-authenticate': 'Bearer realm="mailwarden-admin", error="invalid_token"',
    });
  }
  return principal;
}

function errorReply(err: unknown, log: Logger, method: string | undefined, path: string): Reply {
  if (err instanceof AdminError) {
    return { status: err.status, body: errorBody(err.code, err.message), headers: err.headers };
  }
  // By code as well: an adapter's error class may come from another copy of the module.
  if (err instanceof StoreUnavailableError || (err as { code?: unknown } | null)?.code === 'STORE_UNAVAILABLE') {
    const reason = (err as Error).message;
    return {
      status: AdminErrorCodes.STORE_UNAVAILABLE,
      body: errorBody('STORE_UNAVAILABLE', `the device store is unavailable: ${reason}`),
      headers: { 'retry-after': '5' },
    };
  }
  // Thrown by enrolment (src/identity/validate.ts) for a user or device id it cannot accept.
  if ((err as { code?: unknown } | null)?.code === 'INVALID_IDENTIFIER') {
    return { status: AdminErrorCodes.INVALID_IDENTIFIER, body: errorBody('INVALID_IDENTIFIER', (err as Error).message) };
  }
  log.error('admin request failed', { method, path, error: errorText(err) });
  return { status: AdminErrorCodes.INTERNAL, body: errorBody('INTERNAL', 'internal error; see the mailwarden log') };
}

const errorBody = (code: AdminError['code'], message: string) => ({ error: { code, message } });

/** Writes the reply; returns the status actually sent. */
function send(res: http.ServerResponse, reply: Reply, log: Logger): number {
  let payload: string;
  try {
    payload = reply.text ?? `${JSON.stringify(reply.body ?? {})}\n`;
  } catch (err) {
    // A service answered with something JSON cannot hold (a BigInt, a cycle): a bug, not a crash.
    log.error('admin answer not serialisable', { error: (err as Error).message });
    reply = { status: 500 };
    payload = `${JSON.stringify(errorBody('INTERNAL', 'the answer could not be serialised; see the mailwarden log'))}\n`;
  }
  res.writeHead(reply.status, {
    'content-type': reply.contentType ?? 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(payload),
    // Responses may carry an app password or device inventory: never cache them.
    'cache-control': 'no-store',
    ...reply.headers,
  });
  res.end(payload);
  return reply.status;
}
