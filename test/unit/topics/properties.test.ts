import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isValidTopicFilter, TopicTree, TopicTrie, topicMatches } from '../../../src/topics/index.js';

// Small alphabets so that matches happen often; '' gives empty levels, '$s' and '$' exercise
// [MQTT-4.7.2-1] at the first level and ordinary `$` characters deeper down.
const topicLevel = fc.constantFrom('a', 'b', '', '$s', '$');
const filterLevel = fc.constantFrom('a', 'b', '', '$s', '+', '+');

const topicArb = fc
  .array(topicLevel, { minLength: 1, maxLength: 5 })
  .map((levels) => levels.join('/'))
  .filter((t) => t.length > 0);

const filterArb = fc
  .tuple(fc.array(filterLevel, { minLength: 0, maxLength: 5 }), fc.boolean())
  .map(([levels, hash]) => (hash ? [...levels, '#'] : levels).join('/'))
  .filter(isValidTopicFilter);

const keyArb = fc.constantFrom('c1', 'c2', 'c3');

/** Every non-empty level prefix of `s`: the nodes an index needs for it. */
function prefixes(s: string): string[] {
  const levels = s.split('/');
  return levels.map((_, i) => levels.slice(0, i + 1).join('/'));
}

describe('TopicTrie properties', () => {
  it('[MQTT-4.7.1-2] [MQTT-4.7.1-3] [MQTT-4.7.2-1] match visits exactly the pairs topicMatches accepts, each once', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(filterArb, keyArb, fc.nat(99)), { maxLength: 40 }),
        fc.array(topicArb, { minLength: 1, maxLength: 10 }),
        (subs, topics) => {
          const trie = new TopicTrie<number>();
          const model = new Map<string, number>(); // "filter\0key" -> value (last write wins)
          for (const [filter, key, value] of subs) {
            trie.add(filter, key, value);
            model.set(`${filter}\u0000${key}`, value);
          }
          for (const topic of topics) {
            const got: string[] = [];
            trie.match(topic, (key, value, filter) => got.push(`${filter}\u0000${key}=${value}`));
            const want = [...model]
              .filter(([fk]) => topicMatches(fk.slice(0, fk.indexOf('\u0000')), topic))
              .map(([fk, v]) => `${fk}=${v}`);
            expect(got.sort()).toEqual(want.sort()); // equal as sorted lists: no duplicates either
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('random add/remove sequences keep counts, results and pruning equal to a model Map', () => {
    const op = fc.tuple(fc.boolean(), filterArb, keyArb);
    fc.assert(
      fc.property(fc.array(op, { maxLength: 80 }), fc.array(topicArb, { maxLength: 5 }), (ops, topics) => {
        const trie = new TopicTrie<string>();
        const model = new Map<string, Map<string, string>>();
        ops.forEach(([isAdd, filter, key], step) => {
          const entries = model.get(filter);
          if (isAdd) {
            const value = `v${step}`;
            expect(trie.add(filter, key, value)).toBe(entries === undefined);
            if (entries === undefined) model.set(filter, new Map([[key, value]]));
            else entries.set(key, value);
          } else {
            const present = entries?.has(key) ?? false;
            const last = present && entries!.size === 1;
            expect(trie.remove(filter, key)).toBe(last);
            if (present) entries!.delete(key);
            if (last) model.delete(filter);
          }
          expect(trie.filterCount).toBe(model.size);
          expect(trie.entryCount).toBe([...model.values()].reduce((n, m) => n + m.size, 0));
        });
        expect([...trie.filters()].sort()).toEqual([...model.keys()].sort());
        for (const [filter, entries] of model) {
          expect(trie.has(filter)).toBe(true);
          expect(new Map(trie.entries(filter))).toEqual(entries);
          for (const [key, value] of entries) expect(trie.get(filter, key)).toBe(value);
        }
        // Pruning: exactly one node per distinct level prefix of the remaining filters.
        expect(trie.nodeCount).toBe(new Set([...model.keys()].flatMap(prefixes)).size);
        for (const topic of topics) {
          const got: string[] = [];
          trie.match(topic, (key, value, filter) => got.push(`${filter}|${key}|${value}`));
          const want: string[] = [];
          for (const [filter, entries] of model) {
            if (!topicMatches(filter, topic)) continue;
            for (const [key, value] of entries) want.push(`${filter}|${key}|${value}`);
          }
          expect(got.sort()).toEqual(want.sort());
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('TopicTree properties', () => {
  it('[MQTT-4.7.1-2] [MQTT-4.7.1-3] [MQTT-4.7.2-1] matchFilter visits exactly the stored topics topicMatches accepts, each once', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(topicArb, fc.nat(99)), { maxLength: 40 }),
        fc.array(filterArb, { minLength: 1, maxLength: 10 }),
        (stored, filters) => {
          const tree = new TopicTree<number>();
          const model = new Map<string, number>();
          for (const [topic, value] of stored) {
            tree.set(topic, value);
            model.set(topic, value);
          }
          expect(tree.size).toBe(model.size);
          for (const filter of filters) {
            const got: string[] = [];
            tree.matchFilter(filter, (topic, value) => got.push(`${topic}=${value}`));
            const want = [...model].filter(([t]) => topicMatches(filter, t)).map(([t, v]) => `${t}=${v}`);
            expect(got.sort()).toEqual(want.sort());
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('random set/delete sequences keep size, contents and pruning equal to a model Map', () => {
    const op = fc.tuple(fc.boolean(), topicArb);
    fc.assert(
      fc.property(fc.array(op, { maxLength: 80 }), (ops) => {
        const tree = new TopicTree<number>();
        const model = new Map<string, number>();
        ops.forEach(([isSet, topic], step) => {
          if (isSet) {
            expect(tree.set(topic, step)).toBe(!model.has(topic));
            model.set(topic, step);
          } else {
            expect(tree.delete(topic)).toBe(model.delete(topic));
          }
          expect(tree.size).toBe(model.size);
        });
        expect(new Map(tree.entries())).toEqual(model);
        for (const [topic, value] of model) expect(tree.get(topic)).toBe(value);
        expect(tree.nodeCount).toBe(new Set([...model.keys()].flatMap(prefixes)).size);
      }),
      { numRuns: 300 },
    );
  });
});

describe('topicMatches properties', () => {
  it('a filter without wildcards matches exactly the equal topic', () => {
    fc.assert(
      fc.property(topicArb, topicArb, (a, b) => {
        expect(topicMatches(a, b)).toBe(a === b);
      }),
    );
  });

  it('(MQTT 4.7.1.2) f/# matches f itself and every topic below f', () => {
    fc.assert(
      fc.property(topicArb, fc.array(topicLevel, { maxLength: 3 }), (base, rest) => {
        const topic = [base, ...rest].join('/');
        expect(topicMatches(`${base}/#`, topic)).toBe(true);
      }),
    );
  });
});
