// Signals that configuration files changed (file watcher, SIGHUP); the runtime then validates and
// swaps. Folders are watched, not files: editors and `kubectl`-style config mounts replace a file by
// rename or symlink swap, and a watch on the old file would go silent after the first edit.
import { createHash } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';

export interface WatchOptions {
  /** Quiet time after the last event before the files are compared (editors write in bursts). */
  readonly debounceMs?: number;
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
 */
export function watchConfig(files: readonly string[], onChange: () => void, options: WatchOptions = {}): ConfigWatcher {
  const { debounceMs = 300, onError = (err: unknown) => process.emitWarning(`config watcher: ${String(err)}`) } = options;
  const paths = [...new Set(files.map((f) => path.resolve(f)))];
  const watchers = new Map<string, FSWatcher>();
  const rewatchTimers = new Set<NodeJS.Timeout>();
  let debounce: NodeJS.Timeout | undefined;
  let closed = false;

  let last: string[] = [];
  // Comparisons run one at a time, in order, starting with the baseline.
  const ready = fingerprints(paths).then((now) => {
    last = now;
  });
  let queue = ready;

  const compare = async (): Promise<void> => {
    const now = await fingerprints(paths);
    const changed = now.some((hash, i) => hash !== last[i]);
    last = now;
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

/** Content hash of each file (following symlinks), or "missing". */
async function fingerprints(paths: readonly string[]): Promise<string[]> {
  return Promise.all(
    paths.map((p) =>
      readFile(p).then(
        (content) => createHash('sha256').update(content).digest('hex'),
        () => 'missing',
      ),
    ),
  );
}

/** Runs `handler` on every SIGHUP (the conventional "reload your configuration"); returns the unsubscribe. */
export function onSighup(handler: () => void): () => void {
  process.on('SIGHUP', handler);
  return () => {
    process.off('SIGHUP', handler);
  };
}
