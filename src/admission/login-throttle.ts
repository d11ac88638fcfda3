// mailwarden's own brute-force control: failed logins are counted per client address, per user and
// per app-password credential (shared across instances), and a login is answered only after a delay
// that doubles with each failure, like Dovecot's auth penalty and nginx's Auth-Wait. It delays,
// never refuses: nobody is locked out, and a user's failures from one address leave her addresses
// that logged in before alone.
import { addressKey } from '../core/client-address';
import type { FailureCounters } from '../store/failure-counters';
import type { LoginThrottleConfig } from '../core/config-types';

/** The `loginThrottle` section (docs/configuration.md#loginthrottle). */
export type LoginThrottleSettings = LoginThrottleConfig;

/** Who is logging in, as far as is known before the credential is verified. */
export interface ThrottleSubject {
  readonly remoteAddress?: string;
  /** The login name as typed (absent: a bearer token without one, counted by address and device only). */
  readonly username?: string;
  /** The app-password credential id, when the password has that shape (one device). */
  readonly credentialId?: string;
}

export type ThrottleScope = 'address' | 'user' | 'device';

export interface ThrottleVerdict {
  readonly delayMs: number;
  /** The counter that asked for the delay (metrics, logs); null without a delay. */
  readonly scope: ThrottleScope | null;
}

/** What wait() found: the verdict, and whether any address or device failure was counted. */
export interface ThrottleTurn extends ThrottleVerdict {
  readonly counted: boolean;
}

/** A known-address mark is written again after this long (its TTL is knownAddressDays). */
const MARK_REFRESH_MS = 3600_000;
/** Marks remembered per process, so steady logins cost no write. */
const MARKS_REMEMBERED = 10_000;

/** Doubling from the base per failure, capped (0 failures: no delay). */
export function delayAfter(failures: number, settings: Pick<LoginThrottleSettings, 'baseDelayMs' | 'maxDelayMs'>): number {
  if (failures <= 0) return 0;
  return Math.min(settings.baseDelayMs * 2 ** Math.min(failures - 1, 30), settings.maxDelayMs);
}

export class LoginThrottle {
  constructor(
    private readonly counters: FailureCounters,
    private readonly settings: () => LoginThrottleSettings,
    private readonly sleep: (ms: number) => Promise<void> = (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
  ) {}

  /** How long this login waits before its credential is checked. Never throws (a counter outage = no delay). */
  async verdict(subject: ThrottleSubject): Promise<ThrottleVerdict> {
    const { delayMs, scope } = await this.assess(subject);
    return { delayMs, scope };
  }

  private async assess(subject: ThrottleSubject): Promise<ThrottleTurn> {
    const settings = this.settings();
    if (!settings.enabled) return { delayMs: 0, scope: null, counted: false };
    try {
      const keys = this.keys(subject);
      const counted: [ThrottleScope, string][] = [];
      if (keys.address !== null) counted.push(['address', keys.address]);
      if (keys.device !== null) counted.push(['device', keys.device]);
      if (keys.user !== null) counted.push(['user', keys.user]);
      const failures = await this.counters.counts(counted.map(([, key]) => key));
      // The user-wide count (failures from anywhere) spares addresses the user logged in from.
      const user = keys.user === null ? -1 : failures.length - 1;
      if (user >= 0 && failures[user]! > 0 && keys.known !== null && (await this.counters.marked(keys.known))) failures[user] = 0;
      let best: ThrottleVerdict = { delayMs: 0, scope: null };
      counted.forEach(([scope], i) => {
        const delayMs = delayAfter(failures[i] ?? 0, settings);
        if (delayMs > best.delayMs) best = { delayMs, scope };
      });
      return { ...best, counted: failures.some((n, i) => n > 0 && i !== user) };
    } catch {
      return { delayMs: 0, scope: null, counted: true };
    }
  }

  /** Waits out the verdict's delay, at most `maxWaitMs`; resolves with the delay it waited. */
  async wait(subject: ThrottleSubject, maxWaitMs = Infinity): Promise<ThrottleTurn> {
    const assessed = await this.assess(subject);
    const turn = assessed.delayMs > maxWaitMs ? { ...assessed, delayMs: maxWaitMs } : assessed;
    if (turn.delayMs > 0) await this.sleep(turn.delayMs);
    return turn;
  }

  /** The credential was wrong: count it for the address, the user and the device. Never throws. */
  async failed(subject: ThrottleSubject): Promise<void> {
    if (!this.settings().enabled) return;
    const keys = this.keys(subject);
    const keyed = [keys.user, keys.address, keys.device].filter((key): key is string => key !== null);
    await this.counters.add(keyed).catch(() => undefined);
  }

  /**
   * The credential was right: this address and this device start afresh, and the address is known
   * for the user. The user-wide count stays (others may still be guessing). Never throws.
   * `turn` (from wait()) saves the store work a login without failures does not need: nothing to
   * clear, and a known-address mark this process set within the hour is not written again.
   */
  async succeeded(subject: ThrottleSubject, turn?: ThrottleTurn): Promise<void> {
    const settings = this.settings();
    if (!settings.enabled) return;
    const keys = this.keys(subject);
    const clear = turn?.counted === false ? [] : [keys.address, keys.device].filter((key): key is string => key !== null);
    const now = Date.now();
    const mark = keys.known !== null && !(turn && (this.marked.get(keys.known) ?? -Infinity) > now - MARK_REFRESH_MS);
    await Promise.all([
      clear.length > 0 ? this.counters.clear(clear) : undefined,
      mark ? this.counters.mark(keys.known!, Math.round(settings.knownAddressDays * 86400)).then(() => this.remember(keys.known!, now)) : undefined,
    ]).catch(() => undefined);
  }

  /** Known-address marks this process wrote, and when (bounded: the oldest go first). */
  private readonly marked = new Map<string, number>();

  private remember(key: string, atMs: number): void {
    this.marked.delete(key);
    this.marked.set(key, atMs);
    if (this.marked.size > MARKS_REMEMBERED) this.marked.delete(this.marked.keys().next().value as string);
  }

  private keys(subject: ThrottleSubject): { address: string | null; user: string | null; device: string | null; known: string | null } {
    const address = addressKey(subject.remoteAddress);
    const user = subject.username?.toLowerCase();
    return {
      address: address === null ? null : `a:${address}`,
      user: user === undefined ? null : `u:${user}`,
      device: subject.credentialId ? `d:${subject.credentialId.toLowerCase()}` : null,
      known: address === null || user === undefined ? null : `k:${user}|${address}`,
    };
  }
}
