// In-process cache in front of any DeviceStore: recent lookups are answered from memory (bounded,
// LRU, max age), dropped when the change channel says they changed, and — while the store is
// unreachable — served as last-known state for a bounded time, then refused (the caller tempfails).
// It also notices when the store becomes unreachable and reachable again (the runtime alerts), and
// keeps the audit events of an outage for later (audit-buffer.ts).
import { AuditBuffer, type AuditBacklog } from './audit-buffer';
import {
  StoreUnavailableError,
  type AppPasswordCredential,
  type ChangeEvent,
  type DeviceLookup,
  type DeviceRecord,
  type DeviceStore,
  type Exemption,
  type ExemptionScope,
  type StoredFacts,
} from './device-store';

/** The same words as the store_cache_total metric's `result` label (src/admin/metrics.ts). */
export type CacheResult = 'hit' | 'miss' | 'stale' | 'last-known';

export interface CacheStats {
  readonly hits: number;
  /** Not cached at all. */
  readonly misses: number;
  /** Cached but older than maxAgeMs, so asked again (each lookup counts as exactly one result). */
  readonly stale: number;
  /** Served from last-known state while the store was unavailable. */
  readonly lastKnown: number;
  /** Store unavailable and nothing recent enough cached: the error went to the caller. */
  readonly refused: number;
  readonly entries: number;
}

export interface CacheOptions {
  readonly maxEntries: number;
  readonly maxAgeMs: number;
  /** While the store cannot answer, cached facts younger than this are served; 0 = never. */
  readonly outageLastKnownMaxSeconds: number;
  readonly now?: () => number;
  /** Called for every cached lookup (wire it to Metrics.onStoreCache). */
  readonly onResult?: (result: CacheResult) => void;
  /** Audit events kept while the store is unreachable (default 10000). */
  readonly auditBufferMax?: number;
  /** An audit event did not fit in the outage buffer. */
  readonly onAuditDropped?: () => void;
}

interface Entry<T> {
  readonly value: T;
  readonly fetchedAtMs: number;
  readonly deviceId: string | null;
  readonly user: string | null;
}

/**
 * The ports the cache does not touch: answered by the inner store, unchanged. Everything else it
 * caches (loadFacts, getDevice) or must see to drop what it cached (the writes below, close).
 */
const PASSED_THROUGH = [
  'getDevices', 'listUserDevices', 'listDevices', 'getExemptions', 'listExemptions', 'getFirstSeenNoncompliant',
  'readAudit', 'readAuditLast', 'publish', 'subscribe', 'onReconnect', 'getFlag', 'loginFailureCounters',
] as const satisfies readonly (keyof DeviceStore)[];

type PassedThrough = (typeof PASSED_THROUGH)[number];

/** Merges with the class: the PASSED_THROUGH methods, which the constructor takes from the inner store. */
export interface CachedDeviceStore extends Pick<DeviceStore, PassedThrough> {}

export class CachedDeviceStore implements DeviceStore {
  readonly kind: DeviceStore['kind'];
  private readonly entries = new Map<string, Entry<StoredFacts | DeviceLookup>>();
  /** Cache keys by device id and by user, so one change event drops exactly its entries. */
  private readonly byDevice = new Map<string, Set<string>>();
  private readonly byUser = new Map<string, Set<string>>();
  /** Bumped on every invalidation: a fetch that started before one must not be cached. */
  private generation = 0;
  /** Set when a lookup failed because the store is unavailable; cleared by the next success. */
  private failedSinceMs: number | null = null;
  private readonly counts = { hits: 0, misses: 0, stale: 0, lastKnown: 0, refused: 0 };
  private readonly now: () => number;
  private readonly lastKnownMs: number;
  private unsubscribe: (() => Promise<void>) | null = null;
  private readonly offReconnect: () => void;
  /** App-password credentials the store returned, for outages only (always asked first otherwise). */
  private readonly credentials = new Map<string, { readonly value: AppPasswordCredential; readonly fetchedAtMs: number }>();
  private readonly audit: AuditBuffer;
  private readonly availability = new Set<(available: boolean) => void>();

  constructor(
    private readonly inner: DeviceStore,
    private readonly options: CacheOptions,
  ) {
    this.kind = inner.kind;
    this.now = options.now ?? Date.now;
    this.lastKnownMs = options.outageLastKnownMaxSeconds * 1000;
    // Events may have been lost while disconnected: nothing cached can be trusted any more.
    this.offReconnect = inner.onReconnect(() => {
      this.clear();
      this.reachable();
    });
    this.audit = new AuditBuffer(
      { appendAudit: (event) => this.watch(() => this.inner.appendAudit(event)) },
      { maxEvents: options.auditBufferMax ?? 10000, onDrop: () => options.onAuditDropped?.() },
    );
    // What the cache does not cache goes to the inner store as it is (readAuditLast only when it has it).
    for (const name of PASSED_THROUGH) {
      const method = inner[name] as ((...args: unknown[]) => unknown) | undefined;
      if (method) Object.defineProperty(this, name, { value: method.bind(inner) });
    }
  }

  /** Subscribes to the inner store's change channel; call once before serving (createStore does). */
  async start(): Promise<void> {
    this.unsubscribe ??= await this.inner.subscribe((event) => this.onChange(event));
  }

  stats(): CacheStats {
    return { ...this.counts, entries: this.entries.size };
  }

  /**
   * Called with false when the store stops answering (first failed call) and with true when it
   * answers again. Returns an unsubscribe function.
   */
  onAvailabilityChange(listener: (available: boolean) => void): () => void {
    this.availability.add(listener);
    return () => this.availability.delete(listener);
  }

  /** Audit events waiting for the store, and those dropped because the buffer was full. */
  auditBacklog(): AuditBacklog {
    return this.audit.backlog();
  }

  async ping(): Promise<void> {
    await this.watch(() => this.inner.ping());
  }

  /** Buffered (bounded, in order) while the store is unreachable; written when it answers again. */
  appendAudit(event: Record<string, unknown>): Promise<string> {
    return this.audit.append(event);
  }

  /**
   * Always asked of the store, so a credential removed by another instance is gone at once. While
   * the store is unreachable, a credential it returned within outageLastKnownMaxSeconds is served
   * (the device's facts then come from last-known state too, and the decision says so).
   */
  async getAppPassword(credentialId: string): Promise<AppPasswordCredential | null> {
    const known = this.credentials.get(credentialId);
    let value: AppPasswordCredential | null;
    try {
      value = await this.watch(() => this.inner.getAppPassword(credentialId));
    } catch (err) {
      if (err instanceof StoreUnavailableError && known && this.now() - known.fetchedAtMs < this.lastKnownMs) {
        this.count('last-known');
        return known.value;
      }
      throw err;
    }
    this.credentials.delete(credentialId);
    if (value && this.lastKnownMs > 0) {
      this.credentials.set(credentialId, { value, fetchedAtMs: this.now() });
      if (this.credentials.size > this.options.maxEntries) this.credentials.delete(this.credentials.keys().next().value as string);
    }
    return value;
  }

  async putAppPassword(credential: AppPasswordCredential): Promise<void> {
    try {
      await this.inner.putAppPassword(credential);
    } finally {
      this.credentials.delete(credential.credentialId);
    }
  }

  async removeAppPasswords(deviceId: string): Promise<number> {
    try {
      return await this.inner.removeAppPasswords(deviceId);
    } finally {
      for (const [id, known] of this.credentials) if (known.value.deviceId === deviceId) this.credentials.delete(id);
    }
  }

  /** Drops everything cached (also used on reconnect and by the kill switch). */
  clear(): void {
    this.generation += 1;
    this.entries.clear();
    this.byDevice.clear();
    this.byUser.clear();
    this.credentials.clear();
  }

  async loadFacts(deviceId: string | null, user: string, checkIds: readonly string[]): Promise<StoredFacts> {
    const key = `f\u0000${deviceId ?? ''}\u0000${user}\u0000${checkIds.join('\u0000')}`;
    return this.cached(key, deviceId, user, () => this.inner.loadFacts(deviceId, user, checkIds), (facts) => ({
      ...facts,
      fromLastKnown: true,
    }));
  }

  /** Cached like loadFacts, but never answered from last-known state (it cannot be marked as such). */
  async getDevice(deviceId: string): Promise<DeviceLookup> {
    return this.cached(`d\u0000${deviceId}`, deviceId, null, () => this.inner.getDevice(deviceId), null);
  }

  async putDevice(record: DeviceRecord, ttlSeconds: number): Promise<boolean> {
    try {
      return await this.inner.putDevice(record, ttlSeconds);
    } finally {
      this.invalidate(record.deviceId, null);
    }
  }

  async deleteDevice(deviceId: string): Promise<void> {
    try {
      await this.inner.deleteDevice(deviceId);
    } finally {
      this.invalidate(deviceId, null);
    }
  }

  async putExemption(exemption: Exemption): Promise<void> {
    try {
      await this.inner.putExemption(exemption);
    } finally {
      this.invalidateSubject(exemption.scope, exemption.subject);
    }
  }

  async removeExemption(scope: ExemptionScope, subject: string): Promise<void> {
    try {
      await this.inner.removeExemption(scope, subject);
    } finally {
      this.invalidateSubject(scope, subject);
    }
  }

  async markFirstSeenNoncompliant(deviceId: string, checkId: string, atMs: number): Promise<number> {
    try {
      return await this.inner.markFirstSeenNoncompliant(deviceId, checkId, atMs);
    } finally {
      this.invalidate(deviceId, null);
    }
  }

  async clearFirstSeenNoncompliant(deviceId: string, checkId: string): Promise<void> {
    try {
      await this.inner.clearFirstSeenNoncompliant(deviceId, checkId);
    } finally {
      this.invalidate(deviceId, null);
    }
  }

  async setFlag(name: string, value: string | null): Promise<void> {
    try {
      await this.inner.setFlag(name, value);
    } finally {
      this.clear(); // the kill switch is part of every cached StoredFacts
    }
  }

  async close(): Promise<void> {
    this.offReconnect();
    await this.unsubscribe?.();
    this.unsubscribe = null;
    this.clear();
    await this.audit.flush();
    await this.inner.close();
  }

  /**
   * Fresh entry → served. Otherwise ask the store; if it is unavailable and `asLastKnown` is given,
   * an entry younger than the outage bound is served through it. Never anything the store did not say.
   */
  private async cached<T extends StoredFacts | DeviceLookup>(
    key: string,
    deviceId: string | null,
    user: string | null,
    fetch: () => Promise<T>,
    asLastKnown: ((value: T) => T) | null,
  ): Promise<T> {
    const entry = this.entries.get(key) as Entry<T> | undefined;
    const age = entry ? this.now() - entry.fetchedAtMs : Infinity;
    // While the store is unreachable, change events are lost too: an entry is then only as good as
    // last-known state, so one older than the outage bound is not served without asking the store.
    const trusted = age < this.options.maxAgeMs && (!this.storeDown() || age < this.lastKnownMs);
    if (entry && trusted) {
      this.entries.delete(key); // re-insert: Map order is the LRU order
      this.entries.set(key, entry);
      this.count('hit');
      return entry.value;
    }
    const generation = this.generation;
    let value: T;
    try {
      value = await this.watch(fetch);
    } catch (err) {
      if (err instanceof StoreUnavailableError && entry && asLastKnown && age < this.lastKnownMs && this.entries.get(key) === entry) {
        this.count('last-known');
        return asLastKnown(entry.value);
      }
      this.count(entry ? 'stale' : 'miss');
      if (err instanceof StoreUnavailableError) this.counts.refused += 1;
      throw err;
    }
    this.count(entry ? 'stale' : 'miss');
    if (generation === this.generation) this.remember(key, { value, fetchedAtMs: this.now(), deviceId, user });
    return value;
  }

  /** Runs a store call and notes whether the store answered (unavailable → down; anything else → up). */
  private async watch<T>(call: () => Promise<T>): Promise<T> {
    try {
      const value = await call();
      this.reachable();
      return value;
    } catch (err) {
      if (err instanceof StoreUnavailableError) this.unreachable();
      else this.reachable();
      throw err;
    }
  }

  private unreachable(): void {
    if (this.failedSinceMs !== null) return;
    this.failedSinceMs = this.now();
    for (const listener of this.availability) listener(false);
  }

  private reachable(): void {
    if (this.failedSinceMs === null) return;
    this.failedSinceMs = null;
    for (const listener of this.availability) listener(true);
    void this.audit.flush();
  }

  /** The inner store says it is disconnected, or its last lookup failed as unavailable. */
  private storeDown(): boolean {
    return this.failedSinceMs !== null || this.inner.isConnected?.() === false;
  }

  private count(result: CacheResult): void {
    if (result === 'hit') this.counts.hits += 1;
    else if (result === 'miss') this.counts.misses += 1;
    else if (result === 'stale') this.counts.stale += 1;
    else this.counts.lastKnown += 1;
    this.options.onResult?.(result);
  }

  private remember(key: string, entry: Entry<StoredFacts | DeviceLookup>): void {
    this.drop(key);
    this.entries.set(key, entry);
    if (entry.deviceId !== null) addTo(this.byDevice, entry.deviceId, key);
    if (entry.user !== null) addTo(this.byUser, entry.user, key);
    while (this.entries.size > this.options.maxEntries) {
      const oldest = this.entries.keys().next().value as string;
      this.drop(oldest);
    }
  }

  private drop(key: string): void {
    const entry = this.entries.get(key);
    if (!entry) return;
    this.entries.delete(key);
    if (entry.deviceId !== null) removeFrom(this.byDevice, entry.deviceId, key);
    if (entry.user !== null) removeFrom(this.byUser, entry.user, key);
  }

  private invalidate(deviceId: string | null, user: string | null): void {
    this.generation += 1;
    for (const key of [...(deviceId === null ? [] : (this.byDevice.get(deviceId) ?? [])), ...(user === null ? [] : (this.byUser.get(user) ?? []))]) {
      this.drop(key);
    }
  }

  private invalidateSubject(scope: ExemptionScope, subject: string): void {
    if (scope === 'device') this.invalidate(subject, null);
    else this.invalidate(null, subject);
  }

  private onChange(event: ChangeEvent): void {
    switch (event.kind) {
      case 'device':
        this.invalidate(event.deviceId, null);
        break;
      case 'exemption':
        this.invalidateSubject(event.scope, event.subject);
        break;
      case 'kill-switch':
        this.clear();
        break;
      case 'policy':
        break; // a policy change does not change stored facts
    }
  }
}

function addTo(index: Map<string, Set<string>>, name: string, key: string): void {
  let keys = index.get(name);
  if (!keys) index.set(name, (keys = new Set()));
  keys.add(key);
}

function removeFrom(index: Map<string, Set<string>>, name: string, key: string): void {
  const keys = index.get(name);
  if (!keys) return;
  keys.delete(key);
  if (keys.size === 0) index.delete(name);
}
