// The admin HTTP listener: health, readiness, Prometheus metrics, the signed-report ingest API and
// the ops API the CLI talks to (devices, app passwords, exemptions, audit, simulate, kill switch).
// Plain node:http with a small route table; every error body is { error: { code, message } }.
import http from 'node:http';
import { createHash, timingSafeEqual } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { ListenAddress } from '../core/config-types';
import type { Logger } from '../core/log';
import type { Protocol } from '../policy/contract';
import type { Decision } from '../policy/decision';
import {
  StoreUnavailableError,
  type AuditEntry,
  type DeviceRecord,
  type DeviceStore,
  type Exemption,
  type ExemptionScope,
} from '../store/device-store';
import type { Metrics } from './metrics';
import { errorText } from '../core/errors';

export type ReportVerification =
  | { readonly ok: true; readonly record: DeviceRecord }
  | { readonly ok: false; readonly status: number; readonly code: string; readonly message: string };

/**
 * What the admin listener needs from the runtime. The runtime implements it by wiring the report
 * verifier, the decider, app-password issuance, simulate and the kill switch; the listener itself
 * knows none of them. Methods may throw AdminError (→ its status) or StoreUnavailableError (→ 503).
 */
export interface AdminServices {
  /** Accepted bearer tokens, read per request so a reload takes effect at once. Empty = refuse all. */
  tokens(): readonly string[];
  readonly store: DeviceStore;
  /** Configuration loaded and store reachable; `checks` names each part ("ok" or the problem). */
  ready(): Promise<{ ready: boolean; checks: Record<string, string> }>;
  /** Verifies a compact JWS report (signature, key, timestamps, schema). Writes nothing. */
  verifyReport(jws: string): Promise<ReportVerification>;
  /** TTL for stored records (config store.recordTtlHours). */
  recordTtlSeconds(): number;
  /** Body limit for POST /v1/reports (config reports.maxBodyBytes). */
  reportMaxBytes(): number;
  /**
   * The decision this device would get now on a login of `protocol` as `user`, with every check's
   * result. A dry run: it must not write audit events, first-seen marks or metrics.
   */
  decideForDevice(deviceId: string, user: string, protocol: Protocol): Promise<Decision>;
  issueAppPassword(user: string, deviceId: string): Promise<{ password: string; credentialId: string }>;
  /** Simulate result as JSON; null = the policy in force against itself. Throw AdminError(400) for a bad policy. */
  simulate(candidatePolicyYaml: string | null): Promise<unknown>;
  /** Sets the shared kill-switch flag and publishes it to every instance. */
  setKillSwitch(on: boolean): Promise<void>;
  readonly metrics: Metrics;
  readonly log: Logger;
}

/** An error with an HTTP status and a stable code; services throw it for client errors. */
export class AdminError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(message);
    this.name = 'AdminError';
  }
}

export interface AdminServer {
  readonly address: { host: string; port: number };
  close(): Promise<void>;
}

/** Limits of the admin API (documented in docs/admin-api.md). */
export const ADMIN_LIMITS = {
  jsonBodyBytes: 64 * 1024,
  policyBodyBytes: 1024 * 1024,
  pageDefault: 100,
  pageMax: 1000,
  /** Exemptions are temporary by design; a lasting one belongs in the policy (a check scope). */
  exemptionMaxHours: 366 * 24,
  noteMaxChars: 500,
  idMaxChars: 256,
} as const;

interface Context {
  readonly req: http.IncomingMessage;
  readonly params: readonly string[];
  readonly query: URLSearchParams;
}

interface Reply {
  readonly status: number;
  /** Serialised as JSON unless `text` is given. */
  readonly body?: unknown;
  readonly text?: string;
  readonly contentType?: string;
  readonly headers?: Readonly<Record<string, string>>;
}

interface Route {
  readonly method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  /** Path segments; ':' marks a parameter, passed to the handler in order. */
  readonly path: readonly string[];
  readonly public?: boolean;
  /** Probe and scrape traffic is logged at debug, not info. */
  readonly quiet?: boolean;
  readonly handle: (ctx: Context) => Promise<Reply>;
}

export async function startAdminServer(listen: ListenAddress, services: AdminServices): Promise<AdminServer> {
  const routes = buildRoutes(services);
  const server = http.createServer({ requestTimeout: 30_000, headersTimeout: 10_000 }, (req, res) => {
    serve(routes, services, req, res).catch((err: unknown) => {
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

async function serve(
  routes: readonly Route[],
  services: AdminServices,
  req: http.IncomingMessage,
  res: http.ServerResponse,
): Promise<void> {
  const started = process.hrtime.bigint();
  // The parser refuses some request targets llhttp lets through ("http://["): a 400, never a throw
  // here, which would be an unhandled rejection (the process would exit).
  let url: URL | null = null;
  let reply: Reply;
  let quiet = false;
  try {
    try {
      url = new URL(req.url ?? '/', 'http://admin.invalid');
    } catch {
      throw new AdminError(400, 'BAD_REQUEST', 'the request target is not a valid URL');
    }
    const match = matchRoute(routes, req.method ?? 'GET', url.pathname);
    quiet = match.route?.quiet ?? false;
    if (!match.route) {
      if (match.allowed.length === 0) throw new AdminError(404, 'NOT_FOUND', `no such endpoint: ${url.pathname}`);
      throw new AdminError(405, 'METHOD_NOT_ALLOWED', `${req.method} is not allowed on ${url.pathname}`, {
        allow: match.allowed.join(', '),
      });
    }
    if (!match.route.public) authenticate(req, services.tokens());
    reply = await match.route.handle({ req, params: match.params, query: url.searchParams });
  } catch (err) {
    reply = errorReply(err, services.log, req.method, url?.pathname ?? '(unparseable)');
  }
  const status = send(res, reply, services.log);
  // Only method, path and status: never headers (the token) nor bodies (reports, passwords).
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  const entry = { method: req.method, path: url?.pathname ?? '(unparseable)', status, ms: Math.round(ms * 10) / 10 };
  if (quiet) services.log.debug('admin request', entry);
  else services.log.info('admin request', entry);
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
    throw new AdminError(400, 'BAD_REQUEST', `path segment is not valid percent-encoding: ${segment}`);
  }
  if (value === '' || value.length > ADMIN_LIMITS.idMaxChars) {
    throw new AdminError(400, 'BAD_REQUEST', `path parameter must be 1 to ${ADMIN_LIMITS.idMaxChars} characters`);
  }
  return value;
}

const sha256 = (value: string): Buffer => createHash('sha256').update(value).digest();

/**
 * Bearer token (RFC 6750). Hashing both sides gives equal-length inputs to timingSafeEqual, and every
 * configured token is compared, so the time taken says nothing about which token or how much matched.
 */
function authenticate(req: http.IncomingMessage, tokens: readonly string[]): void {
  const header = req.headers.authorization ?? '';
  const match = /^Bearer +(\S+) *$/i.exec(header);
  if (!match) {
    throw new AdminError(401, 'UNAUTHORIZED', 'a bearer token is required (Authorization: Bearer <token>)', {
      'www-authenticate': 'Bearer realm="mailwarden-admin"',
    });
  }
  const given = sha256(match[1]);
  let ok = false;
  for (const token of tokens) {
    if (token === '') continue;
    ok = timingSafeEqual(given, sha256(token)) || ok;
  }
  if (!ok) {
    throw new AdminError(401, 'UNAUTHORIZED', 'the bearer token is not valid', {
      'www-authenticate': 'Bearer realm="mailwarden-admin", error="invalid_token"',
    });
  }
}

function errorReply(err: unknown, log: Logger, method: string | undefined, path: string): Reply {
  if (err instanceof AdminError) {
    return { status: err.status, body: errorBody(err.code, err.message), headers: err.headers };
  }
  // By code as well: an adapter's error class may come from another copy of the module.
  if (err instanceof StoreUnavailableError || (err as { code?: unknown } | null)?.code === 'STORE_UNAVAILABLE') {
    const reason = (err as Error).message;
    return {
      status: 503,
      body: errorBody('STORE_UNAVAILABLE', `the device store is unavailable: ${reason}`),
      headers: { 'retry-after': '5' },
    };
  }
  // Thrown by enrolment (src/identity/validate.ts) for a user or device id it cannot accept.
  if ((err as { code?: unknown } | null)?.code === 'INVALID_IDENTIFIER') {
    return { status: 400, body: errorBody('INVALID_IDENTIFIER', (err as Error).message) };
  }
  log.error('admin request failed', { method, path, error: errorText(err) });
  return { status: 500, body: errorBody('INTERNAL', 'internal error; see the mailwarden log') };
}

const errorBody = (code: string, message: string) => ({ error: { code, message } });

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

/**
 * Reads the body up to `limit` bytes; beyond it, 413 and the connection is closed after the reply.
 * (Not `for await`: leaving that loop early destroys the socket before the 413 can be sent.)
 */
function readBody(req: http.IncomingMessage, limit: number): Promise<Buffer> {
  const tooLarge = () =>
    new AdminError(413, 'BODY_TOO_LARGE', `request body is larger than ${limit} bytes`, { connection: 'close' });
  if (Number(req.headers['content-length'] ?? 0) > limit) return Promise.reject(tooLarge());
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const finish = (err: Error | null) => {
      req.off('data', onData).off('end', onEnd).off('error', finish).off('close', onClose);
      if (err) {
        req.pause();
        reject(err);
      } else {
        resolve(Buffer.concat(chunks));
      }
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) finish(tooLarge());
      else chunks.push(chunk);
    };
    const onEnd = () => finish(null);
    const onClose = () => finish(new Error('client closed the connection before the body was complete'));
    req.on('data', onData).once('end', onEnd).once('error', finish).once('close', onClose);
  });
}

/** JSON object body. Content-Type is not insisted on, so `curl -d '{...}'` works as typed. */
async function readJson(req: http.IncomingMessage): Promise<Record<string, unknown>> {
  const text = (await readBody(req, ADMIN_LIMITS.jsonBodyBytes)).toString('utf8');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new AdminError(400, 'BAD_JSON', `request body is not valid JSON: ${(err as Error).message}`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new AdminError(400, 'BAD_JSON', 'request body must be a JSON object');
  }
  return value as Record<string, unknown>;
}

const badRequest = (message: string) => new AdminError(400, 'BAD_REQUEST', message);

function intParam(query: URLSearchParams, name: string, fallback: number, max: number): number {
  const raw = query.get(name);
  if (raw === null) return fallback;
  if (!/^\d+$/.test(raw) || Number(raw) < 1 || Number(raw) > max) {
    throw badRequest(`query parameter ${name} must be an integer from 1 to ${max} (got "${raw}")`);
  }
  return Number(raw);
}

function scopeParam(raw: string): ExemptionScope {
  if (raw !== 'device' && raw !== 'user') throw badRequest(`exemption scope must be "device" or "user" (got "${raw}")`);
  return raw;
}

function buildRoutes(services: AdminServices): Route[] {
  const { store, log, metrics } = services;

  /**
   * Admin operations go to the audit stream too, as `msg: 'admin'` beside the decisions' `msg: 'decision'`.
   * The operation already happened, so a failure to audit it is only logged.
   */
  const audit = async (operation: string, fields: Record<string, unknown>): Promise<void> => {
    try {
      await store.appendAudit({ msg: 'admin', operation, at: new Date().toISOString(), ...fields });
    } catch (err) {
      log.error('admin operation not audited: store error', { operation, error: (err as Error).message });
    }
  };

  const routes: Route[] = [
    {
      method: 'GET',
      path: ['healthz'],
      public: true,
      quiet: true,
      handle: async () => ({ status: 200, body: { status: 'ok' } }),
    },
    {
      method: 'GET',
      path: ['readyz'],
      public: true,
      quiet: true,
      handle: async () => {
        try {
          const { ready, checks } = await services.ready();
          return { status: ready ? 200 : 503, body: { status: ready ? 'ready' : 'not ready', checks } };
        } catch (err) {
          return { status: 503, body: { status: 'not ready', checks: { ready: (err as Error).message } } };
        }
      },
    },
    {
      method: 'GET',
      path: ['metrics'],
      quiet: true,
      handle: async () => ({ status: 200, text: await metrics.text(), contentType: metrics.contentType }),
    },
    {
      method: 'POST',
      path: ['v1', 'reports'],
      handle: async ({ req }) => {
        // A compact JWS is application/jose (RFC 7515 §9.2.1).
        const type = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
        if (type !== 'application/jose') {
          throw new AdminError(415, 'UNSUPPORTED_MEDIA_TYPE', 'a report must be sent as Content-Type: application/jose');
        }
        const jws = (await readBody(req, services.reportMaxBytes())).toString('utf8').trim();
        const verified = await services.verifyReport(jws);
        if (!verified.ok) {
          metrics.onReport('rejected');
          throw new AdminError(verified.status, verified.code, verified.message);
        }
        const { record } = verified;
        let stored: boolean;
        try {
          stored = await store.putDevice(record, services.recordTtlSeconds());
        } catch (err) {
          metrics.onReport('store-unavailable');
          throw err;
        }
        metrics.onReport(stored ? 'stored' : 'ignored-older');
        log.info('device report', { deviceId: record.deviceId, user: record.user, source: record.source, stored });
        return stored
          ? { status: 202, body: { stored: true, deviceId: record.deviceId } }
          : { status: 200, body: { stored: false, deviceId: record.deviceId, reason: 'older than stored report' } };
      },
    },
    {
      method: 'GET',
      path: ['v1', 'devices'],
      handle: async ({ query }) => {
        const limit = intParam(query, 'limit', ADMIN_LIMITS.pageDefault, ADMIN_LIMITS.pageMax);
        const after = query.get('after') ?? '';
        const user = query.get('user');
        let records: DeviceRecord[];
        if (user) {
          const lookups = await store.getDevices(await store.listUserDevices(user));
          records = lookups.flatMap((l) => (l.state === 'found' ? [l.record] : []));
        } else {
          records = await store.listDevices();
        }
        // Paging by device id: stable under concurrent writes, unlike an offset.
        const sorted = records.filter((r) => r.deviceId > after).sort((a, b) => (a.deviceId < b.deviceId ? -1 : 1));
        const page = sorted.slice(0, limit);
        const next = sorted.length > limit ? page[page.length - 1].deviceId : null;
        return { status: 200, body: { devices: page, next } };
      },
    },
    {
      method: 'GET',
      path: ['v1', 'devices', ':'],
      handle: async ({ params: [deviceId], query }) => {
        const protocol = query.get('protocol') ?? 'imap';
        if (protocol !== 'imap' && protocol !== 'smtp') throw badRequest(`protocol must be imap or smtp (got "${protocol}")`);
        const lookup = await store.getDevice(deviceId);
        if (lookup.state === 'missing') {
          throw new AdminError(404, 'DEVICE_NOT_FOUND', `no report stored for device ${deviceId} (never reported, or expired)`);
        }
        if (lookup.state === 'malformed') {
          // Unknown user, so only device exemptions; a malformed record is never compliant anyway.
          const exemptions = (await store.getExemptions(deviceId, '')).filter((e) => e.scope === 'device');
          return {
            status: 200,
            body: { deviceId, state: 'malformed', detail: lookup.detail, record: null, exemptions, decision: null },
          };
        }
        const { record } = lookup;
        const [exemptions, decision] = await Promise.all([
          store.getExemptions(deviceId, record.user),
          services.decideForDevice(deviceId, record.user, protocol),
        ]);
        return { status: 200, body: { deviceId, state: 'found', record, exemptions, decision } };
      },
    },
    {
      method: 'POST',
      path: ['v1', 'devices', ':', 'app-passwords'],
      handle: async ({ req, params: [deviceId] }) => {
        const body = await readJson(req);
        const user = body.user;
        if (typeof user !== 'string' || user.trim() === '') throw badRequest('"user" is required: the mail login name');
        const lookup = await store.getDevice(deviceId);
        if (lookup.state === 'found' && lookup.record.user.toLowerCase() !== user.toLowerCase()) {
          throw new AdminError(
            409,
            'DEVICE_USER_MISMATCH',
            `device ${deviceId} reports user ${lookup.record.user}, not ${user}; enrol it for that user or send a new report first`,
          );
        }
        const issued = await services.issueAppPassword(user, deviceId);
        await audit('app-password-issued', { deviceId, user, credentialId: issued.credentialId });
        return { status: 201, body: { password: issued.password, credentialId: issued.credentialId, user, deviceId } };
      },
    },
    {
      method: 'DELETE',
      path: ['v1', 'devices', ':', 'app-passwords'],
      handle: async ({ params: [deviceId] }) => {
        const removed = await store.removeAppPasswords(deviceId);
        await audit('app-passwords-removed', { deviceId, removed });
        return { status: 200, body: { deviceId, removed } };
      },
    },
    {
      method: 'GET',
      path: ['v1', 'exemptions'],
      handle: async () => ({ status: 200, body: { exemptions: await store.listExemptions() } }),
    },
    {
      method: 'PUT',
      path: ['v1', 'exemptions', ':', ':'],
      handle: async ({ req, params: [rawScope, subject] }) => {
        const scope = scopeParam(rawScope);
        const exemption = parseExemption(scope, subject, await readJson(req));
        // The store publishes the exemption change itself (like putDevice), so live sessions are re-evaluated.
        await store.putExemption(exemption);
        await audit('exemption-set', { scope, subject, expiresAt: exemption.expiresAt, note: exemption.note, checks: exemption.checks });
        return { status: 200, body: { exemption } };
      },
    },
    {
      method: 'DELETE',
      path: ['v1', 'exemptions', ':', ':'],
      handle: async ({ params: [rawScope, subject] }) => {
        const scope = scopeParam(rawScope);
        await store.removeExemption(scope, subject);
        await audit('exemption-removed', { scope, subject });
        return { status: 200, body: { removed: true, scope, subject } };
      },
    },
    {
      method: 'GET',
      path: ['v1', 'audit'],
      handle: async ({ query }) => {
        const count = intParam(query, 'count', ADMIN_LIMITS.pageDefault, ADMIN_LIMITS.pageMax);
        const after = query.get('after');
        let entries: AuditEntry[];
        if (query.has('last')) {
          if (after !== null) throw badRequest('give either "after" or "last", not both');
          entries = await readAuditLast(store, intParam(query, 'last', ADMIN_LIMITS.pageDefault, ADMIN_LIMITS.pageMax));
        } else {
          if (after !== null && !/^[\w.:-]{1,64}$/.test(after)) throw badRequest(`"after" is not an audit id: ${after}`);
          entries = await store.readAudit(after ?? '0', count);
        }
        // `next` is what to pass as `after` to continue (the same cursor again when nothing is new).
        const next = entries.length > 0 ? entries[entries.length - 1].id : (after ?? '0');
        return { status: 200, body: { entries, next } };
      },
    },
    {
      method: 'POST',
      path: ['v1', 'policy', 'simulate'],
      handle: async ({ req }) => {
        const yaml = (await readBody(req, ADMIN_LIMITS.policyBodyBytes)).toString('utf8');
        const result = await services.simulate(yaml.trim() === '' ? null : yaml);
        return { status: 200, body: result };
      },
    },
    {
      method: 'PUT',
      path: ['v1', 'kill-switch'],
      handle: async ({ req }) => {
        const { on } = await readJson(req);
        if (typeof on !== 'boolean') throw badRequest('"on" is required: true or false');
        await services.setKillSwitch(on);
        log.warn(on ? 'kill switch ON: every check in report mode' : 'kill switch off', { killSwitch: on });
        await audit('kill-switch', { on });
        return { status: 200, body: { on } };
      },
    },
  ];
  return routes;
}

function parseExemption(scope: ExemptionScope, subject: string, body: Record<string, unknown>): Exemption {
  const known = new Set(['expiresAt', 'hours', 'note', 'checks', 'createdBy']);
  const unknown = Object.keys(body).filter((k) => !known.has(k));
  if (unknown.length > 0) throw badRequest(`unknown field(s): ${unknown.join(', ')}`);

  const { expiresAt, hours, note, checks, createdBy } = body;
  const now = Date.now();
  const maxMs = ADMIN_LIMITS.exemptionMaxHours * 3_600_000;
  let until: number;
  if ((expiresAt === undefined) === (hours === undefined)) throw badRequest('give exactly one of "expiresAt" or "hours"');
  if (hours !== undefined) {
    if (typeof hours !== 'number' || !Number.isFinite(hours) || hours <= 0) throw badRequest('"hours" must be a positive number');
    until = now + hours * 3_600_000;
  } else {
    until = typeof expiresAt === 'string' ? Date.parse(expiresAt) : NaN;
    if (Number.isNaN(until)) throw badRequest('"expiresAt" must be an ISO-8601 time');
    if (until <= now) throw badRequest(`"expiresAt" is in the past: ${String(expiresAt)}`);
  }
  if (until - now > maxMs) {
    throw badRequest(`an exemption lasts at most ${ADMIN_LIMITS.exemptionMaxHours} hours; use a check scope in the policy for longer`);
  }
  if (typeof note !== 'string' || note.trim() === '') throw badRequest('"note" is required: why, and who asked');
  if (note.length > ADMIN_LIMITS.noteMaxChars) throw badRequest(`"note" is longer than ${ADMIN_LIMITS.noteMaxChars} characters`);
  if (checks !== undefined && (!Array.isArray(checks) || checks.length === 0 || !checks.every((c) => typeof c === 'string' && c !== ''))) {
    throw badRequest('"checks" must be a non-empty list of check ids (omit it for every check)');
  }
  if (createdBy !== undefined && (typeof createdBy !== 'string' || createdBy.length > ADMIN_LIMITS.idMaxChars)) {
    throw badRequest('"createdBy" must be a short string');
  }
  return {
    scope,
    subject,
    expiresAt: new Date(until).toISOString(),
    note: note.trim(),
    createdBy: typeof createdBy === 'string' && createdBy !== '' ? createdBy : 'admin-api',
    createdAt: new Date(now).toISOString(),
    ...(checks !== undefined ? { checks: checks as string[] } : {}),
  };
}

/** Newest `count` audit entries, oldest first; pages through the stream when the store has no tail read. */
async function readAuditLast(store: DeviceStore, count: number): Promise<AuditEntry[]> {
  if (store.readAuditLast) return store.readAuditLast(count);
  const pageSize = 1000;
  let window: AuditEntry[] = [];
  let cursor = '0';
  // Bounded: the stream is capped (store.auditMaxLen), and so is this loop.
  for (let pages = 0; pages < 10_000; pages++) {
    const page = await store.readAudit(cursor, pageSize);
    if (page.length === 0) break;
    window = [...window, ...page].slice(-count);
    cursor = page[page.length - 1].id;
    if (page.length < pageSize) break;
  }
  return window;
}
