/**
 * The local subscription index: which sessions of this node subscribe to which filters, plain and
 * shared. Matching a topic yields each interested session once (overlapping subscriptions merged,
 * MQTT 5 3.3.4) and one member per shared subscription (MQTT 5 4.8.2).
 */

import type { Message, SubscriptionOptions } from '../message.js';
import type { Session } from '../session/session.js';
import { TopicTrie } from '../topics/index.js';

interface Subscriber {
  session: Session;
  options: SubscriptionOptions;
}

/** Members of one shared subscription ($share/{group}/{filter}), picked in turn. */
class SharedGroup {
  readonly members: Subscriber[] = [];
  private next = 0;

  /** The next member, preferring one that is online; undefined if the group is empty. */
  pick(): Subscriber | undefined {
    const n = this.members.length;
    if (n === 0) return undefined;
    for (let i = 0; i < n; i++) {
      const m = this.members[(this.next + i) % n];
      if (m.session.link !== null) {
        this.next = (this.next + i + 1) % n;
        return m;
      }
    }
    // Nobody online: queue on the next persistent member in turn.
    const m = this.members[this.next % n];
    this.next = (this.next + 1) % n;
    return m;
  }
}

export type RouteVisitor = (
  session: Session,
  qos: number,
  retainAsPublished: boolean,
  ids: number[] | undefined,
) => void;

export class SubscriptionIndex {
  private readonly direct = new TopicTrie<Subscriber>();
  private readonly shared = new TopicTrie<SharedGroup>();
  private readonly hits: Session[] = [];
  private seq = 0;

  /** Number of subscriptions (plain and shared memberships). */
  get count(): number {
    let n = this.direct.entryCount;
    this.shared.forEach((_g, group) => {
      n += group.members.length;
    });
    return n;
  }

  /** Shared subscriptions (group + filter) with members on this node. */
  get sharedGroupCount(): number {
    return this.shared.entryCount;
  }

  get filterCount(): number {
    return this.direct.filterCount + this.shared.filterCount;
  }

  /**
   * Adds or replaces a subscription [MQTT-3.8.4-3]. Returns true when this node had no subscriber of
   * this filter (in this shared group) before: the cluster route table then learns of it.
   */
  add(session: Session, filter: string, group: string | null, options: SubscriptionOptions): boolean {
    if (group === null) return this.direct.add(filter, session.clientId, { session, options });
    let g = this.shared.get(filter, group);
    const first = g === undefined;
    if (g === undefined) {
      g = new SharedGroup();
      this.shared.add(filter, group, g);
    }
    const existing = g.members.find((m) => m.session === session);
    if (existing) existing.options = options;
    else g.members.push({ session, options });
    return first;
  }

  /** Removes a subscription; returns true when it was this node's last one of the filter (in the group). */
  remove(session: Session, filter: string, group: string | null): boolean {
    if (group === null) {
      const entry = this.direct.get(filter, session.clientId);
      return entry !== undefined && entry.session === session && this.direct.remove(filter, session.clientId);
    }
    const g = this.shared.get(filter, group);
    if (g === undefined) return false;
    const i = g.members.findIndex((m) => m.session === session);
    if (i >= 0) g.members.splice(i, 1);
    if (g.members.length > 0) return false;
    this.shared.remove(filter, group);
    return true;
  }

  /**
   * Calls `visit` once per session that should receive a message on `message.topic`: for plain
   * subscriptions with the highest granted QoS and every subscription identifier of the matching
   * subscriptions; for each matching shared subscription, for one member. Single-node routing.
   */
  route(message: Message, visit: RouteVisitor): number {
    let delivered = this.routeDirect(message, visit);
    this.shared.match(message.topic, (_group, g) => {
      if (deliverToMember(g, visit)) delivered++;
    });
    return delivered;
  }

  /** The plain-subscription half of `route`. */
  routeDirect(message: Message, visit: RouteVisitor): number {
    const seq = ++this.seq;
    const hits = this.hits;
    let n = 0;
    const origin = message.origin;
    this.direct.match(message.topic, (_key, sub) => {
      const o = sub.options;
      const s = sub.session;
      if (o.noLocal && origin === s.clientId) return; // [MQTT-3.8.3-3]
      if (s.mark !== seq) {
        s.mark = seq;
        s.markQos = o.qos;
        s.markRetain = o.retainAsPublished;
        s.markIds = o.subscriptionId === undefined ? undefined : [o.subscriptionId];
        hits[n++] = s;
        return;
      }
      if (o.qos > s.markQos) s.markQos = o.qos;
      if (o.retainAsPublished) s.markRetain = true;
      if (o.subscriptionId !== undefined) {
        if (s.markIds === undefined) s.markIds = [o.subscriptionId];
        else s.markIds.push(o.subscriptionId);
      }
    });
    for (let i = 0; i < n; i++) {
      const s = hits[i];
      hits[i] = undefined as unknown as Session;
      visit(s, s.markQos, s.markRetain, s.markIds);
    }
    return n;
  }

  /**
   * Every subscription of this node matching `topic`: its client, the filter as subscribed
   * (`$share/<group>/<filter>` for a shared one) and its options (the admin API's subscriber listing).
   */
  subscribersOf(
    topic: string,
    visit: (clientId: string, filter: string, options: SubscriptionOptions) => void,
  ): void {
    this.direct.match(topic, (clientId, sub, filter) => visit(clientId, filter, sub.options));
    this.shared.match(topic, (group, g, filter) => {
      for (const m of g.members) visit(m.session.clientId, `$share/${group}/${filter}`, m.options);
    });
  }

  /** Shared subscriptions of this node matching `topic`, by key `group\nfilter` (for cluster routing). */
  matchShared(topic: string, visit: (groupKey: string) => void): void {
    this.shared.match(topic, (group, _g, filter) => visit(`${group}\n${filter}`));
  }

  /** Delivers to one local member of the shared subscription `groupKey`; false if it has none here. */
  deliverShared(groupKey: string, visit: RouteVisitor): boolean {
    const nl = groupKey.indexOf('\n');
    const g = this.shared.get(groupKey.slice(nl + 1), groupKey.slice(0, nl));
    return g !== undefined && deliverToMember(g, visit);
  }
}

function deliverToMember(g: SharedGroup, visit: RouteVisitor): boolean {
  const m = g.pick();
  if (m === undefined) return false;
  const o = m.options;
  visit(
    m.session,
    o.qos,
    o.retainAsPublished,
    o.subscriptionId === undefined ? undefined : [o.subscriptionId],
  );
  return true;
}
