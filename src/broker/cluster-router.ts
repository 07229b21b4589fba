/**
 * The cluster half of the publish path: which other nodes get a message (plain routes from the
 * replicated route table), and which single member — on this node or another — gets it for each
 * matching shared subscription, so each message reaches one member per group in the whole cluster.
 */
import type { ClusterBackend, Envelope, SessionStore } from '../backend/types.js';
import type { Message } from '../message.js';
import type { QoS } from '../protocol/index.js';
import type { Hold } from './latch.js';
import type { RouteVisitor, SubscriptionIndex } from './subscriptions.js';

export class ClusterRouter {
  /** Round-robin position per shared subscription (`group\nfilter`). */
  private readonly turn = new Map<string, number>();

  constructor(
    private readonly backend: ClusterBackend,
    private readonly index: SubscriptionIndex,
  ) {}

  /**
   * Sends `message` to the other nodes that need it and delivers this node's share of shared
   * subscriptions through `visit`. For QoS >= 1, each send takes a `hold` that is released once
   * Redis accepted it. Returns the number of deliveries started (nodes plus local shared members).
   */
  route(message: Message, visit: RouteVisitor, hold: Hold | undefined): number {
    if (this.backend.standalone === true) return this.routeAlone(message, visit, hold);
    const topic = message.topic;
    let envelopes: Map<string, Envelope> | undefined;
    const to = (node: string): Envelope => {
      envelopes ??= new Map();
      let e = envelopes.get(node);
      if (e === undefined) {
        e = { message, direct: false };
        envelopes.set(node, e);
      }
      return e;
    };
    this.backend.routes.matchNodes(topic, (node) => {
      to(node).direct = true;
    });

    let remoteShared: Map<string, ReadonlySet<string>> | undefined;
    this.backend.routes.matchShared(topic, (key, nodes) => {
      remoteShared ??= new Map();
      remoteShared.set(key, nodes);
    });
    let delivered = 0;
    const offline = this.backend.sessions.matchOfflineShared;
    let served: Set<string> | undefined;
    this.index.matchShared(topic, (key) => {
      if (offline !== undefined) served = seen(served, key);
      const remote = remoteShared?.get(key);
      remoteShared?.delete(key);
      const node = this.choose(key, remote, true, message.dedupe);
      if (node === null) {
        if (this.index.deliverShared(key, visit)) delivered++;
      } else if (node !== undefined) {
        const e = to(node);
        e.shared ??= [];
        e.shared.push(key);
      }
    });
    if (remoteShared !== undefined) {
      for (const [key, nodes] of remoteShared) {
        if (offline !== undefined) served = seen(served, key);
        const node = this.choose(key, nodes, false, message.dedupe);
        if (node) {
          const e = to(node);
          e.shared ??= [];
          e.shared.push(key);
        }
      }
    }
    if (envelopes !== undefined) {
      for (const [node, envelope] of envelopes) {
        delivered++;
        this.backend.bus.send(node, envelope, message.qos > 0 && hold ? hold() : undefined);
      }
    }
    delivered += this.routeSessions(this.backend.sessions, message, hold);
    if (offline !== undefined) delivered += this.routeOfflineShared(message, served, hold);
    return delivered;
  }

  /** A single node's own backend: no other node to send to; its shared groups and stored sessions. */
  private routeAlone(message: Message, visit: RouteVisitor, hold: Hold | undefined): number {
    const offline = this.backend.sessions.matchOfflineShared !== undefined;
    let served: Set<string> | undefined;
    let delivered = 0;
    this.index.matchShared(message.topic, (key) => {
      if (offline) served = seen(served, key);
      if (this.index.deliverShared(key, visit)) delivered++;
    });
    delivered += this.routeSessions(this.backend.sessions, message, hold);
    if (offline) delivered += this.routeOfflineShared(message, served, hold);
    return delivered;
  }

  /**
   * Groups whose members are all offline (where the store keeps them): the share is queued for one
   * of those members, in turn (MQTT 5 4.8.2: the message reaches one session of the group).
   */
  private routeOfflineShared(
    message: Message,
    served: Set<string> | undefined,
    hold: Hold | undefined,
  ): number {
    const sessions = this.backend.sessions;
    let groups: Map<string, { clientId: string; qos: QoS; retain: boolean; id?: number }[]> | undefined;
    sessions.matchOfflineShared?.(message.topic, (key, clientId, o) => {
      if (served?.has(key)) return;
      groups ??= new Map();
      let members = groups.get(key);
      if (members === undefined) {
        members = [];
        groups.set(key, members);
      }
      members.push({ clientId, qos: o.qos, retain: o.retainAsPublished, id: o.subscriptionId });
    });
    if (groups === undefined) return 0;
    for (const [key, members] of groups) {
      const t = this.turn.get(key) ?? 0;
      this.turn.set(key, t + 1);
      const m = members[t % members.length];
      const qos = Math.min(message.qos, m.qos) as QoS;
      const ids = m.id === undefined ? undefined : [m.id];
      const delivery = { message, qos, retain: m.retain && message.retain, subscriptionIds: ids };
      sessions.append(m.clientId, delivery, qos > 0 && hold !== undefined ? hold() : undefined);
    }
    return groups.size;
  }

  /**
   * Persistent sessions anywhere in the cluster: one delivery per session into its queue (its
   * overlapping subscriptions merged, MQTT 5 3.3.4), held until Redis has it.
   */
  private routeSessions(sessions: SessionStore, message: Message, hold: Hold | undefined): number {
    let merged: Map<string, { qos: QoS; retain: boolean; ids: number[] | undefined }> | undefined;
    sessions.matchSessions(message.topic, (clientId, o) => {
      // [MQTT-3.8.3-3] No Local: not to the session that published it.
      if (o.noLocal && message.origin === clientId) return;
      merged ??= new Map();
      const m = merged.get(clientId);
      if (m === undefined) {
        const ids = o.subscriptionId === undefined ? undefined : [o.subscriptionId];
        merged.set(clientId, { qos: o.qos, retain: o.retainAsPublished, ids });
        return;
      }
      if (o.qos > m.qos) m.qos = o.qos;
      m.retain ||= o.retainAsPublished;
      if (o.subscriptionId !== undefined) {
        m.ids ??= [];
        m.ids.push(o.subscriptionId);
      }
    });
    if (merged === undefined) return 0;
    for (const [clientId, m] of merged) {
      const qos = Math.min(message.qos, m.qos) as QoS;
      // [MQTT-3.3.1-12] RETAIN is cleared on forwarding unless Retain As Published [MQTT-3.3.1-13].
      const delivery = { message, qos, retain: m.retain && message.retain, subscriptionIds: m.ids };
      sessions.append(clientId, delivery, qos > 0 && hold !== undefined ? hold() : undefined);
    }
    return merged.size;
  }

  /**
   * Gives one share of the shared subscription `key` to a member other than on node `gone` (a member
   * left, or its node died, after the share was routed there): a local member if any, else a node
   * in turn among the others with members. False when the group has no member left anywhere.
   */
  reroute(message: Message, key: string, gone: string, visit: RouteVisitor, hold: Hold | undefined): boolean {
    if (gone !== this.backend.nodeId && this.index.deliverShared(key, visit)) return true;
    const nodes = new Set<string>();
    this.backend.routes.matchShared(message.topic, (k, members) => {
      if (k === key) for (const n of members) if (n !== gone && n !== this.backend.nodeId) nodes.add(n);
    });
    const node = this.choose(key, nodes, false, message.dedupe);
    if (!node) return false;
    const accepted = message.qos > 0 && hold ? hold() : undefined;
    this.backend.bus.send(node, { message, direct: false, shared: [key] }, accepted);
    return true;
  }

  /**
   * Picks in turn among this node (null) and the remote nodes holding members of `key`. A message
   * with a dedupe id is routed again to the node it went to the first time (the group's nodes
   * unchanged), whose dedupe then skips it: picked by the id, not in turn.
   */
  private choose(
    key: string,
    remote: ReadonlySet<string> | undefined,
    local: boolean,
    dedupe: string | undefined,
  ): string | null | undefined {
    const n = (remote?.size ?? 0) + (local ? 1 : 0);
    if (n === 0) return undefined;
    let t: number;
    if (dedupe === undefined) {
      t = this.turn.get(key) ?? 0;
      this.turn.set(key, t + 1);
    } else t = hash(dedupe);
    let i = t % n;
    if (local) {
      if (i === 0) return null;
      i--;
    }
    for (const node of remote ?? []) if (i-- === 0) return node;
    return undefined;
  }
}

/** `set` (made on first use) with `key` added. */
function seen(set: Set<string> | undefined, key: string): Set<string> {
  const s = set ?? new Set<string>();
  s.add(key);
  return s;
}

/** FNV-1a of a string, as an unsigned 32-bit number. */
function hash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}
