// Failed-login counters for the login throttle, shared by every instance through Redis (or in
// process for the embedded store), with a fixed window per key. rate-limiter-flexible does the
// counting: an atomic INCR + EXPIRE script in Redis, and an in-memory "insurance" counter that
// answers while Redis is unreachable, so an outage neither crashes a login nor stops the counting.
import { RateLimiterMemory, RateLimiterRedis, type RateLimiterAbstract } from 'rate-limiter-flexible';
import type { Cluster, Redis } from 'ioredis';

/** Counts are never used to refuse: the limit only has to be out of reach. */
const NEVER_REJECT = Number.MAX_SAFE_INTEGER;

export interface FailureCounters {
  /** The failures counted for each key within its window (0 when none), in the order asked. */
  counts(keys: readonly string[]): Promise<number[]>;
  /** Count one failure for each key. */
  add(keys: readonly string[]): Promise<void>;
  /** Forget the keys (a successful login from that address, for that device). */
  clear(keys: readonly string[]): Promise<void>;
  /** Remember a key for `seconds` (an address a user logged in from). */
  mark(key: string, seconds: number): Promise<void>;
  marked(key: string): Promise<boolean>;
}

export interface FailureCounterOptions {
  /** How long a failure counts (fixed window from the first failure of a key). */
  readonly windowSeconds: number;
  /** Redis client and key prefix; absent = in process (embedded store, tests). */
  readonly redis?: { readonly client: Redis | Cluster; readonly keyPrefix: string };
}

/**
 * Node timers hold at most 2^31-1 ms (≈ 24.8 days). rate-limiter-flexible's memory storage sets one
 * timer per key to forget it, and a longer one fires after 1 ms (TimeoutOverflowWarning): a 30-day
 * known-address mark was forgotten at once in memory. Memory keys are capped to the timer's range.
 */
const MAX_MEMORY_SECONDS = Math.floor((2 ** 31 - 1) / 1000);

class TimerSafeMemoryLimiter extends RateLimiterMemory {
  override set(key: string | number, points: number, secDuration: number, options?: Record<string, unknown>): ReturnType<RateLimiterMemory['set']> {
    return super.set(key, points, Math.min(secDuration, MAX_MEMORY_SECONDS), options);
  }
}

export function createFailureCounters(options: FailureCounterOptions): FailureCounters {
  const memory = (keyPrefix: string): RateLimiterMemory => new TimerSafeMemoryLimiter({ keyPrefix, points: NEVER_REJECT, duration: options.windowSeconds });
  const limiter = (name: string): RateLimiterAbstract => {
    if (!options.redis) return memory(name);
    return new RateLimiterRedis({
      storeClient: options.redis.client,
      keyPrefix: `${options.redis.keyPrefix}${name}`,
      points: NEVER_REJECT,
      duration: options.windowSeconds,
      // The lookup client does not queue while disconnected; answer from memory at once instead.
      rejectIfRedisNotReady: true,
      insuranceLimiter: memory(name),
    });
  };
  const failures = limiter('login-failures');
  const marks = limiter('login-known');
  return {
    async counts(keys) {
      const redis = options.redis?.client;
      if (redis?.status === 'ready') {
        try {
          // A count is all a verdict needs: one GET per key (auto-pipelined into one round trip,
          // per node in Cluster), not the library's MULTI/GET/PTTL/EXEC for each.
          const values = await Promise.all(keys.map((key) => redis.get(failures.getKey(key))));
          return values.map((value) => (value === null ? 0 : Number(value) || 0));
        } catch {
          // Fall through: the limiter answers from its in-memory insurance while Redis does not.
        }
      }
      const results = await Promise.all(keys.map((key) => failures.get(key)));
      return results.map((res) => res?.consumedPoints ?? 0);
    },
    async add(keys) {
      await Promise.all(keys.map((key) => failures.penalty(key, 1)));
    },
    async clear(keys) {
      await Promise.all(keys.map((key) => failures.delete(key)));
    },
    async mark(key, seconds) {
      await marks.set(key, 1, seconds);
    },
    async marked(key) {
      return (await marks.get(key)) !== null;
    },
  };
}
