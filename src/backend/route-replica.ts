/**
 * This node's in-memory replica of the cluster route table: other nodes' routes (the node's own
 * subscriptions are in its SubscriptionIndex), and the plain subscriptions of every persistent
 * session in the cluster (served through their queues in Redis, whichever node the client is on).
 * Publishes are matched here with no Redis read.
 */
import type { SubscriptionOptions } from '../message.js';
import { parseSubscription, TopicTrie } from '../topics/index.js';

/** A route's key: the filter, or `$share/group/filter` for a shared subscription. */
export function filterKey(filter: string, group: string | null): string {
  return group === null ? filter : `$share/${group}/${filter}`;
}

/** Nodes matched by one topic that are looked up in an array before a Set takes over. */
const SEEN_LINEAR = 16;

export class RouteReplica {
  private plain = new TopicTrie<true>();
  private shared = new TopicTrie<Set<string>>();
  private byNode = new Map<string, Set<string>>();
  /** filter -> client id -> options: plain subscriptions of persistent sessions. */
  private sessions = new TopicTrie<SubscriptionOptions>();
  private readonly seen = new Set<string>();

  constructor(private readonly self: string) {}

  get size(): number {
    let n = 0;
    for (const s of this.byNode.values()) n += s.size;
    return n;
  }

  nodes(): string[] {
    return [...this.byNode.keys()];
  }

  clear(): void {
    this.plain = new TopicTrie();
    this.shared = new TopicTrie();
    this.byNode.clear();
    this.sessions = new TopicTrie();
  }

  /** Persistent-session routes held. */
  get sessionRoutes(): number {
    return this.sessions.entryCount;
  }

  /**
   * Applies one route-log entry: op a (add), d (delete), n (node removed); for persistent sessions
   * s (set, `node` is the client id and `options` its subscription options as JSON) and u (unset).
   */
  apply(op: string, node: string, fkey: string, options?: string): void {
    if (op === 's') {
      const parsed = parseOptions(options);
      if (parsed !== undefined) this.sessions.add(fkey, node, parsed);
      return;
    }
    if (op === 'u') {
      this.sessions.remove(fkey, node);
      return;
    }
    if (op === 'n') {
      this.dropNode(node);
      return;
    }
    if (node === this.self) return;
    if (op === 'a') this.add(node, fkey);
    else if (op === 'd') this.remove(node, fkey);
  }

  /**
   * A node's routes removed: all of them, or those `where` holds for (the routes of one partition,
   * when the node's removal was logged in that partition's log).
   */
  dropNode(node: string, where?: (fkey: string) => boolean): void {
    if (node === this.self) return;
    const set = this.byNode.get(node);
    if (set === undefined) return;
    for (const f of [...set]) if (where === undefined || where(f)) this.remove(node, f);
  }

  private add(node: string, fkey: string): void {
    let set = this.byNode.get(node);
    if (set === undefined) {
      set = new Set();
      this.byNode.set(node, set);
    }
    if (set.has(fkey)) return;
    const parsed = parseSubscription(fkey);
    if (parsed === null) return;
    set.add(fkey);
    if (parsed.group === null) {
      this.plain.add(parsed.filter, node, true);
      return;
    }
    let nodes = this.shared.get(parsed.filter, parsed.group);
    if (nodes === undefined) {
      nodes = new Set();
      this.shared.add(parsed.filter, parsed.group, nodes);
    }
    nodes.add(node);
  }

  private remove(node: string, fkey: string): void {
    const set = this.byNode.get(node);
    if (set === undefined || !set.delete(fkey)) return;
    if (set.size === 0) this.byNode.delete(node);
    const parsed = parseSubscription(fkey);
    if (parsed === null) return;
    if (parsed.group === null) {
      this.plain.remove(parsed.filter, node);
      return;
    }
    const nodes = this.shared.get(parsed.filter, parsed.group);
    if (nodes === undefined) return;
    nodes.delete(node);
    if (nodes.size === 0) this.shared.remove(parsed.filter, parsed.group);
  }

  /**
   * Each node with a route matching `topic`, once. Hot (every publish in a cluster): the nodes seen
   * are kept in a reused array (a topic matches few nodes; a Set past SEEN_LINEAR), and the trie
   * calls one visitor made once, not a closure per publish.
   */
  matchNodes(topic: string, visit: (node: string) => void): void {
    if (this.visitNode !== undefined) {
      // Called again from inside a visit: a set of its own.
      const seen = new Set<string>();
      this.plain.match(topic, (node) => {
        if (seen.has(node)) return;
        seen.add(node);
        visit(node);
      });
      return;
    }
    this.visitNode = visit;
    try {
      this.plain.match(topic, this.onNode);
    } finally {
      this.visitNode = undefined;
      this.seenNodes.length = 0;
      if (this.seen.size > 0) this.seen.clear();
    }
  }

  private visitNode: ((node: string) => void) | undefined;
  private readonly seenNodes: string[] = [];
  private readonly onNode = (node: string): void => {
    const list = this.seenNodes;
    if (list.length < SEEN_LINEAR) {
      for (let i = 0; i < list.length; i++) if (list[i] === node) return;
      list.push(node);
    } else {
      if (list.includes(node) || this.seen.has(node)) return;
      this.seen.add(node);
    }
    this.visitNode!(node);
  };

  /** Persistent sessions with a plain subscription matching `topic`: once per matching filter. */
  matchSessions(
    topic: string,
    visit: (clientId: string, options: SubscriptionOptions, filter: string) => void,
  ): void {
    this.sessions.match(topic, visit);
  }

  matchShared(topic: string, visit: (groupKey: string, nodes: ReadonlySet<string>) => void): void {
    this.shared.match(topic, (group, nodes, filter) => visit(`${group}\n${filter}`, nodes));
  }
}

/** Subscription options as stored with a session route (JSON); undefined when unreadable. */
export function parseOptions(json: string | undefined): SubscriptionOptions | undefined {
  if (json === undefined) return undefined;
  try {
    const o = JSON.parse(json) as SubscriptionOptions;
    return typeof o.qos === 'number' ? o : undefined;
  } catch {
    return undefined;
  }
}
