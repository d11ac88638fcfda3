// Runs an async function over a list with a bounded number of calls in flight (a worker pool).

/**
 * `fn` over every item with at most `limit` calls in flight; a new call starts as soon as one ends
 * (not batch by batch, where each batch waits for its slowest call). The first failure stops new
 * calls from starting and rejects.
 */
export async function eachWithConcurrency<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  let failed = false;
  const worker = async () => {
    while (!failed && next < items.length) {
      const item = items[next++]!;
      try {
        await fn(item);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
