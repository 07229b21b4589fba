/**
 * Persistent sessions of an in-process cluster (MemoryHub): the same contract as the Redis store
 * (test/contract/session-store.contract.ts runs both) — queues publishers append to, packet ids
 * given at fetch, fenced writes, expiry, orphaning by the reaper — kept in the hub's maps.
 */

import type { Clock, TimerHandle } from '../../clock.js';
import type { Delivery, SubscriptionOptions } from '../../message.js';
import { DEDUPE_MAX, DEDUPE_WINDOW_MS, ownPayload } from '../../message.js';
import { parseSubscription, TopicTrie } from '../../topics/index.js';
import {
  type ClusterHandlers,
  FencedError,
  type FetchedDelivery,
  type SessionStore,
  type StoredSession,
} from '../types.js';
import type { HubJournal, HubState, SessionRecord } from './journal.js';

/** Session Expiry Interval 0xFFFFFFFF: the session never expires. */
const NEVER = 0xffffffff;

/**
 * One persistent session as the hub keeps it (what Redis holds in `sess`, `q`, `inf` and `rel`).
 * `taken` / `appended`: sequence of the last queued entry taken, and of the last appended;
 * `awaitingRelease`: inbound QoS 2 ids between PUBREC and PUBREL, with their messages' dedupe ids
 * ('' none).
 */
export interface HubSession extends SessionRecord {
  /** The node serving it; '' while offline. */
  on: string;
  queue: { seq: number; delivery: Delivery }[];
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
    /** Where changes go to survive a restart (a single node's data dir); none: memory only. */
    readonly journal?: HubJournal,
  ) {}

  /** Resolves once what changed so far is on disk; undefined without a journal (nothing to wait for). */
  durable(): Promise<void> | undefined {
    return this.journal?.committed();
  }

  /** Reports a change of `s` to the journal. */
  changed(clientId: string, s: HubSession): void {
    this.journal?.session(clientId, s);
  }

  /**
   * Takes the sessions of a journal's state, as after a restart: every one is offline (the process
   * that served them is gone), its expiry counted from when it went offline (or from now, for one
   * served at the crash); one whose expiry passed ends now.
   */
  restore(state: HubState['sessions']): void {
    const now = this.clock.now();
    for (const [clientId, { record, queue, dedupe }] of state) {
      const s: HubSession = { ...record, on: '', queue, dedupe, drainWaiters: [] };
      this.sessions.set(clientId, s);
      for (const [raw, options] of s.subscriptions)
        if (parseSubscription(raw)?.group === null) this.routes.add(raw, clientId, { ...options });
      const since = record.offlineAt ?? now;
      const left =
        s.expirySeconds === NEVER ? NEVER : Math.ceil((since + s.expirySeconds * 1000 - now) / 1000);
      if (left <= 0) this.end(clientId);
      else {
        // offline() counts from now: the time already spent offline is taken off.
        this.offline(clientId, s, left);
        if (s.expirySeconds !== NEVER) s.expirySeconds = record.expirySeconds;
        s.offlineAt = since;
        this.changed(clientId, s);
      }
    }
  }

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
        offlineAt: undefined,
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
    s.offlineAt = undefined;
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
    this.changed(clientId, s);
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
    if (this.journal !== undefined) {
      for (const e of s.queue) this.journal.dequeued(clientId, e.seq);
      for (const id of s.dedupe.keys()) this.journal.dedupe(clientId, id, undefined);
      this.journal.session(clientId, undefined);
    }
    this.releaseDrained(s, true);
  }

  /** Goes offline; ends after its expiry (or now, for 0). */
  offline(clientId: string, s: HubSession, expirySeconds: number): void {
    if (expirySeconds === 0) {
      this.end(clientId);
      return;
    }
    s.on = '';
    s.offlineAt = this.clock.now();
    s.expirySeconds = expirySeconds;
    this.changed(clientId, s);
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
    // Answered on a later turn, as over Redis; with a journal once the change is on disk.
    const answer = () => this.answer(accepted);
    if (s === undefined || (s.on === '' && delivery.qos === 0)) {
      answer();
      return;
    }
    const id = delivery.message.dedupe;
    if (id !== undefined && this.seen(clientId, s, id)) {
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
    if (id !== undefined) {
      const at = this.hub.clock.now();
      s.dedupe.set(id, at);
      this.hub.journal?.dedupe(clientId, id, at);
    }
    const entry = { seq: ++s.appended, delivery: { ...delivery } };
    s.queue.push(entry);
    if (this.hub.journal !== undefined) {
      this.hub.journal.queued(clientId, entry.seq, entry.delivery);
      this.hub.changed(clientId, s);
    }
    const serving = s.on;
    if (serving !== '') setImmediate(() => this.hub.handlersOf(serving)?.poke([clientId]));
    if (flow && s.queue.length >= this.hub.mark) {
      // Held now (so an end or offline of the session releases it), answered once it drains.
      s.drainWaiters.push(() => this.answer(accepted));
      return;
    }
    answer();
  }

  /** Calls `accepted` on a later turn, or once the journal committed what it waits for (with its error). */
  private answer(accepted: ((err?: Error) => void) | undefined): void {
    const durable = this.hub.durable();
    if (durable === undefined) setImmediate(() => accepted?.());
    else
      durable.then(
        () => accepted?.(),
        (err: Error) => accepted?.(err),
      );
  }

  /** Whether a delivery with dedupe id `id` was queued within the window (older ones are forgotten). */
  private seen(clientId: string, s: HubSession, id: string): boolean {
    const since = this.hub.clock.now() - DEDUPE_WINDOW_MS;
    for (const [old, at] of s.dedupe) {
      if (at >= since && s.dedupe.size <= DEDUPE_MAX) break;
      s.dedupe.delete(old);
      this.hub.journal?.dedupe(clientId, old, undefined);
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
        this.hub.journal?.dequeued(clientId, entry.seq);
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
    if (out.length > 0) {
      // Handed over only once on disk: a restart must not give these packet ids to others.
      this.hub.changed(clientId, s);
      await this.hub.durable();
    }
    return out;
  }

  acknowledged(clientId: string, epoch: number, packetId: number): void {
    const s = this.fenced(clientId, epoch);
    const entry = s?.inflight.get(packetId);
    if (s === undefined || entry === undefined) return;
    s.inflight.delete(packetId);
    const i = s.queue.findIndex((e) => e.seq === entry.seq);
    if (i >= 0) s.queue.splice(i, 1);
    this.hub.journal?.dequeued(clientId, entry.seq);
    this.hub.changed(clientId, s);
    this.hub.releaseDrained(s);
  }

  async releasing(clientId: string, epoch: number, packetId: number): Promise<void> {
    const s = this.owned(clientId, epoch);
    const entry = s.inflight.get(packetId);
    if (entry !== undefined) entry.phase = 'pubrel';
    this.hub.changed(clientId, s);
    await this.hub.durable();
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
    this.hub.changed(clientId, s);
    await this.hub.durable();
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
    this.hub.changed(clientId, s);
    await this.hub.durable();
  }

  async unsubscribe(clientId: string, epoch: number, raw: string, plain: boolean): Promise<void> {
    const s = this.owned(clientId, epoch);
    s.subscriptions.delete(raw);
    if (plain) this.hub.routes.remove(raw, clientId);
    this.hub.changed(clientId, s);
    await this.hub.durable();
  }

  async detach(clientId: string, epoch: number, expirySeconds: number): Promise<void> {
    const s = this.fenced(clientId, epoch);
    if (s !== undefined) this.hub.offline(clientId, s, expirySeconds);
    await this.hub.durable();
  }
}
