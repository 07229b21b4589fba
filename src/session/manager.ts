/**
 * The session lifecycle of one node: which connection owns each client id (here and, in cluster
 * mode, cluster-wide: claims with a fencing epoch, takeover), opening, resuming and replacing
 * sessions at CONNECT, what a closing connection leaves behind (the session offline, its expiry
 * timer, its will), and the end of sessions. It owns the node's sessions and online connections.
 *
 * Every node has a SessionStore behind its backend: the memory hub of a single node (in memory, or
 * with a data dir on disk) or Redis in a cluster, and one path serves them all. A persistent session
 * (expiry above 0) is kept by the store, and this node holds only what is in flight on its
 * connection; its expiry runs in the store. A session with expiry 0 lives only as long as its
 * connection, in this process: nothing of it is stored.
 *
 * What it needs of the broker comes through narrow ports (SessionManagerDeps); of a connection,
 * through SessionOwner (the channel implements it). It writes nothing into a connection: a claim
 * resolves with what the connection keeps.
 */
import type { ClusterBackend, SessionStore, StoredSession } from '../backend/types.js';
import type { Clock } from '../clock.js';
import type { Message, SubscriptionOptions } from '../message.js';
import type { Instruments } from '../observability/instruments.js';
import type { Logger } from '../observability/logger.js';
import { ReasonCode } from '../protocol/index.js';
import { parseSubscription } from '../topics/index.js';
import { StoredQueue } from './durable-queue.js';
import { type DropReason, Session } from './session.js';
import { type PendingWill, Wills } from './wills.js';

export type { PendingWill } from './wills.js';

/** What the manager needs of a connection that claims or owns a client id (the channel). */
export interface SessionOwner {
  readonly clientId: string;
  /** The fencing epoch its claim resolved with (0 until then). */
  readonly epoch: number;
  /** The will armed at CONNECT (stored by the claim). */
  readonly will: PendingWill | undefined;
  /** The session it serves (null until CONNACK). */
  readonly session: Session | null;
  /** The connection has ended (also while its claim still ran). */
  readonly closed: boolean;
  /** Closes the connection from the server side (MQTT 5: DISCONNECT with `reasonCode`). */
  disconnect(reasonCode: number, reasonString?: string): void;
}

export interface OpenedSession {
  session: Session;
  /** CONNACK Session Present. */
  present: boolean;
}

/** A CONNECT's claim of its client id, as the connection keeps it. */
export interface Claimed {
  /** The connection's fencing token for its client id. */
  epoch: number;
  /** The persistent session the store keeps for the connection, loaded with the claim. */
  stored: StoredSession | undefined;
  /** A later CONNECT claimed the id meanwhile: it wins (takeover is last-come). */
  superseded: boolean;
}

/** How a session's subscriptions enter and leave the broker's subscription index (and the node's routes). */
export interface SubscriptionPort {
  /** A shared subscription of a stored session joins this node's index (its shares come through the inbox). */
  joinShared(session: Session, filter: string, group: string, options: SubscriptionOptions): void;
  /** Subscription `raw` of `session` leaves the index (and the node's route, with its last subscriber). */
  leave(session: Session, raw: string): void;
}

/** What the manager needs of the backend (the memory hub of a single node, or Redis). */
export type SessionCluster = Pick<
  ClusterBackend,
  'nodeId' | 'sessions' | 'claim' | 'requestRelease' | 'releaseOwnership' | 'storeWill' | 'takeWill'
>;

export interface SessionManagerDeps {
  options: { readonly maxQueuedMessages: number };
  clock: Clock;
  logger: Logger;
  cluster: SessionCluster;
  subscriptions: SubscriptionPort;
  /** Routes a will like a client's PUBLISH (the broker's pipeline); `accepted` as there. */
  publish(message: Message, accepted?: (err?: Error) => void): number;
  /** The broker's counters ($SYS, metrics): takeovers and opened sessions are counted here. */
  counters: {
    takeovers: number;
    sessionsCreated: number;
    sessionsResumed: number;
    sessionsDiscarded: number;
  };
  /** Histograms (takeover duration); metrics.ts implements them. */
  instruments?: Pick<Instruments, 'takeover'>;
  /** A session dropped a delivery (queue full, expired, slow consumer, offline QoS 0). */
  dropped(reason: DropReason, clientId: string): void;
}

const NEVER = 0xffffffff;

/** A CONNECT between its claim's start and a turn after its end. */
interface Claiming {
  /** The epoch its claim returned (0 until then). */
  epoch: number;
  /** The highest epoch another node claimed this id with while this one connected. */
  supersededBy: number;
}

export class SessionManager<C extends SessionOwner = SessionOwner> {
  private readonly byId = new Map<string, Session>();
  /** The clock as every session reads it: one function, not a closure per session. */
  private readonly now = (): number => this.d.clock.now();
  private readonly connected = new Map<string, C>();
  /** Connections between CONNECT and CONNACK while they claim their id. */
  private readonly claiming = new Map<string, Claiming>();
  /** The store of each connection's will, awaited by whatever takes it. */
  private readonly willStores = new WeakMap<C, Promise<void>>();
  private readonly wills: Wills;
  private readonly cluster: SessionCluster;
  private closing = false;
  private readonly sessionEvents = {
    dropped: (reason: DropReason, session: Session) => this.d.dropped(reason, session.clientId),
  };

  constructor(private readonly d: SessionManagerDeps) {
    this.cluster = d.cluster;
    this.wills = new Wills({
      clock: d.clock,
      logger: d.logger,
      cluster: d.cluster,
      publish: d.publish,
      closing: () => this.closing,
    });
  }

  /** The sessions of this node, by client id (online and offline). */
  get sessions(): ReadonlyMap<string, Session> {
    return this.byId;
  }

  /** The connection that owns each client id on this node. */
  get online(): ReadonlyMap<string, C> {
    return this.connected;
  }

  /** Whether a connection (or a CONNECT still claiming) of `clientId` is on this node. */
  serves(clientId: string): boolean {
    return this.connected.has(clientId) || this.claiming.has(clientId);
  }

  /** The node drains: connections closing from now on leave no will or expiry timer behind. */
  beginDrain(): void {
    this.closing = true;
  }

  /** Stops the will-delay timers (after the drain). */
  stop(): void {
    this.wills.stop();
  }

  /** Persistent sessions: the memory hub's, or Redis'. */
  private get store(): SessionStore {
    return this.cluster.sessions;
  }

  // ---- ownership ---------------------------------------------------------------------------------

  /**
   * Makes `owner` the owner of its client id in the whole cluster (asking the node that holds it to
   * close its connection) and resolves with the claim. `will`: the CONNECT's will, stored before
   * the claim resolves (so before CONNACK): a node that dies right after the CONNACK still leaves
   * it for a survivor, or, on a single node with a data dir, for the restart.
   */
  claimOwnership(owner: C, clean: boolean, expirySeconds: number, will?: PendingWill): Promise<Claimed> {
    const cluster = this.cluster;
    const id = owner.clientId;
    const claiming: Claiming = { epoch: 0, supersededBy: 0 };
    this.claiming.set(id, claiming);
    const started = this.d.clock.now();
    return (async () => {
      try {
        const claim = await cluster.claim(id, clean, expirySeconds);
        claiming.epoch = claim.epoch;
        if (claim.discarded === true) this.d.counters.sessionsDiscarded++;
        // The previous connection's session ended (Clean Start) or its will had no delay: send it now.
        if (claim.will !== null) this.wills.publish(claim.will);
        if (claim.previous !== null && claim.previous !== cluster.nodeId) {
          await cluster.requestRelease(claim.previous, id, claim.epoch);
          this.d.counters.takeovers++;
          this.d.instruments?.takeover((this.d.clock.now() - started) / 1000);
          this.d.logger.info({
            event: 'client.takeover',
            clientId: id,
            from: claim.previous,
            epoch: claim.epoch,
            ms: this.d.clock.now() - started,
          });
        }
        if (will !== undefined && !owner.closed && claiming.supersededBy <= claim.epoch) {
          const stored = cluster.storeWill(id, claim.epoch, will);
          this.willStores.set(owner, stored);
          await stored.catch(() => undefined);
          // Closed meanwhile (before any CONNACK): the will it stored is not its to leave behind.
          if (owner.closed) cluster.takeWill(id, claim.epoch).catch(() => undefined);
        }
        // The client left while its claim ran: the session it claimed goes offline again (or,
        // with none, the ownership it claimed is released).
        if (owner.closed && claim.session !== undefined)
          this.store.detach(id, claim.epoch, expirySeconds).catch(() => undefined);
        else if (owner.closed) cluster.releaseOwnership(id, claim.epoch).catch(() => undefined);
        return {
          epoch: claim.epoch,
          stored: claim.session,
          superseded: claiming.supersededBy > claim.epoch,
        };
      } finally {
        // A turn later: the channel goes online (connect.ts) in the promise callbacks of this one,
        // and until then it must still count as served here (Redis' checkServed).
        this.endClaiming(id, claiming);
      }
    })();
  }

  /** Claims that ended this turn, forgotten together a turn later (one setImmediate for all). */
  private ended: [string, Claiming][] = [];

  private endClaiming(id: string, claiming: Claiming): void {
    if (this.ended.length === 0) setImmediate(this.forgetEnded);
    this.ended.push([id, claiming]);
  }

  private readonly forgetEnded = (): void => {
    const ended = this.ended;
    this.ended = [];
    for (const [id, claiming] of ended) if (this.claiming.get(id) === claiming) this.claiming.delete(id);
  };

  /** Another node claimed `clientId` with `epoch`: an older local connection closes (0x8E). */
  releaseClient(clientId: string, epoch: number): void {
    // The client's session resumed elsewhere: a will this node delays for an older connection of it
    // is not sent (the take would fail anyway), and its timer need not wait out the delay.
    this.wills.cancelOlder(clientId, epoch);
    const connecting = this.claiming.get(clientId);
    if (connecting !== undefined && connecting.epoch < epoch) {
      connecting.supersededBy = Math.max(connecting.supersededBy, epoch);
    }
    const online = this.connected.get(clientId);
    if (online !== undefined && online.epoch < epoch) {
      online.disconnect(ReasonCode.SessionTakenOver, 'session taken over');
    }
  }

  /**
   * Redis lost the cluster's data: every connection of this node holds a claim Redis forgot, so
   * each is closed (MQTT 5: 0x80 with a reason string) and its client claims again on reconnect.
   */
  reconnectAll(): void {
    for (const owner of [...this.connected.values()])
      owner.disconnect(ReasonCode.UnspecifiedError, 'cluster state lost: reconnect');
  }

  /** Messages were queued for these sessions: those served here fetch them. */
  pokeSessions(ids: Iterable<string>): void {
    for (const id of ids) this.byId.get(id)?.durable?.poke();
  }

  /** Every session served here fetches (pokes may have been lost). */
  pokeAll(): void {
    this.pokeSessions(this.byId.keys());
  }

  /** A will another node left (its node died), taken by this one: publish it. */
  publishWill(will: PendingWill): void {
    this.wills.publish(will);
  }

  // ---- open --------------------------------------------------------------------------------------

  /**
   * Makes `owner` the owner of its client id: closes any other connection with the same id
   * (DISCONNECT 0x8E) and opens, resumes or replaces the session [MQTT-3.1.4-3] [MQTT-3.1.4-4].
   * `stored`: the session the store keeps for it, as its claim loaded it (none for expiry 0).
   */
  openSession(owner: C, expirySeconds: number, stored?: StoredSession): OpenedSession {
    const id = owner.clientId;
    const previous = this.connected.get(id);
    if (previous !== undefined && previous !== owner) {
      // [MQTT-3.1.4-2] take over: the old connection is closed (MQTT 5: DISCONNECT 0x8E).
      this.d.logger.info({ event: 'client.takeover', clientId: id });
      previous.disconnect(ReasonCode.SessionTakenOver, 'session taken over');
      this.d.counters.takeovers++;
      this.d.instruments?.takeover(0);
    }
    this.connected.set(id, owner);
    // Whatever this node held for the id is replaced: by the session the store keeps, or by a new
    // one (a session with expiry 0 ends with its connection, so none is resumed).
    const old = this.byId.get(id);
    if (old?.durable !== undefined) this.dropLocal(old);
    else if (old !== undefined) this.endSession(old);
    const session = stored === undefined ? this.newSession(id) : this.openStored(owner, stored, this.store);
    this.byId.set(id, session);
    session.expirySeconds = expirySeconds;
    // [MQTT-3.2.2-2] [MQTT-3.1.3-9] resuming within the will delay cancels the will.
    const present = stored?.present === true;
    if (present) this.wills.cancel(id);
    if (present) this.d.counters.sessionsResumed++;
    else this.d.counters.sessionsCreated++;
    this.afterOpen(owner);
    return { session, present };
  }

  private newSession(id: string): Session {
    return new Session(id, this.d.options.maxQueuedMessages, this.now, this.sessionEvents);
  }

  /**
   * A session the cluster keeps, as loaded at claim: its subscriptions (shared ones join this node's
   * index: their messages come through the node's inbox), in-flight messages and QoS 2 ids.
   */
  private openStored(owner: C, stored: StoredSession, store: SessionStore): Session {
    const session = this.newSession(owner.clientId);
    session.durable = new StoredQueue(
      store,
      session,
      owner.epoch,
      this.d.logger,
      this.d.clock,
      stored.position,
    );
    for (const [raw, options] of stored.subscriptions) {
      session.setSubscription(raw, options);
      const parsed = parseSubscription(raw);
      if (parsed?.group != null)
        this.d.subscriptions.joinShared(session, parsed.filter, parsed.group, options);
    }
    session.restore(stored.inflight);
    for (const packetId of stored.awaitingRelease) {
      if (session.awaitingRelease.size === 0) session.awaitingRelease = new Set();
      session.awaitingRelease.add(packetId);
    }
    if (stored.dedupeIds.size > 0) session.dedupeIds = new Map(stored.dedupeIds);
    return session;
  }

  private afterOpen(owner: C): void {
    if (owner.will !== undefined && owner.epoch > 0 && !this.willStores.has(owner)) {
      // Stored by the claim when given there; else now, not awaited (failures are logged by the
      // backend). Whatever takes the will later (a DISCONNECT dropping it, an abnormal close
      // sending it) waits for it.
      this.willStores.set(owner, this.cluster.storeWill(owner.clientId, owner.epoch, owner.will));
    }
  }

  // ---- close and end -----------------------------------------------------------------------------

  /**
   * The connection of `owner` has ended. `will` is the message to publish (after its delay), or
   * undefined after a normal DISCONNECT. For a session the store keeps, resolves once its last
   * writes are stored.
   */
  connectionClosed(owner: C, will: PendingWill | undefined): Promise<void> | undefined {
    const id = owner.clientId;
    if (owner.epoch > 0) {
      const stored = this.willStores.get(owner);
      if (will !== undefined) {
        will = { ...will, epoch: owner.epoch, stored };
      } else if (stored !== undefined) {
        // A normal DISCONNECT: the will kept in Redis for this connection is dropped (once stored).
        const epoch = owner.epoch;
        stored.then(() => this.cluster.takeWill(id, epoch)).catch(() => undefined);
      }
    }
    if (this.connected.get(id) !== owner) {
      // Taken over: the session belongs to the new connection now; only the will remains to send.
      if (will !== undefined && !this.closing) this.wills.schedule(id, will, NEVER);
      return undefined;
    }
    this.connected.delete(id);
    const session = owner.session;
    // Nothing of it stays in the store (a durable session's detach does this for its own).
    if (owner.epoch > 0 && session?.durable === undefined)
      this.cluster.releaseOwnership(id, owner.epoch).catch(() => undefined);
    if (session === null) return undefined;
    session.detach();
    if (will !== undefined && !this.closing) this.wills.schedule(id, will, session.expirySeconds);
    if (session.durable === undefined) {
      // Expiry 0: the session ends with its connection [MQTT-3.1.2-6] (a will with a delay still waits).
      this.endSession(session);
      return undefined;
    }
    // Kept by the store: offline there (expiring there), nothing of it stays on this node.
    this.dropLocal(session);
    return this.store
      .detach(id, owner.epoch, session.expirySeconds)
      .catch((err: Error) =>
        this.d.logger.warn({ event: 'session.detach_failed', clientId: id, err: err.message }),
      );
  }

  /** Discards a session: its subscriptions leave the index; a delayed will goes out now [MQTT-3.1.3-9]. */
  endSession(session: Session): void {
    const id = session.clientId;
    for (const raw of session.subscriptions.keys()) this.d.subscriptions.leave(session, raw);
    session.clear();
    if (this.byId.get(id) === session) this.byId.delete(id);
    this.wills.sessionEnded(id);
  }

  /** Forgets a session the store keeps (its state stays there): its shared memberships leave. */
  private dropLocal(session: Session): void {
    for (const raw of session.subscriptions.keys()) {
      if (raw.startsWith('$share/')) this.d.subscriptions.leave(session, raw);
    }
    session.clear();
    if (this.byId.get(session.clientId) === session) this.byId.delete(session.clientId);
  }
}
