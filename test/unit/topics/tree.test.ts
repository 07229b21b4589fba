import { describe, expect, it } from 'vitest';
import { TopicTree } from '../../../src/topics/index.js';

function visited<V>(tree: TopicTree<V>, filter: string): string[] {
  const out: string[] = [];
  tree.matchFilter(filter, (topic, value) => out.push(`${topic}=${String(value)}`));
  return out.sort();
}

function sample(): TopicTree<number> {
  const tree = new TopicTree<number>();
  const topics = [
    'sport',
    'sport/',
    'sport/tennis',
    'sport/tennis/player1',
    'sport/tennis/player1/ranking',
    'sport/tennis/player1/score/wimbledon',
    'sport/tennis/player2',
    'sport/badminton/player1',
    '/finance',
    'finance',
    '$SYS/monitor/Clients',
    '$SYS',
    'a/$SYS',
  ];
  topics.forEach((t, i) => {
    tree.set(t, i);
  });
  return tree;
}

describe('TopicTree set/get/delete', () => {
  it('stores values by exact topic and replaces on set', () => {
    const tree = new TopicTree<string>();
    expect(tree.set('a/b', 'x')).toBe(true);
    expect(tree.set('a/b', 'y')).toBe(false);
    expect(tree.set('a', 'z')).toBe(true);
    expect(tree.get('a/b')).toBe('y');
    expect(tree.get('a')).toBe('z');
    expect(tree.get('a/b/c')).toBeUndefined();
    expect(tree.get('a/')).toBeUndefined();
    expect(tree.has('a/b')).toBe(true);
    expect(tree.has('b')).toBe(false);
    expect(tree.size).toBe(2);
  });

  it('delete returns whether a value was there, and prunes empty nodes', () => {
    const tree = new TopicTree<number>();
    tree.set('a/b/c/d', 1);
    tree.set('a/b/x', 2);
    tree.set('a', 3);
    expect(tree.nodeCount).toBe(5);
    expect(tree.delete('a/b')).toBe(false); // intermediate node, no value
    expect(tree.delete('a/b/c/d/e')).toBe(false);
    expect(tree.delete('a/b/c/d')).toBe(true);
    expect(tree.delete('a/b/c/d')).toBe(false);
    expect(tree.nodeCount).toBe(3);
    expect(tree.delete('a/b/x')).toBe(true);
    expect(tree.nodeCount).toBe(1);
    expect(tree.delete('a')).toBe(true);
    expect(tree.nodeCount).toBe(0);
    expect(tree.size).toBe(0);
    expect([...tree.entries()]).toEqual([]);
  });

  it('[MQTT-4.7.1-1] [MQTT-4.7.3-1] set rejects invalid topic names', () => {
    const tree = new TopicTree<number>();
    for (const t of ['', 'a/+', '#', 'a\u0000']) expect(() => tree.set(t, 1), t).toThrow(TypeError);
    expect(tree.size).toBe(0);
    expect(tree.nodeCount).toBe(0);
  });

  it('entries() and clear()', () => {
    const tree = sample();
    expect([...tree.entries()].length).toBe(13);
    expect(new Map(tree.entries()).get('$SYS')).toBe(11);
    tree.clear();
    expect(tree.size).toBe(0);
    expect(tree.nodeCount).toBe(0);
    expect(visited(tree, '#')).toEqual([]);
  });
});

describe('TopicTree matchFilter', () => {
  it('(MQTT 4.7.1.2) # visits the parent level and the whole subtree', () => {
    const tree = sample();
    expect(visited(tree, 'sport/tennis/player1/#')).toEqual([
      'sport/tennis/player1/ranking=4',
      'sport/tennis/player1/score/wimbledon=5',
      'sport/tennis/player1=3',
    ]);
    expect(visited(tree, 'sport/#')).toEqual([
      'sport/=1',
      'sport/badminton/player1=7',
      'sport/tennis/player1/ranking=4',
      'sport/tennis/player1/score/wimbledon=5',
      'sport/tennis/player1=3',
      'sport/tennis/player2=6',
      'sport/tennis=2',
      'sport=0',
    ]);
  });

  it('(MQTT 4.7.1.3) + visits exactly one level, empty levels included', () => {
    const tree = sample();
    expect(visited(tree, 'sport/tennis/+')).toEqual(['sport/tennis/player1=3', 'sport/tennis/player2=6']);
    expect(visited(tree, 'sport/+')).toEqual(['sport/=1', 'sport/tennis=2']);
    expect(visited(tree, '+/+')).toEqual(['/finance=8', 'a/$SYS=12', 'sport/=1', 'sport/tennis=2']);
    expect(visited(tree, '/+')).toEqual(['/finance=8']);
    expect(visited(tree, '+')).toEqual(['finance=9', 'sport=0']);
    expect(visited(tree, 'sport/+/player1')).toEqual(['sport/badminton/player1=7', 'sport/tennis/player1=3']);
    expect(visited(tree, '+/tennis/#')).toEqual([
      'sport/tennis/player1/ranking=4',
      'sport/tennis/player1/score/wimbledon=5',
      'sport/tennis/player1=3',
      'sport/tennis/player2=6',
      'sport/tennis=2',
    ]);
  });

  it('exact filters visit at most their own topic', () => {
    const tree = sample();
    expect(visited(tree, 'sport/tennis')).toEqual(['sport/tennis=2']);
    expect(visited(tree, 'sport/tennis/player3')).toEqual([]);
    expect(visited(tree, 'sport/tennis/player1/ranking/x')).toEqual([]);
  });

  it('[MQTT-4.7.2-1] a filter starting with a wildcard does not visit topics starting with $', () => {
    const tree = sample();
    const all = visited(tree, '#');
    expect(all).toHaveLength(11);
    expect(all.some((t) => t.startsWith('$'))).toBe(false);
    expect(all).toContain('a/$SYS=12');
    expect(visited(tree, '+/monitor/Clients')).toEqual([]);
    expect(visited(tree, '+')).not.toContain('$SYS=11');
    expect(visited(tree, '$SYS/#')).toEqual(['$SYS/monitor/Clients=10', '$SYS=11']);
    expect(visited(tree, '$SYS/monitor/+')).toEqual(['$SYS/monitor/Clients=10']);
  });

  it('lets the visitor delete the topic it is given (expiring retained messages)', () => {
    const tree = sample();
    const seen: string[] = [];
    tree.matchFilter('sport/#', (topic) => {
      seen.push(topic);
      expect(tree.delete(topic)).toBe(true);
    });
    expect(seen).toHaveLength(8);
    expect(visited(tree, 'sport/#')).toEqual([]);
    expect(tree.size).toBe(5);
  });

  it('handles 30 000-level topics without deep recursion', () => {
    const tree = new TopicTree<number>();
    const levels = 30_000;
    const deep = Array(levels).fill('a').join('/');
    tree.set(deep, 1);
    expect(visited(tree, '#')).toEqual([`${deep}=1`]);
    expect(visited(tree, Array(levels).fill('+').join('/'))).toEqual([`${deep}=1`]);
    expect(tree.delete(deep)).toBe(true);
    expect(tree.nodeCount).toBe(0);
  });
});
