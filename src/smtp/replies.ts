// Every SMTP reply mailwarden itself chooses, and the mapping from a policy Decision to a reply.
// Enhanced status codes (RFC 3463, registry RFC 5248) are written into the text because smtp-server
// hides ENHANCEDSTATUSCODES by default and would otherwise print its own guess in front of ours.
import type { Decision } from '../policy/decision';

export interface SmtpReply {
  readonly code: number;
  /** One line; starts with the enhanced status code when there is one. */
  readonly text: string;
}

/** RFC 5321 §4.5.3.1.5: a reply line is at most 512 octets including the code and CRLF. */
const MAX_TEXT = 480;

/** Collapse to one printable line (a sentence from the policy must never split the reply). */
export function oneLine(text: string): string {
  const flat = text.replace(/[\x00-\x1f\x7f]+/g, ' ').replace(/\s+/g, ' ').trim();
  return flat.length > MAX_TEXT ? `${flat.slice(0, MAX_TEXT - 3)}...` : flat;
}

export const Replies = {
  /** RFC 4954 §6: MAIL before AUTH on a submission port. */
  authRequiredText: '5.7.0 Authentication required',
  /** RFC 4954 §6: wrong password or token (the only reply that makes clients ask for the password). */
  badCredentials: { code: 535, text: '5.7.8 Authentication credentials invalid' },
  /** RFC 4954 §6: the identity source, the store or the upstream cannot answer now; the client retries. */
  authTempFail: (sentence?: string): SmtpReply => ({
    code: 454,
    text: oneLine(`4.7.0 Temporary authentication failure${sentence ? `: ${sentence}` : ''}`),
  }),
  /** RFC 3463 X.4.1 "no answer from host": the upstream cannot be reached; the client keeps the message. */
  upstreamUnavailable: { code: 451, text: '4.4.1 Upstream mail server unavailable, try again later' },
  /** RFC 3463 X.4.2 "bad connection": the upstream went away mid-transaction; nothing was accepted. */
  upstreamLost: {
    code: 451,
    text: '4.4.2 Connection to the upstream mail server lost, message not delivered; try again',
  },
  /**
   * RFC 5321 §2.3.8 forbids a bare CR or LF in DATA; accepting one makes this proxy "server A" of SMTP
   * smuggling. 550 5.5.2 is what Postfix answers with smtpd_forbid_bare_newline = reject.
   */
  bareLineEnding: {
    code: 550,
    text: '5.5.2 Message refused: bare CR or LF in message data (lines must end with CRLF)',
  },
  /** RFC 1870 §6.2 and RFC 3463 X.3.4 "message too big for system". */
  messageTooBig: (limit: number): SmtpReply => ({
    code: 552,
    text: `5.3.4 Message size exceeds fixed maximum message size of ${limit} bytes`,
  }),
  /** RFC 3463 X.3.0: our own fault (a bug); temporary so the message stays with the client. */
  localError: { code: 451, text: '4.3.0 Local error in processing, try again later' },
  /** RFC 3463 X.3.2 "system not accepting network messages". */
  shuttingDown: { code: 421, text: '4.3.2 Service shutting down, try again later' },
  /** RFC 3463 X.7.0: the listener's or this address's connection cap (Postfix answers 421 4.7.0 too). */
  tooManyConnections: (fromAddress: boolean): SmtpReply => ({
    code: 421,
    text: `4.7.0 Too many connections${fromAddress ? ' from your address' : ''}, try again later`,
  }),
  /** RFC 3463 X.4.2 "bad connection": no AUTH within the pre-auth deadline, or a line that never ends. */
  preAuthTimeout: { code: 421, text: '4.4.2 Timeout: no authentication in time, closing connection' },
  lineTimeout: { code: 421, text: '4.4.2 Timeout: command or line not completed in time, closing connection' },
} as const;

/**
 * The reply at MAIL FROM for a session whose device is refused. AUTH succeeded (so the client does
 * not ask for the password again, RFC 4954 §6 leaves 535 to wrong credentials) and this reply
 * carries the policy's sentence, which clients show to the person:
 * - deny → 550 5.7.1 (RFC 3463 X.7.1 "delivery not authorized, message refused");
 * - tempfail → 451 4.7.1 (same meaning, transient: the client keeps the message in its outbox).
 */
export function refusal(decision: Decision): SmtpReply {
  const sentence = decision.message ?? `Refused by policy (${decision.reasonCode}). Ref ${decision.refId}.`;
  return decision.action === 'tempfail'
    ? { code: 451, text: oneLine(`4.7.1 ${sentence}`) }
    : { code: 550, text: oneLine(`5.7.1 ${sentence}`) };
}

/**
 * An upstream reply passed on to the client as it is. A code outside 4xx/5xx where a refusal was
 * expected (a broken upstream) becomes a temporary local error so nothing is lost.
 */
export function passUpstream(code: number, text: string): SmtpReply {
  if (code < 400 || code > 599) return Replies.localError;
  return { code, text: oneLine(text) || (code >= 500 ? '5.0.0 Refused by the upstream server' : '4.0.0 Deferred') };
}
