/**
 * The broker of one node: the publish pipeline, the subscription index, retained messages, $SYS and
 * the node's connections. The session lifecycle (ownership of client ids, open, close, expiry,
 * wills) is the SessionManager's (src/session/manager.ts): the broker hands it narrow ports and
 * delegates the session methods of ChannelContext to it. Connections reach the broker through their
 * channel's ChannelContext; transports reach it through `admits` and `attach`.
 */

import { randomBytes } from 'node:crypto';
import { type AuthHooks, allowAll } from '../auth/types.js';
import { MemoryQuotaStore } from '../backend/memory/quota-store.js';
import type {
  ClusterBackend,
  Envelope,
  QuotaStore,
  RetainedStore,
  SessionStore,
  StoredSession,
} from '../backend/types.js';
import type { Channel } from '../channel/channel.js';
import type { ChannelContext, Claimed, Counters, OpenedSession, PendingWill } from '../channel/context.js';
import type { Clock } from '../clock.js';
import type { AutoSubscribeRule } from '../extensions/auto-subscribe.js';
import { Banning, type FlappingOptions } from '../extensions/bans.js';
import { type DelayedOptions, DelayedPublisher } from '../extensions/delayed.js';
import { type RewriteRule, TopicRewriter } from '../extensions/topic-rewrite.js';
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
import { SessionManager } from '../session/manager.js';
import type { Session } from '../session/session.js';
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
  /**
   * The backend that keeps client ids, persistent sessions and retained messages and, in a cluster,
   * shares routes and delivery between nodes: Redis, or for a single node its own memory hub
   * (standaloneNode; on disk, openLocalNode). The composition root picks it.
   */
  cluster: ClusterBackend;
  /** The node's overload protection (shared with the listeners); default limits when omitted. */
  limits?: Limits;
  /** Per-username quotas (limits.user.*): the Redis store in a cluster; in memory when omitted. */
  quotas?: QuotaStore;
  /** Histograms the broker feeds (takeover duration); metrics.ts implements it. */
  instruments?: Pick<Instruments, 'takeover'>;
  /** Topic rewrite rules (config topicRewrite). */
  topicRewrite?: readonly RewriteRule[];
  /** Subscriptions every client gets on connect (config autoSubscribe). */
  autoSubscribe?: readonly AutoSubscribeRule[];
  /** Flapping detection (config flapping); off when omitted. */
  flapping?: FlappingOptions;
  /** Delayed publish (config delayed); on with its defaults when omitted. */
  delayed?: DelayedOptions;
}

export class Broker implements ChannelContext {
  readonly options: BrokerOptions;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly auth: AuthHooks;
  readonly retained: RetainedStore;
  readonly limits: Limits;
  readonly quotas: QuotaStore;
  readonly rewrite: TopicRewriter | undefined;
  readonly autoSubscribe: readonly AutoSubscribeRule[];
  /** Banned clients and flapping detection, on the cluster's ban store. */
  readonly banning: Banning;
  /** Delayed publish, on the cluster's delayed store; undefined when off. */
  readonly delayed: DelayedPublisher | undefined;
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
    connacks: {},
    disconnects: {},
    authz: {},
    packetsReceived: {},
    packetsSent: {},
    sessionsCreated: 0,
    sessionsResumed: 0,
    sessionsDiscarded: 0,
    rewrites: {},
    autoSubscriptions: 0,
  };
  readonly startedAt: number;

  /** The session lifecycle: client id ownership, open and close, expiry, wills. */
  private readonly manager: SessionManager<Channel>;
  private readonly connections = new Set<Drainable>();
  private readonly index = new SubscriptionIndex();
  private readonly sys: SysTopics;
  private readonly cluster: ClusterBackend;
  private readonly router: ClusterRouter;
  private clientsTotal = 0;
  /** Operator view: connection breakdowns for metrics, the admin API's operations. */
  readonly inspector: BrokerInspector;
  private clusterReceived = 0;
  private closing = false;
  /** Messages routed again under their dedupe id reach this node's subscribers once. */
  private readonly recent: RecentIds;

  constructor(deps: BrokerDeps) {
    this.options = deps.options;
    this.clock = deps.clock;
    this.logger = deps.logger;
    this.auth = { ...allowAll, ...deps.auth };
    this.cluster = deps.cluster;
    this.retained = deps.retained ?? this.cluster.retained;
    this.limits = deps.limits ?? new Limits(defaultLimitOptions, deps.clock);
    this.quotas = deps.quotas ?? new MemoryQuotaStore(deps.clock);
    this.rewrite = deps.topicRewrite?.length ? new TopicRewriter(deps.topicRewrite) : undefined;
    this.autoSubscribe = deps.autoSubscribe ?? [];
    this.banning = new Banning({
      store: this.cluster.bans,
      clock: this.clock,
      logger: this.logger,
      flapping: deps.flapping ?? { enabled: false, maxConnects: 15, windowSeconds: 60, banSeconds: 300 },
      enforce: () => this.enforceBans(),
    });
    const delayed = deps.delayed ?? { enabled: true, maxMessages: 100_000, maxDelaySeconds: 4_294_967 };
    this.delayed = delayed.enabled
      ? new DelayedPublisher({
          store: this.cluster.delayed,
          clock: this.clock,
          logger: this.logger,
          options: delayed,
          publish: (message, accepted) => this.publish(message, accepted),
        })
      : undefined;
    // Limit hits are counted where they happen (listeners too): the stats read the one record.
    this.counters.rateLimited = this.limits.hits;
    this.router = new ClusterRouter(this.cluster, this.index);
    this.startedAt = deps.clock.now();
    this.recent = new RecentIds(() => this.clock.now());
    this.sys = new SysTopics(this, deps.version);
    this.manager = new SessionManager<Channel>({
      options: this.options,
      clock: this.clock,
      logger: this.logger,
      cluster: this.cluster,
      subscriptions: {
        joinShared: (session, filter, group, options) => {
          if (this.index.add(session, filter, group, options)) this.cluster.routes.add(filter, group);
        },
        leave: (session, raw) => this.unsubscribeIndex(session, raw),
      },
      publish: (message, accepted) => this.publish(message, accepted),
      counters: this.counters,
      instruments: deps.instruments,
      dropped: (reason, clientId) => this.dropped(reason, clientId),
    });
    this.inspector = new BrokerInspector({
      sessions: this.manager.sessions,
      online: this.manager.online,
      retained: this.retained,
      store: this.cluster.sessions,
      clock: this.clock,
      publish: (message, accepted) => this.publish(message, accepted),
      endSession: (session) => this.manager.endSession(session),
      subscribersOf: (topic, visit) => this.index.subscribersOf(topic, visit),
    });
  }

  /** The bans changed: connected clients they match now are disconnected (0x98), on this node. */
  private enforceBans(): void {
    for (const ch of [...this.manager.online.values()]) {
      const ban = this.banning.banOf(ch.clientId, ch.username, ch.out.remoteAddress);
      if (ban === undefined) continue;
      this.logger.info({
        event: 'client.banned_kicked',
        clientId: ch.clientId,
        kind: ban.kind,
        reason: ban.reason,
      });
      ch.disconnect(ReasonCode.AdministrativeAction, `banned: ${ban.reason}`);
    }
  }

  /** Starts the periodic work ($SYS topics) and, in cluster mode, joins the cluster. */
  async start(): Promise<void> {
    const m = this.manager;
    // Join first: $SYS writes retained messages, which in cluster mode are Redis commands, and a
    // command on a lazy ioredis client connects it, so the backend's own connect() would then fail.
    await this.cluster.start({
      deliver: (envelope) => this.deliverRemote(envelope),
      handOver: (envelopes, gone) => this.handOverShares(envelopes, gone),
      release: (clientId, epoch) => m.releaseClient(clientId, epoch),
      publishWill: (will) => m.publishWill(will),
      readinessChanged: (ready) => {
        this.logger.info({ event: ready ? 'cluster.ready' : 'cluster.not_ready' });
        // Pokes sent while Redis was away are lost: look at every served queue again.
        if (ready) m.pokeAll();
      },
      poke: (ids) => m.pokeSessions(ids),
      refetch: () => m.pokeAll(),
      stateLost: () => m.reconnectAll(),
      serves: (id) => m.serves(id),
      dropped: (reason, clientId) => this.dropped(reason, clientId),
    });
    // The cluster's bans, loaded by its start.
    this.banning.refresh();
    this.delayed?.start();
    this.sys.start();
    this.quotas.start();
  }

  /** The cluster this node is part of; undefined for a single node (its own backend is no cluster). */
  get clusterBackend(): ClusterBackend | undefined {
    return this.cluster.standalone === true ? undefined : this.cluster;
  }

  /** Ready to take clients: while the backend is (a single node's always is). */
  get ready(): boolean {
    return this.cluster.ready;
  }

  /**
   * Whether a new socket may become a connection now (not draining, under maxConnections). The
   * composition root builds the Connection (src/connection/accept.ts) and hands it to `attach`.
   */
  admits(): boolean {
    return !this.closing && this.limits.admitConnection(this.connections.size);
  }

  /** Counts a connection (drain, stats) until it closes. */
  attach<C extends Drainable>(connection: C & { onClosed: ((c: C) => void) | undefined }): void {
    this.connections.add(connection);
    connection.onClosed = this.detach;
  }

  /** One function for every connection (not a closure each): the connection names itself. */
  private readonly detach = (connection: Drainable): void => {
    this.connections.delete(connection);
  };

  get stats(): BrokerStats {
    const online = this.manager.online.size;
    // Offline sessions are the store's: counted where it can count them (a single node's hub).
    const sessions = this.manager.sessions.size + (this.store.offlineCount?.() ?? 0);
    return {
      clientsConnected: online,
      clientsTotal: this.clientsTotal,
      messagesReceived: this.counters.messagesReceived,
      messagesSent: this.counters.messagesSent,
      bytesReceived: this.counters.bytesReceived,
      bytesSent: this.counters.bytesSent,
      subscriptions: this.index.count,
      retained: this.retained.size,
      dropped: { ...this.counters.dropped },
      authFailures: this.counters.authFailures,
      sessions,
      clusterMessagesSent: this.cluster.busStats.envelopes ?? 0,
      clusterBatchesSent: this.cluster.busStats.batches ?? 0,
      clusterMessagesReceived: this.clusterReceived,
      connectionsOpen: this.connections.size,
      connectedBy: this.inspector.connectedBy(),
      connectsBy: this.inspector.connectsBy,
      sessionsOffline: sessions - online,
      sharedGroups: this.index.sharedGroupCount,
      receivedByQos: [...this.counters.receivedByQos],
      receivedBytesByQos: [...this.counters.receivedBytesByQos],
      sentByQos: [...this.counters.sentByQos],
      sentBytesByQos: [...this.counters.sentBytesByQos],
      rateLimited: { ...this.counters.rateLimited },
      claimsRunning: this.limits.claims.active,
      claimsQueued: this.limits.claims.queued,
      takeovers: this.counters.takeovers,
      draining: this.closing,
      connacks: { ...this.counters.connacks },
      disconnects: { ...this.counters.disconnects },
      authz: { ...this.counters.authz },
      packetsReceived: { ...this.counters.packetsReceived },
      packetsSent: { ...this.counters.packetsSent, publish: this.counters.messagesSent },
      sessionsCreated: this.counters.sessionsCreated,
      sessionsResumed: this.counters.sessionsResumed,
      sessionsDiscarded: this.counters.sessionsDiscarded,
      rewrites: { ...this.counters.rewrites },
      autoSubscriptions: this.counters.autoSubscriptions,
      bans: this.banning.bans.length,
      bannedConnects: this.banning.refused,
      flappingBans: this.banning.flappingBans,
      delayedStored: this.delayed?.size ?? 0,
      delayedPublished: this.delayed?.published ?? 0,
      sessionsExpired: this.store.expiredCount?.() ?? 0,
      ...this.inflightAndQueued(),
      clusterRoutes: this.cluster.routeStats?.routes ?? 0,
      clusterSessionRoutes: this.cluster.routeStats?.sessionRoutes ?? 0,
    };
  }

  /** Messages in flight to this node's clients and queued for them here (a walk over the sessions: scrape time only). */
  private inflightAndQueued(): { inflight: number; queued: number } {
    let inflight = 0;
    let queued = 0;
    for (const s of this.manager.sessions.values()) {
      inflight += s.inflight.size;
      queued += s.queued;
    }
    return { inflight, queued };
  }

  /**
   * Drains: disconnects every client (MQTT 5: DISCONNECT 0x8B, or 0x9C with a Server Reference), at
   * `ratePerSecond` when given, and stops timers. Wills of drained clients are not sent: a drain is a
   * planned move, the client reconnects elsewhere at once (docs/deployment.md).
   */
  async shutdown(drain: DrainOptions = {}): Promise<void> {
    this.closing = true;
    this.manager.beginDrain();
    this.sys.stop();
    // Due messages are left for the other nodes (or for this node's next start, on Redis).
    this.delayed?.stop();
    this.logger.info({
      event: 'drain.started',
      clients: this.manager.online.size,
      ratePerSecond: drain.ratePerSecond ?? 0,
    });
    await drainConnections(this.connections, drain, this.clock);
    this.logger.info({ event: 'drain.clients_closed' });
    this.manager.stop();
    await this.quotas.stop();
    await this.cluster.stop();
  }

  // ---- sessions (the SessionManager's) ------------------------------------------------------------

  claimOwnership(
    channel: Channel,
    clean: boolean,
    expirySeconds: number,
    will?: PendingWill,
  ): Promise<Claimed> {
    return this.manager.claimOwnership(channel, clean, expirySeconds, will);
  }

  assignClientId(): string {
    return `shoal-${randomBytes(9).toString('base64url')}`;
  }

  openSession(channel: Channel, expirySeconds: number, stored?: StoredSession): OpenedSession {
    const opened = this.manager.openSession(channel, expirySeconds, stored);
    this.clientsTotal++;
    this.inspector.countConnect(channel);
    if (connectChannel.hasSubscribers)
      connectChannel.publish({
        clientId: channel.clientId,
        protocolVersion: channel.version,
        listener: channel.out.transportKind,
        sessionPresent: opened.present,
      });
    return opened;
  }

  channelClosed(channel: Channel, will: PendingWill | undefined): Promise<void> | undefined {
    if (disconnectChannel.hasSubscribers) disconnectChannel.publish({ clientId: channel.clientId });
    return this.manager.connectionClosed(channel, will);
  }

  /** Persistent sessions: the memory hub's (a single node) or Redis'. */
  private get store(): SessionStore {
    return this.cluster.sessions;
  }

  // ---- routing -----------------------------------------------------------------------------------

  /**
   * Routes a message to every matching subscription in the cluster. `accepted`, for QoS >= 1, is
   * called once everything the guarantees need is durable (at once on a single node in memory): the
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
    if (!this.expired(message)) {
      // Routed again under its dedupe id: this node's subscribers had it if it was seen here before;
      // other nodes and persistent sessions skip it on their side.
      const visit =
        message.dedupe === undefined || this.recent.add(message.dedupe) ? deliverTo(message, hold) : skip;
      delivered = this.index.routeDirect(message, visit) + this.router.route(message, visit, hold);
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
    if (this.expired(message)) return undefined;
    if (message.dedupe !== undefined && !this.recent.add(message.dedupe)) return undefined;
    let written: (() => void) | undefined;
    const latch = message.qos === 0 ? undefined : new Latch(() => written?.());
    const visit = deliverTo(message, latch?.hold, false);
    if (envelope.direct) this.index.routeDirect(message, visit);
    if (envelope.shared !== undefined)
      for (const key of envelope.shared) {
        // The group's last member here left after the share was routed here: another member takes it.
        if (this.index.deliverShared(key, visit)) continue;
        if (!this.router.reroute(message, key, this.cluster.nodeId, visit, latch?.hold))
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
    return new Promise((resolve) => {
      const latch = new Latch(() => resolve());
      for (const { message, shared } of envelopes) {
        if (shared === undefined || this.expired(message)) continue;
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
      const routes = this.cluster.routes;
      if (this.index.add(session, filter, group, options)) routed = routes?.add(filter, group);
      else routed = routes?.pending(filter, group);
    }
    if (durable === undefined) return routed;
    const stored = this.store.subscribe(session.clientId, durable.epoch, raw, options, group === null);
    if (routed === undefined) return stored;
    return Promise.all([routed, stored]).then(() => undefined);
  }

  unsubscribe(session: Session, raw: string): { existed: boolean; stored?: Promise<void> } {
    if (!session.subscriptions.has(raw)) return { existed: false };
    this.unsubscribeIndex(session, raw);
    session.subscriptions.delete(raw);
    const durable = session.durable;
    if (durable === undefined) return { existed: true };
    const stored = this.store.unsubscribe(session.clientId, durable.epoch, raw, !raw.startsWith('$share/'));
    return { existed: true, stored };
  }

  private unsubscribeIndex(session: Session, raw: string): void {
    // `raw` was validated when it was subscribed.
    const parsed = parseSubscription(raw);
    if (parsed === null) return;
    const { filter, group } = parsed;
    if (this.index.remove(session, filter, group)) this.cluster.routes.remove(filter, group);
  }

  /** Whether `message` expired; the clock is read only for one that expires (most do not). */
  private expired(message: Message): boolean {
    return message.expiresAt !== undefined && isExpired(message, this.clock.now());
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
