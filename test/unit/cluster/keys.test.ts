/**
 * Redis key names (src/backend/redis/keys.ts): the keys of one client share a hash tag (one Redis
 * Cluster slot), whatever the client id starts with, and two ids never share keys.
 */
import { describe, expect, it } from 'vitest';
import { Keys, slotOf } from '../../../src/backend/redis/keys.js';

/** The hash tag Redis Cluster hashes: between the first `{` and the next `}`, if not empty. */
function hashTag(key: string): string {
  const open = key.indexOf('{');
  const close = open < 0 ? -1 : key.indexOf('}', open + 1);
  return close > open + 1 ? key.slice(open + 1, close) : key;
}

describe('Keys of a client', () => {
  const k = new Keys('p');
  const keysOf = (id: string) => [
    k.owner(id),
    k.session(id),
    k.queue(id),
    k.inflight(id),
    k.awaitingRelease(id),
  ];

  it('share one hash tag, also for ids starting with } or ~ or holding braces', () => {
    for (const id of ['plain', '}x', '~}x', '~x', 'a{b}c', '{x}', '}}', '~']) {
      const tags = new Set(keysOf(id).map(hashTag));
      expect(tags.size, id).toBe(1);
      expect([...tags][0], id).not.toBe('');
    }
  });

  it('differ for different ids, the } and ~ prefixes included', () => {
    const ids = ['}x', '~}x', '~~}x', 'x', '~x'];
    const owners = new Set(ids.map((id) => k.owner(id)));
    expect(owners.size).toBe(ids.length);
  });
});

describe('Keys of the partitions (#13.6)', () => {
  it('one partition keeps the {prefix} tag: the layout before partitions, key for key', () => {
    const k = new Keys('p');
    expect([k.routeLog(0), k.retained(0), k.nodeRoutes('A', 0), k.sessionRoutes(0)]).toEqual([
      '{p}:route-log',
      '{p}:retained',
      '{p}:node-routes:A',
      '{p}:session-routes',
    ]);
    expect(k.clientRoutes('c')).toBe('{p}:client-routes:c');
    expect(k.partitionOf('any/topic')).toBe(0);
  });

  it('each partition has a tag of its own, in the middle of its band of slots: 6 partitions on 3 masters (even slot ranges) are 2 per master', () => {
    const k = new Keys('shoal', 6);
    const slots = k.allPartitions().map((p) => slotOf(k.routeLog(p)));
    expect(slots).toEqual([1365, 4096, 6826, 9557, 12288, 15018]);
    // redis-cli --cluster create gives 3 masters 0-5460, 5461-10922, 10923-16383.
    const master = (slot: number) => (slot <= 5460 ? 0 : slot <= 10922 ? 1 : 2);
    expect(slots.map(master)).toEqual([0, 0, 1, 1, 2, 2]);
    // A partition's keys share its slot (its scripts change them together).
    for (const p of k.allPartitions()) {
      const same = [k.nodeRoutes('A', p), k.routeRuns(p), k.routeApplied(p), k.retained(p), k.retainedLog(p)];
      expect(
        new Set([...same, k.retainedExpiry(p), k.retainedSeq('w', p), k.sessionRoutes(p)].map(slotOf)).size,
      ).toBe(1);
    }
  });

  it("a client's route fence is in its session routes' partition; filters, topics and ids spread evenly", () => {
    const k = new Keys('shoal', 6);
    for (const id of ['a', 'b', 'client-17', '}x'])
      expect(slotOf(k.clientRoutes(id))).toBe(slotOf(k.sessionRoutes(k.partitionOf(id))));
    const counts = new Array(6).fill(0);
    for (let i = 0; i < 60_000; i++) counts[k.partitionOf(`sensors/${i}/temperature`)]++;
    for (const n of counts) expect(Math.abs(n - 10_000)).toBeLessThan(500);
    // Every node computes the same.
    expect(new Keys('shoal', 6).partitionOf('sensors/1/temperature')).toBe(
      k.partitionOf('sensors/1/temperature'),
    );
  });

  it('refuses a partition count outside 1..64', () => {
    expect(() => new Keys('p', 0)).toThrow(/1 to 64/);
    expect(() => new Keys('p', 65)).toThrow(/1 to 64/);
    expect(new Keys('p', 64).allPartitions()).toHaveLength(64);
  });
});
