/**
 * The link between a persistent session served on this node and the cluster's SessionStore: it
 * takes queued messages as the client's window has room (one fetch at a time, again when poked),
 * and writes acknowledgements and QoS 2 state back under the connection's fencing epoch.
 */
import type { SessionStore } from '../backend/types.js';
import type { Clock } from '../clock.js';
import type { Delivery } from '../message.js';
import type { Logger } from '../observability/logger.js';
import type { DurableQueue, Session } from './session.js';

/** The window a stored session may always have, however small its queue limit (the default initial window). */
const WINDOW_FLOOR = 100;

/** Wait before fetching again after a failed fetch. */
const RETRY_MS = 250;

export class StoredQueue implements DurableQueue {
  private fetching = false;
  /** Messages may be waiting in the store: set by a poke or a full fetch, cleared by a short one. */
  private more = true;

  constructor(
    private readonly store: SessionStore,
    private readonly session: Session,
    readonly epoch: number,
    private readonly logger: Logger,
    private readonly clock: Clock,
    /** The last queue position received (the store hands over again what it gave since). */
    private position: string,
  ) {}

  append(delivery: Delivery, accepted?: (err?: Error) => void): void {
    this.store.append(this.session.clientId, delivery, accepted);
  }

  /** Publishers queued messages for this session. */
  poke(): void {
    this.more = true;
    this.fetch();
  }

  fetch(): void {
    if (this.fetching || !this.more) return;
    const link = this.session.link;
    if (link === null) return;
    // The store counts what is in flight against the session's queue limit (as Redis' XLEN does):
    // the window of a stored session stops at maxQueuedMessages (or WINDOW_FLOOR, for small
    // queues), so what is in flight cannot push the queue past its limit (4 times it while flow
    // control holds the publishers) and drop messages.
    const limit = Math.min(link.inflightLimit, Math.max(WINDOW_FLOOR, this.session.maxQueued));
    const room = limit - this.session.inflight.size;
    // Fetched in batches: a fetch for every acknowledgement would cost a round trip per message.
    // With the window at most an eighth full, a fetch goes out whatever the room, so a client
    // that acknowledges slowly still gets what is queued.
    const batch = this.session.inflight.size * 8 <= limit ? 1 : limit >> 3;
    if (room < Math.max(1, batch) || !link.writable) return;
    this.fetching = true;
    this.more = false;
    const id = this.session.clientId;
    this.store.fetch(id, this.epoch, room, this.position).then(
      (fetched) => {
        this.fetching = false;
        if (fetched.length > 0) this.position = fetched[fetched.length - 1].position;
        if (fetched.length === room) this.more = true;
        this.session.fill(fetched);
        this.fetch();
      },
      (err: Error) => {
        this.fetching = false;
        this.more = true;
        this.logger.warn({ event: 'session.fetch_failed', clientId: id, err: err.message });
        // Tried again shortly (also on the next acknowledgement, poke or Redis' return).
        this.clock.setTimeout(() => this.fetch(), RETRY_MS);
      },
    );
  }

  acknowledged(packetId: number): void {
    this.store.acknowledged(this.session.clientId, this.epoch, packetId);
  }

  releasing(packetId: number): Promise<void> {
    return this.store.releasing(this.session.clientId, this.epoch, packetId);
  }

  awaitRelease(packetId: number, waiting: boolean, dedupe?: string): Promise<void> {
    return this.store.awaitRelease(this.session.clientId, this.epoch, packetId, waiting, dedupe);
  }
}
