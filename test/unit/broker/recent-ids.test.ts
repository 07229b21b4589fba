/**
 * RecentIds: the dedupe ids a node delivered lately (a QoS 2 message routed again after its
 * publisher re-sent it reaches the node's subscribers once), bounded by a window and a count.
 */
import { describe, expect, it } from 'vitest';
import { RecentIds } from '../../../src/broker/recent-ids.js';

describe('RecentIds', () => {
  it('(#11.9) an id is new once within the window, and new again once the window passed', () => {
    let now = 0;
    const ids = new RecentIds(() => now, 1000, 100);
    expect(ids.add('a')).toBe(true);
    expect(ids.add('a')).toBe(false);
    now = 999;
    expect(ids.add('a')).toBe(false);
    now = 1001;
    expect(ids.add('a')).toBe(true);
  });

  it('keeps at most `max` ids, forgetting the oldest first', () => {
    const ids = new RecentIds(() => 0, 1000, 3);
    for (const id of ['a', 'b', 'c', 'd']) expect(ids.add(id)).toBe(true);
    expect(ids.add('d')).toBe(false);
    expect(ids.add('a')).toBe(true); // forgotten to make room
  });
});
