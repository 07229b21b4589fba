/**
 * Redis key names (src/backend/redis/keys.ts): the keys of one client share a hash tag (one Redis
 * Cluster slot), whatever the client id starts with, and two ids never share keys.
 */
import { describe, expect, it } from 'vitest';
import { Keys } from '../../../src/backend/redis/keys.js';

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
