// What a route file of src/admin/routes/ is made of: the route, its request context and reply, the
// API's limits, body readers and query-parameter parsers, and the audit of admin operations.
import type http from 'node:http';
import { AdminError } from './errors';
import type { Principal } from './roles';
import type { AdminServices } from './services';

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

export interface Context {
  readonly req: http.IncomingMessage;
  readonly params: readonly string[];
  readonly query: URLSearchParams;
  /** The token's holder; absent only on public routes. */
  readonly principal?: Principal;
}

export interface Reply {
  readonly status: number;
  /** Serialised as JSON unless `text` is given. */
  readonly body?: unknown;
  readonly text?: string;
  readonly contentType?: string;
  readonly headers?: Readonly<Record<string, string>>;
}

export interface Route {
  readonly method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  /** Path segments; ':' marks a parameter, passed to the handler in order. */
  readonly path: readonly string[];
  readonly public?: boolean;
  /** Probe and scrape traffic is logged at debug, not info. */
  readonly quiet?: boolean;
  readonly handle: (ctx: Context) => Promise<Reply>;
}

/**
 * Reads the body up to `limit` bytes; beyond it, 413 and the connection is closed after the reply.
 * (Not `for await`: leaving that loop early destroys the socket before the 413 can be sent.)
 */
export function readBody(req: http.IncomingMessage, limit: number): Promise<Buffer> {
  const tooLarge = () =>
    new AdminError('BODY_TOO_LARGE', `request body is larger than ${limit} bytes`, { connection: 'close' });
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
export async function readJson(req: http.IncomingMessage): Promise<Record<string, unknown>> {
  const text = (await readBody(req, ADMIN_LIMITS.jsonBodyBytes)).toString('utf8');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new AdminError('BAD_JSON', `request body is not valid JSON: ${(err as Error).message}`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new AdminError('BAD_JSON', 'request body must be a JSON object');
  }
  return value as Record<string, unknown>;
}

export const badRequest = (message: string) => new AdminError('BAD_REQUEST', message);

export function intParam(query: URLSearchParams, name: string, fallback: number, max: number): number {
  const raw = query.get(name);
  if (raw === null) return fallback;
  if (!/^\d+$/.test(raw) || Number(raw) < 1 || Number(raw) > max) {
    throw badRequest(`query parameter ${name} must be an integer from 1 to ${max} (got "${raw}")`);
  }
  return Number(raw);
}

/**
 * Admin operations go to the audit stream too, as `msg: 'admin'` beside the decisions' `msg: 'decision'`.
 * Each names the token that did it (its configured name and role). The operation already happened, so
 * a failure to audit it is only logged.
 */
export function adminAudit({ store, log }: Pick<AdminServices, 'store' | 'log'>): (ctx: Context, operation: string, fields: Record<string, unknown>) => Promise<void> {
return async (ctx, operation, fields) => {
  try {
    const token = ctx.principal && { token: ctx.principal.name, role: ctx.principal.role };
    await store.appendAudit({ msg: 'admin', operation, at: new Date().toISOString(), ...token, ...fields });
  } catch (err) {
    log.error('admin operation not audited: store error', { operation, error: (err as Error).message });
  }
};
}
