/**
 * RouteReplica (src/backend/redis/route-replica.ts): the in-memory copy of the cluster route table
 * that publishes are matched against. Route-log ops a (add), d (delete), n (node removed); this
 * node's own routes are ignored; each matching node is visited once; shared subscriptions yield
 * the set of nodes holding members per (group, filter).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RouteReplica } from '../../../src/backend/route-replica.js';
import { topicMatches } from '../../../src/topics/index.js';
import { fcParams } from '../../fixtures/arbitraries.js';

function nodesFor(r: RouteReplica, topic: string): string[] {
  const out: string[] = [];
  r.matchNodes(topic, (n) => out.push(n));
  return out.sort();
}

function sharedFor(r: RouteReplica, topic: string): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  r.matchShared(topic, (key, nodes) => {
    expect(out[key]).toBeUndefined(); // one call per (group, filter)
    out[key] = [...nodes].sort();
  });
  return out;
}

describe('RouteReplica', () => {
  it('visits each matching node once, past the array of nodes seen too, and from inside a visit', () => {
    const r = new RouteReplica('self');
    const nodes = Array.from({ length: 40 }, (_, i) => `n${String(i).padStart(2, '0')}`);
    for (const n of nodes) for (const f of ['a/b', 'a/+', '#', '+/b']) r.apply('a', n, f);
    const seen: string[] = [];
    r.matchNodes('a/b', (n) => seen.push(n));
    expect(seen.sort()).toEqual(nodes);
    // A visit that matches again (nested) gets its own once-each too, and the outer one goes on.
    const outer: string[] = [];
    const inner: string[][] = [];
    r.matchNodes('a/b', (n) => {
      outer.push(n);
      if (outer.length === 1) {
        const got: string[] = [];
        r.matchNodes('a/c', (m) => got.push(m));
        inner.push(got.sort());
      }
    });
    expect(outer.sort()).toEqual(nodes);
    expect(inner).toEqual([nodes]);
    // Nothing carried over to the next publish.
    expect(nodesFor(r, 'a/b')).toEqual(nodes);
  });

  it('applies a (add) and d (delete) for plain filters', () => {
    const r = new RouteReplica('self');
    r.apply('a', 'B', 'x/+');
    r.apply('a', 'C', 'x/#');
    expect(nodesFor(r, 'x/1')).toEqual(['B', 'C']);
    expect(nodesFor(r, 'x/1/2')).toEqual(['C']);
    expect(nodesFor(r, 'y')).toEqual([]);
    expect(r.size).toBe(2);
    r.apply('d', 'B', 'x/+');
    expect(nodesFor(r, 'x/1')).toEqual(['C']);
    r.apply('d', 'C', 'x/#');
    expect(nodesFor(r, 'x/1')).toEqual([]);
    expect(r.size).toBe(0);
    expect(r.nodes()).toEqual([]);
  });

  it('n (node removed) drops every route of that node and only of that node', () => {
    const r = new RouteReplica('self');
    r.apply('a', 'B', 'a');
    r.apply('a', 'B', 'b/#');
    r.apply('a', 'B', '$share/g/s/#');
    r.apply('a', 'C', 'a');
    r.apply('a', 'C', '$share/g/s/#');
    r.apply('n', 'B', '');
    expect(nodesFor(r, 'a')).toEqual(['C']);
    expect(nodesFor(r, 'b/1')).toEqual([]);
    expect(sharedFor(r, 's/1')).toEqual({ 'g\ns/#': ['C'] });
    expect(r.nodes()).toEqual(['C']);
    r.apply('n', 'C', '');
    expect(sharedFor(r, 's/1')).toEqual({});
    expect(r.size).toBe(0);
  });

  it("ignores this node's own routes (its local subscriptions are matched elsewhere)", () => {
    const r = new RouteReplica('self');
    r.apply('a', 'self', 'x');
    r.apply('a', 'self', '$share/g/x');
    expect(nodesFor(r, 'x')).toEqual([]);
    expect(sharedFor(r, 'x')).toEqual({});
    r.apply('a', 'B', 'x');
    r.apply('n', 'self', '');
    expect(nodesFor(r, 'x')).toEqual(['B']);
  });

  it('adds and deletes are idempotent (a replayed log after a snapshot changes nothing)', () => {
    const r = new RouteReplica('self');
    r.apply('a', 'B', 'x');
    r.apply('a', 'B', 'x');
    expect(r.size).toBe(1);
    r.apply('d', 'B', 'x');
    r.apply('d', 'B', 'x');
    r.apply('d', 'C', 'never-added');
    expect(r.size).toBe(0);
    expect(nodesFor(r, 'x')).toEqual([]);
  });

  it('matchNodes visits a node once even when several of its filters match', () => {
    const r = new RouteReplica('self');
    for (const f of ['a/b', 'a/+', '+/b', '#', 'a/#']) r.apply('a', 'B', f);
    r.apply('a', 'C', 'a/b');
    expect(nodesFor(r, 'a/b')).toEqual(['B', 'C']);
    // And again: the dedupe state does not leak into the next call.
    expect(nodesFor(r, 'a/b')).toEqual(['B', 'C']);
    expect(nodesFor(r, 'z')).toEqual(['B']);
  });

  it('matchShared: one call per (group, filter) with every node holding members', () => {
    const r = new RouteReplica('self');
    r.apply('a', 'B', '$share/g/t/#');
    r.apply('a', 'C', '$share/g/t/#');
    r.apply('a', 'C', '$share/h/t/+');
    r.apply('a', 'D', '$share/g/other');
    r.apply('a', 'B', 't/x'); // plain: not a shared route
    expect(sharedFor(r, 't/x')).toEqual({ 'g\nt/#': ['B', 'C'], 'h\nt/+': ['C'] });
    expect(sharedFor(r, 't/x/y')).toEqual({ 'g\nt/#': ['B', 'C'] });
    expect(nodesFor(r, 't/x')).toEqual(['B']);
    r.apply('d', 'B', '$share/g/t/#');
    expect(sharedFor(r, 't/x')).toEqual({ 'g\nt/#': ['C'], 'h\nt/+': ['C'] });
    r.apply('d', 'C', '$share/g/t/#');
    expect(sharedFor(r, 't/x')).toEqual({ 'h\nt/+': ['C'] });
  });

  it('a group name may repeat across filters and a filter across groups', () => {
    const r = new RouteReplica('self');
    r.apply('a', 'B', '$share/g/a/#');
    r.apply('a', 'C', '$share/g/a/+');
    r.apply('a', 'C', '$share/k/a/#');
    expect(sharedFor(r, 'a/1')).toEqual({ 'g\na/#': ['B'], 'g\na/+': ['C'], 'k\na/#': ['C'] });
  });

  it('clear() forgets everything', () => {
    const r = new RouteReplica('self');
    r.apply('a', 'B', 'x');
    r.apply('a', 'B', '$share/g/x');
    r.clear();
    expect(nodesFor(r, 'x')).toEqual([]);
    expect(sharedFor(r, 'x')).toEqual({});
    expect(r.size).toBe(0);
  });

  it('matches like a model: a random op sequence, then every topic', () => {
    const nodes = ['self', 'B', 'C', 'D'];
    const filters = [
      'a',
      'a/b',
      'a/+',
      'a/#',
      '+/b',
      '#',
      '+',
      '$share/g/a/#',
      '$share/g/+/b',
      '$share/h/a/b',
    ];
    const topics = ['a', 'a/b', 'b/b', 'a/c', 'x'];
    const op = fc.tuple(
      fc.constantFrom('a', 'd', 'n'),
      fc.constantFrom(...nodes),
      fc.constantFrom(...filters),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
        const r = new RouteReplica('self');
        const model = new Map<string, Set<string>>(); // node -> filter keys
        for (const [o, n, f] of ops) {
          r.apply(o, n, o === 'n' ? '' : f);
          if (n === 'self') continue;
          if (o === 'n') model.delete(n);
          else if (o === 'a') model.set(n, (model.get(n) ?? new Set()).add(f));
          else model.get(n)?.delete(f);
        }
        for (const t of topics) {
          const plain = new Set<string>();
          const shared: Record<string, Set<string>> = {};
          for (const [n, fs] of model) {
            for (const f of fs) {
              if (f.startsWith('$share/')) {
                const slash = f.indexOf('/', 7);
                const group = f.slice(7, slash);
                const filter = f.slice(slash + 1);
                if (!topicMatches(filter, t)) continue;
                shared[`${group}\n${filter}`] ??= new Set();
                shared[`${group}\n${filter}`].add(n);
              } else if (topicMatches(f, t)) plain.add(n);
            }
          }
          expect(nodesFor(r, t)).toEqual([...plain].sort());
          const expected: Record<string, string[]> = {};
          for (const [k, s] of Object.entries(shared)) expected[k] = [...s].sort();
          expect(sharedFor(r, t)).toEqual(expected);
        }
      }),
      fcParams(200),
    );
  });
});

describe('persistent-session routes (ops s / u)', () => {
  const options = (qos: number, subscriptionId?: number) =>
    JSON.stringify({ qos, noLocal: false, retainAsPublished: false, retainHandling: 0, subscriptionId });
  const sessionsFor = (r: RouteReplica, topic: string) => {
    const out: string[] = [];
    r.matchSessions(topic, (id, o) => out.push(`${id}:${o.qos}:${o.subscriptionId ?? '-'}`));
    return out.sort();
  };

  it("are kept for every session, this node's own included, once per matching filter", () => {
    const r = new RouteReplica('self');
    r.apply('s', 'c1', 'a/+', options(1, 7));
    r.apply('s', 'c1', 'a/b', options(2));
    r.apply('s', 'c2', '#', options(0));
    expect(sessionsFor(r, 'a/b')).toEqual(['c1:1:7', 'c1:2:-', 'c2:0:-']);
    expect(sessionsFor(r, 'x')).toEqual(['c2:0:-']);
    expect(r.sessionRoutes).toBe(3);
    // Replaced options win; an unset route is gone; node routes are untouched.
    r.apply('s', 'c1', 'a/+', options(0));
    r.apply('u', 'c2', '#');
    expect(sessionsFor(r, 'a/b')).toEqual(['c1:0:-', 'c1:2:-']);
    expect(r.size).toBe(0);
  });

  it('ignore options that are not readable, and are dropped by clear()', () => {
    const r = new RouteReplica('self');
    r.apply('s', 'c1', 'a', '{not json');
    r.apply('s', 'c1', 'b', undefined);
    expect(r.sessionRoutes).toBe(0);
    r.apply('s', 'c1', 'a', options(1));
    r.clear();
    expect(sessionsFor(r, 'a')).toEqual([]);
  });
});
