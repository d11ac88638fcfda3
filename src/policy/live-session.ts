// A proxied session that is still open, as re-evaluation sees it: who and which device it was allowed
// for, and how to end it. The registry of them is src/app/sessions.ts; the revoker reads it.
import type { IdentitySource, Protocol } from './contract';
import type { Decision } from './decision';

export interface LiveSession {
  readonly id: string;
  readonly protocol: Protocol;
  readonly user: string;
  readonly deviceId: string | null;
  readonly identitySource: IdentitySource;
  readonly identityStrength: 'strong' | 'weak';
  readonly hints: Readonly<Record<string, string>>;
  readonly remoteAddress?: string;
  /**
   * End the session because it is now denied: IMAP sends `* BYE <sentence>` at a response boundary
   * and closes both legs; SMTP refuses the next MAIL FROM. Must not throw.
   */
  revoke(decision: Decision): void;
}

/** The live sessions of this instance, as the revoker queries them. */
export interface LiveSessions {
  all(): LiveSession[];
  byDevice(deviceId: string): LiveSession[];
  byUser(user: string): LiveSession[];
}
