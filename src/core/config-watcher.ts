// Signals that configuration files changed (file watcher, SIGHUP); the runtime then validates and
// swaps. Folders are watched, not files: editors and `kubectl`-style config mounts replace a file by
// rename or symlink swap, and a watch on the old file would go silent after the first edit. A change
// is signalled only once the files are stable: a file rewritten in place in two chunks must never
// be read between them (its first chunk may well parse as a valid, weaker policy).
import { createHash } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';

export interface WatchOptions {
  /** Quiet time after the last event before the files are compared (editors write in bursts). */
  readonly debounceMs?: number;
  /**
   * A changed file is signalled only when its size, mtime and content hash are the same at both
   * ends of this interval; otherwise the interval starts again. Longer than the pause of any writer
   * that rewrites a file in place in pieces (one measured at 0.6 s between two chunks).
   */
  readonly settleMs?: number;
  /** Receives a throw from onChange and watcher failures; default: a process warning, never a crash. */
  readonly onError?: (err: unknown) => void;
}

export interface ConfigWatcher {
  /** Resolves once the files' current content is recorded; changes before that may go unsignalled. */
  readonly ready: Promise<void>;
  close(): void;
}

/** After a folder watch fails (folder removed, too many watches), try again this often. */
const REWATCH_MS = 1000;

/**
 * Calls `onChange` once per burst of changes to the content of any of `files`: events in their
 * folders are debounced, then each file's content hash is compared with the last one seen, so an
 * unrelated file, a swap file or a `touch` signals nothing, while a rename-replace, a symlink swap or
 * a delete-and-recreate does. A missing file counts as a change (the reload will say it is missing).
 * A change is signalled once the files stayed the same for `settleMs` (the reload then parses and
 * validates them as a whole, and keeps the configuration in force when they do not parse).
 */
export function watchConfig(files: readonly string[], onChange: () => void, options: WatchOptions = {}): ConfigWatcher {
  const { debounceMs = 300, settleMs = 1500, onError = (err: unknown) => process.emitWarning(`config watcher: ${String(err)}`) } = options;
  const paths = [...new Set(files.map((f) => path.resolve(f)))];
  const watchers = new Map<string, FSWatcher>();
  const rewatchTimers = new Set<NodeJS.Timeout>();
  let debounce: NodeJS.Timeout | undefined;
  let closed = false;

  let last: string[] = [];
  // Comparisons run one at a time, in order, starting with the baseline.
  const ready = fingerprints(paths).then((now) => {
    last = now.map((f) => f.hash);
  });
  let queue = ready;

  const compare = async (): Promise<void> => {
    let seen = await fingerprints(paths);
    if (seen.every((f, i) => f.hash === last[i])) return;
    // Changed: wait until nothing moves for a whole settle interval.
    for (;;) {
      await sleep(settleMs);
      if (closed) return;
      const now = await fingerprints(paths);
      if (now.every((f, i) => sameFingerprint(f, seen[i]!))) break;
      seen = now;
    }
    const hashes = seen.map((f) => f.hash);
    const changed = hashes.some((hash, i) => hash !== last[i]);
    last = hashes;
    if (changed && !closed) onChange();
  };

  const schedule = (): void => {
    if (closed) return;
    clearTimeout(debounce);
    debounce = setTimeout(() => {
      queue = queue.then(compare).catch(onError);
    }, debounceMs);
    debounce.unref(); // like the folder watches, never what keeps a process alive
  };

  const watchFolder = (dir: string): void => {
    if (closed) return;
    try {
      const watcher = watch(dir, { persistent: false }, schedule);
      watcher.on('error', (err) => {
        onError(err);
        watcher.close();
        watchers.delete(dir);
        rewatch(dir);
      });
      watchers.set(dir, watcher);
    } catch (err) {
      onError(err);
      rewatch(dir);
    }
  };

  const rewatch = (dir: string): void => {
    if (closed) return;
    const timer = setTimeout(() => {
      rewatchTimers.delete(timer);
      watchFolder(dir);
      schedule(); // whatever happened while unwatched is compared now
    }, REWATCH_MS);
    timer.unref();
    rewatchTimers.add(timer);
  };

  for (const dir of new Set(paths.map((p) => path.dirname(p)))) watchFolder(dir);

  return {
    ready,
    close(): void {
      closed = true;
      clearTimeout(debounce);
      for (const timer of rewatchTimers) clearTimeout(timer);
      for (const watcher of watchers.values()) watcher.close();
      watchers.clear();
    },
  };
}

interface Fingerprint {
  /** sha256 of the content, or "missing". */
  readonly hash: string;
  readonly size: number;
  readonly mtimeMs: number;
}

const MISSING: Fingerprint = { hash: 'missing', size: -1, mtimeMs: -1 };

const sameFingerprint = (a: Fingerprint, b: Fingerprint): boolean => a.hash === b.hash && a.size === b.size && a.mtimeMs === b.mtimeMs;

/** Size, mtime and content hash of each file (following symlinks). */
async function fingerprints(paths: readonly string[]): Promise<Fingerprint[]> {
  return Promise.all(
    paths.map(async (p) => {
      try {
        const [info, content] = await Promise.all([stat(p), readFile(p)]);
        return { hash: createHash('sha256').update(content).digest('hex'), size: info.size, mtimeMs: info.mtimeMs };
      } catch {
        return MISSING;
      }
    }),
  );
}

/** A wait that never keeps the process alive (like the folder watches). */
function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

/** Runs `handler` on every SIGHUP (the conventional "reload your configuration"); returns the unsubscribe. */
export function onSighup(handler: () => void): () => void {
  process.on('SIGHUP', handler);
  return () => {
    process.off('SIGHUP', handler);
  };
}
