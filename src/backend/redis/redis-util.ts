/** Small helpers the Redis backend's parts share. */
import type { Clock } from '../../clock.js';

export function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
    t.unref();
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(t);
        reject(e);
      },
    );
  });
}

/** The pause before a loop tries Redis again after a command failed. */
export function pause(clock: Clock): Promise<void> {
  return new Promise((resolve) => clock.setTimeout(resolve, 200));
}
