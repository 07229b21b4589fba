/**
 * Persistent sessions of an in-process cluster (MemoryHub): the same contract as the Redis store
 * (test/contract/session-store.contract.ts runs both) — queues publishers append to, packet ids
 * given at fetch, fenced writes, expiry, orphaning by the reaper — kept in the hub's maps.
 */

import type { Clock, TimerHandle } from '../../clock.js';
import type { Delivery, SubscriptionOptions } from '../../message.js';
import { DEDUPE_MAX, DEDUPE_WINDOW_MS, isExpired, ownPayload } from '../../message.js';
import { parseSubscription, TopicTrie } from '../../topics/index.js';
import {
  type ClusterHandlers,
  FencedError,
  type FetchedDelivery,
  type OfflineSession,
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
  /**
   * Queued deliveries by sequence, in order: every sequence in (taken, appended] is here (not yet
   * taken), and those taken stay until acknowledged (QoS 1/2 in flight).
   */
  queue: Map<number, Delivery>;
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
  /** Shared subscriptions of persistent sessions, by filter, under `group\nclientId`. */
  readonly shared = new TopicTrie<SubscriptionOptions>();
  /** Offline sessions whose expiry passed since start (shoal_sessions_expired_total). */
  expired = 0;

  constructor(
    readonly clock: Clock,
    /** The owner record of a client id: the fence. */
    readonly owner: (clientId: string) => { node: string; epoch: number } | undefined,
    /** The handlers of a running node (pokes, drops). */
    readonly handlersOf: (node: string) => ClusterHandlers | undefined,
    /** Where changes go to survive a restart (a single node's data dir); none: memory only. */
    readonly journal?: HubJournal,
    /**
     * A single node's own hub: appends are answered at once (nothing else to wait for). Nodes of
     * an in-process cluster are answered a turn later, as Redis would.
     */
    readonly answersAtOnce = false,
  ) {}

  /** Sessions appended to this turn, by the node serving them: poked together on the next turn. */
  private pokes = new Map<string, Set<string>>();
  /** Callbacks due on the next turn (answers without a journal), run together. */
  private due: (() => void)[] = [];
  private scheduled = false;

  /** Tells `node` soon that messages were queued for `clientId` (one poke per node per batch). */
  poke(node: string, clientId: string): void {
    let ids = this.pokes.get(node);
    if (ids === undefined) {
      ids = new Set();
      this.pokes.set(node, ids);
    }
    ids.add(clientId);
    this.schedule();
  }

  /** Runs `fn` on the next turn, as an answer over Redis would come. */
  later(fn: () => void): void {
    this.due.push(fn);
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    // A single node's own hub pokes once the routing of this turn's work is done (a microtask);
    // the nodes of an in-process cluster a turn later, as over Redis.
    (this.answersAtOnce ? queueMicrotask : setImmediate)(() => {
      this.scheduled = false;
      const pokes = this.pokes;
      const due = this.due;
      this.pokes = new Map();
      this.due = [];
      for (const [node, ids] of pokes) this.handlersOf(node)?.poke([...ids]);
      for (const fn of due) fn();
    });
  }

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
      const ordered = new Map([...queue].sort((a, b) => a.seq - b.seq).map((e) => [e.seq, e.delivery]));
      const s: HubSession = { ...record, on: '', queue: ordered, dedupe, drainWaiters: [] };
      this.sessions.set(clientId, s);
      for (const [raw, options] of s.subscriptions) this.route(clientId, raw, options);
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
        queue: new Map(),
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
    const inflight: StoredSession['inflight'] = [];
    for (const [packetId, { seq, phase }] of [...s.inflight].sort((a, b) => a[1].seq - b[1].seq)) {
      const delivery = s.queue.get(seq);
      if (delivery !== undefined) inflight.push({ packetId, phase, delivery: handOut(delivery, packetId) });
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

  /** Routes subscription `raw` of a stored session (plain: to its queue; shared: as an offline member). */
  route(clientId: string, raw: string, options: SubscriptionOptions): void {
    const parsed = parseSubscription(raw);
    if (parsed === null) return;
    if (parsed.group === null) this.routes.add(raw, clientId, { ...options });
    else this.shared.add(parsed.filter, `${parsed.group}\n${clientId}`, { ...options });
  }

  /** Removes the route of subscription `raw` of a stored session. */
  unroute(clientId: string, raw: string): void {
    const parsed = parseSubscription(raw);
    if (parsed === null) return;
    if (parsed.group === null) this.routes.remove(raw, clientId);
    else this.shared.remove(parsed.filter, `${parsed.group}\n${clientId}`);
  }

  /** The session ends: its queue and routes go, held publishers are released. */
  end(clientId: string): void {
    const s = this.sessions.get(clientId);
    if (s === undefined) return;
    this.sessions.delete(clientId);
    s.expiry?.cancel();
    for (const raw of s.subscriptions.keys()) this.unroute(clientId, raw);
    if (this.journal !== undefined) {
      for (const seq of s.queue.keys()) this.journal.dequeued(clientId, seq);
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
      if (this.sessions.get(clientId) !== s || s.on !== '') return;
      this.expired++;
      this.end(clientId);
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
   * Flow control: held publishers go on once the backlog (queued, not yet taken: the queue less
   * what is in flight, as in Redis) is down to half the congestion mark, or the session went
   * offline or ended (`all`).
   */
  releaseDrained(s: HubSession, all = false): void {
    if (s.drainWaiters.length === 0) return;
    if (!all && s.on !== '' && backlog(s) > this.mark >> 1) return;
    const waiters = s.drainWaiters;
    s.drainWaiters = [];
    for (const release of waiters) release();
  }
}

/** Flow control's measure: what is queued and not yet taken (the queue holds what is in flight too). */
function backlog(s: HubSession): number {
  return s.queue.size - s.inflight.size;
}

export class MemorySessionStore implements SessionStore {
  constructor(
    private readonly hub: HubSessions,
    private readonly nodeId: string,
    private readonly maxQueued: number,
  ) {
    hub.mark = Math.max(8, maxQueued >> 1);
  }

  matchSessions(
    topic: string,
    visit: (clientId: string, options: SubscriptionOptions, filter: string) => void,
  ): void {
    this.hub.routes.match(topic, visit);
  }

  append(clientId: string, delivery: Delivery, accepted?: (err?: Error) => void): void {
    const s = this.hub.sessions.get(clientId);
    // Answered on a later turn, as over Redis; with a journal once the change is on disk.
    const answer = () => this.answer(accepted);
    if (s === undefined || (s.on === '' && delivery.qos === 0)) {
      // [MQTT-3.1.2-23] no QoS 0 for an offline session (counted, as on the session path).
      if (s !== undefined) this.hub.handlersOf(this.nodeId)?.dropped('offline_qos0', clientId);
      answer();
      return;
    }
    const id = delivery.message.dedupe;
    if (id !== undefined && this.seen(clientId, s, id)) {
      answer();
      return;
    }
    const flow = s.on !== '' && accepted !== undefined;
    const limit = flow ? this.maxQueued * 4 : this.maxQueued;
    // [MQTT-3.3.2-5] expired messages are deleted, so they never take the place of live ones.
    if (s.queue.size >= limit) this.purgeExpired(clientId, s);
    if (s.queue.size >= limit) {
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
    const seq = ++s.appended;
    const copy = handOut(delivery, 0);
    s.queue.set(seq, copy);
    if (this.hub.journal !== undefined) {
      this.hub.journal.queued(clientId, seq, copy);
      this.hub.changed(clientId, s);
    }
    if (s.on !== '') this.hub.poke(s.on, clientId);
    if (flow && backlog(s) >= this.hub.mark) {
      // Held now (so an end or offline of the session releases it), answered once it drains.
      s.drainWaiters.push(() => this.answer(accepted));
      return;
    }
    answer();
  }

  /** Deletes the queued (not yet taken) messages of `s` whose Message Expiry passed. */
  private purgeExpired(clientId: string, s: HubSession): void {
    const now = this.hub.clock.now();
    for (const [seq, delivery] of s.queue) {
      if (seq <= s.taken || !isExpired(delivery.message, now)) continue;
      s.queue.delete(seq);
      this.hub.journal?.dequeued(clientId, seq);
      this.hub.handlersOf(this.nodeId)?.dropped('expired', clientId);
    }
  }

  /** Calls `accepted` on a later turn, or once the journal committed what it waits for (with its error). */
  private answer(accepted: ((err?: Error) => void) | undefined): void {
    const durable = this.hub.durable();
    if (durable === undefined) {
      if (accepted === undefined) return;
      if (this.hub.answersAtOnce) accepted();
      else this.hub.later(accepted);
    } else
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
      for (const [packetId, { seq }] of [...s.inflight].sort((a, b) => a[1].seq - b[1].seq)) {
        const delivery = s.queue.get(seq);
        if (seq > known && delivery !== undefined)
          out.push({ packetId, delivery: handOut(delivery, packetId), position: String(seq) });
      }
    }
    // Handed-over entries count against the client's window too.
    while (out.length < max && s.taken < s.appended) {
      const seq = ++s.taken;
      const delivery = s.queue.get(seq);
      if (delivery === undefined) continue;
      if (delivery.qos === 0) {
        s.queue.delete(seq);
        this.hub.journal?.dequeued(clientId, seq);
        out.push({ packetId: 0, delivery: handOut(delivery, 0), position: String(seq) });
        continue;
      }
      while (s.inflight.has(s.nextPacketId)) s.nextPacketId = (s.nextPacketId % 0xffff) + 1;
      const packetId = s.nextPacketId;
      s.nextPacketId = (packetId % 0xffff) + 1;
      s.inflight.set(packetId, { seq, phase: 'publish' });
      out.push({ packetId, delivery: handOut(delivery, packetId), position: String(seq) });
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
    s.queue.delete(entry.seq);
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
    _plain: boolean,
  ): Promise<void> {
    const s = this.owned(clientId, epoch);
    s.subscriptions.set(raw, { ...options });
    this.hub.route(clientId, raw, options);
    this.hub.changed(clientId, s);
    await this.hub.durable();
  }

  async unsubscribe(clientId: string, epoch: number, raw: string, _plain: boolean): Promise<void> {
    const s = this.owned(clientId, epoch);
    s.subscriptions.delete(raw);
    this.hub.unroute(clientId, raw);
    this.hub.changed(clientId, s);
    await this.hub.durable();
  }

  matchOfflineShared(
    topic: string,
    visit: (key: string, clientId: string, options: SubscriptionOptions) => void,
  ): void {
    this.hub.shared.match(topic, (member, options, filter) => {
      const nl = member.indexOf('\n');
      const clientId = member.slice(nl + 1);
      if (this.hub.sessions.get(clientId)?.on === '')
        visit(`${member.slice(0, nl)}\n${filter}`, clientId, options);
    });
  }

  *offlineSessions(): Iterable<OfflineSession> {
    for (const [clientId, s] of this.hub.sessions) {
      if (s.on !== '') continue;
      const { expirySeconds, subscriptions } = s;
      yield { clientId, expirySeconds, subscriptions, queued: s.queue.size, inflight: s.inflight.size };
    }
  }

  discardOffline(clientId: string): boolean {
    if (this.hub.sessions.get(clientId)?.on !== '') return false;
    this.hub.end(clientId);
    return true;
  }

  offlineCount(): number {
    let n = 0;
    for (const s of this.hub.sessions.values()) if (s.on === '') n++;
    return n;
  }

  expiredCount(): number {
    return this.hub.expired;
  }

  async detach(clientId: string, epoch: number, expirySeconds: number): Promise<void> {
    const s = this.fenced(clientId, epoch);
    if (s !== undefined) this.hub.offline(clientId, s, expirySeconds);
    await this.hub.durable();
  }
}

/**
 * A copy of `delivery` for the store or for the session that takes it, in the one shape the session
 * gives an in-flight message (packet id and phase included), so the session's writes to those
 * fields keep it fast.
 */
function handOut(delivery: Delivery, packetId: number): Delivery {
  const { message, qos, retain, subscriptionIds } = delivery;
  return { message, qos, retain, subscriptionIds, packetId, phase: 'publish' } as Delivery;
}
