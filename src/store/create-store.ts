// Builds the device store the configuration asks for (memory or Redis), behind the in-process cache.
import type { StoreConfig } from '../core/config-types';
import type { Logger } from '../core/log';
import { CachedDeviceStore, type CacheResult } from './cached-store';
import type { DeviceStore } from './device-store';
import { MemoryDeviceStore } from './memory-store';
import { RedisDeviceStore } from './redis/store';

export interface CreateStoreOptions {
  /** Called for every cached lookup (wire it to Metrics.onStoreCache). */
  readonly onCacheResult?: (result: CacheResult) => void;
  /** An audit event did not fit in the outage buffer (store.auditBufferMax). */
  readonly onAuditDropped?: () => void;
}

/**
 * The store for `config.store`, wrapped in the cache and subscribed to its change channel. With Redis
 * it waits up to connectTimeoutMs for Redis; if Redis is down it starts anyway (lookups fail with
 * StoreUnavailableError, so logins tempfail) and connects in the background.
 */
export async function createStore(config: StoreConfig, log: Logger, options: CreateStoreOptions = {}): Promise<CachedDeviceStore> {
  const firstSeenTtlSeconds = config.recordTtlHours * 3600;
  let inner: DeviceStore;
  if (config.type === 'memory') {
    log.warn('embedded in-memory store: single instance, device records are lost on restart; configure store.type: redis for production');
    inner = new MemoryDeviceStore({ auditMaxLen: config.auditMaxLen, firstSeenTtlSeconds, log });
  } else {
    const redis = config.redis;
    if (!redis) throw new TypeError('store.type is redis but store.redis is not set');
    const store = new RedisDeviceStore({ redis, auditMaxLen: config.auditMaxLen, firstSeenTtlSeconds, log });
    // Where, never the password.
    const where = redis.mode === 'standalone' ? `${redis.host ?? '127.0.0.1'}:${redis.port ?? 6379}` : redis.mode;
    if (await store.waitReady(redis.connectTimeoutMs)) {
      log.info('device store: redis', { mode: redis.mode, where, keyPrefix: redis.keyPrefix });
    } else {
      log.error('device store: redis not reachable at start; logins get a temporary failure until it is (reconnecting in the background)', {
        mode: redis.mode,
        where,
      });
    }
    inner = store;
  }
  const cached = new CachedDeviceStore(inner, {
    maxEntries: config.cache.maxEntries,
    maxAgeMs: config.cache.maxAgeMs,
    outageLastKnownMaxSeconds: config.outageLastKnownMaxSeconds,
    onResult: options.onCacheResult,
    auditBufferMax: config.auditBufferMax,
    onAuditDropped: options.onAuditDropped,
  });
  await cached.start();
  return cached;
}
