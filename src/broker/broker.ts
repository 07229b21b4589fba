/**
 * The broker of one node: owns the sessions, the subscription index, retained messages, delayed
 * wills and session expiry, and the publish pipeline. Connections reach it through their channel's
 * ChannelContext; transports reach it through `accept`.
 */
import { randomBytes } from 'node:crypto';
import { type AuthHooks, allowAll } from '../auth/types.js';
import { MemoryQuotaStore } from '../backend/memory/quota-store.js';
import { MemoryRetainedStore } from '../backend/memory/retained-store.js';
import type {
  ClusterBackend,
  Envelope,
  QuotaStore,
  RetainedStore,
  SessionStore,
  StoredSession,
} from '../backend/types.js';
import type { Channel } from '../channel/channel.js';
import type { ChannelContext, Counters, OpenedSession, PendingWill } from '../channel/context.js';
import type { Clock, TimerHandle } from '../clock.js';
import { Limits } from '../limits/limits.js';
import { defaultLimitOptions } from '../limits/options.js';
import { isExpired, type Message, type SubscriptionOptions } from '../message.js';
import {
  connectChannel,
  deliverChannel,
  disconnectChannel,
  publishChannel,
} from '../observability/diagnostics.js';
import type { Instruments } from '../observability/instruments.js';
import type { Logger } from '../observability/logger.js';
import type { BrokerStats } from '../observability/stats.js';
import { ReasonCode } from '../protocol/index.js';
import { StoredQueue } from '../session/durable-queue.js';
import { type DropReason, Session } from '../session/session.js';
import { parseSubscription } from '../topics/index.js';
import { ClusterRouter } from './cluster-router.js';
import { type Drainable, type DrainOptions, drainConnections } from './drain.js';
import { BrokerInspector } from './inspect.js';
import { type Hold, Latch } from './latch.js';
import type { BrokerOptions } from './options.js';
import { RecentIds } from './recent-ids.js';
import { type RouteVisitor, SubscriptionIndex } from './subscriptions.js';
import { SysTopics } from './sys.js';

export interface BrokerDeps {
  options: BrokerOptions;
  clock: Clock;
  logger: Logger;
  version: string;
  auth?: Partial<AuthHooks>;
  retained?: RetainedStore;
  /** Cluster mode: the backend that shares routes, retained messages and delivery between nodes. */
  cluster?: ClusterBackend;
  /** The node's overload protection (shared with the listeners); default limits when omitted. */
  limits?: Limits;
  /** Per-username quotas (limits.user.*): the Redis store in a cluster; in memory when omitted. */
  quotas?: QuotaStore;
  /** Histograms the broker feeds (takeover duration); metrics.ts implements it. */
  instruments?: Pick<Instruments, 'takeover'>;
}

const NEVER = 0xffffffff;

/** A refused will is published again this many times at most, this far apart (~30 s in all). */
const WILL_PUBLISH_ATTEMPTS = 60;
const WILL_RETRY_MS = 500;

export class Broker implements ChannelContext {
  readonly options: BrokerOptions;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly auth: AuthHooks;
  readonly retained: RetainedStore;
  readonly limits: Limits;
  readonly quotas: QuotaStore;
  readonly counters: Counters = {
    messagesReceived: 0,
    messagesSent: 0,
    bytesReceived: 0,
    bytesSent: 0,
    dropped: {},
    takeovers: 0,
    receivedByQos: [0, 0, 0],
    receivedBytesByQos: [0, 0, 0],
    sentByQos: [0, 0, 0],
    sentBytesByQos: [0, 0, 0],
    authFailures: 0,
    rateLimited: {},
  };
  readonly startedAt: number;

  private readonly sessions = new Map<string, Session>();
  private readonly online = new Map<string, Channel>();
  private readonly connections = new Set<Drainable>();
  private readonly index = new SubscriptionIndex();
  private readonly expiryTimers = new Map<string, TimerHandle>();
  private readonly delayedWills = new Map<string, { will: PendingWill; timer: TimerHandle }>();
  private readonly sys: SysTopics;
  private readonly cluster: ClusterBackend | undefined;
  private readonly router: ClusterRouter | undefined;
  private clientsTotal = 0;
  /** Operator view: connection breakdowns for metrics, the admin API's operations. */
  readonly inspector: BrokerInspector;
  private readonly instruments: Pick<Instruments, 'takeover'> | undefined;
  private clusterReceived = 0;
  private closing = false;
  /** Messages routed again under their dedupe id reach this node's subscribers once. */
  private readonly recent: RecentIds;
  /** Cluster mode: the store of each connection's will in Redis, awaited by whatever takes it. */
  private readonly willStores = new WeakMap<Channel, Promise<void>>();
  private readonly sessionEvents = {
    dropped: (reason: DropReason, session: Session) => this.dropped(reason, session.clientId),
  };

  constructor(deps: BrokerDeps) {
    this.options = deps.options;
    this.clock = deps.clock;
    this.logger = deps.logger;
    this.auth = { ...allowAll, ...deps.auth };
    this.cluster = deps.cluster;
    this.retained = deps.retained ?? deps.cluster?.retained ?? new MemoryRetainedStore(deps.clock);
    this.limits = deps.limits ?? new Limits(defaultLimitOptions, deps.clock);
    this.quotas = deps.quotas ?? new MemoryQuotaStore(deps.clock);
    // Limit hits are counted where they happen (listeners too): the stats read the one record.
    this.counters.rateLimited = this.limits.hits;
    this.router = deps.cluster ? new ClusterRouter(deps.cluster, this.index) : undefined;
    this.startedAt = deps.clock.now();
    this.recent = new RecentIds(() => this.clock.now());
    this.sys = new SysTopics(this, deps.version);
    this.instruments = deps.instruments;
    this.inspector = new BrokerInspector({
      sessions: this.sessions,
      online: this.online,
      retained: this.retained,
      clock: this.clock,
      publish: (message, accepted) => this.publish(message, accepted),
      endSession: (session) => this.endSession(session),
    });
  }

  /** Starts the periodic work ($SYS topics) and, in cluster mode, joins the cluster. */
  async start(): Promise<void> {
    // Join first: $SYS writes retained messages, which in cluster mode are Redis commands, and a
    // command on a lazy ioredis client connects it, so the backend's own connect() would then fail.
    await this.cluster?.start({
      deliver: (envelope) => this.deliverRemote(envelope),
      handOver: (envelopes, gone) => this.handOverShares(envelopes, gone),
      release: (clientId, epoch) => this.releaseClient(clientId, epoch),
      publishWill: (will) => this.publishWill(will),
      readinessChanged: (ready) => {
        this.logger.info({ event: ready ? 'cluster.ready' : 'cluster.not_ready' });
        // Pokes sent while Redis was away are lost: look at every served queue again.
        if (ready) this.pokeSessions(this.sessions.keys());
      },
      poke: (ids) => this.pokeSessions(ids),
      refetch: () => this.pokeSessions(this.sessions.keys()),
      stateLost: () => this.reconnectAll(),
      serves: (id) => this.online.has(id) || this.claiming.has(id),
      dropped: (reason, clientId) => this.dropped(reason, clientId),
    });
    this.sys.start();
    this.quotas.start();
  }

  get clusterBackend(): ClusterBackend | undefined {
    return this.cluster;
  }

  /** Ready to take clients: always in single-node mode; in cluster mode while the backend is. */
  get ready(): boolean {
    return this.cluster?.ready ?? true;
  }

  /**
   * Whether a new socket may become a connection now (not draining, under maxConnections). The
   * composition root builds the Connection (src/connection/accept.ts) and hands it to `attach`.
   */
  admits(): boolean {
    return !this.closing && this.limits.admitConnection(this.connections.size);
  }

  /** Counts a connection (drain, stats) until it closes. */
  attach(connection: Drainable & { onClosed: (() => void) | undefined }): void {
    this.connections.add(connection);
    connection.onClosed = () => this.connections.delete(connection);
  }

  get stats(): BrokerStats {
    return {
      clientsConnected: this.online.size,
      clientsTotal: this.clientsTotal,
      messagesReceived: this.counters.messagesReceived,
      messagesSent: this.counters.messagesSent,
      bytesReceived: this.counters.bytesReceived,
      bytesSent: this.counters.bytesSent,
      subscriptions: this.index.count,
      retained: this.retained.size,
      dropped: { ...this.counters.dropped },
      authFailures: this.counters.authFailures,
      sessions: this.sessions.size,
      clusterMessagesSent: this.cluster?.busStats.envelopes ?? 0,
      clusterBatchesSent: this.cluster?.busStats.batches ?? 0,
      clusterMessagesReceived: this.clusterReceived,
      connectionsOpen: this.connections.size,
      connectedBy: this.inspector.connectedBy(),
      connectsBy: this.inspector.connectsBy,
      sessionsOffline: this.sessions.size - this.online.size,
      sharedGroups: this.index.sharedGroupCount,
      receivedByQos: [...this.counters.receivedByQos],
      receivedBytesByQos: [...this.counters.receivedBytesByQos],
      sentByQos: [...this.counters.sentByQos],
      sentBytesByQos: [...this.counters.sentBytesByQos],
      rateLimited: { ...this.counters.rateLimited },
      takeovers: this.counters.takeovers,
      draining: this.closing,
    };
  }

  /**
   * Drains: disconnects every client (MQTT 5: DISCONNECT 0x8B, or 0x9C with a Server Reference), at
   * `ratePerSecond` when given, and stops timers. Wills of drained clients are not sent: a drain is a
   * planned move, the client reconnects elsewhere at once (docs/deployment.md).
   */
  async shutdown(drain: DrainOptions = {}): Promise<void> {
    this.closing = true;
    this.sys.stop();
    this.logger.info({
      event: 'drain.started',
      clients: this.online.size,
      ratePerSecond: drain.ratePerSecond ?? 0,
    });
    await drainConnections(this.connections, drain, this.clock);
    this.logger.info({ event: 'drain.clients_closed' });
    for (const t of this.expiryTimers.values()) t.cancel();
    for (const w of this.delayedWills.values()) w.timer.cancel();
    this.expiryTimers.clear();
    this.delayedWills.clear();
    await this.quotas.stop();
    await this.cluster?.stop();
  }

  // ---- cluster-wide ownership ---------------------------------------------------------------------

  /** Channels between CONNECT and CONNACK while they claim their id in the cluster. */
  private readonly claiming = new Map<string, Channel>();

  claimOwnership(channel: Channel, clean: boolean, expirySeconds: number): Promise<boolean> | undefined {
    const cluster = this.cluster;
    if (cluster === undefined) return undefined;
    const id = channel.clientId;
    this.claiming.set(id, channel);
    const started = this.clock.now();
    return (async () => {
      try {
        const claim = await cluster.claim(id, clean, expirySeconds);
        channel.epoch = claim.epoch;
        channel.stored = claim.session;
        // The previous connection's session ended (Clean Start) or its will had no delay: send it now.
        if (claim.will !== null) this.publishWill(claim.will);
        if (claim.previous !== null && claim.previous !== cluster.nodeId) {
          await cluster.requestRelease(claim.previous, id, claim.epoch);
          this.counters.takeovers++;
          this.instruments?.takeover((this.clock.now() - started) / 1000);
          this.logger.info({
            event: 'client.takeover',
            clientId: id,
            from: claim.previous,
            epoch: claim.epoch,
            ms: this.clock.now() - started,
          });
        }
        // The client left while its claim ran: the session it claimed goes offline again (or,
        // with none, the ownership it claimed is released).
        if (channel.state === 'closed' && claim.session !== undefined)
          this.store?.detach(id, claim.epoch, expirySeconds).catch(() => undefined);
        else if (channel.state === 'closed') cluster.releaseOwnership(id, claim.epoch).catch(() => undefined);
        return channel.supersededBy <= claim.epoch;
      } finally {
        // A turn later: the channel goes online (connect.ts) in the promise callbacks of this one,
        // and until then it must still count as served here (Redis' checkServed).
        setImmediate(() => {
          if (this.claiming.get(id) === channel) this.claiming.delete(id);
        });
      }
    })();
  }

  /** Another node claimed `clientId` with `epoch`: an older local connection closes (0x8E). */
  private releaseClient(clientId: string, epoch: number): void {
    // The client's session resumed elsewhere: a will this node delays for an older connection of it
    // is not sent (the take would fail anyway), and its timer need not wait out the delay.
    const pending = this.delayedWills.get(clientId);
    if (pending !== undefined && (pending.will.epoch ?? 0) < epoch) this.cancelDelayedWill(clientId);
    const connecting = this.claiming.get(clientId);
    if (connecting !== undefined && connecting.epoch < epoch) {
      connecting.supersededBy = Math.max(connecting.supersededBy, epoch);
    }
    const online = this.online.get(clientId);
    if (online !== undefined && online.epoch < epoch) {
      online.disconnect(ReasonCode.SessionTakenOver, 'session taken over');
    }
  }

  assignClientId(): string {
    return `shoal-${randomBytes(9).toString('base64url')}`;
  }

  // ---- sessions ----------------------------------------------------------------------------------

  /** Persistent sessions the cluster keeps (Redis); undefined on a single node. */
  private get store(): SessionStore | undefined {
    return this.cluster?.sessions;
  }

  /**
   * Redis lost the cluster's data: every connection of this node holds a claim Redis forgot, so
   * each is closed (MQTT 5: 0x80 with a reason string) and its client claims again on reconnect.
   */
  private reconnectAll(): void {
    for (const channel of [...this.online.values()])
      channel.disconnect(ReasonCode.UnspecifiedError, 'cluster state lost: reconnect');
  }

  /** Messages were queued for these sessions: those served here fetch them. */
  private pokeSessions(ids: Iterable<string>): void {
    for (const id of ids) this.sessions.get(id)?.durable?.poke();
  }

  /**
   * A session the cluster keeps, as loaded at claim: its subscriptions (shared ones join this node's
   * index: their messages come through the node's inbox), in-flight messages and QoS 2 ids.
   */
  private openStored(channel: Channel, stored: StoredSession, store: SessionStore): Session {
    const id = channel.clientId;
    const session = new Session(
      id,
      this.options.maxQueuedMessages,
      () => this.clock.now(),
      this.sessionEvents,
    );
    session.durable = new StoredQueue(
      store,
      session,
      channel.epoch,
      this.logger,
      this.clock,
      stored.position,
    );
    for (const [raw, options] of stored.subscriptions) {
      session.setSubscription(raw, options);
      const parsed = parseSubscription(raw);
      if (parsed?.group != null && this.index.add(session, parsed.filter, parsed.group, options))
        this.cluster?.routes.add(parsed.filter, parsed.group);
    }
    session.restore(stored.inflight);
    for (const packetId of stored.awaitingRelease) {
      if (session.awaitingRelease.size === 0) session.awaitingRelease = new Set();
      session.awaitingRelease.add(packetId);
    }
    if (stored.dedupeIds.size > 0) session.dedupeIds = new Map(stored.dedupeIds);
    return session;
  }

  openSession(channel: Channel, clean: boolean, expirySeconds: number): OpenedSession {
    const id = channel.clientId;
    const previous = this.online.get(id);
    if (previous !== undefined && previous !== channel) {
      // [MQTT-3.1.4-2] take over: the old connection is closed (MQTT 5: DISCONNECT 0x8E).
      this.logger.info({ event: 'client.takeover', clientId: id });
      previous.disconnect(ReasonCode.SessionTakenOver, 'session taken over');
      this.counters.takeovers++;
      this.instruments?.takeover(0);
    }
    this.online.set(id, channel);
    this.clientsTotal++;
    this.inspector.countConnect(channel);
    this.cancelExpiry(id);

    const stored = channel.stored;
    const store = this.store;
    if (stored !== undefined && store !== undefined) {
      channel.stored = undefined;
      // The cluster keeps this session: whatever this node held for the id is replaced by it.
      const old = this.sessions.get(id);
      if (old?.durable !== undefined) this.dropLocal(old);
      else if (old !== undefined) this.endSession(old);
      const session = this.openStored(channel, stored, store);
      this.sessions.set(id, session);
      session.expirySeconds = expirySeconds;
      if (stored.present) this.cancelDelayedWill(id);
      this.afterOpen(channel, stored.present);
      return { session, present: stored.present };
    }
    let session = this.sessions.get(id);
    let present = false;
    if (session !== undefined && clean) {
      // [MQTT-3.1.2-4] Clean Start: the old session ends here, and with it a pending delayed will.
      this.endSession(session);
      session = undefined;
    } else if (session !== undefined) {
      present = true; // [MQTT-3.2.2-2]
      // [MQTT-3.1.3-9] resuming within the will delay cancels the will.
      this.cancelDelayedWill(id);
    }
    if (session === undefined) {
      session = new Session(id, this.options.maxQueuedMessages, () => this.clock.now(), this.sessionEvents);
      this.sessions.set(id, session);
    }
    session.expirySeconds = expirySeconds;
    this.afterOpen(channel, present);
    return { session, present };
  }

  private afterOpen(channel: Channel, present: boolean): void {
    const id = channel.clientId;
    if (channel.will !== undefined && channel.epoch > 0) {
      // Not awaited: CONNACK does not wait for it (failures are logged by the backend). Whatever
      // takes the will later (a DISCONNECT dropping it, an abnormal close sending it) waits for it.
      const stored = this.cluster?.storeWill(id, channel.epoch, channel.will);
      if (stored !== undefined) this.willStores.set(channel, stored);
    }
    if (connectChannel.hasSubscribers)
      connectChannel.publish({
        clientId: id,
        protocolVersion: channel.version,
        listener: channel.out.transportKind,
        sessionPresent: present,
      });
  }

  /** Forgets a session the cluster keeps (its state stays in Redis): its shared memberships leave. */
  private dropLocal(session: Session): void {
    for (const raw of session.subscriptions.keys()) {
      if (raw.startsWith('$share/')) this.unsubscribeIndex(session, raw);
    }
    session.clear();
    if (this.sessions.get(session.clientId) === session) this.sessions.delete(session.clientId);
  }

  channelClosed(channel: Channel, will: PendingWill | undefined): Promise<void> | undefined {
    const id = channel.clientId;
    if (disconnectChannel.hasSubscribers) disconnectChannel.publish({ clientId: id });
    if (channel.epoch > 0) {
      const stored = this.willStores.get(channel);
      if (will !== undefined) {
        will.epoch = channel.epoch;
        will.stored = stored;
      } else if (stored !== undefined) {
        // A normal DISCONNECT: the will kept in Redis for this connection is dropped (once stored).
        const epoch = channel.epoch;
        stored.then(() => this.cluster?.takeWill(id, epoch)).catch(() => undefined);
      }
    }
    if (this.online.get(id) !== channel) {
      // Taken over: the session belongs to the new connection now; only the will remains to send.
      if (will !== undefined && !this.closing) this.scheduleWill(id, will, NEVER);
      return undefined;
    }
    this.online.delete(id);
    const session = channel.session;
    // Nothing of it stays in the cluster (a durable session's detach does this for its own).
    if (channel.epoch > 0 && session?.durable === undefined)
      this.cluster?.releaseOwnership(id, channel.epoch).catch(() => undefined);
    if (session === null) return undefined;
    session.detach();
    if (session.durable !== undefined) {
      // Kept by the cluster: offline in Redis (expiring there), nothing of it stays on this node.
      this.dropLocal(session);
      if (will !== undefined && !this.closing) this.scheduleWill(id, will, session.expirySeconds);
      return this.store
        ?.detach(id, channel.epoch, session.expirySeconds)
        .catch((err: Error) =>
          this.logger.warn({ event: 'session.detach_failed', clientId: id, err: err.message }),
        );
    }
    if (this.closing) return undefined;
    if (will !== undefined) this.scheduleWill(id, will, session.expirySeconds);
    if (session.expirySeconds === 0) this.endSession(session);
    else if (session.expirySeconds !== NEVER) {
      const timer = this.clock.setTimeout(() => {
        this.expiryTimers.delete(id);
        if (this.sessions.get(id) === session && session.link === null) {
          this.logger.debug({ event: 'session.expired', clientId: id });
          this.endSession(session);
        }
      }, session.expirySeconds * 1000);
      this.expiryTimers.set(id, timer);
    }
    return undefined;
  }

  /** Discards a session: its subscriptions leave the index; a delayed will goes out now [MQTT-3.1.3-9]. */
  private endSession(session: Session): void {
    const id = session.clientId;
    for (const raw of session.subscriptions.keys()) this.unsubscribeIndex(session, raw);
    session.clear();
    if (this.sessions.get(id) === session) this.sessions.delete(id);
    this.cancelExpiry(id);
    const pending = this.delayedWills.get(id);
    if (pending !== undefined) {
      pending.timer.cancel();
      this.delayedWills.delete(id);
      this.fireWill(id, pending.will);
    }
  }

  private cancelExpiry(id: string): void {
    const t = this.expiryTimers.get(id);
    if (t !== undefined) {
      t.cancel();
      this.expiryTimers.delete(id);
    }
  }

  // ---- wills -------------------------------------------------------------------------------------

  private scheduleWill(id: string, will: PendingWill, sessionExpirySeconds: number): void {
    // The will goes out after its delay or when the session ends, whichever is first.
    const delay = Math.min(will.delaySeconds, sessionExpirySeconds);
    if (delay === 0) {
      this.fireWill(id, will);
      return;
    }
    this.cancelDelayedWill(id);
    const timer = this.clock.setTimeout(() => {
      this.delayedWills.delete(id);
      this.fireWill(id, will);
    }, delay * 1000);
    this.delayedWills.set(id, { will, timer });
  }

  private cancelDelayedWill(id: string): void {
    const pending = this.delayedWills.get(id);
    if (pending !== undefined) {
      pending.timer.cancel();
      this.delayedWills.delete(id);
    }
  }

  /**
   * A will of a connection of this node is due. In cluster mode it is taken from Redis first, so it
   * goes out once even if a survivor or a new owner could also send it (guarantee 4).
   */
  private fireWill(id: string, will: PendingWill): void {
    const cluster = this.cluster;
    if (cluster === undefined || will.epoch === undefined) {
      this.publishWill(will);
      return;
    }
    const epoch = will.epoch;
    (will.stored ?? Promise.resolve())
      .then(() => cluster.takeWill(id, epoch))
      .then(
        (taken) => {
          if (taken) this.publishWill(will);
        },
        (err: Error) => {
          // Redis unreachable: better twice than never for a will.
          this.logger.warn({ event: 'will.untracked', clientId: id, err: err.message });
          this.publishWill(will);
        },
      );
  }

  /**
   * Publishes a will. In cluster mode a QoS >= 1 will whose routing the cluster refused (e.g. a
   * replica could not confirm it in a Redis failover: the write may be discarded with the former
   * master) is published again until accepted; nobody else holds it any more. Under one dedupe id,
   * so a subscriber that got an earlier attempt does not get it twice.
   */
  private publishWill(will: PendingWill): void {
    const message: Message = { ...will.message };
    if (will.expirySeconds !== undefined) message.expiresAt = this.clock.now() + will.expirySeconds * 1000;
    this.logger.debug({ event: 'will.published', clientId: message.origin, topic: message.topic });
    if (this.cluster === undefined || message.qos === 0) {
      this.publish(message);
      return;
    }
    message.dedupe = `will.${randomBytes(9).toString('base64url')}`;
    let attempts = 0;
    const attempt = () =>
      this.publish({ ...message }, (err) => {
        if (err === undefined) return;
        if (++attempts >= WILL_PUBLISH_ATTEMPTS || this.closing) {
          this.logger.warn({ event: 'will.not_published', clientId: message.origin, err: err.message });
          return;
        }
        this.clock.setTimeout(attempt, WILL_RETRY_MS);
      });
    attempt();
  }

  // ---- routing -----------------------------------------------------------------------------------

  /**
   * Routes a message to every matching subscription in the cluster. `accepted`, for QoS >= 1, is
   * called once everything the guarantees need is durable (at once in single-node mode): the
   * channel sends PUBACK / PUBREC only then.
   */
  publish(message: Message, accepted?: (err?: Error) => void): number {
    if (publishChannel.hasSubscribers) publishChannel.publish({ message });
    const latch = accepted === undefined ? undefined : new Latch(accepted);
    const hold = latch?.hold;
    if (message.retain) {
      // [MQTT-3.3.1-5] store (or with an empty payload, delete [MQTT-3.3.1-6]) the retained message.
      const stored = this.retained.set(retainedCopy(message));
      if (stored !== undefined && hold !== undefined) {
        const done = hold();
        stored.then(() => done(), done);
      } else if (stored !== undefined) {
        // Nobody waits for it (QoS 0): a write the store refused is logged, never left unhandled.
        stored.catch((err: Error) =>
          this.logger.warn({ event: 'retained.not_stored', topic: message.topic, err: err.message }),
        );
      }
    }
    let delivered = 0;
    if (!isExpired(message, this.clock.now())) {
      // Routed again under its dedupe id: this node's subscribers had it if it was seen here before;
      // other nodes and persistent sessions skip it on their side.
      const visit =
        message.dedupe === undefined || this.recent.add(message.dedupe) ? deliverTo(message, hold) : skip;
      if (this.router === undefined) delivered = this.index.route(message, visit);
      else delivered = this.index.routeDirect(message, visit) + this.router.route(message, visit, hold);
    }
    if (delivered === 0 && !message.retain) {
      // Counted, not logged: publishing to a topic nobody reads is normal.
      const d = this.counters.dropped;
      d.no_subscriber = (d.no_subscriber ?? 0) + 1;
    }
    latch?.release();
    return delivered;
  }

  /**
   * A message another node sent here: local subscribers only, as the envelope says. Its publisher was
   * acknowledged already, and the inbox it came through is shared by every subscriber of this node,
   * so a congested subscriber does not hold it up (guarantee 10): the message waits in that
   * subscriber's own queue, up to `maxQueuedMessages` (dropped and counted past it). The promise
   * returned, if any, resolves once the writes started for it (persistent sessions' queues) are in
   * Redis: the inbox entry counts as processed only then.
   */
  private deliverRemote(envelope: Envelope): Promise<void> | undefined {
    const message = envelope.message;
    this.clusterReceived++;
    if (isExpired(message, this.clock.now())) return undefined;
    if (message.dedupe !== undefined && !this.recent.add(message.dedupe)) return undefined;
    let written: (() => void) | undefined;
    const latch = message.qos === 0 ? undefined : new Latch(() => written?.());
    const visit = deliverTo(message, latch?.hold, false);
    if (envelope.direct) this.index.routeDirect(message, visit);
    if (envelope.shared !== undefined)
      for (const key of envelope.shared) {
        // The group's last member here left after the share was routed here: another member takes it.
        if (this.index.deliverShared(key, visit)) continue;
        if (!this.router?.reroute(message, key, this.cluster?.nodeId ?? '', visit, latch?.hold))
          this.dropped('no_subscriber', '');
      }
    if (latch === undefined || !latch.waiting) return undefined;
    const wait = new Promise<void>((resolve) => {
      written = resolve;
    });
    latch.release();
    return wait;
  }

  /** Shares left in a dead node's inbox: each to a live member of its group (cluster mode only). */
  private handOverShares(envelopes: Envelope[], gone: string): Promise<void> {
    const router = this.router;
    if (router === undefined) return Promise.resolve();
    return new Promise((resolve) => {
      const latch = new Latch(() => resolve());
      for (const { message, shared } of envelopes) {
        if (shared === undefined || isExpired(message, this.clock.now())) continue;
        const visit = deliverTo(message, latch.hold, false);
        for (const key of shared)
          if (!router.reroute(message, key, gone, visit, latch.hold)) this.dropped('no_subscriber', '');
      }
      latch.release();
    });
  }

  subscribe(
    session: Session,
    raw: string,
    filter: string,
    group: string | null,
    options: SubscriptionOptions,
  ): Promise<void> | undefined {
    session.setSubscription(raw, options);
    const durable = session.durable;
    // A plain subscription of a session the cluster keeps is routed cluster-wide to its queue.
    // Node routes: SUBACK waits until every node routes here (guarantee 8), also for a subscriber
    // whose filter another local subscriber is still confirming.
    let routed: Promise<void> | undefined;
    if (durable === undefined || group !== null) {
      const routes = this.cluster?.routes;
      if (this.index.add(session, filter, group, options)) routed = routes?.add(filter, group);
      else routed = routes?.pending(filter, group);
    }
    if (durable === undefined) return routed;
    const stored = this.store?.subscribe(session.clientId, durable.epoch, raw, options, group === null);
    if (routed === undefined) return stored;
    return Promise.all([routed, stored]).then(() => undefined);
  }

  unsubscribe(session: Session, raw: string): { existed: boolean; stored?: Promise<void> } {
    if (!session.subscriptions.has(raw)) return { existed: false };
    this.unsubscribeIndex(session, raw);
    session.subscriptions.delete(raw);
    const durable = session.durable;
    if (durable === undefined || this.store === undefined) return { existed: true };
    const stored = this.store.unsubscribe(session.clientId, durable.epoch, raw, !raw.startsWith('$share/'));
    return { existed: true, stored };
  }

  private unsubscribeIndex(session: Session, raw: string): void {
    // `raw` was validated when it was subscribed.
    const parsed = parseSubscription(raw);
    if (parsed === null) return;
    const { filter, group } = parsed;
    if (this.index.remove(session, filter, group)) this.cluster?.routes.remove(filter, group);
  }

  private dropped(reason: string, clientId: string): void {
    const d = this.counters.dropped;
    const n = (d[reason] ?? 0) + 1;
    d[reason] = n;
    // Log the first drop and then every 1000th, so a flood cannot flood the log.
    if (n === 1 || n % 1000 === 0) this.logger.warn({ event: 'message.dropped', reason, clientId, total: n });
  }
}

/**
 * Delivery decisions for one subscriber of `message` (merged options from the index). With `hold`
 * (a QoS 1/2 publish), Redis writes delay the publisher's acknowledgement, and so does a congested
 * subscriber when `flowControlled` (the publisher is on this node; not for a message from the inbox).
 */
function deliverTo(message: Message, hold?: Hold, flowControlled = true): RouteVisitor {
  return (session, subQos, retainAsPublished, ids) => {
    const qos = Math.min(message.qos, subQos) as Message['qos'];
    // [MQTT-3.3.1-12] RETAIN is cleared on forwarding unless Retain As Published [MQTT-3.3.1-13].
    if (deliverChannel.hasSubscribers) deliverChannel.publish({ clientId: session.clientId, message, qos });
    session.deliver(
      { message, qos, retain: retainAsPublished && message.retain, subscriptionIds: ids },
      hold,
      flowControlled,
    );
    if (flowControlled && hold !== undefined && qos > 0 && session.congested) session.whenDrained(hold());
  };
}

/** Delivers nothing: the subscribers of this node already had the message. */
const skip: RouteVisitor = () => undefined;

/** A retained message keeps its own payload bytes and no per-connection state. */
function retainedCopy(m: Message): Message {
  const copy: Message = { topic: m.topic, payload: Buffer.from(m.payload), qos: m.qos, retain: true };
  if (m.properties !== undefined) copy.properties = m.properties;
  if (m.expiresAt !== undefined) copy.expiresAt = m.expiresAt;
  if (m.origin !== undefined) copy.origin = m.origin;
  return copy;
}
