/**
 * The contract every QuotaStore implementation passes (memory on one node, Redis in a cluster).
 * Call `quotaStoreContract(name, make)` with a factory; `flush()` is called where a cluster store
 * would push its counts, so the same expectations hold for both.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { QuotaStore } from '../../src/backend/types.js';
import { FakeClock } from '../helpers/fake-clock.js';

/** Moves `clock` to the start of the next minute window. */
export function nextWindow(clock: FakeClock): void {
  clock.advance(60_000 - (clock.now() % 60_000));
}

export function quotaStoreContract(name: string, make: (clock: FakeClock) => QuotaStore): void {
  describe(`QuotaStore contract: ${name}`, () => {
    let clock: FakeClock;
    let store: QuotaStore;

    beforeEach(() => {
      clock = new FakeClock();
      store = make(clock);
      store.start();
    });

    afterEach(async () => {
      await store.stop();
    });

    it('grants up to max connections per user, and a released slot again', async () => {
      expect(await store.acquireConnection('alice', 'c1', 2)).toBe(true);
      expect(await store.acquireConnection('alice', 'c2', 2)).toBe(true);
      expect(await store.acquireConnection('alice', 'c3', 2)).toBe(false);
      expect(await store.acquireConnection('bob', 'c3', 2)).toBe(true); // users are independent
      store.releaseConnection('alice', 'c1');
      await store.flush();
      expect(await store.acquireConnection('alice', 'c3', 2)).toBe(true);
      expect(await store.acquireConnection('alice', 'c4', 2)).toBe(false);
    });

    it('counts a client id once: a takeover by the same id is granted and the old release keeps the slot', async () => {
      expect(await store.acquireConnection('alice', 'c1', 1)).toBe(true);
      expect(await store.acquireConnection('alice', 'c1', 1)).toBe(true);
      store.releaseConnection('alice', 'c1'); // the old connection closes
      await store.flush();
      expect(await store.acquireConnection('alice', 'c2', 1)).toBe(false);
      store.releaseConnection('alice', 'c1');
      store.releaseConnection('alice', 'c1'); // idempotent
      await store.flush();
      expect(await store.acquireConnection('alice', 'c2', 1)).toBe(true);
    });

    it('admits exactly perMinute messages per user in a window, then none until the next window', async () => {
      for (let i = 0; i < 5; i++) expect(store.takeMessage('alice', 5)).toBe(true);
      expect(store.takeMessage('alice', 5)).toBe(false);
      expect(store.takeMessage('bob', 5)).toBe(true);
      await store.flush();
      expect(store.takeMessage('alice', 5)).toBe(false);
      nextWindow(clock);
      await store.flush();
      for (let i = 0; i < 5; i++) expect(store.takeMessage('alice', 5)).toBe(true);
      expect(store.takeMessage('alice', 5)).toBe(false);
    });

    it('counts across flushes within a window', async () => {
      expect(store.takeMessage('carol', 3)).toBe(true);
      await store.flush();
      expect(store.takeMessage('carol', 3)).toBe(true);
      await store.flush();
      expect(store.takeMessage('carol', 3)).toBe(true);
      expect(store.takeMessage('carol', 3)).toBe(false);
    });
  });
}
