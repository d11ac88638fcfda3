// Registry of live proxied sessions on this instance, so that a device change, an exemption ending
// or a policy reload can re-evaluate them and end the ones that are now denied.
import type { IdentitySource, Protocol } from '../policy/contract';
import type { Decision } from '../policy/decision';

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

export class SessionRegistry {
  private readonly sessions = new Map<string, LiveSession>();

  add(session: LiveSession): () => void {
    this.sessions.set(session.id, session);
    return () => {
      this.sessions.delete(session.id);
    };
  }

  get size(): number {
    return this.sessions.size;
  }

  all(): LiveSession[] {
    return [...this.sessions.values()];
  }

  byDevice(deviceId: string): LiveSession[] {
    return this.all().filter((s) => s.deviceId === deviceId);
  }

  byUser(user: string): LiveSession[] {
    return this.all().filter((s) => s.user === user);
  }
}
