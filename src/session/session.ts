/**
 * A client's session (MQTT 4.1): its subscriptions, the QoS 1/2 messages in flight towards it, the
 * messages queued while it is offline or its window is full, and the QoS 2 packet ids it has sent
 * but not yet released. A session outlives connections; the channel of the current connection, if
 * any, is its `link`.
 */
import type { Delivery, SubscriptionOptions } from '../message.js';
import { isExpired, ownPayload } from '../message.js';
import type { QoS } from '../protocol/index.js';

export interface InflightEntry extends Delivery {
  packetId: number;
  /** 'publish': waiting for PUBACK / PUBREC; 'pubrel': PUBREL sent, waiting for PUBCOMP. */
  phase: 'publish' | 'pubrel';
  /** Not yet re-sent on this connection: it waits for room in the client's Receive Maximum. */
  held?: boolean;
}

/** What a session needs from the connection currently attached to it (implemented by the channel). */
export interface SessionLink {
  /** Sends a PUBLISH; for QoS 0 returns false when the client is too slow and the message was dropped. */
  sendPublish(d: Delivery, packetId: number, dup: boolean): boolean;
  sendPubrel(packetId: number): void;
  /** Room for more QoS 1/2 in flight: min(client Receive Maximum, broker cap). */
  readonly inflightLimit: number;
  /** False while the outbound buffer is over its high-water mark. */
  readonly writable: boolean;
}

/**
 * A persistent session kept by the cluster (backend SessionStore, via durable-queue.ts): its QoS 1/2
 * messages wait in Redis, not in this object, and arrive through `fill` with their packet ids.
 */
export interface DurableQueue {
  /** The fencing epoch of the connection serving the session (its writes carry it). */
  readonly epoch: number;
  /** Messages were queued for the session elsewhere: take them. */
  poke(): void;
  /** Queues a delivery made on this node (retained on subscribe, a shared subscription's share). */
  append(delivery: Delivery, accepted?: (err?: Error) => void): void;
  /** The client's window has room: take more queued messages. */
  fetch(): void;
  acknowledged(packetId: number): void;
  /** PUBREC received: PUBCOMP awaited; resolves once stored (PUBREL is sent then). */
  releasing(packetId: number): Promise<void>;
  /** An inbound QoS 2 id received (true, with its message's dedupe id) or released (false); resolves once stored. */
  awaitRelease(packetId: number, waiting: boolean, dedupe?: string): Promise<void>;
}

export type DropReason = 'queue_full' | 'expired' | 'slow_consumer' | 'offline_qos0';

export interface SessionEvents {
  dropped(reason: DropReason, session: Session): void;
}

const EMPTY_SUBS = new Map<string, SubscriptionOptions>();
const EMPTY_INFLIGHT = new Map<number, InflightEntry>();
const EMPTY_IDS = new Set<number>();

/** How far past maxQueuedMessages flow-controlled publishers may fill an online session's queue. */
const OVERFLOW = 4;

export class Session {
  // The collections start as shared empty ones and are made on first write: an idle client costs
  // no Map of its own (read them freely; write through the methods below).
  subscriptions: ReadonlyMap<string, SubscriptionOptions> & Map<string, SubscriptionOptions> = EMPTY_SUBS;
  inflight: Map<number, InflightEntry> = EMPTY_INFLIGHT;
  /** Inbound QoS 2 ids for which PUBREC was sent and PUBREL not yet received (MQTT 5 §4.3.3). */
  awaitingRelease: Set<number> = EMPTY_IDS;
  /** Durable sessions: the dedupe ids (Message.dedupe) of those messages, by packet id. */
  dedupeIds: Map<number, string> | undefined;
  link: SessionLink | null = null;
  /** Cluster mode, persistent session: where its messages are kept (undefined: in this object). */
  durable: DurableQueue | undefined;
  /** Seconds after disconnection before the session is discarded; 0xFFFFFFFF never. */
  expirySeconds = 0;
  private queue: Delivery[] = [];
  /** Releases of publishers' acknowledgements that wait for this session to drain (flow control). */
  private drainWaiters: ((err?: Error) => void)[] | undefined;
  private queueHead = 0;
  /** No queued message expires before this (clock ms); a full queue is purged only once it has passed. */
  private earliestExpiry = Number.POSITIVE_INFINITY;
  private nextPacketId = 1;
  /** In-flight entries with `held` set. */
  private held = 0;

  // Scratch fields used by the publish pipeline to merge overlapping subscriptions without allocating.
  mark = 0;
  markQos: QoS = 0;
  markRetain = false;
  markIds: number[] | undefined = undefined;

  constructor(
    readonly clientId: string,
    readonly maxQueued: number,
    private readonly now: () => number,
    private readonly events: SessionEvents,
  ) {}

  setSubscription(raw: string, options: SubscriptionOptions): void {
    if (this.subscriptions === EMPTY_SUBS) this.subscriptions = new Map();
    this.subscriptions.set(raw, options);
  }

  /**
   * Records an inbound QoS 2 packet id between PUBREC and PUBREL; a durable session returns the
   * promise of its store write (PUBREC waits for it, so a new owner knows the id), which keeps the
   * message's `dedupe` id beside it.
   */
  awaitRelease(packetId: number, dedupe?: string): Promise<void> | undefined {
    if (this.awaitingRelease === EMPTY_IDS) this.awaitingRelease = new Set();
    this.awaitingRelease.add(packetId);
    if (dedupe !== undefined) {
      this.dedupeIds ??= new Map();
      this.dedupeIds.set(packetId, dedupe);
    }
    return this.durable?.awaitRelease(packetId, true, dedupe);
  }

  /** The id a re-sent QoS 2 PUBLISH is routed again under; undefined: not routed again. */
  dedupeOf(packetId: number): string | undefined {
    return this.dedupeIds?.get(packetId);
  }

  /** PUBREL received (or the exchange failed): the inbound QoS 2 exchange ends. False when the id was not held. */
  release(packetId: number): boolean {
    if (!this.awaitingRelease.delete(packetId)) return false;
    this.dedupeIds?.delete(packetId);
    this.durable?.awaitRelease(packetId, false).catch(() => undefined);
    return true;
  }

  get queued(): number {
    return this.queue.length - this.queueHead;
  }

  /**
   * An online session whose queue is half full: publishers of QoS 1/2 messages to it get their
   * PUBACK / PUBREC only once it drains, so their in-flight window stops them instead of the queue
   * overflowing. An offline session is never congested: its queue fills and drops (counted).
   */
  get congested(): boolean {
    return this.link !== null && this.durable === undefined && this.queued >= this.congestionMark;
  }

  private get congestionMark(): number {
    return Math.max(8, this.maxQueued >> 1);
  }

  /** Calls `release` once the queue is below a quarter of its size (or the client went away). */
  whenDrained(release: (err?: Error) => void): void {
    this.drainWaiters ??= [];
    this.drainWaiters.push(release);
  }

  private notifyDrained(): void {
    const waiters = this.drainWaiters;
    if (waiters === undefined) return;
    if (this.link !== null && this.queued > this.congestionMark >> 1) return;
    this.drainWaiters = undefined;
    for (const release of waiters) release();
  }

  /** The client's connection ended; the session stays (or is ended by the broker). */
  detach(): void {
    this.link = null;
    this.notifyDrained();
  }

  /**
   * Routes one delivery: send now if the client is online with room in its window, else queue
   * (QoS > 0). The Delivery object is kept only if the message is queued or in flight.
   * `hold` takes a hold on the publisher's acknowledgement (a durable append waits for Redis).
   * `flowControlled`: the publisher's acknowledgement waits while this session is congested, so
   * its in-flight window bounds what it can add: an online session's queue may then grow past
   * maxQueuedMessages, up to OVERFLOW times it, instead of dropping acknowledged-to-be messages.
   * A message from another node's publisher is not flow controlled: it takes maxQueuedMessages.
   */
  deliver(delivery: Delivery, hold?: () => (err?: Error) => void, flowControlled = hold !== undefined): void {
    const link = this.link;
    if (this.durable !== undefined && delivery.qos > 0) {
      ownPayload(delivery.message);
      this.durable.append(delivery, hold?.());
      return;
    }
    if (delivery.qos === 0) {
      if (link === null) {
        this.events.dropped('offline_qos0', this);
        return;
      }
      if (!link.sendPublish(delivery, 0, false)) this.events.dropped('slow_consumer', this);
      return;
    }
    if (
      link !== null &&
      this.queued === 0 &&
      this.held === 0 &&
      this.inflight.size < link.inflightLimit &&
      link.writable
    ) {
      this.sendInflight(link, delivery);
      return;
    }
    this.enqueue(delivery, flowControlled && link !== null ? this.maxQueued * OVERFLOW : this.maxQueued);
  }

  private enqueue(delivery: Delivery, limit: number): void {
    // [MQTT-3.3.2-5] expired copies are deleted, so they never take the place of live ones.
    if (this.queued >= limit && this.now() >= this.earliestExpiry) this.purgeExpired();
    if (this.queued >= limit) {
      this.events.dropped('queue_full', this);
      return;
    }
    ownPayload(delivery.message);
    this.queue.push(delivery);
    const expiresAt = delivery.message.expiresAt;
    if (expiresAt !== undefined && expiresAt < this.earliestExpiry) this.earliestExpiry = expiresAt;
  }

  private sendInflight(link: SessionLink, delivery: Delivery): void {
    const packetId = this.allocatePacketId();
    ownPayload(delivery.message);
    const entry = delivery as InflightEntry;
    entry.packetId = packetId;
    entry.phase = 'publish';
    if (this.inflight === EMPTY_INFLIGHT) this.inflight = new Map();
    this.inflight.set(packetId, entry);
    link.sendPublish(entry, packetId, false);
  }

  /**
   * Messages taken from a durable session's queue, with their packet ids: sent now (the store took
   * only as many as the window had room for).
   */
  fill(fetched: readonly { packetId: number; delivery: Delivery }[]): void {
    const link = this.link;
    const now = this.now();
    for (const { packetId, delivery } of fetched) {
      if (delivery.qos === 0) {
        if (link === null) this.events.dropped('offline_qos0', this);
        else if (!link.sendPublish(delivery, 0, false)) this.events.dropped('slow_consumer', this);
        continue;
      }
      if (isExpired(delivery.message, now)) {
        this.events.dropped('expired', this);
        this.durable?.acknowledged(packetId);
        continue;
      }
      const entry = delivery as InflightEntry;
      entry.packetId = packetId;
      entry.phase = 'publish';
      if (this.inflight === EMPTY_INFLIGHT) this.inflight = new Map();
      this.inflight.set(packetId, entry);
      if (link !== null) link.sendPublish(entry, packetId, false);
    }
  }

  /** A durable session resumed: what was in flight when its last connection ended, in order. */
  restore(inflight: readonly { packetId: number; phase: 'publish' | 'pubrel'; delivery: Delivery }[]): void {
    if (inflight.length > 0 && this.inflight === EMPTY_INFLIGHT) this.inflight = new Map();
    for (const { packetId, phase, delivery } of inflight) {
      const entry = delivery as InflightEntry;
      entry.packetId = packetId;
      entry.phase = phase;
      this.inflight.set(packetId, entry);
    }
  }

  /** Sends queued messages while the window and the socket allow. */
  pump(): void {
    const link = this.link;
    if (link === null) return;
    if (this.held > 0) this.resendHeld(link);
    if (this.durable !== undefined) {
      if (this.inflight.size < link.inflightLimit && link.writable) this.durable.fetch();
      this.notifyDrained();
      return;
    }
    const now = this.now();
    while (this.queueHead < this.queue.length && this.inflight.size < link.inflightLimit && link.writable) {
      const delivery = this.queue[this.queueHead++];
      if (isExpired(delivery.message, now)) {
        this.events.dropped('expired', this);
        continue;
      }
      this.sendInflight(link, delivery);
    }
    this.notifyDrained();
    if (this.queueHead === this.queue.length) {
      this.queue = [];
      this.queueHead = 0;
    } else if (this.queueHead > 1024 && this.queueHead * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.queueHead);
      this.queueHead = 0;
    }
  }

  /**
   * On reconnect to an existing session: re-send unacknowledged PUBLISH with DUP and PUBREL for
   * acknowledged-but-incomplete QoS 2, in the original order [MQTT-4.4.0-1] [MQTT-4.6.0-1].
   */
  resume(link: SessionLink): void {
    this.link = link;
    // [MQTT-3.3.4-9] no more unacknowledged PUBLISH than this connection's Receive Maximum (which may
    // be smaller than the last one's): the rest wait, with their ids, for acknowledgements to make room.
    this.held = 0;
    let window = 0;
    for (const entry of this.inflight.values()) {
      entry.held = false;
      if (entry.phase === 'pubrel') link.sendPubrel(entry.packetId);
      else if (window < link.inflightLimit) link.sendPublish(entry, entry.packetId, true);
      else {
        entry.held = true;
        this.held++;
      }
      window++;
    }
    this.pump();
  }

  /** Re-sends held entries, in their original order, while the client's window has room. */
  private resendHeld(link: SessionLink): void {
    for (const entry of this.inflight.values()) {
      if (this.inflight.size - this.held >= link.inflightLimit || !link.writable) return;
      if (entry.held !== true) continue;
      entry.held = false;
      this.held--;
      link.sendPublish(entry, entry.packetId, true);
      if (this.held === 0) return;
    }
  }

  /** PUBACK, or PUBREC carrying a failure code: the exchange ends. */
  complete(packetId: number): boolean {
    const entry = this.inflight.get(packetId);
    if (entry === undefined) return false;
    if (entry.held === true) this.held--;
    this.inflight.delete(packetId);
    this.durable?.acknowledged(packetId);
    this.pump();
    return true;
  }

  /** PUBREC (success): move to the release phase. Returns false if the id is unknown. */
  received(packetId: number): boolean {
    const entry = this.inflight.get(packetId);
    if (entry === undefined) return false;
    if (entry.held === true) {
      entry.held = false;
      this.held--;
    }
    entry.phase = 'pubrel';
    return true;
  }

  private allocatePacketId(): number {
    // [MQTT-2.2.1-3] a new id must not be in use; 65535 in flight cannot happen (window <= 65535).
    for (;;) {
      const id = this.nextPacketId;
      this.nextPacketId = id === 0xffff ? 1 : id + 1;
      if (!this.inflight.has(id)) return id;
    }
  }

  /** Drops queued and in-flight state (clean start or expiry). */
  clear(): void {
    this.subscriptions = EMPTY_SUBS;
    this.inflight = EMPTY_INFLIGHT;
    this.held = 0;
    this.awaitingRelease = EMPTY_IDS;
    this.dedupeIds = undefined;
    this.queue = [];
    this.queueHead = 0;
    this.notifyDrained();
  }

  /** Drops expired messages from the offline queue (also done lazily on pump). */
  purgeExpired(): number {
    const now = this.now();
    const before = this.queued;
    const kept = this.queue.slice(this.queueHead).filter((d) => !isExpired(d.message, now));
    this.queue = kept;
    this.queueHead = 0;
    this.earliestExpiry = Number.POSITIVE_INFINITY;
    for (const d of kept) {
      const e = d.message.expiresAt;
      if (e !== undefined && e < this.earliestExpiry) this.earliestExpiry = e;
    }
    const dropped = before - kept.length;
    for (let i = 0; i < dropped; i++) this.events.dropped('expired', this);
    return dropped;
  }
}
