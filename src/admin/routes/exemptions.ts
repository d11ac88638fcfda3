// Temporary exemptions by device or user (GET /v1/exemptions, PUT and DELETE /v1/exemptions/:scope/:subject).
import { ADMIN_LIMITS, adminAudit, badRequest, readJson, type Route } from '../route';
import type { AdminServices } from '../services';
import type { Exemption, ExemptionScope } from '../../store/device-store';

export function exemptionRoutes(services: AdminServices): Route[] {
  const { store } = services;
  const audit = adminAudit(services);
  return [
    {
      method: 'GET',
      path: ['v1', 'exemptions'],
      handle: async () => ({ status: 200, body: { exemptions: await store.listExemptions() } }),
    },
    {
      method: 'PUT',
      path: ['v1', 'exemptions', ':', ':'],
      handle: async (ctx) => {
        const { req, params: [rawScope, subject] } = ctx;
        const scope = scopeParam(rawScope);
        const exemption = parseExemption(scope, subject, await readJson(req));
        // The store publishes the exemption change itself (like putDevice), so live sessions are re-evaluated.
        await store.putExemption(exemption);
        await audit(ctx, 'exemption-set', { scope, subject, expiresAt: exemption.expiresAt, note: exemption.note, checks: exemption.checks });
        return { status: 200, body: { exemption } };
      },
    },
    {
      method: 'DELETE',
      path: ['v1', 'exemptions', ':', ':'],
      handle: async (ctx) => {
        const [rawScope, subject] = ctx.params;
        const scope = scopeParam(rawScope);
        await store.removeExemption(scope, subject);
        await audit(ctx, 'exemption-removed', { scope, subject });
        return { status: 200, body: { removed: true, scope, subject } };
      },
    },
  ];
}

function scopeParam(raw: string): ExemptionScope {
  if (raw !== 'device' && raw !== 'user') throw badRequest(`exemption scope must be "device" or "user" (got "${raw}")`);
  return raw;
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
