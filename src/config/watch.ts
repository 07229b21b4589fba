/**
 * Watching a file the config names (auth files, TLS certificates) for changes, however it is
 * replaced: written in place (an editor), renamed over (`shoal passwd`, `mv`), or swapped the way
 * the kubelet updates a mounted Secret or ConfigMap — it writes a new timestamped directory and
 * renames the `..data` symlink over the old one, so no event names the file itself (#14). The
 * directory is watched and any event in it, plus a poll (events can be lost: network and overlay
 * file systems, a replaced directory), compares the file's identity — what it resolves to, its
 * inode, size and modification time — with the last one seen. A change is reported once, after
 * bursts settle (debounce); a file that is missing for a moment (mid-swap) is not a change until it
 * is back.
 */
import { type FSWatcher, realpathSync, statSync, watch } from 'node:fs';
import path from 'node:path';
import type { Clock, TimerHandle } from '../clock.js';

export interface FileWatch {
  close(): void;
}

export interface WatchOptions {
  /** Quiet time after the last event before the change is reported. Default 100 ms. */
  debounceMs?: number;
  /** How often the file's identity is compared besides the events; 0 = never. Default 5 s. */
  pollMs?: number;
  /** The directory could not be watched (the poll still runs). */
  onError?: (err: Error) => void;
}

/** What the file is now: the path it resolves to and that file's inode, size and mtime; null if missing. */
function identity(file: string): string | null {
  try {
    const st = statSync(file);
    return `${realpathSync(file)}\n${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}`;
  } catch {
    return null;
  }
}

export function watchFile(
  file: string,
  onChange: () => void,
  clock: Clock,
  options: WatchOptions = {},
): FileWatch {
  const { debounceMs = 100, pollMs = 5000, onError = () => {} } = options;
  const dir = path.dirname(path.resolve(file));
  let seen = identity(file);
  let timer: TimerHandle | undefined;
  let closed = false;
  let watcher: FSWatcher | undefined;

  const compare = () => {
    if (closed) return;
    const now = identity(file);
    if (now === seen) return;
    seen = now;
    if (now !== null) onChange();
  };
  const settle = () => {
    timer?.cancel();
    timer = clock.setTimeout(() => {
      timer = undefined;
      compare();
    }, debounceMs);
  };
  try {
    // Every event of the directory: a swap of `..data` names only `..data` and its temporaries.
    watcher = watch(dir, { persistent: false }, settle);
    watcher.on('error', onError);
  } catch (err) {
    onError(err as Error);
  }
  const poll = pollMs > 0 ? clock.setInterval(compare, pollMs) : undefined;
  return {
    close() {
      closed = true;
      timer?.cancel();
      poll?.cancel();
      watcher?.close();
    },
  };
}
