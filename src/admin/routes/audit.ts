// The audit stream (GET /v1/audit): a cursor forward, or the newest entries.
import { ADMIN_LIMITS, badRequest, intParam, type Route } from '../route';
import type { AdminServices } from '../services';
import type { AuditEntry, AuditLog } from '../../store/device-store';

export function auditRoutes(services: AdminServices): Route[] {
  const { store } = services;
  return [
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
  ];
}

/** Newest `count` audit entries, oldest first; pages through the stream when the store has no tail read. */
async function readAuditLast(store: AuditLog, count: number): Promise<AuditEntry[]> {
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
