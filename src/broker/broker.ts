/**
 * The broker of one node: owns the sessions, the subscription index, retained messages, delayed
 * wills and session expiry, and the publish pipeline. Connections reach it through their channel's
 * ChannelContext; transports reach it through `accept`.
 */
import { randomBytes } from 'node:crypto';
import { type AuthHooks, allowAll } from '../auth/types.js';
import { MemoryRetainedStore } from '../backend/memory/retained-store.js';
import type { ClusterBackend, Envelope, RetainedStore } from '../backend/types.js';
import type { Channel } from '../channel/channel.js';
import type { ChannelContext, Counters, OpenedSession, PendingWill } from '../channel/context.js';
import type { Clock, TimerHandle } from '../clock.js';
import { Connection } from '../connection/connection.js';
import type { Logger } from '../observability/logger.js';
import type { BrokerStats } from '../observability/stats.js';
import { ReasonCode } from '../protocol/index.js';
import { type DropReason, Session, type SubscriptionOptions } from '../session/session.js';
import type { Transport } from '../transport/types.js';
import { ClusterRouter, type Hold } from './cluster-router.js';
import { isExpired, type Message } from './message.js';
import type { BrokerOptions } from './options.js';
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
}

const NEVER = 0xffffffff;

export class Broker implements ChannelContext {
  readonly options: BrokerOptions;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly auth: AuthHooks;
  readonly retained: RetainedStore;
  readonly counters: Counters = {
    messagesReceived: 0,
    messagesSent: 0,
    bytesReceived: 0,
    bytesSent: 0,
    dropped: {},
  };
  readonly startedAt: number;

  private readonly sessions = new Map<string, Session>();
  private readonly online = new Map<string, Channel>();
  private readonly connections = new Set<Connection>();
  private readonly index = new SubscriptionIndex();
  private readonly expiryTimers = new Map<string, TimerHandle>();
  private readonly delayedWills = new Map<string, { will: PendingWill; timer: TimerHandle }>();
  private readonly sys: SysTopics;
  private readonly cluster: ClusterBackend | undefined;
  private readonly router: ClusterRouter | undefined;
  private clientsTotal = 0;
  private clusterReceived = 0;
  private closing = false;
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
    this.router = deps.cluster ? new ClusterRouter(deps.cluster, this.index) : undefined;
    this.startedAt = deps.clock.now();
    this.sys = new SysTopics(this, deps.version);
  }

  /** Starts the periodic work ($SYS topics) and, in cluster mode, joins the cluster. */
  async start(): Promise<void> {
    this.sys.start();
    await this.cluster?.start({
      deliver: (envelope) => this.deliverRemote(envelope),
      readinessChanged: (ready) => this.logger.info({ event: ready ? 'cluster.ready' : 'cluster.not_ready' }),
    });
  }

  get clusterBackend(): ClusterBackend | undefined {
    return this.cluster;
  }

  /** Ready to take clients: always in single-node mode; in cluster mode while the backend is. */
  get ready(): boolean {
    return this.cluster?.ready ?? true;
  }

  /** A new connection from any listener. */
  accept(transport: Transport): void {
    if (this.closing) {
      transport.destroy();
      return;
    }
    const connection = new Connection(transport, this);
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
      sessions: this.sessions.size,
      clusterMessagesSent: this.cluster?.busStats.envelopes ?? 0,
      clusterBatchesSent: this.cluster?.busStats.batches ?? 0,
      clusterMessagesReceived: this.clusterReceived,
    };
  }

  /** Disconnects every client (MQTT 5: DISCONNECT 0x8B) and stops timers. Wills of these clients are not sent. */
  async shutdown(): Promise<void> {
    this.closing = true;
    this.sys.stop();
    const closed = [...this.connections].map((c) => c.closed);
    for (const c of this.connections) c.shutdown(ReasonCode.ServerShuttingDown);
    await Promise.all(closed);
    for (const t of this.expiryTimers.values()) t.cancel();
    for (const w of this.delayedWills.values()) w.timer.cancel();
    this.expiryTimers.clear();
    this.delayedWills.clear();
    await this.cluster?.stop();
  }

  assignClientId(): string {
    return `shoal-${randomBytes(9).toString('base64url')}`;
  }

  // ---- sessions ----------------------------------------------------------------------------------

  openSession(channel: Channel, clean: boolean, expirySeconds: number): OpenedSession {
    const id = channel.clientId;
    const previous = this.online.get(id);
    if (previous !== undefined && previous !== channel) {
      // [MQTT-3.1.4-2] take over: the old connection is closed (MQTT 5: DISCONNECT 0x8E).
      this.logger.info({ event: 'client.takeover', clientId: id });
      previous.disconnect(ReasonCode.SessionTakenOver, 'session taken over');
    }
    this.online.set(id, channel);
    this.clientsTotal++;
    this.cancelExpiry(id);

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
    return { session, present };
  }

  channelClosed(channel: Channel, will: PendingWill | undefined): void {
    const id = channel.clientId;
    if (this.online.get(id) !== channel) {
      // Taken over: the session belongs to the new connection now; only the will remains to send.
      if (will !== undefined && !this.closing) this.scheduleWill(id, will, NEVER);
      return;
    }
    this.online.delete(id);
    const session = channel.session;
    if (session === null) return;
    session.detach();
    if (this.closing) return;
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
      this.publishWill(pending.will);
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
      this.publishWill(will);
      return;
    }
    this.cancelDelayedWill(id);
    const timer = this.clock.setTimeout(() => {
      this.delayedWills.delete(id);
      this.publishWill(will);
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

  private publishWill(will: PendingWill): void {
    const message: Message = { ...will.message };
    if (will.expirySeconds !== undefined) message.expiresAt = this.clock.now() + will.expirySeconds * 1000;
    this.logger.debug({ event: 'will.published', clientId: message.origin, topic: message.topic });
    this.publish(message);
  }

  // ---- routing -----------------------------------------------------------------------------------

  /**
   * Routes a message to every matching subscription in the cluster. `accepted`, for QoS >= 1, is
   * called once everything the guarantees need is durable (at once in single-node mode): the
   * channel sends PUBACK / PUBREC only then.
   */
  publish(message: Message, accepted?: (err?: Error) => void): number {
    let pending = 1;
    let failure: Error | undefined;
    const release = (err?: Error) => {
      if (err !== undefined) failure ??= err;
      if (--pending === 0) accepted?.(failure);
    };
    const hold: Hold | undefined =
      accepted === undefined
        ? undefined
        : () => {
            pending++;
            return release;
          };
    if (message.retain) {
      // [MQTT-3.3.1-5] store (or with an empty payload, delete [MQTT-3.3.1-6]) the retained message.
      const stored = this.retained.set(retainedCopy(message));
      if (stored !== undefined && hold !== undefined) {
        const done = hold();
        stored.then(() => done(), done);
      }
    }
    let delivered = 0;
    if (!isExpired(message, this.clock.now())) {
      const visit = deliverTo(message, hold);
      if (this.router === undefined) delivered = this.index.route(message, visit);
      else delivered = this.index.routeDirect(message, visit) + this.router.route(message, visit, hold);
    }
    if (accepted !== undefined) release();
    return delivered;
  }

  /** A message another node sent here: local subscribers only, as the envelope says. */
  private deliverRemote(envelope: Envelope): void {
    const message = envelope.message;
    this.clusterReceived++;
    if (isExpired(message, this.clock.now())) return;
    const visit = deliverTo(message);
    if (envelope.direct) this.index.routeDirect(message, visit);
    if (envelope.shared !== undefined)
      for (const key of envelope.shared) this.index.deliverShared(key, visit);
  }

  subscribe(
    session: Session,
    raw: string,
    filter: string,
    group: string | null,
    options: SubscriptionOptions,
  ): void {
    session.setSubscription(raw, options);
    if (this.index.add(session, filter, group, options)) this.cluster?.routes.add(filter, group);
  }

  unsubscribe(session: Session, raw: string): boolean {
    if (!session.subscriptions.has(raw)) return false;
    this.unsubscribeIndex(session, raw);
    session.subscriptions.delete(raw);
    return true;
  }

  private unsubscribeIndex(session: Session, raw: string): void {
    let filter = raw;
    let group: string | null = null;
    if (raw.startsWith('$share/')) {
      const slash = raw.indexOf('/', 7);
      filter = raw.slice(slash + 1);
      group = raw.slice(7, slash);
    }
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
 * (a QoS 1/2 publish), a congested subscriber delays the publisher's acknowledgement.
 */
function deliverTo(message: Message, hold?: Hold): RouteVisitor {
  return (session, subQos, retainAsPublished, ids) => {
    const qos = Math.min(message.qos, subQos) as Message['qos'];
    // [MQTT-3.3.1-12] RETAIN is cleared on forwarding unless Retain As Published [MQTT-3.3.1-13].
    session.deliver(
      { message, qos, retain: retainAsPublished && message.retain, subscriptionIds: ids },
      hold !== undefined,
    );
    if (hold !== undefined && qos > 0 && session.congested) session.whenDrained(hold());
  };
}

/** A retained message keeps its own payload bytes and no per-connection state. */
function retainedCopy(m: Message): Message {
  const copy: Message = { topic: m.topic, payload: Buffer.from(m.payload), qos: m.qos, retain: true };
  if (m.properties !== undefined) copy.properties = m.properties;
  if (m.expiresAt !== undefined) copy.expiresAt = m.expiresAt;
  if (m.origin !== undefined) copy.origin = m.origin;
  return copy;
}
