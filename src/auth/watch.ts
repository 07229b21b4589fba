/**
 * Watching a file for changes, the way editors and tools replace files: the directory is watched
 * (a rename over the file keeps working, where a watch on the old inode would go silent), events for
 * other names are ignored, and bursts are debounced into one call.
 */
import { type FSWatcher, watch } from 'node:fs';
import path from 'node:path';
import type { Clock, TimerHandle } from '../clock.js';

export interface FileWatch {
  close(): void;
}

export function watchFile(
  file: string,
  onChange: () => void,
  clock: Clock,
  debounceMs = 100,
  onError: (err: Error) => void = () => {},
): FileWatch {
  const dir = path.dirname(path.resolve(file));
  const name = path.basename(file);
  let timer: TimerHandle | undefined;
  let closed = false;
  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(dir, { persistent: false }, (_event, changed) => {
      if (closed || (changed !== null && changed !== name)) return;
      timer?.cancel();
      timer = clock.setTimeout(() => {
        timer = undefined;
        if (!closed) onChange();
      }, debounceMs);
    });
    watcher.on('error', onError);
  } catch (err) {
    onError(err as Error);
  }
  return {
    close() {
      closed = true;
      timer?.cancel();
      watcher?.close();
    },
  };
}
