// The nginx mail `auth_http` endpoint: reads nginx's Auth-* request headers, asks the admission
// step, and answers with Auth-Status (+ the backend on allow, Auth-Wait / Auth-Error-Code on refusal).
import type http from 'node:http';
import { randomBytes } from 'node:crypto';
import type { Admission, AdmissionRequest } from '../admission/types';
import type { NginxHookConfig } from '../core/config-types';
import type { Protocol } from '../policy/contract';
import { asciiLine, admissionOutcome, timed, type HookDeps, type HookOutcome } from './hook';
import { asPeerCertificate, certificateFromPem, parseDistinguishedName, type GatewayCertificate } from './gateway-certificate';
import { sameSecret, singleHeader, type HookHttpRequest, type HookHttpResponse } from './http-listener';

export interface AuthHttpLogin {
  readonly protocol: Protocol;
  readonly user: string;
  readonly password: string;
  readonly attempt: number;
  readonly clientIp: string;
  /** Set only when nginx verified a client certificate (Auth-SSL-Verify: SUCCESS). */
  readonly certificate?: GatewayCertificate;
  readonly ssl: boolean;
}

export type ParsedAuthHttp =
  | { readonly ok: true; readonly login: AuthHttpLogin }
  /** A request nginx sends but mailwarden does not serve (pop3, apop, cram-md5, smtp_auth none). */
  | { readonly ok: false; readonly kind: 'unsupported'; readonly problem: string; readonly protocol: string }
  | { readonly ok: false; readonly kind: 'bad-request'; readonly problem: string };

export const TEXT = {
  authFailed: 'Authentication failed.',
  unavailable: 'Service temporarily unavailable, try again later.',
  denied: 'Mail access from this device is blocked by company policy. Contact your IT helpdesk.',
} as const;

/**
 * nginx escapes Auth-User and Auth-Pass like memcached keys (ngx_escape_uri NGX_ESCAPE_MAIL_AUTH:
 * space, `%` and control characters as %XX; measured: `p w%x` arrives as `p%20w%25x`, `@` as is).
 * Percent sequences are decoded as UTF-8 bytes; a broken sequence or invalid UTF-8 is refused.
 */
export function unescapeMailAuth(value: string): string | null {
  if (!/%/.test(value)) return value;
  const bytes: number[] = [];
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c === 0x25) {
      const hex = value.slice(i + 1, i + 3);
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return null;
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else if (c > 0x7f) return null;
    else bytes.push(c);
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(Uint8Array.from(bytes));
  } catch {
    return null;
  }
}

function certificateOf(headers: http.IncomingHttpHeaders): GatewayCertificate | undefined {
  if (singleHeader(headers, 'auth-ssl-verify') !== 'SUCCESS') return undefined;
  const pem = singleHeader(headers, 'auth-ssl-cert');
  const fromPem = pem === undefined ? null : certificateFromPem(unescapeMailAuth(pem) ?? '');
  if (fromPem) return fromPem;
  const subject = singleHeader(headers, 'auth-ssl-subject');
  if (subject === undefined) return undefined;
  const serial = singleHeader(headers, 'auth-ssl-serial');
  return {
    subject: parseDistinguishedName(unescapeMailAuth(subject) ?? ''),
    issuer: parseDistinguishedName(unescapeMailAuth(singleHeader(headers, 'auth-ssl-issuer') ?? '') ?? ''),
    ...(serial ? { serialNumber: serial.toUpperCase() } : {}),
  };
}

/** nginx 1.22's request headers (ngx_mail_auth_http_create_request), checked. */
export function parseAuthHttpRequest(headers: http.IncomingHttpHeaders): ParsedAuthHttp {
  const protocol = singleHeader(headers, 'auth-protocol')?.toLowerCase();
  const method = singleHeader(headers, 'auth-method')?.toLowerCase();
  const rawUser = singleHeader(headers, 'auth-user');
  const rawPass = singleHeader(headers, 'auth-pass');
  const attempt = Number(singleHeader(headers, 'auth-login-attempt'));
  const clientIp = singleHeader(headers, 'client-ip');
  if (protocol === undefined || method === undefined || rawUser === undefined || rawPass === undefined || clientIp === undefined) {
    return { ok: false, kind: 'bad-request', problem: 'missing Auth-Protocol, Auth-Method, Auth-User, Auth-Pass or Client-IP (or sent twice)' };
  }
  if (!Number.isInteger(attempt) || attempt < 1) return { ok: false, kind: 'bad-request', problem: 'Auth-Login-Attempt is not a positive integer' };
  if (protocol === 'pop3') return { ok: false, kind: 'unsupported', problem: 'POP3 is not served by mailwarden', protocol };
  if (protocol !== 'imap' && protocol !== 'smtp') return { ok: false, kind: 'bad-request', problem: `unknown Auth-Protocol "${asciiLine(protocol)}"` };
  // LOGIN arrives as `plain` too; apop/cram-md5 carry no password to verify, `none` no login at all.
  if (method !== 'plain') return { ok: false, kind: 'unsupported', problem: `Auth-Method ${asciiLine(method)} is not supported (use plain or login)`, protocol };
  const user = unescapeMailAuth(rawUser);
  const password = unescapeMailAuth(rawPass);
  if (user === null || password === null) return { ok: false, kind: 'bad-request', problem: 'Auth-User or Auth-Pass is not validly escaped UTF-8' };
  const certificate = certificateOf(headers);
  return {
    ok: true,
    login: {
      protocol,
      user,
      password,
      attempt,
      clientIp,
      ssl: singleHeader(headers, 'auth-ssl') === 'on',
      ...(certificate ? { certificate } : {}),
    },
  };
}

/** Auth-Wait for attempt n of a session: none from the configured attempt on (nginx then closes). */
function authWait(config: NginxHookConfig, attempt: number, seconds: number): Record<string, string> {
  return attempt < config.maxWaitAttempts ? { 'Auth-Wait': String(seconds) } : {};
}

/** Bad credentials: 1, 2, 4, ... seconds, capped, so guessing through nginx slows down per session. */
function failedLoginWait(config: NginxHookConfig, attempt: number): number {
  return Math.min(2 ** (attempt - 1), config.maxFailedLoginWaitSeconds);
}

/** The answer headers for an admission (nginx reads only headers; the HTTP status is ignored). */
export function authHttpAnswer(config: NginxHookConfig, login: AuthHttpLogin, admission: Admission): Record<string, string> {
  const smtp = login.protocol === 'smtp';
  switch (admission.kind) {
    case 'allow': {
      const backend = config.backends[login.protocol];
      if (!backend) return unavailableAnswer(config, login, undefined);
      const upstream = admission.upstream;
      const headers: Record<string, string> = { 'Auth-Status': 'OK', 'Auth-Server': backend.host, 'Auth-Port': String(backend.port) };
      if (upstream.mode === 'master') {
        // The backend never saw this (app) password: a Dovecot master login for IMAP; for SMTP nginx
        // sends XCLIENT LOGIN=<Auth-User> and never authenticates to the backend itself.
        if (!smtp && backend.masterUser && backend.masterPassword) {
          headers['Auth-User'] = `${upstream.username}${backend.masterSeparator}${backend.masterUser}`;
          headers['Auth-Pass'] = backend.masterPassword;
        } else if (!smtp) return unavailableAnswer(config, login, undefined);
        else headers['Auth-User'] = upstream.username;
      } else if (upstream.username !== login.user) {
        // `user+device` asserted: the backend knows the plain user; its own password is passed on.
        headers['Auth-User'] = upstream.username;
      }
      return headers;
    }
    case 'refuse': {
      const decision = admission.decision;
      if (decision.action === 'deny') {
        const sentence = asciiLine(decision.message ?? TEXT.denied);
        // No Auth-Wait: nginx shows the sentence and ends the session.
        return smtp ? { 'Auth-Status': sentence, 'Auth-Error-Code': '550 5.7.1' } : { 'Auth-Status': `[CONTACTADMIN] ${sentence}` };
      }
      return unavailableAnswer(config, login, decision.message);
    }
    case 'bad-credentials':
      return {
        'Auth-Status': smtp ? TEXT.authFailed : `[AUTHENTICATIONFAILED] ${TEXT.authFailed}`,
        ...(smtp ? { 'Auth-Error-Code': '535 5.7.8' } : {}),
        ...authWait(config, login.attempt, failedLoginWait(config, login.attempt)),
      };
    case 'unavailable':
      return unavailableAnswer(config, login, admission.decision?.message);
  }
}

function unavailableAnswer(config: NginxHookConfig, login: AuthHttpLogin, message: string | undefined): Record<string, string> {
  const sentence = asciiLine(message ?? TEXT.unavailable);
  const smtp = login.protocol === 'smtp';
  return {
    'Auth-Status': smtp ? sentence : `[UNAVAILABLE] ${sentence}`,
    ...(smtp ? { 'Auth-Error-Code': '454 4.7.0' } : {}),
    ...authWait(config, login.attempt, config.tempfailWaitSeconds),
  };
}

/** For a request refused before any decision (bad secret, bad input): a temporary failure, never OK. */
export function authHttpRefusal(status: number): HookHttpResponse {
  return { status, headers: { 'Auth-Status': TEXT.unavailable, 'Auth-Error-Code': '451 4.3.0' } };
}

export function createNginxHandler(deps: HookDeps, config: () => NginxHookConfig): (request: HookHttpRequest) => Promise<HookHttpResponse> {
  return (request) =>
    timed(
      deps,
      'nginx',
      async (): Promise<{ outcome: HookOutcome; answer: HookHttpResponse }> => {
        const cfg = config();
        if (!sameSecret(singleHeader(request.headers, cfg.secretHeader), cfg.secret)) {
          deps.log.warn('nginx: auth_http request without the shared secret', { remoteAddress: request.remoteAddress });
          return { outcome: 'bad-request', answer: authHttpRefusal(401) };
        }
        if (request.method !== 'GET' && request.method !== 'POST') return { outcome: 'bad-request', answer: authHttpRefusal(405) };
        const parsed = parseAuthHttpRequest(request.headers);
        if (!parsed.ok) {
          deps.log.info('nginx: auth_http request refused', { problem: parsed.problem, remoteAddress: request.remoteAddress });
          if (parsed.kind === 'bad-request') return { outcome: 'bad-request', answer: authHttpRefusal(400) };
          const text = asciiLine(parsed.problem);
          const headers: Record<string, string> = { 'Auth-Status': text, ...(parsed.protocol === 'smtp' ? { 'Auth-Error-Code': '504 5.5.4' } : {}) };
          return { outcome: 'unsupported', answer: { status: 200, headers } };
        }
        const { login } = parsed;
        const admissionRequest: AdmissionRequest = {
          protocol: login.protocol,
          frontEnd: 'nginx',
          sessionId: randomBytes(8).toString('hex'),
          credential: { kind: 'password', username: login.user, password: login.password },
          remoteAddress: login.clientIp,
          upstreamLogin: cfg.backends[login.protocol]?.login ?? 'passthrough',
          throttleWaitMaxMs: cfg.throttleWaitMaxMs,
          ...(login.certificate ? { peerCertificate: asPeerCertificate(login.certificate) } : {}),
        };
        const admission = await deps.admit(admissionRequest);
        const outcome = admissionOutcome(admission);
        if (outcome !== 'allow') {
          deps.log.info('nginx: login refused', { outcome, attempt: login.attempt, remoteAddress: login.clientIp, user: login.user });
        }
        return { outcome, answer: { status: 200, headers: authHttpAnswer(cfg, login, admission) } };
      },
      authHttpRefusal(500),
    );
}

