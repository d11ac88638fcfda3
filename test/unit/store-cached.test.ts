// The in-process cache in front of the memory store: hits, LRU bound, max age, invalidation by
// change events, full clear on reconnect, and last-known state during an outage (bounded).
import { StoreUnavailableError, type AppPasswordCredential, type StoredFacts } from '../../src/store/device-store';
import { CachedDeviceStore, type CacheResult } from '../../src/store/cached-store';
import { AuditBuffer } from '../../src/store/audit-buffer';
import { MemoryDeviceStore } from '../../src/store/memory-store';
import { record, waitUntil } from '../integration/store-contract';

/** A memory store that can be switched "unreachable" and can simulate a reconnect. */
class FlakyStore extends MemoryDeviceStore {
  down = false;
  loads = 0;
  private readonly reconnectListeners = new Set<() => void>();
  override async loadFacts(deviceId: string | null, user: string, checkIds: readonly string[]): Promise<StoredFacts> {
    this.loads += 1;
    if (this.down) throw new StoreUnavailableError('test: store down');
    return super.loadFacts(deviceId, user, checkIds);
  }
  override async getAppPassword(credentialId: string): Promise<AppPasswordCredential | null> {
    if (this.down) throw new StoreUnavailableError('test: store down');
    return super.getAppPassword(credentialId);
  }
  override async appendAudit(event: Record<string, unknown>): Promise<string> {
    if (this.down) throw new StoreUnavailableError('test: store down');
    return super.appendAudit(event);
  }
  override onReconnect(listener: () => void): () => void {
    this.reconnectListeners.add(listener);
    return () => this.reconnectListeners.delete(listener);
  }
  reconnect(): void {
    for (const listener of this.reconnectListeners) listener();
  }
}

function setup(options: { maxEntries?: number; maxAgeMs?: number; lastKnownSeconds?: number; auditBufferMax?: number } = {}) {
  const clock = { now: 1_000_000 };
  const inner = new FlakyStore({ now: () => clock.now });
  const results: CacheResult[] = [];
  const cache = new CachedDeviceStore(inner, {
    maxEntries: options.maxEntries ?? 100,
    maxAgeMs: options.maxAgeMs ?? 30_000,
    outageLastKnownMaxSeconds: options.lastKnownSeconds ?? 300,
    now: () => clock.now,
    onResult: (r) => results.push(r),
    auditBufferMax: options.auditBufferMax,
  });
  return { clock, inner, cache, results };
}

test('a second lookup within maxAgeMs is served from memory; after it, the store is asked again', async () => {
  const { clock, inner, cache, results } = setup();
  await cache.start();
  await inner.putDevice(record('dev-1'), 3600);
  const first = await cache.loadFacts('dev-1', 'alice@example.com', ['banned-apps']);
  const second = await cache.loadFacts('dev-1', 'alice@example.com', ['banned-apps']);
  expect(second).toBe(first);
  expect(inner.loads).toBe(1);
  clock.now += 30_000;
  await cache.loadFacts('dev-1', 'alice@example.com', ['banned-apps']);
  expect(inner.loads).toBe(2);
  expect(results).toEqual(['miss', 'hit', 'stale']);
  expect(cache.stats()).toMatchObject({ hits: 1, misses: 1, stale: 1, lastKnown: 0, entries: 1 });
});

test('the cache holds at most maxEntries, dropping the least recently used', async () => {
  const { inner, cache } = setup({ maxEntries: 2 });
  await cache.loadFacts('a', 'u', []);
  await cache.loadFacts('b', 'u', []);
  await cache.loadFacts('a', 'u', []); // a is now the most recent
  await cache.loadFacts('c', 'u', []); // evicts b
  expect(cache.stats().entries).toBe(2);
  const before = inner.loads;
  await cache.loadFacts('a', 'u', []);
  expect(inner.loads).toBe(before);
  await cache.loadFacts('b', 'u', []);
  expect(inner.loads).toBe(before + 1);
});

test('a change event for a device or a user exemption drops exactly the entries concerned', async () => {
  const { inner, cache } = setup();
  await cache.start();
  await inner.putDevice(record('dev-1'), 3600);
  await inner.putDevice(record('dev-2', { user: 'bob@example.com' }), 3600);
  await new Promise((r) => setImmediate(r)); // let the change events of these two puts pass first
  await cache.loadFacts('dev-1', 'alice@example.com', []);
  await cache.loadFacts('dev-2', 'bob@example.com', []);
  expect(inner.loads).toBe(2);
  // Written to the inner store directly: only the change event tells the cache.
  await inner.putDevice(record('dev-1', { apps: [], reportedAt: '2026-01-11T00:00:00Z' }), 3600);
  await waitUntil(() => cache.stats().entries === 1);
  const facts = await cache.loadFacts('dev-1', 'alice@example.com', []);
  expect(facts.device?.state === 'found' && facts.device.record.apps).toEqual([]);
  await cache.loadFacts('dev-2', 'bob@example.com', []);
  expect(inner.loads).toBe(3);
  await inner.putExemption({ scope: 'user', subject: 'bob@example.com', expiresAt: '2026-01-20T00:00:00Z', note: '', createdBy: 'ops', createdAt: '2026-01-01T00:00:00Z' });
  await waitUntil(() => cache.stats().entries === 1);
  expect((await cache.loadFacts('dev-2', 'bob@example.com', [])).exemptions).toHaveLength(1);
});

test('writes through the cache invalidate locally at once; the kill switch clears everything', async () => {
  const { inner, cache } = setup();
  await cache.loadFacts('dev-1', 'alice@example.com', ['banned-apps']);
  expect(await cache.markFirstSeenNoncompliant('dev-1', 'banned-apps', 42)).toBe(42);
  expect((await cache.loadFacts('dev-1', 'alice@example.com', ['banned-apps'])).firstSeen).toEqual({ 'banned-apps': 42 });
  await cache.setFlag('kill-switch', '1');
  expect((await cache.loadFacts('dev-1', 'alice@example.com', ['banned-apps'])).killSwitch).toBe(true);
  expect(inner.loads).toBe(3);
});

test('a lookup that started before an invalidation is not cached', async () => {
  const { inner, cache } = setup();
  let release: () => void = () => undefined;
  const gate = new Promise<void>((r) => (release = r));
  const original = inner.loadFacts.bind(inner);
  inner.loadFacts = async (...args) => {
    const facts = await original(...args);
    await gate;
    return facts;
  };
  const pending = cache.loadFacts('dev-1', 'alice@example.com', []);
  await cache.putDevice(record('dev-1'), 3600); // invalidates while the old answer is in flight
  release();
  expect((await pending).device).toEqual({ state: 'missing' });
  expect((await cache.loadFacts('dev-1', 'alice@example.com', [])).device?.state).toBe('found');
});

test('a reconnect clears the whole cache (events may have been lost)', async () => {
  const { inner, cache } = setup();
  await cache.loadFacts('dev-1', 'u', []);
  await cache.getDevice('dev-1');
  expect(cache.stats().entries).toBe(2);
  inner.reconnect();
  expect(cache.stats().entries).toBe(0);
});

test('store down: last-known facts are served (marked) within the bound, refused after it, never invented', async () => {
  const { clock, inner, cache, results } = setup({ maxAgeMs: 1000, lastKnownSeconds: 60 });
  await inner.putDevice(record('dev-1'), 3600);
  const live = await cache.loadFacts('dev-1', 'alice@example.com', []);
  expect(live.fromLastKnown).toBeUndefined();
  inner.down = true;
  clock.now += 59_000;
  const lastKnown = await cache.loadFacts('dev-1', 'alice@example.com', []);
  expect(lastKnown).toEqual({ ...live, fromLastKnown: true });
  expect(inner.loads).toBe(2); // the store was asked first
  clock.now += 1_000;
  await expect(cache.loadFacts('dev-1', 'alice@example.com', [])).rejects.toBeInstanceOf(StoreUnavailableError);
  await expect(cache.loadFacts('dev-unseen', 'alice@example.com', [])).rejects.toBeInstanceOf(StoreUnavailableError);
  expect(results).toEqual(['miss', 'last-known', 'stale', 'miss']);
  expect(cache.stats()).toMatchObject({ lastKnown: 1, refused: 2 });
  inner.down = false;
  expect((await cache.loadFacts('dev-1', 'alice@example.com', [])).fromLastKnown).toBeUndefined();
});

test('outageLastKnownMaxSeconds 0 means tempfail at once; other errors are never covered up', async () => {
  const { clock, inner, cache } = setup({ maxAgeMs: 1000, lastKnownSeconds: 0 });
  await cache.loadFacts('dev-1', 'u', []);
  clock.now += 1000;
  inner.down = true;
  await expect(cache.loadFacts('dev-1', 'u', [])).rejects.toBeInstanceOf(StoreUnavailableError);
  const { clock: clock2, inner: inner2, cache: cache2 } = setup({ maxAgeMs: 1000 });
  await cache2.loadFacts('dev-1', 'u', []);
  clock2.now += 1000;
  inner2.loadFacts = async () => {
    throw new TypeError('a bug, not an outage');
  };
  await expect(cache2.loadFacts('dev-1', 'u', [])).rejects.toThrow('a bug, not an outage');
});

test('getDevice is cached but never answered from last-known state', async () => {
  const { clock, inner, cache } = setup({ maxAgeMs: 1000 });
  await inner.putDevice(record('dev-1'), 3600);
  expect((await cache.getDevice('dev-1')).state).toBe('found');
  const getDevice = jest.spyOn(inner, 'getDevice');
  expect((await cache.getDevice('dev-1')).state).toBe('found');
  expect(getDevice).not.toHaveBeenCalled();
  clock.now += 1000;
  getDevice.mockRejectedValue(new StoreUnavailableError('down'));
  await expect(cache.getDevice('dev-1')).rejects.toBeInstanceOf(StoreUnavailableError);
});

test('close() unsubscribes and closes the inner store', async () => {
  const { inner, cache } = setup();
  await cache.start();
  const close = jest.spyOn(inner, 'close');
  await cache.close();
  expect(close).toHaveBeenCalledTimes(1);
  expect(typeof cache.readAuditLast).toBe('function');
});

describe('outage: app passwords, availability and the audit buffer (issue 8 item 8)', () => {
  const credential: AppPasswordCredential = { credentialId: 'c1', user: 'alice@example.com', deviceId: 'dev-1', hash: 'h', createdAt: '2026-01-01T00:00:00Z' };

  it('an app password seen before is served while the store is down, within the outage bound only', async () => {
    const { clock, inner, cache } = setup({ lastKnownSeconds: 60 });
    await inner.putAppPassword(credential);
    expect(await cache.getAppPassword('c1')).toEqual(credential);
    inner.down = true;
    expect(await cache.getAppPassword('c1')).toEqual(credential);
    await expect(cache.getAppPassword('never-seen')).rejects.toBeInstanceOf(StoreUnavailableError);
    clock.now += 61_000;
    await expect(cache.getAppPassword('c1')).rejects.toBeInstanceOf(StoreUnavailableError);
  });

  it('a removed app password is not served from memory', async () => {
    const { inner, cache } = setup();
    await cache.putAppPassword(credential);
    await cache.getAppPassword('c1');
    await cache.removeAppPasswords('dev-1');
    inner.down = true;
    await expect(cache.getAppPassword('c1')).rejects.toBeInstanceOf(StoreUnavailableError);
  });

  it('availability changes are reported once each way; the audit of the outage is kept (bounded), written after, the rest counted', async () => {
    const { inner, cache } = setup({ auditBufferMax: 2 });
    const changes: boolean[] = [];
    cache.onAvailabilityChange((up) => changes.push(up));
    inner.down = true;
    for (const n of [1, 2, 3, 4]) expect(await cache.appendAudit({ n })).toBe('');
    expect(changes).toEqual([false]);
    expect(cache.auditBacklog()).toEqual({ buffered: 2, dropped: 2 });
    inner.down = false;
    await cache.ping();
    expect(changes).toEqual([false, true]);
    await cache.appendAudit({ n: 5 });
    await waitUntil(() => cache.auditBacklog().buffered === 0);
    const events = (await inner.readAudit('0', 100)).map((e) => e.event);
    expect(events).toEqual([{ n: 1, replayed: true }, { n: 2, replayed: true }, { n: 5 }]);
  });

  it('an event the store refuses for another reason than an outage is dropped and counted; the rest is written', async () => {
    let down = true;
    const written: Record<string, unknown>[] = [];
    const buffer = new AuditBuffer(
      {
        async appendAudit(event) {
          if (down) throw new StoreUnavailableError('test: down');
          if (event.bad) throw new Error('WRONGTYPE');
          written.push(event);
          return String(written.length);
        },
      },
      { maxEvents: 10 },
    );
    for (const event of [{ n: 1 }, { n: 2, bad: true }, { n: 3 }]) await buffer.append(event);
    down = false;
    await buffer.flush();
    expect(written).toEqual([{ n: 1, replayed: true }, { n: 3, replayed: true }]);
    expect(buffer.backlog()).toEqual({ buffered: 0, dropped: 1 });
  });
});

