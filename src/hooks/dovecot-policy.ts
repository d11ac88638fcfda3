// The Dovecot authentication-policy server (auth_policy_server_url): reads Dovecot's JSON
// `command=allow` request, asks the admission step, answers `{"status":0}` or a negative status
// with the user's sentence, and remembers allowed IMAP logins so a revocation can kick them.
import type { Admission, AdmissionRequest } from '../admission/types';
import { GATEWAY_VERIFIED } from '../admission/types';
import type { DovecotHookConfig } from '../core/config-types';
import type { Decision } from '../policy/decision';
import type { Protocol } from '../policy/contract';
import { errorText } from '../core/errors';
import { asciiLine, admissionOutcome, timed, type HookDeps, type HookOutcome } from './hook';
import { sameSecret, singleHeader, type HookHttpRequest, type HookHttpResponse } from './http-listener';
import { kick } from './doveadm';

/** Dovecot's policy request after `auth_policy_request_attributes` (docs/hooks.md), checked. */
export interface DovecotPolicyRequest {
  /** %{requested_username}: the name as typed. */
  readonly login: string;
  /** %{user}: the user the passdb verified (after-auth check). */
  readonly user: string;
  readonly protocol: Protocol;
  readonly remote?: string;
  readonly sessionId?: string;
  /** %{passdb:mailwarden_device}: set by mailwarden's own introspection answer (app passwords). */
  readonly device?: string;
  /** The IMAP ID fields (%{client_id}): hints only, never an identity. */
  readonly hints: Readonly<Record<string, string>>;
}

export type ParsedDovecotPolicy =
  | { readonly ok: true; readonly request: DovecotPolicyRequest }
  | { readonly ok: false; readonly kind: 'bad-request' | 'unsupported'; readonly problem: string };

export const TEXT = {
  authFailed: '[AUTHENTICATIONFAILED] Authentication failed.',
  unavailable: 'Service temporarily unavailable, try again later.',
  denied: 'Mail access from this device is blocked by company policy. Contact your IT helpdesk.',
} as const;

/** Dovecot's %s values and the policy protocol they are decided as. */
const PROTOCOLS: Readonly<Record<string, Protocol>> = { imap: 'imap', submission: 'smtp', smtp: 'smtp' };

/** Most hint fields kept from an ID string (RFC 2971 §3.3 allows 30 pairs). */
const MAX_HINTS = 30;

/**
 * `"name" "iPhone Mail" "version" "21F90"` (imap-login's IMAP-quoted pairs, NIL for null) → fields.
 * Anything that does not parse is dropped: the string is the client's own claim.
 */
export function parseClientId(clientId: string): Record<string, string> {
  const tokens: string[] = [];
  const token = /\s*(?:"((?:[^"\\]|\\.)*)"|(NIL))/gy;
  let match: RegExpExecArray | null;
  while ((match = token.exec(clientId)) !== null && tokens.length < MAX_HINTS * 2) {
    tokens.push(match[2] ? '' : match[1]!.replace(/\\(.)/g, '$1'));
  }
  const hints: Record<string, string> = {};
  for (let i = 0; i + 1 < tokens.length; i += 2) {
    const key = tokens[i]!.toLowerCase().replace(/[^\x21-\x7e]/g, '');
    if (key) hints[key] = tokens[i + 1]!.replace(/[\u0000-\u001f\u007f]/g, '');
  }
  return hints;
}

function optionalText(body: Record<string, unknown>, key: string): string | undefined | null {
  const value = body[key];
  if (value === undefined || value === '') return undefined;
  return typeof value === 'string' ? value : null;
}

export function parseDovecotPolicyRequest(bodyText: string): ParsedDovecotPolicy {
  let body: unknown;
  try {
    body = JSON.parse(bodyText);
  } catch {
    return { ok: false, kind: 'bad-request', problem: 'the body is not JSON' };
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return { ok: false, kind: 'bad-request', problem: 'the body is not a JSON object' };
  const fields = body as Record<string, unknown>;
  const values: Record<string, string | undefined> = {};
  for (const key of ['login', 'user', 'protocol', 'remote', 'session_id', 'device', 'device_id']) {
    const value = optionalText(fields, key);
    if (value === null) return { ok: false, kind: 'bad-request', problem: `"${key}" is not a string` };
    values[key] = value;
  }
  const login = values.login;
  if (login === undefined) return { ok: false, kind: 'bad-request', problem: 'no "login" (auth_policy_request_attributes must send login=%{requested_username})' };
  const dovecotProtocol = values.protocol?.toLowerCase();
  if (dovecotProtocol === undefined) return { ok: false, kind: 'bad-request', problem: 'no "protocol" (send protocol=%s)' };
  const protocol = PROTOCOLS[dovecotProtocol];
  if (!protocol) return { ok: false, kind: 'unsupported', problem: `${asciiLine(dovecotProtocol)} logins are not served by mailwarden` };
  return {
    ok: true,
    request: {
      login,
      user: values.user ?? login,
      protocol,
      ...(values.remote ? { remote: values.remote } : {}),
      ...(values.session_id ? { sessionId: values.session_id } : {}),
      ...(values.device ? { device: values.device } : {}),
      hints: values.device_id ? parseClientId(values.device_id) : {},
    },
  };
}

/** `status` < 0 fails the login with `msg` as the reason imap-login shows (`NO [ALERT] msg`, or `NO msg` when it starts with `[`). */
export function policyAnswer(admission: Admission): { status: number; msg: string } {
  switch (admission.kind) {
    case 'allow':
      return { status: 0, msg: '' };
    case 'refuse':
      if (admission.decision.action === 'deny') return { status: -1, msg: asciiLine(admission.decision.message ?? TEXT.denied) };
      return unavailableAnswer(admission.decision.message);
    case 'bad-credentials':
      return { status: -1, msg: TEXT.authFailed };
    case 'unavailable':
      return unavailableAnswer(admission.decision?.message);
  }
}

function unavailableAnswer(message: string | undefined): { status: number; msg: string } {
  return { status: -1, msg: `[UNAVAILABLE] ${asciiLine(message ?? TEXT.unavailable)}` };
}

/**
 * Refusals before a decision are answered 200 with a negative status, not with an HTTP error:
 * Dovecot turns HTTP errors into its fail value, which is an allow unless
 * auth_policy_reject_on_fail = yes. So a bad request is refused whatever that setting says.
 */
export function policyRefusal(): HookHttpResponse {
  return json(unavailableAnswer(undefined));
}

function json(value: unknown): HookHttpResponse {
  return { status: 200, headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(value) };
}

/** Allowed Dovecot logins, kept for revocation: Dovecot reports no logout, so they expire. */
export class DovecotSessions {
  private readonly sessions = new Map<string, { end(): void; expires: number }>();

  constructor(private readonly limits: () => { ttlMs: number; max: number }) {}

  add(id: string, end: () => void, now = Date.now()): void {
    const { ttlMs, max } = this.limits();
    this.remove(id);
    this.sessions.set(id, { end, expires: now + ttlMs });
    // Map order is insertion order: the oldest come first.
    for (const [oldId, entry] of this.sessions) {
      if (this.sessions.size <= max && entry.expires > now) break;
      this.remove(oldId);
    }
  }

  remove(id: string): void {
    const entry = this.sessions.get(id);
    if (!entry) return;
    this.sessions.delete(id);
    entry.end();
  }

  get size(): number {
    return this.sessions.size;
  }

  clear(): void {
    for (const id of [...this.sessions.keys()]) this.remove(id);
  }
}

export interface DovecotPolicyHandler {
  handle(request: HookHttpRequest): Promise<HookHttpResponse>;
  readonly sessions: DovecotSessions;
}

export function createDovecotPolicyHandler(deps: HookDeps, config: () => DovecotHookConfig): DovecotPolicyHandler {
  const sessions = new DovecotSessions(() => ({ ttlMs: config().sessionTtlHours * 3600_000, max: config().maxSessions }));
  let sequence = 0;

  /** Ends the user's Dovecot sessions through doveadm; by address unless configured to kick by user. */
  function revoke(request: DovecotPolicyRequest, user: string, sessionId: string, decision: Decision): void {
    sessions.remove(sessionId);
    const doveadm = config().doveadm;
    if (!doveadm) {
      deps.log.warn('dovecot: a session is now denied but no doveadm API is configured to end it', { user, sessionId, refId: decision.refId });
      return;
    }
    const addresses = doveadm.kick === 'user-and-address' && request.remote ? [request.remote] : [];
    void kick(doveadm, user, addresses).then((result) => {
      if (result.ok) deps.log.info('dovecot: sessions kicked through doveadm', { user, addresses, kicked: result.kicked, refId: decision.refId, sessionId });
      else deps.log.error('dovecot: doveadm kick failed; the session stays until it logs in again', { user, error: result.error, refId: decision.refId });
    }, (err: unknown) => deps.log.error('dovecot: doveadm kick failed', { user, error: errorText(err) }));
  }

  async function decide(http: HookHttpRequest): Promise<{ outcome: HookOutcome; answer: HookHttpResponse }> {
    const cfg = config();
    if (!sameSecret(singleHeader(http.headers, cfg.apiKeyHeader), cfg.apiKey)) {
      deps.log.warn('dovecot: policy request without the API key', { remoteAddress: http.remoteAddress });
      return { outcome: 'bad-request', answer: policyRefusal() };
    }
    const command = http.query.get('command');
    if (http.method !== 'POST' || (command !== 'allow' && command !== 'report')) {
      return { outcome: 'bad-request', answer: policyRefusal() };
    }
    // The report after the final result is informational; Dovecot ignores the answer.
    if (command === 'report') return { outcome: 'ignored', answer: json({ status: 0, msg: '' }) };
    const parsed = parseDovecotPolicyRequest(http.body.toString('utf8'));
    if (!parsed.ok) {
      deps.log.info('dovecot: policy request refused', { problem: parsed.problem, remoteAddress: http.remoteAddress });
      const answer = parsed.kind === 'unsupported' ? json({ status: -1, msg: asciiLine(parsed.problem) }) : policyRefusal();
      return { outcome: parsed.kind, answer };
    }
    const request = parsed.request;
    const sessionId = request.sessionId ?? `dovecot-${++sequence}`;
    let admittedUser = request.user;
    const admissionRequest: AdmissionRequest = {
      protocol: request.protocol,
      frontEnd: 'dovecot',
      sessionId,
      credential: { kind: 'password', username: request.login, password: GATEWAY_VERIFIED },
      verification: { by: 'gateway', user: request.user, ...(request.device ? { deviceId: request.device } : {}) },
      hints: request.hints,
      ...(request.remote ? { remoteAddress: request.remote } : {}),
      // Only IMAP sessions can be ended later (doveadm kick); submission is asked per login anyway.
      ...(request.protocol === 'imap' ? { live: { revoke: (decision: Decision) => revoke(request, admittedUser, sessionId, decision) } } : {}),
    };
    let admission = await deps.admit(admissionRequest);
    if (admission.kind === 'allow') {
      admittedUser = admission.identity.user;
      const handle = admission.session;
      if (handle) {
        sessions.add(sessionId, () => handle.end());
        // The policy may have changed between the decision and the registration (admission contract).
        const standing = await handle.confirm();
        if (standing.action !== 'allow') {
          sessions.remove(sessionId);
          admission = { kind: 'refuse', identity: admission.identity, decision: standing, upstream: admission.upstream };
        }
      }
    }
    const outcome = admissionOutcome(admission);
    if (outcome !== 'allow') deps.log.info('dovecot: login refused', { outcome, user: request.user, remoteAddress: request.remote, sessionId });
    return { outcome, answer: json(policyAnswer(admission)) };
  }

  return {
    sessions,
    handle: (http) => timed(deps, 'dovecot', () => decide(http), policyRefusal()),
  };
}
