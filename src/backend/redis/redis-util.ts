/** Small helpers the Redis backend's parts share. */
import type { RedisClient } from './connect.js';

/**
 * EVAL with Buffer replies. ioredis has `evalBuffer` at run time but not in its typings, and its
 * `callBuffer('EVAL', ...)` drops the command name.
 */
export function evalBuffer(
  client: RedisClient,
  script: string,
  numKeys: number,
  ...args: (string | Buffer)[]
): Promise<unknown> {
  return (client as unknown as { evalBuffer(...a: unknown[]): Promise<unknown> }).evalBuffer(
    script,
    numKeys,
    ...args,
  );
}

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
