/**
 * TopicTree: the reverse index, used for retained messages.
 *
 * Owns values stored by exact Topic Name and the question "which stored topics does this Topic
 * Filter match", asked when a subscription is made (MQTT 3.3.1.3 / MQTT 5 3.3.1.3 retained
 * messages). Wildcards in the filter expand over the tree: `+` over one level, `#` over the level it
 * follows and the whole subtree; a filter whose first level is a wildcard does not reach topics
 * starting with `$` [MQTT-4.7.2-1].
 *
 * Same layout ideas as TopicTrie: a single literal child inline, a Map from two children on, empty
 * nodes pruned on delete, and explicit stacks instead of recursion (a Topic Name can have 32 768
 * levels).
 */

import { isValidTopicName } from './validate.js';

const DOLLAR = 0x24; // '$'
/** Stack marker: visit this node and its whole subtree (below a `#`). */
const SUBTREE = -1;

class TreeNode<V> {
  readonly seg: string;
  /** Children: the only one, or a Map by level once there are two or more. */
  kids: TreeNode<V> | Map<string, TreeNode<V>> | undefined = undefined;
  /** The Topic Name ending here; defined exactly when this node holds a value. */
  topic: string | undefined = undefined;
  val: V | undefined = undefined;

  constructor(seg: string) {
    this.seg = seg;
  }
}

function child<V>(node: TreeNode<V>, seg: string): TreeNode<V> | undefined {
  const kids = node.kids;
  if (kids === undefined) return undefined;
  if (kids instanceof Map) return kids.get(seg);
  return kids.seg === seg ? kids : undefined;
}

/** Pushes every child of `node` with level index `level`; with `noDollar`, skips `$` levels. */
function pushKids<V>(
  node: TreeNode<V>,
  level: number,
  noDollar: boolean,
  nodes: TreeNode<V>[],
  at: number[],
): void {
  const kids = node.kids;
  if (kids === undefined) return;
  if (kids instanceof Map) {
    for (const c of kids.values()) {
      if (noDollar && c.seg.charCodeAt(0) === DOLLAR) continue;
      nodes.push(c);
      at.push(level);
    }
  } else if (!noDollar || kids.seg.charCodeAt(0) !== DOLLAR) {
    nodes.push(kids);
    at.push(level);
  }
}

function preview(s: string): string {
  return JSON.stringify(s.length > 64 ? `${s.slice(0, 64)}...` : s);
}

/** Values by exact Topic Name, searchable by Topic Filter. */
export class TopicTree<V> {
  private root = new TreeNode<V>('');
  private n = 0;
  private nNodes = 0;

  /** Number of stored topics. */
  get size(): number {
    return this.n;
  }

  /** Number of nodes below the root: one per distinct level prefix of the stored topics. */
  get nodeCount(): number {
    return this.nNodes;
  }

  /**
   * Stores `value` under `topic`, replacing any previous value. Returns true if the topic was not
   * stored before. Throws TypeError if `topic` is not a valid Topic Name ([MQTT-4.7.1-1],
   * [MQTT-4.7.3-1..3]).
   */
  set(topic: string, value: V): boolean {
    if (!isValidTopicName(topic)) throw new TypeError(`invalid topic name ${preview(topic)}`);
    let node = this.root;
    let start = 0;
    for (;;) {
      const end = topic.indexOf('/', start);
      const seg = end === -1 ? topic.slice(start) : topic.slice(start, end);
      const kids = node.kids;
      let next: TreeNode<V> | undefined;
      if (kids === undefined) {
        next = this.newNode(seg);
        node.kids = next;
      } else if (kids instanceof Map) {
        next = kids.get(seg);
        if (next === undefined) {
          next = this.newNode(seg);
          kids.set(seg, next);
        }
      } else if (kids.seg === seg) {
        next = kids;
      } else {
        next = this.newNode(seg);
        node.kids = new Map<string, TreeNode<V>>([
          [kids.seg, kids],
          [seg, next],
        ]);
      }
      node = next;
      if (end === -1) break;
      start = end + 1;
    }
    const added = node.topic === undefined;
    if (added) {
      node.topic = topic;
      this.n++;
    }
    node.val = value;
    return added;
  }

  /** The value stored under exactly `topic`. */
  get(topic: string): V | undefined {
    const node = this.find(topic);
    return node?.topic === undefined ? undefined : node.val;
  }

  /** True if a value is stored under exactly `topic`. */
  has(topic: string): boolean {
    return this.find(topic)?.topic !== undefined;
  }

  /** Removes the value under `topic`; returns true if there was one. Empty nodes are pruned. */
  delete(topic: string): boolean {
    const path: TreeNode<V>[] = [];
    let node = this.root;
    let start = 0;
    for (;;) {
      const end = topic.indexOf('/', start);
      const seg = end === -1 ? topic.slice(start) : topic.slice(start, end);
      path.push(node);
      const next = child(node, seg);
      if (next === undefined) return false;
      node = next;
      if (end === -1) break;
      start = end + 1;
    }
    if (node.topic === undefined) return false;
    node.topic = undefined;
    node.val = undefined;
    this.n--;
    for (let i = path.length - 1; i >= 0 && node.topic === undefined && node.kids === undefined; i--) {
      const parent = path[i];
      const kids = parent.kids;
      if (kids === node) {
        parent.kids = undefined;
      } else if (kids instanceof Map) {
        kids.delete(node.seg);
        if (kids.size === 1) parent.kids = kids.values().next().value;
      }
      this.nNodes--;
      node = parent;
    }
    return true;
  }

  /**
   * Calls `visit` once for every stored topic that Topic Filter `filter` matches: `+` expands over one
   * level, `#` over the level it follows and everything below (`a/#` visits `a`), and a first-level
   * wildcard skips topics starting with `$` [MQTT-4.7.2-1]. Order is unspecified. The filter is
   * assumed valid. `visit` may delete the topic it is given (e.g. an expired retained message).
   */
  matchFilter(filter: string, visit: (topic: string, value: V) => void): void {
    const levels = filter.split('/');
    const n = levels.length;
    const nodes: TreeNode<V>[] = [this.root];
    const at: number[] = [0];
    while (nodes.length > 0) {
      const node = nodes.pop()!;
      const i = at.pop()!;
      if (i === SUBTREE) {
        if (node.topic !== undefined) visit(node.topic, node.val as V);
        pushKids(node, SUBTREE, false, nodes, at);
        continue;
      }
      if (i === n) {
        if (node.topic !== undefined) visit(node.topic, node.val as V);
        continue;
      }
      const level = levels[i];
      if (level === '#') {
        // The parent level itself ("sport/#" matches "sport", MQTT 5 §4.7.1.2); the root holds none.
        if (node.topic !== undefined) visit(node.topic, node.val as V);
        pushKids(node, SUBTREE, i === 0, nodes, at);
      } else if (level === '+') {
        pushKids(node, i + 1, i === 0, nodes, at);
      } else {
        const next = child(node, level);
        if (next !== undefined) {
          nodes.push(next);
          at.push(i + 1);
        }
      }
    }
  }

  /** All (topic, value) pairs, in no particular order. */
  *entries(): IterableIterator<[string, V]> {
    const stack: TreeNode<V>[] = [this.root];
    while (stack.length > 0) {
      const node = stack.pop()!;
      if (node.topic !== undefined) yield [node.topic, node.val as V];
      const kids = node.kids;
      if (kids instanceof Map) for (const c of kids.values()) stack.push(c);
      else if (kids !== undefined) stack.push(kids);
    }
  }

  /** Removes everything. */
  clear(): void {
    this.root = new TreeNode<V>('');
    this.n = 0;
    this.nNodes = 0;
  }

  private newNode(seg: string): TreeNode<V> {
    this.nNodes++;
    return new TreeNode<V>(seg);
  }

  private find(topic: string): TreeNode<V> | undefined {
    let node: TreeNode<V> | undefined = this.root;
    let start = 0;
    for (;;) {
      const end = topic.indexOf('/', start);
      const seg = end === -1 ? topic.slice(start) : topic.slice(start, end);
      node = child(node, seg);
      if (node === undefined || end === -1) return node;
      start = end + 1;
    }
  }
}
