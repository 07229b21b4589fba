/**
 * Persistent sessions of an in-process cluster (MemoryHub): the same contract as the Redis store
 * (test/contract/session-store.contract.ts runs both) — queues publishers append to, packet ids
 * given at fetch, fenced writes, expiry, orphaning by the reaper — kept in the hub's maps.
 */

import type { Clock, TimerHandle } from '../../clock.js';
import {
  DEDUPE_MAX,
  DEDUPE_WINDOW_MS,
  type Delivery,
  ownPayload,
  type SubscriptionOptions,
} from '../../message.js';
import { parseSubscription, TopicTrie } from '../../topics/index.js';
import {
  type ClusterHandlers,
  FencedError,
  type FetchedDelivery,
  type SessionStore,
  type StoredSession,
} from '../types.js';

/** Session Expiry Interval 0xFFFFFFFF: the session never expires. */
const NEVER = 0xffffffff;

/** One persistent session as the hub keeps it (what Redis holds in `sess`, `q`, `inf` and `rel`). */
export interface HubSession {
  /** The node serving it; '' while offline. */
  on: string;
  expirySeconds: number;
  subscriptions: Map<string, SubscriptionOptions>;
  queue: { seq: number; delivery: Delivery }[];
  /** Sequence of the last queued entry taken, and of the last appended. */
  taken: number;
  appended: number;
  nextPacketId: number;
  inflight: Map<number, { seq: number; phase: 'publish' | 'pubrel' }>;
  /** Inbound QoS 2 ids between PUBREC and PUBREL, with their messages' dedupe ids ('' none). */
  awaitingRelease: Map<number, string>;
  /** Dedupe ids of the messages queued lately, with when (as Redis' `dd` sorted set). */
  dedupe: Map<string, number>;
  expiry?: TimerHandle;
  /** Publishers' acknowledgements held while the queue is congested (flow control). */
  drainWaiters: (() => void)[];
}

/** What the sessions of one hub share: the sessions and the persistent-session routes. */
export class HubSessions {
  readonly sessions = new Map<string, HubSession>();
  readonly routes = new TopicTrie<SubscriptionOptions>();

  constructor(
    readonly clock: Clock,
    /** The owner record of a client id: the fence. */
    readonly owner: (clientId: string) => { node: string; epoch: number } | undefined,
    /** The handlers of a running node (pokes, drops). */
    readonly handlersOf: (node: string) => ClusterHandlers | undefined,
  ) {}

  /** Claim: Clean Start discards; otherwise a stored session is loaded, or made when asked for. */
  claim(clientId: string, node: string, clean: boolean, expirySeconds: number): StoredSession | undefined {
    let s = this.sessions.get(clientId);
    if (clean && s !== undefined) {
      this.end(clientId);
      s = undefined;
    }
    const present = s !== undefined;
    if (s === undefined) {
      if (expirySeconds === 0) return undefined;
      s = {
        on: node,
        expirySeconds,
        subscriptions: new Map(),
        queue: [],
        taken: 0,
        appended: 0,
        nextPacketId: 1,
        inflight: new Map(),
        awaitingRelease: new Map(),
        dedupe: new Map(),
        drainWaiters: [],
      };
      this.sessions.set(clientId, s);
    }
    s.on = node;
    s.expirySeconds = expirySeconds;
    s.expiry?.cancel();
    s.expiry = undefined;
    const bySeq = new Map(s.queue.map((e) => [e.seq, e.delivery]));
    const inflight: StoredSession['inflight'] = [];
    for (const [packetId, { seq, phase }] of [...s.inflight].sort((a, b) => a[1].seq - b[1].seq)) {
      const delivery = bySeq.get(seq);
      if (delivery !== undefined) inflight.push({ packetId, phase, delivery: { ...delivery } });
      else s.inflight.delete(packetId);
    }
    return {
      present,
      subscriptions: new Map(s.subscriptions),
      inflight,
      awaitingRelease: [...s.awaitingRelease.keys()],
      dedupeIds: new Map([...s.awaitingRelease].filter(([, d]) => d !== '')),
      position: String(s.taken),
    };
  }

  /** The session ends: its queue and routes go, held publishers are released. */
  end(clientId: string): void {
    const s = this.sessions.get(clientId);
    if (s === undefined) return;
    this.sessions.delete(clientId);
    s.expiry?.cancel();
    for (const raw of s.subscriptions.keys()) this.routes.remove(raw, clientId);
    this.releaseDrained(s, true);
  }

  /** Goes offline; ends after its expiry (or now, for 0). */
  offline(clientId: string, s: HubSession, expirySeconds: number): void {
    if (expirySeconds === 0) {
      this.end(clientId);
      return;
    }
    s.on = '';
    s.expirySeconds = expirySeconds;
    this.releaseDrained(s, true);
    if (expirySeconds === NEVER) return;
    s.expiry = this.clock.setTimeout(() => {
      if (this.sessions.get(clientId) === s && s.on === '') this.end(clientId);
    }, expirySeconds * 1000);
  }

  /** A dead node's sessions go offline and its connections lose ownership. Returns how many. */
  reap(node: string): number {
    let n = 0;
    for (const [clientId, s] of [...this.sessions]) {
      if (s.on !== node) continue;
      const owner = this.owner(clientId);
      if (owner?.node === node) owner.node = '';
      this.offline(clientId, s, s.expirySeconds);
      n++;
    }
    return n;
  }

  /** Congestion mark: half the queue limit (set by the store, as in Redis). */
  mark = 8;

  /**
   * Flow control: held publishers go on once the queue (in flight included, as Redis' XLEN) is down
   * to half the congestion mark, or the session went offline or ended (`all`).
   */
  releaseDrained(s: HubSession, all = false): void {
    if (s.drainWaiters.length === 0) return;
    if (!all && s.on !== '' && s.queue.length > this.mark >> 1) return;
    const waiters = s.drainWaiters;
    s.drainWaiters = [];
    for (const release of waiters) release();
  }
}

export class MemorySessionStore implements SessionStore {
  constructor(
    private readonly hub: HubSessions,
    private readonly nodeId: string,
    private readonly maxQueued: number,
  ) {
    hub.mark = Math.max(8, maxQueued >> 1);
  }

  matchSessions(topic: string, visit: (clientId: string, options: SubscriptionOptions) => void): void {
    this.hub.routes.match(topic, visit);
  }

  append(clientId: string, delivery: Delivery, accepted?: (err?: Error) => void): void {
    const s = this.hub.sessions.get(clientId);
    // Answered on a later turn, as over Redis.
    const answer = (release?: () => void) => setImmediate(() => (release ?? (() => accepted?.()))());
    if (s === undefined || (s.on === '' && delivery.qos === 0)) {
      answer();
      return;
    }
    const id = delivery.message.dedupe;
    if (id !== undefined && this.seen(s, id)) {
      answer();
      return;
    }
    const flow = s.on !== '' && accepted !== undefined;
    if (s.queue.length >= (flow ? this.maxQueued * 4 : this.maxQueued)) {
      this.hub.handlersOf(this.nodeId)?.dropped('queue_full', clientId);
      answer();
      return;
    }
    ownPayload(delivery.message);
    if (id !== undefined) s.dedupe.set(id, this.hub.clock.now());
    s.queue.push({ seq: ++s.appended, delivery: { ...delivery } });
    const serving = s.on;
    if (serving !== '') setImmediate(() => this.hub.handlersOf(serving)?.poke([clientId]));
    if (flow && s.queue.length >= this.hub.mark) {
      // Held now (so an end or offline of the session releases it), answered once it drains.
      s.drainWaiters.push(() => setImmediate(() => accepted?.()));
      return;
    }
    answer();
  }

  /** Whether a delivery with dedupe id `id` was queued within the window (older ones are forgotten). */
  private seen(s: HubSession, id: string): boolean {
    const since = this.hub.clock.now() - DEDUPE_WINDOW_MS;
    for (const [old, at] of s.dedupe) {
      if (at >= since && s.dedupe.size <= DEDUPE_MAX) break;
      s.dedupe.delete(old);
    }
    return s.dedupe.has(id);
  }

  /** The session, if `epoch` on this node still owns the client id (the fence). */
  private fenced(clientId: string, epoch: number): HubSession | undefined {
    const owner = this.hub.owner(clientId);
    if (owner === undefined || owner.epoch !== epoch || owner.node !== this.nodeId) return undefined;
    return this.hub.sessions.get(clientId);
  }

  /** As fenced(), for writes that report a refusal: throws FencedError. */
  private owned(clientId: string, epoch: number): HubSession {
    const s = this.fenced(clientId, epoch);
    if (s === undefined) throw new FencedError();
    return s;
  }

  async fetch(clientId: string, epoch: number, max: number, after: string): Promise<FetchedDelivery[]> {
    const s = this.fenced(clientId, epoch);
    if (s === undefined) return [];
    const out: FetchedDelivery[] = [];
    const known = Number(after);
    if (s.taken > known) {
      // Taken by a fetch whose answer the caller did not get: handed over again, with their ids.
      const bySeq = new Map(s.queue.map((e) => [e.seq, e.delivery]));
      for (const [packetId, { seq }] of [...s.inflight].sort((a, b) => a[1].seq - b[1].seq)) {
        const delivery = bySeq.get(seq);
        if (seq > known && delivery !== undefined)
          out.push({ packetId, delivery: { ...delivery }, position: String(seq) });
      }
    }
    for (const entry of [...s.queue]) {
      // Handed-over entries count against the client's window too.
      if (out.length >= max) break;
      if (entry.seq <= s.taken) continue;
      s.taken = entry.seq;
      if (entry.delivery.qos === 0) {
        s.queue.splice(s.queue.indexOf(entry), 1);
        out.push({ packetId: 0, delivery: { ...entry.delivery }, position: String(entry.seq) });
        continue;
      }
      while (s.inflight.has(s.nextPacketId)) s.nextPacketId = (s.nextPacketId % 0xffff) + 1;
      const packetId = s.nextPacketId;
      s.nextPacketId = (packetId % 0xffff) + 1;
      s.inflight.set(packetId, { seq: entry.seq, phase: 'publish' });
      out.push({ packetId, delivery: { ...entry.delivery }, position: String(entry.seq) });
    }
    this.hub.releaseDrained(s);
    return out;
  }

  acknowledged(clientId: string, epoch: number, packetId: number): void {
    const s = this.fenced(clientId, epoch);
    const entry = s?.inflight.get(packetId);
    if (s === undefined || entry === undefined) return;
    s.inflight.delete(packetId);
    const i = s.queue.findIndex((e) => e.seq === entry.seq);
    if (i >= 0) s.queue.splice(i, 1);
    this.hub.releaseDrained(s);
  }

  async releasing(clientId: string, epoch: number, packetId: number): Promise<void> {
    const s = this.owned(clientId, epoch);
    const entry = s.inflight.get(packetId);
    if (entry !== undefined) entry.phase = 'pubrel';
  }

  async awaitRelease(
    clientId: string,
    epoch: number,
    packetId: number,
    waiting: boolean,
    dedupe = '',
  ): Promise<void> {
    const s = this.owned(clientId, epoch);
    if (waiting) s.awaitingRelease.set(packetId, dedupe);
    else s.awaitingRelease.delete(packetId);
  }

  async subscribe(
    clientId: string,
    epoch: number,
    raw: string,
    options: SubscriptionOptions,
    plain: boolean,
  ): Promise<void> {
    const s = this.owned(clientId, epoch);
    s.subscriptions.set(raw, { ...options });
    if (plain && parseSubscription(raw)?.group === null) this.hub.routes.add(raw, clientId, { ...options });
  }

  async unsubscribe(clientId: string, epoch: number, raw: string, plain: boolean): Promise<void> {
    const s = this.owned(clientId, epoch);
    s.subscriptions.delete(raw);
    if (plain) this.hub.routes.remove(raw, clientId);
  }

  async detach(clientId: string, epoch: number, expirySeconds: number): Promise<void> {
    const s = this.fenced(clientId, epoch);
    if (s !== undefined) this.hub.offline(clientId, s, expirySeconds);
  }
}
