// Follows the shared audit stream for the console: the newest entries in memory (filtered views,
// reference-id search, live updates) and per-minute counts of the last day (the overview charts),
// so a page view costs no stream scan. Every instance's decisions are in the stream, so every
// console sees them all.
import type { Logger } from '../core/log';
import { errorText } from '../core/errors';
import type { AuditEntry } from '../store/device-store';
import type { Bucket } from './charts';

export interface FeedSource {
  readAudit(afterId: string, count: number): Promise<AuditEntry[]>;
}

type Counts = { allowed: number; refused: number; failed: number };
/** Key of the all-logins series; check series use the check id. */
export const ALL = '';
const MINUTE = 60_000;
const DAY = 24 * 60 * MINUTE;
/**
 * Entries per read. Small, so a page view or a login waits behind at most one page's parsing while
 * the feed reads the last day at start (bench:console: 2,000 per read left the first overview after
 * start at 1.2-2.1 s under load).
 */
const PAGE = 500;
/** A reference-id search past the entries in memory reads at most this many pages (the default stream cap is 100,000). */
const DEEP_PAGES = 240;

/** A reference id the stream search did not find is not searched for again for this long. */
const MISS_MEMORY_MS = 60_000;
const MISSES_KEPT = 1000;

/** Orders stream ids: Redis `<ms>-<seq>`, or the memory store's counters. */
function compareIds(a: string, b: string): number {
  const [am = 0, as = 0] = a.split('-').map(Number);
  const [bm = 0, bs = 0] = b.split('-').map(Number);
  return am - bm || as - bs;
}

export interface DecisionEvent {
  readonly msg?: unknown;
  readonly action?: unknown;
  readonly checks?: unknown;
  readonly at?: unknown;
}

export class AuditFeed {
  private ring: AuditEntry[] = [];
  private readonly minutes = new Map<number, Map<string, Counts>>();
  private cursor = '0';
  private timer: NodeJS.Timeout | null = null;
  private polling: Promise<void> | null = null;
  private readonly listeners = new Set<(entries: readonly AuditEntry[]) => void>();
  private deepSearch: Promise<unknown> | null = null;
  /** Reference ids a stream search did not find lately (ref → when): a reload does not read the stream again. */
  private readonly misses = new Map<string, number>();
  /** False until the last day has been counted once. */
  ready = false;

  constructor(
    private readonly source: FeedSource,
    private readonly log: Logger,
    private readonly ringSize: () => number,
    private readonly now: () => number = Date.now,
  ) {}

  start(pollMs = 1000): void {
    // Redis stream ids are `<ms>-<seq>`: start a day back instead of reading the whole stream.
    void this.poll(true);
    this.timer = setInterval(() => void this.poll(false), pollMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.polling;
  }

  /** Newest first. */
  newest(): readonly AuditEntry[] {
    return [...this.ring].reverse();
  }

  /**
   * The decision a reference id names: in the newest entries kept in memory, else by reading the
   * stream from its oldest entry up to them (bounded by DEEP_PAGES; one such search at a time, so
   * a burst of lookups of old ids reads the stream once after another, never all at once).
   */
  async findRef(refId: string): Promise<{ entry: AuditEntry | null; searchedStream: boolean }> {
    const wanted = refId.toUpperCase();
    const named = (e: AuditEntry) => String((e.event as { refId?: unknown }).refId).toUpperCase() === wanted;
    await this.refresh();
    for (let i = this.ring.length - 1; i >= 0; i--) if (named(this.ring[i]!)) return { entry: this.ring[i]!, searchedStream: false };
    // A decision written since is in the ring (checked above): a recent miss stays a miss.
    if ((this.misses.get(wanted) ?? -Infinity) > this.now() - MISS_MEMORY_MS) return { entry: null, searchedStream: false };
    const run = (this.deepSearch ?? Promise.resolve()).then(() => this.searchOlder(named));
    this.deepSearch = run.catch(() => undefined);
    const entry = await run;
    if (!entry) {
      this.misses.delete(wanted);
      this.misses.set(wanted, this.now());
      if (this.misses.size > MISSES_KEPT) this.misses.delete(this.misses.keys().next().value!);
    }
    return { entry, searchedStream: true };
  }

  private async searchOlder(named: (e: AuditEntry) => boolean): Promise<AuditEntry | null> {
    const oldestKept = this.ring[0]?.id;
    let cursor = '0';
    for (let pages = 0; pages < DEEP_PAGES; pages++) {
      const entries = await this.source.readAudit(cursor, PAGE);
      for (const entry of entries) {
        if (oldestKept !== undefined && compareIds(entry.id, oldestKept) >= 0) return null;
        if (named(entry)) return entry;
      }
      if (entries.length < PAGE) return null;
      cursor = entries[entries.length - 1]!.id;
    }
    return null;
  }

  subscribe(listener: (entries: readonly AuditEntry[]) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Reads whatever is new now (tests and pages call it to be current). */
  refresh(): Promise<void> {
    return this.poll(false);
  }

  private poll(first: boolean): Promise<void> {
    this.polling ??= this.read(first).finally(() => {
      this.polling = null;
    });
    return this.polling;
  }

  private async read(first: boolean): Promise<void> {
    try {
      if (first) {
        const probe = await this.source.readAudit('0', 1);
        if (probe[0] && /^\d+-\d+$/.test(probe[0].id)) this.cursor = `${Math.max(0, this.now() - DAY)}-0`;
      }
      // Bounded per poll; what is left is read at the next one.
      for (let pages = 0; pages < 500; pages++) {
        const entries = await this.source.readAudit(this.cursor, PAGE);
        if (entries.length === 0) break;
        this.cursor = entries[entries.length - 1]!.id;
        this.take(entries, !first || this.ready);
        if (entries.length < PAGE) break;
      }
      this.ready = true;
    } catch (err) {
      this.log.warn('console: the audit stream could not be read', { error: errorText(err) });
    }
  }

  private take(entries: readonly AuditEntry[], notify: boolean): void {
    for (const entry of entries) this.count(entry.event as DecisionEvent);
    this.ring.push(...entries);
    const max = this.ringSize();
    if (this.ring.length > max * 1.25) this.ring = this.ring.slice(-max);
    this.prune();
    if (!notify) return;
    for (const listener of this.listeners) {
      try {
        listener(entries);
      } catch (err) {
        this.log.warn('console: a live audit listener failed', { error: errorText(err) });
      }
    }
  }

  private count(event: DecisionEvent): void {
    if (event.msg !== 'decision') return;
    const at = typeof event.at === 'string' ? Date.parse(event.at) : NaN;
    // Never later than now: a minute from the future (a record written to the stream directly)
    // would never be pruned.
    const minute = Math.floor((Number.isNaN(at) ? this.now() : Math.min(at, this.now())) / MINUTE) * MINUTE;
    if (minute < this.now() - DAY) return;
    let series = this.minutes.get(minute);
    if (!series) this.minutes.set(minute, (series = new Map()));
    const bump = (key: string, field: keyof Counts) => {
      let counts = series!.get(key);
      if (!counts) series!.set(key, (counts = { allowed: 0, refused: 0, failed: 0 }));
      counts[field]++;
    };
    bump(ALL, event.action === 'allow' ? 'allowed' : event.action === 'deny' ? 'refused' : 'failed');
    if (!Array.isArray(event.checks)) return;
    for (const check of event.checks as { checkId?: unknown; outcome?: unknown }[]) {
      if (typeof check?.checkId !== 'string') continue;
      if (check.outcome === 'pass') bump(check.checkId, 'allowed');
      else if (check.outcome === 'fail') bump(check.checkId, 'refused');
      else if (check.outcome === 'error') bump(check.checkId, 'failed');
    }
  }

  private prune(): void {
    const oldest = this.now() - DAY - MINUTE;
    for (const minute of this.minutes.keys()) if (minute < oldest) this.minutes.delete(minute);
  }

  /** Series ids seen in the last day (check ids), besides ALL. */
  seriesKeys(): string[] {
    const keys = new Set<string>();
    for (const series of this.minutes.values()) for (const key of series.keys()) if (key !== ALL) keys.add(key);
    return [...keys].sort();
  }

  /** `count` buckets of `bucketMinutes` each, ending now, for one series. */
  buckets(key: string, count: number, bucketMinutes: number): Bucket[] {
    const width = bucketMinutes * MINUTE;
    const end = Math.floor(this.now() / MINUTE) * MINUTE + MINUTE;
    const out: Bucket[] = [];
    for (let i = count - 1; i >= 0; i--) {
      const start = end - (i + 1) * width;
      const b = { start, allowed: 0, refused: 0, failed: 0 };
      for (let m = start; m < start + width; m += MINUTE) {
        const c = this.minutes.get(m)?.get(key);
        if (c) {
          b.allowed += c.allowed;
          b.refused += c.refused;
          b.failed += c.failed;
        }
      }
      out.push(b);
    }
    return out;
  }
}
