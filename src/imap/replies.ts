// Every IMAP reply mailwarden itself sends about a login or a live session: the one place where a
// Decision (or an identity/upstream failure) becomes response codes and text (RFC 5530 codes).
import type { Decision } from '../policy/decision';

const CRLF = '\r\n';
/** Longest human sentence we put on one response line (clients truncate anyway). */
const MAX_TEXT = 900;

/** Response text: one line, printable, bounded. A `]` cannot close a response code after the code. */
export function responseText(text: string | undefined, fallback: string): string {
  const clean = (text ?? '').replace(/[\u0000-\u001f\u007f]+/g, ' ').trim();
  const sentence = clean.length > 0 ? clean : fallback;
  return sentence.length > MAX_TEXT ? `${sentence.slice(0, MAX_TEXT - 1)}…` : sentence;
}

export const TEXT = {
  authFailed: 'Authentication failed.',
  notBeforeLogin: 'Command not allowed before login',
  unavailable: 'Service temporarily unavailable, try again later.',
  deniedFallback: 'Mail access from this device is blocked by company policy. Contact your IT helpdesk.',
  revokedFallback: 'Mail access from this device has been suspended by company policy.',
  privacyRequired: 'Use STARTTLS or the implicit-TLS port before logging in.',
  shutdown: 'Server shutting down, reconnect shortly.',
  timeout: 'Disconnected for inactivity.',
  autologout: 'Autologout; idle for too long.',
  tooManyBad: 'Too many invalid IMAP commands.',
  tooManyFailures: 'Too many failed logins.',
} as const;

/** What the login path does with a refused login. */
export type Refusal =
  /** Send `lines` (the last one tagged) and stay not-authenticated. */
  | { readonly kind: 'refuse'; readonly lines: readonly string[]; readonly result: 'deny' | 'tempfail' }
  /** Quarantine block style: log in to the local explanation mailbox. */
  | { readonly kind: 'quarantine'; readonly sentence: string };

/**
 * deny → `* OK [ALERT] sentence` + `NO [CONTACTADMIN] sentence` (CONTACTADMIN, not
 * AUTHENTICATIONFAILED, so clients do not re-prompt for the password), or the quarantine mailbox;
 * tempfail → `NO [UNAVAILABLE]` with the sentence.
 */
export function refusal(tag: string, decision: Decision, blockStyle: 'refuse' | 'quarantine'): Refusal {
  const result = decision.action === 'deny' ? 'deny' : 'tempfail';
  if (result === 'deny' && blockStyle === 'quarantine') return { kind: 'quarantine', sentence: responseText(decision.message, TEXT.deniedFallback) };
  return { kind: 'refuse', result, lines: refusedLines(tag, decision) };
}

/** The lines that refuse a login in the `refuse` block style. */
export function refusedLines(tag: string, decision: Decision): string[] {
  if (decision.action !== 'deny') return [unavailable(tag, decision.message)];
  const sentence = responseText(decision.message, TEXT.deniedFallback);
  return [`* OK [ALERT] ${sentence}`, `${tag} NO [CONTACTADMIN] ${sentence}`];
}

/** An allowed login's warnings (warn mode, grace period): `* OK [ALERT] warning` each, before the OK. */
export function warnings(decision: Decision): string[] {
  return decision.warnings.map((w) => `* OK [ALERT] ${responseText(w, '')}`);
}

export function unavailable(tag: string, message?: string): string {
  return `${tag} NO [UNAVAILABLE] ${responseText(message, TEXT.unavailable)}`;
}

export function authenticationFailed(tag: string): string {
  return `${tag} NO [AUTHENTICATIONFAILED] ${TEXT.authFailed}`;
}

/** PLAIN authzid other than the authcid (RFC 5530 AUTHORIZATIONFAILED). */
export function authorizationFailed(tag: string): string {
  return `${tag} NO [AUTHORIZATIONFAILED] Not allowed to act as another user.`;
}

/** LOGIN / AUTHENTICATE before TLS where TLS is available (RFC 9051 §6.2.3, RFC 5530). */
export function privacyRequired(tag: string): string {
  return `${tag} NO [PRIVACYREQUIRED] ${TEXT.privacyRequired}`;
}

/** The tagged OK of a successful login, with the upstream's (filtered) capabilities. */
export function loggedIn(tag: string, capabilities: readonly string[]): string {
  return `${tag} OK [CAPABILITY ${capabilities.join(' ')}] Logged in`;
}

/** A live session now denied: `* OK [ALERT]` and `* BYE` with the sentence, then both legs close. */
export function revoked(decision: Decision): string {
  const sentence = responseText(decision.message, TEXT.revokedFallback);
  return `* OK [ALERT] ${sentence}${CRLF}* BYE ${sentence}${CRLF}`;
}

export function bye(text: string): string {
  return `* BYE ${text}${CRLF}`;
}

/** Lines joined for one write. */
export function wire(lines: readonly string[]): string {
  return lines.map((l) => l + CRLF).join('');
}
