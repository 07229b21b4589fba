/**
 * TopicTrie: the subscription index.
 *
 * Owns the map from Topic Filters to entries keyed by a string (a client id in a node's subscription
 * table, a node id in the cluster route table) and the question "which (filter, key) pairs match this
 * Topic Name" asked on every PUBLISH. Matching follows MQTT section 4.7: `+` is one level, `#` is its
 * parent level and everything below it, and leading wildcards skip `$` topics [MQTT-4.7.2-1].
 *
 * Built for a million filters:
 * - one node class (monomorphic property access) with seven fields;
 * - a node's literal children are a single node while there is one, a Map from two on;
 * - `+` and `#` children are dedicated fields, never Map entries;
 * - a filter's entries are stored inline while there is one, in a Map from two on;
 * - `match` splits the topic once and walks with an explicit stack that is reused between calls, so
 *   it allocates nothing else and cannot overflow the call stack on a 30 000-level topic;
 * - nodes left without entries and children are pruned on remove.
 */

import { isValidTopicFilter } from './validate.js';

const DOLLAR = 0x24; // '$'

/** Visitor for `TopicTrie.match` and `TopicTrie.forEach`. */
export type TrieVisitor<V> = (key: string, value: V, filter: string) => void;

class TrieNode<V> {
  /** This node's level in the filter: a literal, '+' or '#'. */
  readonly seg: string;
  /** Literal children: the only one, or a Map by level once there are two or more. */
  kids: TrieNode<V> | Map<string, TrieNode<V>> | undefined = undefined;
  /** The '+' child. */
  plus: TrieNode<V> | undefined = undefined;
  /** The '#' child; it never has children of its own [MQTT-4.7.1-2]. */
  hash: TrieNode<V> | undefined = undefined;
  /** The filter ending at this node; defined exactly when the node has at least one entry. */
  filter: string | undefined = undefined;
  /** The key of the only entry; undefined when there are none or two or more. */
  key: string | undefined = undefined;
  /** The value of the only entry (when `key` is defined), or all entries (a Map, two or more). */
  val: V | Map<string, V> | undefined = undefined;

  constructor(seg: string) {
    this.seg = seg;
  }
}

/** The literal child of `node` for level `seg`, if any. */
function literalChild<V>(node: TrieNode<V>, seg: string): TrieNode<V> | undefined {
  const kids = node.kids;
  if (kids === undefined) return undefined;
  if (kids instanceof Map) return kids.get(seg);
  return kids.seg === seg ? kids : undefined;
}

/** The child of `node` that a filter level leads to: '+', '#' or a literal. */
function filterChild<V>(node: TrieNode<V>, seg: string): TrieNode<V> | undefined {
  if (seg === '+') return node.plus;
  if (seg === '#') return node.hash;
  return literalChild(node, seg);
}

/** Calls `visit` for every entry of `node` (none when it ends no filter). */
function emit<V>(node: TrieNode<V>, visit: TrieVisitor<V>): void {
  const filter = node.filter;
  if (filter === undefined) return;
  const key = node.key;
  if (key !== undefined) {
    visit(key, node.val as V, filter);
    return;
  }
  for (const [k, v] of node.val as Map<string, V>) visit(k, v, filter);
}

function isBare<V>(node: TrieNode<V>): boolean {
  return (
    node.filter === undefined && node.kids === undefined && node.plus === undefined && node.hash === undefined
  );
}

/** Unlinks `child` from `parent`, folding a literal-children Map of one back into a single child. */
function detach<V>(parent: TrieNode<V>, child: TrieNode<V>): void {
  if (parent.plus === child) {
    parent.plus = undefined;
  } else if (parent.hash === child) {
    parent.hash = undefined;
  } else {
    const kids = parent.kids;
    if (kids === child) {
      parent.kids = undefined;
    } else if (kids instanceof Map) {
      kids.delete(child.seg);
      if (kids.size === 1) parent.kids = kids.values().next().value;
    }
  }
}

function preview(s: string): string {
  return JSON.stringify(s.length > 64 ? `${s.slice(0, 64)}...` : s);
}

/**
 * Subscription index: Topic Filter -> (key -> V).
 *
 * Filters are stored as given (no normalisation [MQTT-4.7.3-4]); `add` rejects invalid ones. Topics
 * passed to `match` are assumed to be valid Topic Names (checked once when the PUBLISH is decoded).
 */
export class TopicTrie<V> {
  private root = new TrieNode<V>('');
  private nFilters = 0;
  private nEntries = 0;
  private nNodes = 0;
  /** Explicit walk stack for `match`, reused between calls; `matching` guards re-entrant calls. */
  private readonly stackNodes: TrieNode<V>[] = [];
  private readonly stackLevels: number[] = [];
  private matching = false;

  /** Number of filters with at least one entry. */
  get filterCount(): number {
    return this.nFilters;
  }

  /** Number of (filter, key) entries. */
  get entryCount(): number {
    return this.nEntries;
  }

  /**
   * Number of nodes below the root: one per distinct level prefix of the stored filters (`a/+/b` and
   * `a/#` make `a`, `a/+`, `a/+/b`, `a/#`). For memory accounting and pruning checks.
   */
  get nodeCount(): number {
    return this.nNodes;
  }

  /**
   * Sets the entry for `key` under `filter` (replacing the value if `key` is already there).
   * Returns true if the filter had no entries before: the first subscriber.
   * Throws TypeError if `filter` is not a valid Topic Filter ([MQTT-4.7.1-2], [MQTT-4.7.1-3],
   * [MQTT-4.7.3-1..3]); shared subscriptions are stored by their bare filter (see parseSubscription).
   */
  add(filter: string, key: string, value: V): boolean {
    if (!isValidTopicFilter(filter)) throw new TypeError(`invalid topic filter ${preview(filter)}`);
    let node = this.root;
    let start = 0;
    for (;;) {
      const end = filter.indexOf('/', start);
      const seg = end === -1 ? filter.slice(start) : filter.slice(start, end);
      node = this.childFor(node, seg);
      if (end === -1) break;
      start = end + 1;
    }
    if (node.filter === undefined) {
      node.filter = filter;
      node.key = key;
      node.val = value;
      this.nFilters++;
      this.nEntries++;
      return true;
    }
    const only = node.key;
    if (only !== undefined) {
      if (only === key) {
        node.val = value;
      } else {
        node.val = new Map<string, V>([
          [only, node.val as V],
          [key, value],
        ]);
        node.key = undefined;
        this.nEntries++;
      }
      return false;
    }
    const map = node.val as Map<string, V>;
    if (!map.has(key)) this.nEntries++;
    map.set(key, value);
    return false;
  }

  /**
   * Removes the entry for `key` under `filter`. Returns true if the key was present and the filter
   * now has no entries: the last unsubscribe. Nodes left empty are pruned.
   */
  remove(filter: string, key: string): boolean {
    const path: TrieNode<V>[] = [];
    let node = this.root;
    let start = 0;
    for (;;) {
      const end = filter.indexOf('/', start);
      const seg = end === -1 ? filter.slice(start) : filter.slice(start, end);
      path.push(node);
      const next = filterChild(node, seg);
      if (next === undefined) return false;
      node = next;
      if (end === -1) break;
      start = end + 1;
    }
    if (node.filter === undefined) return false;
    if (node.key === undefined) {
      const map = node.val as Map<string, V>;
      if (!map.delete(key)) return false;
      this.nEntries--;
      if (map.size === 1) {
        const [k, v] = map.entries().next().value as [string, V];
        node.key = k;
        node.val = v;
      }
      return false;
    }
    if (node.key !== key) return false;
    node.filter = undefined;
    node.key = undefined;
    node.val = undefined;
    this.nEntries--;
    this.nFilters--;
    // Prune upwards while the node holds nothing; the root stays.
    for (let i = path.length - 1; i >= 0 && isBare(node); i--) {
      const parent = path[i];
      detach(parent, node);
      this.nNodes--;
      node = parent;
    }
    return true;
  }

  /** The value stored for `key` under `filter`. */
  get(filter: string, key: string): V | undefined {
    const node = this.find(filter);
    if (node === undefined || node.filter === undefined) return undefined;
    if (node.key !== undefined) return node.key === key ? (node.val as V) : undefined;
    return (node.val as Map<string, V>).get(key);
  }

  /** True if `filter` has at least one entry. */
  has(filter: string): boolean {
    const node = this.find(filter);
    return node !== undefined && node.filter !== undefined;
  }

  /** Number of entries under `filter` (0 when it has none). */
  countOf(filter: string): number {
    const node = this.find(filter);
    if (node === undefined || node.filter === undefined) return 0;
    return node.key !== undefined ? 1 : (node.val as Map<string, V>).size;
  }

  /**
   * The entries under `filter`, or undefined when it has none. The map is read-only: it is either the
   * trie's own storage or a fresh copy, so do not hold on to it across mutations of this filter.
   */
  entries(filter: string): ReadonlyMap<string, V> | undefined {
    const node = this.find(filter);
    if (node === undefined || node.filter === undefined) return undefined;
    if (node.key !== undefined) return new Map<string, V>([[node.key, node.val as V]]);
    return node.val as Map<string, V>;
  }

  /**
   * Calls `visit` once for every (filter, key) whose filter matches Topic Name `topic`: `+` is one
   * level, `#` is the level it follows and everything below it (`a/#` matches `a`), and at the first
   * level neither wildcard matches a topic starting with `$` [MQTT-4.7.2-1]. Order is unspecified.
   *
   * `visit` may call `match` again; it should not modify the trie (entries added or removed during
   * the walk may or may not be visited).
   */
  match(topic: string, visit: TrieVisitor<V>): void {
    // An empty trie (no other node's routes, no stored sessions) costs no split.
    if (this.nEntries === 0) return;
    const levels = topic.split('/');
    const n = levels.length;
    const nested = this.matching;
    const nodes = nested ? [] : this.stackNodes;
    const at = nested ? [] : this.stackLevels;
    // [MQTT-4.7.2-1]: the root's '+' and '#' children do not see `$` topics.
    const dollar = topic.charCodeAt(0) === DOLLAR;
    this.matching = true;
    try {
      let sp = 0;
      let node = this.root;
      let i = 0;
      for (;;) {
        // Follow literal children down; defer '+' branches onto the stack.
        for (;;) {
          const wild = i !== 0 || !dollar;
          if (wild && node.hash !== undefined) emit(node.hash, visit);
          if (i === n) {
            emit(node, visit);
            break;
          }
          if (wild && node.plus !== undefined) {
            nodes[sp] = node.plus;
            at[sp] = i + 1;
            sp++;
          }
          const next = literalChild(node, levels[i]);
          if (next === undefined) break;
          node = next;
          i++;
        }
        if (sp === 0) break;
        sp--;
        node = nodes[sp];
        i = at[sp];
      }
    } finally {
      if (!nested) this.matching = false;
    }
  }

  /** All filters with at least one entry, in no particular order. */
  *filters(): IterableIterator<string> {
    const stack: TrieNode<V>[] = [this.root];
    while (stack.length > 0) {
      const node = stack.pop()!;
      if (node.filter !== undefined) yield node.filter;
      pushChildren(node, stack);
    }
  }

  /** Calls `visit` for every (filter, key) entry, in no particular order. */
  forEach(visit: TrieVisitor<V>): void {
    const stack: TrieNode<V>[] = [this.root];
    while (stack.length > 0) {
      const node = stack.pop()!;
      emit(node, visit);
      pushChildren(node, stack);
    }
  }

  /** Removes everything. */
  clear(): void {
    this.root = new TrieNode<V>('');
    this.nFilters = 0;
    this.nEntries = 0;
    this.nNodes = 0;
    this.stackNodes.length = 0;
    this.stackLevels.length = 0;
  }

  private find(filter: string): TrieNode<V> | undefined {
    let node: TrieNode<V> | undefined = this.root;
    let start = 0;
    for (;;) {
      const end = filter.indexOf('/', start);
      const seg = end === -1 ? filter.slice(start) : filter.slice(start, end);
      node = filterChild(node, seg);
      if (node === undefined || end === -1) return node;
      start = end + 1;
    }
  }

  private newNode(seg: string): TrieNode<V> {
    this.nNodes++;
    return new TrieNode<V>(seg);
  }

  private childFor(node: TrieNode<V>, seg: string): TrieNode<V> {
    if (seg === '+') {
      if (node.plus === undefined) node.plus = this.newNode(seg);
      return node.plus;
    }
    if (seg === '#') {
      if (node.hash === undefined) node.hash = this.newNode(seg);
      return node.hash;
    }
    const kids = node.kids;
    if (kids === undefined) {
      const child = this.newNode(seg);
      node.kids = child;
      return child;
    }
    if (kids instanceof Map) {
      let child = kids.get(seg);
      if (child === undefined) {
        child = this.newNode(seg);
        kids.set(seg, child);
      }
      return child;
    }
    if (kids.seg === seg) return kids;
    const child = this.newNode(seg);
    node.kids = new Map<string, TrieNode<V>>([
      [kids.seg, kids],
      [seg, child],
    ]);
    return child;
  }
}

function pushChildren<V>(node: TrieNode<V>, stack: TrieNode<V>[]): void {
  if (node.hash !== undefined) stack.push(node.hash);
  if (node.plus !== undefined) stack.push(node.plus);
  const kids = node.kids;
  if (kids instanceof Map) {
    for (const child of kids.values()) stack.push(child);
  } else if (kids !== undefined) {
    stack.push(kids);
  }
}
