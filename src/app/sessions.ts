// Registry of live proxied sessions on this instance, so that a device change, an exemption ending
// or a policy reload can re-evaluate them and end the ones that are now denied.
import type { LiveSession, LiveSessions } from '../policy/live-session';

export class SessionRegistry implements LiveSessions {
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
