// The Postfix policy-delegation server (check_policy_service): the SASL user and the client
// certificate from Postfix's attributes, the admission step, and an access(5) action: DUNNO for
// allow (never OK, which would end the restriction list), 550 5.7.1 for deny, a 4xx for tempfail.
import type { Admission, AdmissionRequest } from '../admission/types';
import { GATEWAY_VERIFIED } from '../admission/types';
import { asciiLine, admissionOutcome, type HookDeps, type HookOutcome } from './hook';
import { asPeerCertificate, colonHex, type GatewayCertificate } from './gateway-certificate';
import type { Attributes } from './line-listener';

export const TEXT = {
  unavailable: 'Service temporarily unavailable, try again later.',
  denied: 'Mail from this device is blocked by company policy. Contact your IT helpdesk.',
  mismatch: 'The client certificate does not belong to the authenticated user.',
} as const;

/** xtext (RFC 3461 §4): `+XX` is the byte XX; Postfix encodes ccert_* values so (SMTPD_POLICY_README). */
export function decodeXtext(value: string): string | null {
  if (!value.includes('+')) return value;
  const bytes: number[] = [];
  for (let i = 0; i < value.length; i++) {
    if (value[i] === '+') {
      const hex = value.slice(i + 1, i + 3);
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return null;
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else bytes.push(value.charCodeAt(i) & 0xff);
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(Uint8Array.from(bytes));
  } catch {
    return null;
  }
}

/**
 * The certificate Postfix verified. ccert_subject (the subject CN) and ccert_issuer are sent only
 * for a trusted certificate; the fingerprints for any presented one, so they count only with a subject.
 */
export function certificateFrom(attributes: Attributes): GatewayCertificate | undefined | null {
  const subject = attributes.get('ccert_subject');
  if (!subject) return undefined;
  const cn = decodeXtext(subject);
  const issuer = decodeXtext(attributes.get('ccert_issuer') ?? '');
  const fingerprint = colonHex(decodeXtext(attributes.get('ccert_fingerprint') ?? '') ?? '');
  if (cn === null || issuer === null) return null;
  return { subject: { CN: cn }, issuer: issuer ? { CN: issuer } : {}, ...(fingerprint ? { fingerprint256: fingerprint } : {}) };
}

/** The access(5) action for an admission, as the `action=` value. */
export function policyAction(admission: Admission): string {
  switch (admission.kind) {
    case 'allow':
      return 'DUNNO';
    case 'refuse':
      if (admission.decision.action === 'deny') return `550 5.7.1 ${asciiLine(admission.decision.message ?? TEXT.denied)}`;
      return `451 4.7.1 ${asciiLine(admission.decision.message ?? TEXT.unavailable)}`;
    case 'bad-credentials':
      return `550 5.7.1 ${TEXT.mismatch}`;
    case 'unavailable':
      // A 4xx only if a later restriction would permit (permit_sasl_authenticated does): never an allow.
      return `DEFER_IF_PERMIT ${asciiLine(admission.decision?.message ?? TEXT.unavailable)}`;
  }
}

export interface PostfixAnswer {
  readonly outcome: HookOutcome;
  /** The reply (`action=…`), or null: trouble, close without a reply (SMTPD_POLICY_README). */
  readonly reply: string | null;
}

/** One connection's memory: RCPT restrictions run once per recipient, the decision once per message. */
export interface PostfixConnectionState {
  last?: { readonly key: string; readonly answer: PostfixAnswer };
}

export async function answerPostfix(deps: HookDeps, attributes: Attributes, state: PostfixConnectionState): Promise<PostfixAnswer> {
  if (attributes.get('request') !== 'smtpd_access_policy') {
    deps.log.warn('postfix: not an smtpd_access_policy request', { request: asciiLine(attributes.get('request') ?? '(none)') });
    return { outcome: 'bad-request', reply: null };
  }
  const user = attributes.get('sasl_username') ?? '';
  // Not authenticated (or before AUTH): nothing to decide; the restrictions after this one refuse it.
  if (user === '') return { outcome: 'ignored', reply: 'action=DUNNO' };
  const certificate = certificateFrom(attributes);
  if (certificate === null) {
    deps.log.warn('postfix: certificate attributes are not valid xtext', { user });
    return { outcome: 'bad-request', reply: null };
  }
  const instance = attributes.get('instance') ?? '';
  const key = `${instance}\n${user}\n${certificate?.fingerprint256 ?? certificate?.subject.CN ?? ''}`;
  if (instance !== '' && state.last?.key === key) return state.last.answer;
  const clientAddress = attributes.get('client_address');
  const request: AdmissionRequest = {
    protocol: 'smtp',
    frontEnd: 'postfix',
    sessionId: instance || `postfix-${Date.now().toString(36)}`,
    credential: { kind: 'password', username: user, password: GATEWAY_VERIFIED },
    verification: { by: 'gateway', user },
    ...(certificate ? { peerCertificate: asPeerCertificate(certificate) } : {}),
    ...(clientAddress ? { remoteAddress: clientAddress } : {}),
    ...(attributes.get('helo_name') ? { hints: { helo: asciiLine(attributes.get('helo_name')!) } } : {}),
  };
  const admission = await deps.admit(request);
  const outcome = admissionOutcome(admission);
  if (outcome !== 'allow') deps.log.info('postfix: refused', { outcome, user, remoteAddress: clientAddress, instance });
  const answer = { outcome, reply: `action=${policyAction(admission)}` };
  state.last = { key, answer };
  return answer;
}
