// Least-privilege admin tokens: the roles, what each may do, and the check of a bearer token against
// the configured tokens (admin.accessTokens: name, role, SHA-256 of the token; admin.tokens: legacy
// plain tokens, each with the admin role). Used by the admin API and the web console alike.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { AccessTokenConfig, AdminRole } from '../core/config-types';

export type Role = AdminRole;
export const ROLES: readonly Role[] = ['reporter', 'metrics', 'viewer', 'helpdesk', 'admin'];

export const PERMISSIONS = [
  'reports:write',
  'metrics:read',
  'devices:read',
  'audit:read',
  'policy:read',
  'exemptions:write',
  'sessions:end',
  'enrolment:write',
  'policy:write',
  'kill-switch:write',
  'connectors:read',
  'connectors:sync',
] as const;
export type Permission = (typeof PERMISSIONS)[number];

const VIEWER: readonly Permission[] = ['metrics:read', 'devices:read', 'audit:read', 'policy:read', 'connectors:read'];
const HELPDESK: readonly Permission[] = [...VIEWER, 'exemptions:write', 'sessions:end'];

/**
 * The MDM reporter and the Prometheus scraper hold tokens that can do only their one job: a leaked
 * reporter token must not enrol an app password (which, with the master user, reads any mailbox).
 */
export const ROLE_PERMISSIONS: Readonly<Record<Role, readonly Permission[]>> = {
  reporter: ['reports:write'],
  metrics: ['metrics:read'],
  viewer: VIEWER,
  helpdesk: HELPDESK,
  admin: PERMISSIONS,
};

export function roleAllows(role: Role, permission: Permission): boolean {
  return ROLE_PERMISSIONS[role].includes(permission);
}

/**
 * What each admin API route needs, by method and path (':' marks a parameter). The one table: a route
 * missing from it needs 'admin-only', so a new route is closed until it is listed here.
 */
export const ROUTE_PERMISSIONS: Readonly<Record<string, Permission>> = {
  'GET /metrics': 'metrics:read',
  'POST /v1/reports': 'reports:write',
  'GET /v1/devices': 'devices:read',
  'GET /v1/devices/:': 'devices:read',
  'POST /v1/devices/:/app-passwords': 'enrolment:write',
  'DELETE /v1/devices/:/app-passwords': 'enrolment:write',
  'GET /v1/exemptions': 'devices:read',
  'PUT /v1/exemptions/:/:': 'exemptions:write',
  'DELETE /v1/exemptions/:/:': 'exemptions:write',
  'GET /v1/audit': 'audit:read',
  'POST /v1/policy/simulate': 'policy:read',
  'GET /v1/kill-switch': 'policy:read',
  'PUT /v1/kill-switch': 'kill-switch:write',
  'GET /v1/connectors': 'connectors:read',
  // A sync (even a dry run) spends the MDM's API quota; applying a held diff overrides a guard.
  'POST /v1/connectors/:/sync': 'connectors:sync',
  'POST /v1/connectors/:/apply': 'connectors:sync',
};

/** May this principal call the route (method and path pattern)? Unlisted routes: admin only. */
export function mayCall(principal: Principal, method: string, path: readonly string[]): boolean {
  const permission = ROUTE_PERMISSIONS[`${method} /${path.join('/')}`];
  return permission === undefined ? principal.role === 'admin' : roleAllows(principal.role, permission);
}

/** Who made a request: the token's configured name and its role (audited with every action). */
export interface Principal {
  readonly name: string;
  readonly role: Role;
}

export type AccessToken = AccessTokenConfig;

/**
 * A plain SHA-256 is the right hash here, as for app passwords (src/identity/app-password.ts): the
 * tokens `mailwarden admin token` makes carry 256 random bits, which no hash speed makes guessable,
 * and a slow hash would cost CPU on every API request.
 */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** A new random token (base64url of 32 bytes) with the prefix `mwt_` so it is recognisable in a leak scan. */
export function newToken(): string {
  return `mwt_${randomBytes(32).toString('base64url')}`;
}

/** Name shown for the i-th legacy plain token (admin.tokens[i]). */
export const legacyTokenName = (index: number): string => `admin.tokens[${index}]`;

/**
 * The principal a bearer token belongs to, or null. Every configured token is compared, in constant
 * time on equal-length digests, so timing says nothing about which token or how much of it matched.
 */
export function principalFor(
  given: string,
  accessTokens: readonly AccessToken[],
  legacyTokens: readonly string[] = [],
): Principal | null {
  const digest = createHash('sha256').update(given, 'utf8').digest();
  let found: Principal | null = null;
  for (const entry of accessTokens) {
    const stored = Buffer.from(entry.sha256, 'hex');
    if (stored.length === digest.length && timingSafeEqual(stored, digest) && found === null) {
      found = { name: entry.name, role: entry.role };
    }
  }
  legacyTokens.forEach((token, index) => {
    if (token === '') return;
    const stored = createHash('sha256').update(token, 'utf8').digest();
    if (timingSafeEqual(stored, digest) && found === null) found = { name: legacyTokenName(index), role: 'admin' };
  });
  return found;
}
