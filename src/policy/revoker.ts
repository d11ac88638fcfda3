// Re-evaluates live sessions when what they were allowed on changes (a device report, an exemption,
// the policy, the kill switch, a lost change channel) and ends the ones that are now denied.
import type { Logger } from '../core/log';
import type { LiveSessions, LiveSession } from './live-session';
import type { Protocol } from './contract';
import type { Decision, DecisionRequest } from './decision';
import type { ChangeEvent, ChangeFeed } from '../store/device-store';
import { errorText } from '../core/errors';

export interface RevokerOptions {
  readonly store: ChangeFeed;
  readonly sessions: LiveSessions;
  readonly decider: { decide(request: DecisionRequest): Promise<Decision> };
  readonly log: Logger;
  readonly metrics?: { onRevocation(protocol: Protocol): void };
  /** Re-evaluations in flight at once (a policy change may touch every session). Default 32. */
  readonly concurrency?: number;
}

export interface RevalidationResult {
  readonly checked: number;
  readonly revoked: number;
  /** tempfail answers (store down): the session is kept. */
  readonly undecided: number;
}

export class Revoker {
  private unsubscribe: (() => Promise<void>) | null = null;
  private offReconnect: (() => void) | null = null;
  /** Sessions already told to end, so a burst of events revokes each once. */
  private readonly revoked = new WeakSet<LiveSession>();
  private readonly running = new Set<Promise<RevalidationResult>>();

  constructor(private readonly options: RevokerOptions) {}

  /** Subscribes to the change channel and to reconnects of it. */
  async start(): Promise<void> {
    this.offReconnect = this.options.store.onReconnect(() => void this.revalidateAll('reconnect'));
    this.unsubscribe = await this.options.store.subscribe((event) => void this.onChange(event));
  }

  async stop(): Promise<void> {
    this.offReconnect?.();
    this.offReconnect = null;
    const unsubscribe = this.unsubscribe;
    this.unsubscribe = null;
    await unsubscribe?.();
    await this.idle();
  }

  /** Resolves when every re-evaluation started so far has finished. */
  async idle(): Promise<void> {
    while (this.running.size > 0) await Promise.allSettled([...this.running]);
  }

  /** Every live session (the runtime calls this after a local policy reload). */
  revalidateAll(trigger: string): Promise<RevalidationResult> {
    return this.revalidate(this.options.sessions.all(), trigger);
  }

  /** Which sessions an event concerns. */
  sessionsFor(event: ChangeEvent): LiveSession[] {
    const { sessions } = this.options;
    switch (event.kind) {
      case 'device':
        return sessions.byDevice(event.deviceId);
      case 'exemption':
        return event.scope === 'device' ? sessions.byDevice(event.subject) : sessions.byUser(event.subject);
      case 'policy':
      case 'kill-switch':
        return sessions.all();
      case 'sessions':
        return []; // a session-directory question or answer changes no decision
    }
  }

  onChange(event: ChangeEvent): Promise<RevalidationResult> {
    return this.revalidate(this.sessionsFor(event), event.kind);
  }

  revalidate(targets: readonly LiveSession[], trigger: string): Promise<RevalidationResult> {
    const run = this.runPool(targets, trigger);
    this.running.add(run);
    void run.finally(() => this.running.delete(run));
    return run;
  }

  private async runPool(targets: readonly LiveSession[], trigger: string): Promise<RevalidationResult> {
    let next = 0;
    let revoked = 0;
    let undecided = 0;
    const worker = async (): Promise<void> => {
      while (next < targets.length) {
        const session = targets[next++]!;
        const outcome = await this.revalidateOne(session, trigger).catch((err: unknown) => {
          this.options.log.error('live session re-evaluation failed; session kept', {
            sessionId: session.id,
            error: errorText(err),
          });
          return 'undecided' as const;
        });
        if (outcome === 'revoked') revoked++;
        if (outcome === 'undecided') undecided++;
      }
    };
    const width = Math.min(this.options.concurrency ?? 32, targets.length);
    await Promise.all(Array.from({ length: width }, worker));
    return { checked: targets.length, revoked, undecided };
  }

  private async revalidateOne(session: LiveSession, trigger: string): Promise<'kept' | 'revoked' | 'undecided'> {
    if (this.revoked.has(session)) return 'kept';
    // decide() never throws; it answers tempfail when it cannot decide.
    const decision = await this.options.decider.decide({
      user: session.user,
      deviceId: session.deviceId,
      protocol: session.protocol,
      identitySource: session.identitySource,
      identityStrength: session.identityStrength,
      hints: session.hints,
      ...(session.remoteAddress ? { remoteAddress: session.remoteAddress } : {}),
      sessionId: session.id,
      trigger,
    });
    if (decision.action === 'tempfail') {
      // An outage must not end sessions that were allowed: keep it, the next event re-checks it.
      this.options.log.warn('live session kept: re-evaluation could not decide', {
        sessionId: session.id,
        deviceId: session.deviceId,
        reasonCode: decision.reasonCode,
        refId: decision.refId,
        trigger,
      });
      return 'undecided';
    }
    if (decision.action !== 'deny' || this.revoked.has(session)) return 'kept';
    this.revoked.add(session);
    this.options.log.info('live session revoked', {
      sessionId: session.id,
      user: session.user,
      deviceId: session.deviceId,
      reasonCode: decision.reasonCode,
      refId: decision.refId,
      trigger,
    });
    session.revoke(decision);
    this.options.metrics?.onRevocation(session.protocol);
    return 'revoked';
  }
}
