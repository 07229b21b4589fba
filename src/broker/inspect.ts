/**
 * A read-mostly view of one broker for operators: the connection breakdowns behind the metrics, and
 * the admin API's operations (list and show clients, kick, list and delete retained messages,
 * publish). The broker hands it its maps; it never keeps state of its own besides counters.
 */
import { isUtf8 } from 'node:buffer';
import type { OfflineSession, RetainedStore, SessionStore } from '../backend/types.js';
import type { Channel } from '../channel/channel.js';
import type { Clock } from '../clock.js';
import type { ErrorCode } from '../errors.js';
import { isExpired, type Message, type SubscriptionOptions } from '../message.js';
import type {
  AdminClient,
  AdminClientDetail,
  AdminClientQuery,
  AdminPage,
  AdminPublish,
  AdminRetained,
  AdminSubscriber,
  BrokerAdmin,
} from '../observability/admin-types.js';
import { ReasonCode } from '../protocol/index.js';
import type { Session } from '../session/session.js';
import { isValidTopicFilter, isValidTopicName } from '../topics/index.js';

export interface InspectorDeps {
  sessions: ReadonlyMap<string, Session>;
  online: ReadonlyMap<string, Channel>;
  retained: RetainedStore;
  /** The store's offline sessions, where it can read them (a single node's hub); its routed sessions. */
  store: Pick<SessionStore, 'offlineSessions' | 'discardOffline' | 'matchSessions'>;
  /** This node's subscriptions matching a topic (SubscriptionIndex.subscribersOf). */
  subscribersOf(
    topic: string,
    visit: (clientId: string, filter: string, options: SubscriptionOptions) => void,
  ): void;
  clock: Clock;
  /** Routes a message like a client's PUBLISH; `accepted` as in Broker.publish. */
  publish(message: Message, accepted?: (err?: Error) => void): number;
  /** Discards an offline session (its subscriptions and queue). */
  endSession(session: Session): void;
}

/** Payloads up to this size are returned by the retained listing; larger ones only by size. */
const MAX_LISTED_PAYLOAD = 64 * 1024;

export class BrokerInspector implements BrokerAdmin {
  /** Accepted CONNECTs by `<listener> <protocol level>`. */
  private readonly connects: Record<string, number> = {};

  constructor(private readonly d: InspectorDeps) {}

  /** Counts an accepted CONNECT (called when a channel becomes the owner of its id). */
  countConnect(channel: Channel): void {
    const key = `${channel.out.transportKind} ${channel.version}`;
    this.connects[key] = (this.connects[key] ?? 0) + 1;
  }

  get connectsBy(): Record<string, number> {
    return { ...this.connects };
  }

  /** Connected clients by `<listener> <protocol level>`: one pass over the online clients per call. */
  connectedBy(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const ch of this.d.online.values()) {
      const key = `${ch.out.transportKind} ${ch.version}`;
      out[key] = (out[key] ?? 0) + 1;
    }
    return out;
  }

  // ---- clients -----------------------------------------------------------------------------------

  clients(q: AdminClientQuery): AdminPage<AdminClient> {
    const found = new Map<string, AdminClient>();
    const wanted = (id: string) =>
      (q.prefix === undefined || id.startsWith(q.prefix)) && (q.after === undefined || id > q.after);
    for (const [id, session] of this.d.sessions) {
      if (!wanted(id)) continue;
      if (q.username !== undefined && this.channelOf(session)?.username !== q.username) continue;
      found.set(id, this.summary(session));
    }
    // Offline sessions have no user name to match.
    if (q.username === undefined)
      for (const s of this.d.store.offlineSessions?.() ?? [])
        if (wanted(s.clientId) && !found.has(s.clientId)) found.set(s.clientId, offlineSummary(s));
    // Channels between CONNECT and CONNACK have no session yet; clients are sessions.
    const ids = [...found.keys()].sort();
    const page = ids.slice(0, q.limit);
    return {
      items: page.map((id) => found.get(id) as AdminClient),
      next: ids.length > q.limit ? page[page.length - 1] : null,
    };
  }

  client(id: string): AdminClientDetail | undefined {
    const session = this.d.sessions.get(id);
    const offline = session === undefined ? this.offline(id) : undefined;
    if (session === undefined && offline === undefined) return undefined;
    const subscriptions = session?.subscriptions ?? (offline as OfflineSession).subscriptions;
    return {
      ...(session === undefined ? offlineSummary(offline as OfflineSession) : this.summary(session)),
      subscriptions: [...subscriptions].map(([topicFilter, o]) => ({
        topicFilter,
        qos: o.qos,
        noLocal: o.noLocal,
        retainAsPublished: o.retainAsPublished,
        retainHandling: o.retainHandling,
        subscriptionIdentifier: o.subscriptionId ?? null,
      })),
    };
  }

  kick(id: string, discardSession: boolean): boolean {
    const session = this.d.sessions.get(id);
    const channel = this.d.online.get(id);
    if (session === undefined && channel === undefined) {
      // Offline in the store: nothing to disconnect; discarded there when asked.
      if (this.offline(id) === undefined) return false;
      if (discardSession) this.d.store.discardOffline?.(id);
      return true;
    }
    // A session kept by the cluster ends where it is kept: closing with expiry 0 removes it from Redis.
    if (discardSession && channel?.session?.durable !== undefined) channel.session.expirySeconds = 0;
    // MQTT 5: DISCONNECT 0x98 Administrative action. The will follows the usual rules.
    channel?.disconnect(ReasonCode.AdministrativeAction, 'disconnected by an administrator');
    const left = this.d.sessions.get(id);
    if (discardSession && left !== undefined && left.link === null) this.d.endSession(left);
    return true;
  }

  private offline(id: string): OfflineSession | undefined {
    for (const s of this.d.store.offlineSessions?.() ?? []) if (s.clientId === id) return s;
    return undefined;
  }

  private channelOf(session: Session): Channel | undefined {
    const ch = this.d.online.get(session.clientId);
    return ch !== undefined && ch.session === session ? ch : undefined;
  }

  private summary(session: Session): AdminClient {
    const ch = this.channelOf(session);
    return {
      clientId: session.clientId,
      connected: ch !== undefined,
      username: ch?.username ?? null,
      protocolVersion: ch?.version ?? null,
      listener: ch?.out.transportKind ?? null,
      remoteAddress: ch?.out.remoteAddress ?? null,
      sessionExpirySeconds: session.expirySeconds,
      subscriptionCount: session.subscriptions.size,
      inflight: session.inflight.size,
      queued: session.queued,
    };
  }

  // ---- retained ----------------------------------------------------------------------------------

  retained(filter: string, limit: number, after: string | undefined): AdminPage<AdminRetained> {
    if (!isValidTopicFilter(filter)) throw new AdminInputError(`not a valid topic filter: ${filter}`);
    const found: Message[] = [];
    this.d.retained.match(filter, (m) => {
      if (after === undefined || m.topic > after) found.push(m);
    });
    found.sort((a, b) => (a.topic < b.topic ? -1 : a.topic > b.topic ? 1 : 0));
    const page = found.slice(0, limit);
    const now = this.d.clock.now();
    return {
      items: page.map((m) => retainedView(m, now)),
      next: found.length > limit ? page[page.length - 1].topic : null,
    };
  }

  async deleteRetained(filter: string): Promise<number> {
    if (!isValidTopicFilter(filter)) throw new AdminInputError(`not a valid topic filter: ${filter}`);
    const topics: string[] = [];
    this.d.retained.match(filter, (m) => topics.push(m.topic));
    // An empty retained payload deletes [MQTT-3.3.1-6]; in cluster mode the store writes through.
    await Promise.all(
      topics.map((topic) => this.d.retained.set({ topic, payload: EMPTY, qos: 0, retain: true })),
    );
    return topics.length;
  }

  // ---- publish -----------------------------------------------------------------------------------

  subscribers(topic: string, node: string, stored: boolean): AdminSubscriber[] {
    if (!isValidTopicName(topic)) throw new AdminInputError(`not a valid topic name: ${topic}`);
    const out: AdminSubscriber[] = [];
    this.d.subscribersOf(topic, (clientId, topicFilter, o) =>
      out.push({ clientId, topicFilter, qos: o.qos, node, persistent: false }),
    );
    if (stored)
      this.d.store.matchSessions(topic, (clientId, o, topicFilter) =>
        out.push({ clientId, topicFilter, qos: o.qos, node: null, persistent: true }),
      );
    return out;
  }

  publish(p: AdminPublish): Promise<number> {
    if (!isValidTopicName(p.topic) || p.topic.startsWith('$'))
      throw new AdminInputError(`not a valid topic name for a publish: ${p.topic}`);
    const message: Message = { topic: p.topic, payload: p.payload, qos: p.qos, retain: p.retain };
    if (p.properties !== undefined) message.properties = p.properties;
    if (p.messageExpiryInterval !== undefined)
      message.expiresAt = this.d.clock.now() + p.messageExpiryInterval * 1000;
    if (p.qos === 0) return Promise.resolve(this.d.publish(message));
    return new Promise((resolve, reject) => {
      let outcome: { err?: Error } | undefined;
      let delivered: number | undefined;
      // `accepted` may run before publish() returns: settle once both are known.
      const settle = () => {
        if (outcome === undefined || delivered === undefined) return;
        if (outcome.err !== undefined) reject(outcome.err);
        else resolve(delivered);
      };
      delivered = this.d.publish(message, (err) => {
        outcome = { err };
        settle();
      });
      settle();
    });
  }
}

function offlineSummary(s: OfflineSession): AdminClient {
  return {
    clientId: s.clientId,
    connected: false,
    username: null,
    protocolVersion: null,
    listener: null,
    remoteAddress: null,
    sessionExpirySeconds: s.expirySeconds,
    subscriptionCount: s.subscriptions.size,
    inflight: s.inflight,
    queued: s.queued,
  };
}

/** A request the admin API must answer with 400. */
export class AdminInputError extends Error {
  override readonly name = 'AdminInputError';
  readonly code = 'ADMIN_BAD_REQUEST' satisfies ErrorCode;
}

const EMPTY = Buffer.alloc(0);

function retainedView(m: Message, now: number): AdminRetained {
  const size = m.payload.length;
  const listed = size <= MAX_LISTED_PAYLOAD;
  const utf8 = listed && isUtf8(m.payload);
  return {
    topic: m.topic,
    qos: m.qos,
    payloadBytes: size,
    payload: listed ? m.payload.toString(utf8 ? 'utf8' : 'base64') : null,
    encoding: utf8 ? 'utf8' : 'base64',
    contentType: m.properties?.contentType ?? null,
    expiresInSeconds:
      m.expiresAt === undefined || isExpired(m, now) ? null : Math.ceil((m.expiresAt - now) / 1000),
  };
}
