// What every gateway hook shares: the admission step it calls, its outcome names for metrics and
// logs, and the one-line ASCII form of a user sentence that HTTP headers and Postfix replies carry.
import type { Logger } from '../core/log';
import { errorText } from '../core/errors';
import type { Admission, AdmissionRequest } from '../admission/types';

export type HookName = 'nginx' | 'dovecot' | 'dovecot-passdb' | 'postfix';

/** How one hook request ended (the `outcome` label of mailwarden_hook_requests_total). */
export type HookOutcome = 'allow' | 'deny' | 'tempfail' | 'bad-credentials' | 'unsupported' | 'bad-request' | 'ignored';

export interface HookDeps {
  /** The one admission step (Gate.admit). Never throws. */
  admit(request: AdmissionRequest): Promise<Admission>;
  readonly log: Logger;
  /** Metrics: one call per request with its outcome and the time it took. */
  observe?(hook: HookName, outcome: HookOutcome, seconds: number): void;
}

/** The outcome label of an admission. */
export function admissionOutcome(admission: Admission): HookOutcome {
  switch (admission.kind) {
    case 'allow':
      return 'allow';
    case 'refuse':
      return admission.decision.action === 'deny' ? 'deny' : 'tempfail';
    case 'bad-credentials':
      return 'bad-credentials';
    case 'unavailable':
      return 'tempfail';
  }
}

/** Longest sentence a hook passes on (an SMTP reply line is 512 octets, RFC 5321 §4.5.3.1.5). */
const MAX_SENTENCE = 400;

/**
 * One printable ASCII line: header values (RFC 9110 §5.5; nginx copies Auth-Status bytes as they
 * are) and Postfix replies (non-UTF-8 there triggers the default action) must not carry control
 * characters or raw bytes. Accents are dropped (NFKD), anything else non-ASCII becomes `?`.
 */
export function asciiLine(text: string): string {
  const ascii = text
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .replace(/[^\x20-\x7e]+/g, (run) => (/^[\s\u0000-\u001f\u007f]+$/.test(run) ? ' ' : '?'))
    .replace(/ {2,}/g, ' ')
    .trim();
  return ascii.length > MAX_SENTENCE ? `${ascii.slice(0, MAX_SENTENCE - 3)}...` : ascii;
}

/** Runs one request and reports its outcome and time; a throw is a bug, logged, answered as `fallback`. */
export async function timed<T>(
  deps: HookDeps,
  hook: HookName,
  run: () => Promise<{ outcome: HookOutcome; answer: T }>,
  fallback: T,
): Promise<T> {
  const started = performance.now();
  let outcome: HookOutcome = 'tempfail';
  let answer = fallback;
  try {
    ({ outcome, answer } = await run());
  } catch (err) {
    deps.log.error(`${hook}: request failed unexpectedly`, { error: errorText(err) });
  }
  deps.observe?.(hook, outcome, (performance.now() - started) / 1000);
  return answer;
}
