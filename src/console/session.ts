// Console sign-in sessions: an HMAC-signed cookie (HttpOnly, SameSite=Strict, Secure when served
// over TLS or behind an https publicUrl) holding who, role and expiry; the CSRF token for forms; the
// same-origin check every state-changing request passes.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type http from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { Role } from '../admin/roles';

export const SESSION_COOKIE = 'mw_console';

export interface ConsoleSession {
  /** Random id: the CSRF token is bound to it. */
  readonly sid: string;
  /** Token name, OIDC subject's name, or (self-service) the mail user. */
  readonly name: string;
  /** 'self' = a person signed in with their own mail credentials (the /my/ pages only). */
  readonly role: Role | 'self';
  readonly via: 'token' | 'oidc' | 'mail';
  /** ms epoch. */
  readonly expires: number;
}

export class SessionKeeper {
  // One key per process: a restart signs everyone out, which is the safe direction.
  private readonly key = randomBytes(32);
  /** Signed-out sessions (sid → expiry), so a copy of the cookie kept elsewhere opens nothing either. */
  private readonly signedOut = new Map<string, number>();

  private mac(text: string): Buffer {
    return createHmac('sha256', this.key).update(text).digest();
  }

  /** A signed value: base64url(JSON).base64url(HMAC). */
  seal(value: unknown): string {
    const body = Buffer.from(JSON.stringify(value)).toString('base64url');
    return `${body}.${this.mac(body).toString('base64url')}`;
  }

  unseal<T>(sealed: string | undefined): T | null {
    if (!sealed) return null;
    const dot = sealed.indexOf('.');
    if (dot < 1) return null;
    const body = sealed.slice(0, dot);
    const given = Buffer.from(sealed.slice(dot + 1), 'base64url');
    const want = this.mac(body);
    if (given.length !== want.length || !timingSafeEqual(given, want)) return null;
    try {
      return JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as T;
    } catch {
      return null;
    }
  }

  create(name: string, role: ConsoleSession['role'], via: ConsoleSession['via'], minutes: number): ConsoleSession {
    return { sid: randomBytes(16).toString('base64url'), name, role, via, expires: Date.now() + minutes * 60_000 };
  }

  read(req: http.IncomingMessage, cookieName = SESSION_COOKIE): ConsoleSession | null {
    const session = this.unseal<ConsoleSession>(readCookie(req, cookieName));
    if (!session || typeof session.expires !== 'number' || session.expires <= Date.now()) return null;
    if (this.signedOut.has(session.sid)) return null;
    return session;
  }

  /** Sign-out: the session's cookie is refused until it would have expired anyway. */
  signOut(session: ConsoleSession): void {
    const now = Date.now();
    // Kept only while they could still be presented: bounded by the sign-outs within sessionMinutes.
    for (const [sid, expires] of this.signedOut) if (expires <= now) this.signedOut.delete(sid);
    this.signedOut.set(session.sid, session.expires);
  }

  csrfToken(session: ConsoleSession): string {
    return this.mac(`csrf:${session.sid}`).toString('base64url');
  }

  csrfValid(session: ConsoleSession, given: string | undefined): boolean {
    if (!given) return false;
    const a = Buffer.from(given);
    const b = Buffer.from(this.csrfToken(session));
    return a.length === b.length && timingSafeEqual(a, b);
  }
}

export function readCookie(req: http.IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** Whether cookies get the Secure attribute: TLS on this hop, a public https address in front, or configured always. */
export function isSecure(req: http.IncomingMessage, publicUrl: string | undefined, mode: 'auto' | 'always' = 'auto'): boolean {
  return mode === 'always' || (req.socket as TLSSocket).encrypted === true || (publicUrl?.startsWith('https://') ?? false);
}

export function cookieHeader(name: string, value: string, opts: { secure: boolean; maxAgeSeconds: number; path?: string }): string {
  const parts = [`${name}=${value}`, `Path=${opts.path ?? '/'}`, 'HttpOnly', 'SameSite=Strict', `Max-Age=${Math.max(0, Math.floor(opts.maxAgeSeconds))}`];
  if (opts.secure) parts.push('Secure');
  return parts.join('; ');
}

/**
 * A state-changing request must come from the console's own pages: the browser's Sec-Fetch-Site
 * (Fetch Metadata) or Origin says where the form was. Checked besides SameSite=Strict cookies and the
 * CSRF token, so an older browser without one of them is still covered by the others.
 */
export function sameOrigin(req: http.IncomingMessage): boolean {
  const site = req.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin' && site !== 'none') return false;
  const origin = req.headers.origin;
  if (origin === undefined) return true;
  if (origin === 'null') return false;
  try {
    return new URL(origin).host === req.headers.host;
  } catch {
    return false;
  }
}
