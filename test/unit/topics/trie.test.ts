import { describe, expect, it } from 'vitest';
import { TopicTrie } from '../../../src/topics/index.js';

/** All (filter, key) pairs that `match` visits, as sorted `filter|key=value` strings. */
function matched<V>(trie: TopicTrie<V>, topic: string): string[] {
  const out: string[] = [];
  trie.match(topic, (key, value, filter) => out.push(`${filter}|${key}=${String(value)}`));
  return out.sort();
}

describe('TopicTrie add/remove', () => {
  it('add returns true only for the first subscriber of a filter', () => {
    const trie = new TopicTrie<number>();
    expect(trie.add('a/b', 'c1', 1)).toBe(true);
    expect(trie.add('a/b', 'c2', 2)).toBe(false);
    expect(trie.add('a/b', 'c1', 3)).toBe(false); // replaces the value
    expect(trie.get('a/b', 'c1')).toBe(3);
    expect(trie.filterCount).toBe(1);
    expect(trie.entryCount).toBe(2);
    expect(trie.add('a', 'c1', 4)).toBe(true); // a prefix of an existing filter is its own filter
    expect(trie.add('a/+', 'c1', 5)).toBe(true);
    expect(trie.add('a/#', 'c1', 6)).toBe(true);
    expect(trie.filterCount).toBe(4);
    expect(trie.entryCount).toBe(5);
  });

  it('remove returns true only when the last key of a filter goes', () => {
    const trie = new TopicTrie<string>();
    trie.add('a/b', 'c1', 'x');
    trie.add('a/b', 'c2', 'y');
    trie.add('a/b', 'c3', 'z');
    expect(trie.remove('a/b', 'nobody')).toBe(false);
    expect(trie.remove('a/c', 'c1')).toBe(false);
    expect(trie.remove('a', 'c1')).toBe(false); // an intermediate node holds no entries
    expect(trie.remove('a/b', 'c1')).toBe(false);
    expect(trie.remove('a/b', 'c1')).toBe(false); // already gone
    expect(trie.remove('a/b', 'c2')).toBe(false);
    expect(trie.entries('a/b')).toEqual(new Map([['c3', 'z']]));
    expect(trie.remove('a/b', 'c2')).toBe(false);
    expect(trie.remove('a/b', 'c3')).toBe(true);
    expect(trie.remove('a/b', 'c3')).toBe(false);
    expect(trie.has('a/b')).toBe(false);
    expect(trie.filterCount).toBe(0);
    expect(trie.entryCount).toBe(0);
  });

  it('get, has, countOf and entries reflect the stored entries', () => {
    const trie = new TopicTrie<number>();
    trie.add('a/+', 'c1', 1);
    expect(trie.has('a/+')).toBe(true);
    expect(trie.has('a')).toBe(false);
    expect(trie.has('a/#')).toBe(false);
    expect(trie.get('a/+', 'c1')).toBe(1);
    expect(trie.get('a/+', 'c2')).toBeUndefined();
    expect(trie.get('a/b', 'c1')).toBeUndefined(); // '+' is not looked up as a literal
    expect(trie.countOf('a/+')).toBe(1);
    expect(trie.entries('a/+')).toEqual(new Map([['c1', 1]]));
    trie.add('a/+', 'c2', 2);
    expect(trie.countOf('a/+')).toBe(2);
    expect(trie.entries('a/+')).toEqual(
      new Map([
        ['c1', 1],
        ['c2', 2],
      ]),
    );
    expect(trie.entries('a')).toBeUndefined();
    expect(trie.countOf('zzz')).toBe(0);
  });

  it('prunes empty nodes on remove', () => {
    const trie = new TopicTrie<number>();
    trie.add('a/b/c/d', 'k', 1);
    expect(trie.nodeCount).toBe(4);
    trie.add('a/b/x', 'k', 1);
    trie.add('a/+/#', 'k', 1);
    trie.add('a', 'k', 1);
    // a, a/b, a/b/c, a/b/c/d, a/b/x, a/+, a/+/#
    expect(trie.nodeCount).toBe(7);
    expect(trie.remove('a/b/c/d', 'k')).toBe(true);
    expect(trie.nodeCount).toBe(5); // a/b/c and a/b/c/d gone, a/b still holds a/b/x
    expect(trie.remove('a/+/#', 'k')).toBe(true);
    expect(trie.nodeCount).toBe(3);
    expect(trie.remove('a/b/x', 'k')).toBe(true);
    expect(trie.nodeCount).toBe(1); // `a` still has an entry
    expect(trie.filterCount).toBe(1);
    expect(trie.remove('a', 'k')).toBe(true);
    expect(trie.nodeCount).toBe(0);
    expect(trie.filterCount).toBe(0);
    expect([...trie.filters()]).toEqual([]);
  });

  it('keeps working after literal children go from one to many and back', () => {
    const trie = new TopicTrie<number>();
    const names = ['a', 'b', 'c', 'd'];
    for (const n of names) trie.add(`x/${n}`, 'k', 1);
    for (const n of names.slice(0, 3)) expect(trie.remove(`x/${n}`, 'k')).toBe(true);
    expect(matched(trie, 'x/d')).toEqual(['x/d|k=1']);
    expect(trie.add('x/a', 'k', 2)).toBe(true);
    expect(matched(trie, 'x/a')).toEqual(['x/a|k=2']);
    expect(trie.nodeCount).toBe(3);
  });

  it('[MQTT-4.7.1-2] [MQTT-4.7.1-3] [MQTT-4.7.3-1] add rejects invalid filters', () => {
    const trie = new TopicTrie<number>();
    for (const f of ['', 'a/#/b', 'a+', '#a', 'a\u0000']) {
      expect(() => trie.add(f, 'k', 1), f).toThrow(TypeError);
    }
    expect(trie.filterCount).toBe(0);
    expect(trie.nodeCount).toBe(0);
  });

  it('remove and lookups tolerate invalid filters', () => {
    const trie = new TopicTrie<number>();
    trie.add('a/#', 'k', 1);
    expect(trie.remove('a/#/b', 'k')).toBe(false);
    expect(trie.has('a/#/b')).toBe(false);
    expect(trie.get('', 'k')).toBeUndefined();
  });

  it('filters() lists every filter with entries, and clear() empties the trie', () => {
    const trie = new TopicTrie<number>();
    const filters = ['#', '+', 'a', 'a/b', 'a/+/c', '/', '$SYS/#', 'a//b'];
    for (const f of filters) trie.add(f, 'k', 1);
    expect([...trie.filters()].sort()).toEqual([...filters].sort());
    const seen: string[] = [];
    trie.forEach((key, _v, filter) => {
      seen.push(`${filter}|${key}`);
    });
    expect(seen.sort()).toEqual(filters.map((f) => `${f}|k`).sort());
    trie.clear();
    expect(trie.filterCount).toBe(0);
    expect(trie.entryCount).toBe(0);
    expect(trie.nodeCount).toBe(0);
    expect([...trie.filters()]).toEqual([]);
    expect(matched(trie, 'a')).toEqual([]);
  });
});

describe('TopicTrie match', () => {
  it('(MQTT 4.7.1) visits every matching (filter, key) exactly once for overlapping filters', () => {
    const trie = new TopicTrie<number>();
    trie.add('sport/tennis/player1', 'c1', 1);
    trie.add('sport/tennis/player1', 'c2', 2);
    trie.add('sport/tennis/+', 'c1', 3);
    trie.add('sport/+/player1', 'c3', 4);
    trie.add('sport/#', 'c1', 5);
    trie.add('#', 'c4', 6);
    trie.add('+/+/+', 'c5', 7);
    trie.add('sport/tennis/player1/#', 'c6', 8);
    trie.add('sport/tennis', 'c7', 9);
    expect(matched(trie, 'sport/tennis/player1')).toEqual([
      '#|c4=6',
      '+/+/+|c5=7',
      'sport/#|c1=5',
      'sport/+/player1|c3=4',
      'sport/tennis/+|c1=3',
      'sport/tennis/player1/#|c6=8',
      'sport/tennis/player1|c1=1',
      'sport/tennis/player1|c2=2',
    ]);
    expect(matched(trie, 'sport')).toEqual(['#|c4=6', 'sport/#|c1=5']);
    expect(matched(trie, 'sport/tennis')).toEqual(['#|c4=6', 'sport/#|c1=5', 'sport/tennis|c7=9']);
    expect(matched(trie, 'other')).toEqual(['#|c4=6']);
  });

  it('(MQTT 4.7.1.2) a/# matches a, a/ and everything below', () => {
    const trie = new TopicTrie<number>();
    trie.add('a/#', 'k', 1);
    expect(matched(trie, 'a')).toEqual(['a/#|k=1']);
    expect(matched(trie, 'a/')).toEqual(['a/#|k=1']);
    expect(matched(trie, 'a/b/c')).toEqual(['a/#|k=1']);
    expect(matched(trie, 'ab')).toEqual([]);
    expect(matched(trie, 'b/a')).toEqual([]);
  });

  it('(MQTT 4.7.1.3) + matches exactly one level, empty levels included', () => {
    const trie = new TopicTrie<number>();
    trie.add('sport/+', 'k', 1);
    trie.add('+/+', 'j', 2);
    trie.add('/+', 'i', 3);
    trie.add('+', 'h', 4);
    expect(matched(trie, 'sport')).toEqual(['+|h=4']);
    expect(matched(trie, 'sport/')).toEqual(['+/+|j=2', 'sport/+|k=1']);
    expect(matched(trie, '/finance')).toEqual(['+/+|j=2', '/+|i=3']);
    expect(matched(trie, '/')).toEqual(['+/+|j=2', '/+|i=3']);
  });

  it('[MQTT-4.7.2-1] leading + and # do not match topics starting with $', () => {
    const trie = new TopicTrie<number>();
    trie.add('#', 'all', 1);
    trie.add('+/monitor/Clients', 'plus', 2);
    trie.add('+/#', 'plushash', 3);
    trie.add('$SYS/#', 'sys', 4);
    trie.add('$SYS/monitor/+', 'sysplus', 5);
    trie.add('$SYS/monitor/Clients', 'exact', 6);
    expect(matched(trie, '$SYS/monitor/Clients')).toEqual([
      '$SYS/#|sys=4',
      '$SYS/monitor/+|sysplus=5',
      '$SYS/monitor/Clients|exact=6',
    ]);
    expect(matched(trie, '$')).toEqual([]);
    expect(matched(trie, 'x/monitor/Clients')).toEqual([
      '#|all=1',
      '+/#|plushash=3',
      '+/monitor/Clients|plus=2',
    ]);
    // A `$` anywhere but the first character is ordinary.
    expect(matched(trie, 'a/$SYS')).toEqual(['#|all=1', '+/#|plushash=3']);
  });

  it('[MQTT-4.7.3-4] compares levels exactly, without normalisation', () => {
    const trie = new TopicTrie<number>();
    trie.add('Accounts', 'k', 1);
    trie.add('caf\u00e9', 'k', 2);
    expect(matched(trie, 'ACCOUNTS')).toEqual([]);
    expect(matched(trie, 'Accounts')).toEqual(['Accounts|k=1']);
    expect(matched(trie, 'cafe\u0301')).toEqual([]);
  });

  it('allows a re-entrant match from inside the visitor', () => {
    const trie = new TopicTrie<number>();
    trie.add('a/+', 'k1', 1);
    trie.add('+/b', 'k2', 2);
    trie.add('x/+', 'k3', 3);
    const outer: string[] = [];
    const inner: string[] = [];
    trie.match('a/b', (key) => {
      outer.push(key);
      trie.match('x/b', (k) => inner.push(k));
    });
    expect(outer.sort()).toEqual(['k1', 'k2']);
    expect(inner.sort()).toEqual(['k2', 'k2', 'k3', 'k3']);
    expect(matched(trie, 'a/b')).toEqual(['+/b|k2=2', 'a/+|k1=1']);
  });

  it('leaves the trie usable when the visitor throws', () => {
    const trie = new TopicTrie<number>();
    trie.add('+/+', 'k', 1);
    trie.add('a/+', 'j', 2);
    expect(() =>
      trie.match('a/b', () => {
        throw new Error('boom');
      }),
    ).toThrow('boom');
    expect(matched(trie, 'a/b')).toEqual(['+/+|k=1', 'a/+|j=2']);
  });

  it('handles a topic and filters with 30 000 levels without deep recursion', () => {
    const trie = new TopicTrie<number>();
    const levels = 30_000;
    trie.add(Array(levels).fill('+').join('/'), 'plus', 1);
    trie.add(Array(levels).fill('a').join('/'), 'lit', 2);
    trie.add(
      `${Array(levels - 1)
        .fill('a')
        .join('/')}/#`,
      'hash',
      3,
    );
    const got: string[] = [];
    trie.match(Array(levels).fill('a').join('/'), (key) => got.push(key));
    expect(got.sort()).toEqual(['hash', 'lit', 'plus']);
    expect(trie.remove(Array(levels).fill('+').join('/'), 'plus')).toBe(true);
    expect(trie.nodeCount).toBe(levels + 1); // the literal chain and the `#` under it
  });
});
