/**
 * The contract every RetainedStore implementation passes (memory now, Redis in cluster mode).
 * Call `retainedStoreContract(name, make)` from a test file with a factory for the implementation.
 * `set` may return a promise (Redis: settles once Redis has the write): the suite awaits it.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import type { RetainedStore } from '../../src/backend/types.js';
import type { Message } from '../../src/message.js';
import { FakeClock } from '../helpers/fake-clock.js';

const msg = (topic: string, payload: string, extra: Partial<Message> = {}): Message => ({
  topic,
  payload: Buffer.from(payload),
  qos: 1,
  retain: true,
  ...extra,
});

function collect(store: RetainedStore, filter: string): string[] {
  const out: string[] = [];
  store.match(filter, (m) => out.push(`${m.topic}=${m.payload.toString()}`));
  return out.sort();
}

export function retainedStoreContract(
  name: string,
  make: (clock: FakeClock) => RetainedStore | Promise<RetainedStore>,
): void {
  describe(`RetainedStore contract: ${name}`, () => {
    let clock: FakeClock;
    let store: RetainedStore;
    beforeEach(async () => {
      clock = new FakeClock();
      store = await make(clock);
    });

    it('[MQTT-3.3.1-5] stores the message and returns it by topic', async () => {
      await store.set(msg('a/b', 'x'));
      expect(store.get('a/b')?.payload.toString()).toBe('x');
      expect(store.size).toBe(1);
    });

    it('[MQTT-3.3.1-5] a new retained message replaces the previous one on the same topic', async () => {
      await store.set(msg('a/b', 'x'));
      await store.set(msg('a/b', 'y'));
      expect(collect(store, 'a/b')).toEqual(['a/b=y']);
      expect(store.size).toBe(1);
    });

    it('[MQTT-3.3.1-6] an empty payload deletes the retained message', async () => {
      await store.set(msg('a/b', 'x'));
      await store.set(msg('a/b', ''));
      expect(store.get('a/b')).toBeUndefined();
      expect(store.size).toBe(0);
    });

    it('matches wildcard filters without returning other topics', async () => {
      for (const t of ['a/b', 'a/c', 'a/b/c', 'b/b']) await store.set(msg(t, t));
      expect(collect(store, 'a/+')).toEqual(['a/b=a/b', 'a/c=a/c']);
      expect(collect(store, 'a/#')).toEqual(['a/b/c=a/b/c', 'a/b=a/b', 'a/c=a/c']);
      expect(collect(store, '+/b')).toEqual(['a/b=a/b', 'b/b=b/b']);
    });

    it('[MQTT-4.7.2-1] first-level wildcards do not match $ topics', async () => {
      await store.set(msg('$SYS/x', '1'));
      await store.set(msg('y', '2'));
      expect(collect(store, '#')).toEqual(['y=2']);
      expect(collect(store, '$SYS/#')).toEqual(['$SYS/x=1']);
    });

    it('[MQTT-3.3.2-5] an expired retained message is not returned and is removed', async () => {
      await store.set(msg('a', '1', { expiresAt: clock.now() + 1000 }));
      await store.set(msg('b', '2'));
      expect(collect(store, '#')).toEqual(['a=1', 'b=2']);
      clock.advance(1000);
      expect(collect(store, '#')).toEqual(['b=2']);
      expect(store.get('a')).toBeUndefined();
      expect(store.size).toBe(1);
    });
  });
}
