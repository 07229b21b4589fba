/**
 * What a channel needs from the rest of the broker: a narrow view, so the MQTT state machine can be
 * driven in tests without sockets and the broker behind it can be single-node or clustered.
 */
import type { AuthHooks } from '../auth/types.js';
import type { QuotaStore, RetainedStore, StoredSession } from '../backend/types.js';
import type { BrokerOptions } from '../broker/options.js';
import type { Clock } from '../clock.js';
import type { AutoSubscribeRule } from '../extensions/auto-subscribe.js';
import type { Banning } from '../extensions/bans.js';
import type { DelayedPublisher } from '../extensions/delayed.js';
import type { TopicRewriter } from '../extensions/topic-rewrite.js';
import type { Limits } from '../limits/limits.js';
import type { Message, SubscriptionOptions } from '../message.js';
import type { Logger } from '../observability/logger.js';
import type { Claimed, OpenedSession, PendingWill } from '../session/manager.js';
import type { Session } from '../session/session.js';
import type { Channel } from './channel.js';

export type { Claimed, OpenedSession, PendingWill } from '../session/manager.js';

/** Counters the channel bumps on its hot path (plain fields: no per-message metric calls). */
export interface Counters {
  messagesReceived: number;
  messagesSent: number;
  bytesReceived: number;
  bytesSent: number;
  dropped: Record<string, number>;
  /** Cluster mode: connections taken over from another node. */
  takeovers: number;
  /** PUBLISH packets and their payload bytes, by QoS (index 0..2), received from and sent to clients. */
  receivedByQos: [number, number, number];
  receivedBytesByQos: [number, number, number];
  sentByQos: [number, number, number];
  sentBytesByQos: [number, number, number];
  /** CONNECTs refused for bad credentials or lack of authorization (0x86, 0x87, 0x8C; v3 4, 5). */
  authFailures: number;
  /** Requests refused or delayed by a limit (connection rate, publish rate, quota...), by limit name. */
  rateLimited: Record<string, number>;
  /** CONNACKs sent, by reason code as `0x00` (a 3.x client's refusal counts under its MQTT 5 code). */
  connacks: Record<string, number>;
  /** Connections of connected clients that ended, by reason (closeReason names: a bounded set). */
  disconnects: Record<string, number>;
  /** Authorization answers for PUBLISH and SUBSCRIBE: `publish allow`, `subscribe deny`, ... */
  authz: Record<string, number>;
  /** MQTT packets received from and sent to clients, by type (`publish`, `puback`, `pingreq`...). */
  packetsReceived: Record<string, number>;
  packetsSent: Record<string, number>;
  /** Sessions opened on this node: new ones, resumed ones (Session Present), stored ones a Clean Start ended. */
  sessionsCreated: number;
  sessionsResumed: number;
  sessionsDiscarded: number;
  /** Topics rewritten (topicRewrite), by `publish` / `subscribe` (SUBSCRIBE and UNSUBSCRIBE filters). */
  rewrites: Record<string, number>;
  /** Subscriptions made by autoSubscribe rules. */
  autoSubscriptions: number;
}

export interface ChannelContext {
  readonly options: BrokerOptions;
  readonly clock: Clock;
  readonly auth: AuthHooks;
  readonly logger: Logger;
  readonly counters: Counters;
  readonly retained: RetainedStore;
  /** The node's overload protection: connection gate, topic and retained limits, hit counts. */
  readonly limits: Limits;
  /** Per-username quotas (limits.user.*): memory on one node, Redis in a cluster; none = not enforced. */
  readonly quotas?: QuotaStore;
  /** Topic rewrite rules (topicRewrite); none configured: undefined, nothing is rewritten. */
  readonly rewrite?: TopicRewriter;
  /** Subscriptions every client gets on connect (autoSubscribe); none: empty. */
  readonly autoSubscribe: readonly AutoSubscribeRule[];
  /** Delayed publish ($delayed/<seconds>/<topic>); undefined when delayed.enabled is false. */
  readonly delayed?: Pick<DelayedPublisher, 'add' | 'maxDelaySeconds'>;
  /** Banned clients and flapping detection (src/extensions/bans.ts). */
  readonly banning: Pick<Banning, 'banOf' | 'connected' | 'refused'>;
  /**
   * Makes this connection the owner of its client id, cluster-wide (asking the node that holds it
   * to close its connection), and resolves with its epoch, the session the store keeps for it, and
   * whether a later CONNECT claimed it meanwhile (the channel keeps them).
   */
  claimOwnership(
    channel: Channel,
    clean: boolean,
    expirySeconds: number,
    will?: PendingWill,
  ): Promise<Claimed>;
  /** A fresh client identifier for a client that sent an empty one [MQTT-3.1.3-6]. */
  assignClientId(): string;
  /**
   * Makes `channel` the owner of its client id: closes any other connection with the same id
   * (DISCONNECT 0x8E) and opens, resumes or replaces the session [MQTT-3.1.4-3] [MQTT-3.1.4-4].
   * `stored`: the session the store keeps for it, as its claim loaded it.
   */
  openSession(channel: Channel, expirySeconds: number, stored?: StoredSession): OpenedSession;
  /**
   * Routes a message to every matching subscription; returns how many deliveries it started.
   * `accepted` (QoS >= 1) is called, maybe synchronously, once the message is safe to acknowledge.
   */
  publish(message: Message, accepted?: (err?: Error) => void): number;
  /** Adds a subscription; for a session the cluster keeps, resolves once it is stored (SUBACK waits). */
  subscribe(
    session: Session,
    raw: string,
    filter: string,
    group: string | null,
    options: SubscriptionOptions,
  ): Promise<void> | undefined;
  /**
   * Removes a subscription. `existed`: it was there. `stored`: for a session the cluster keeps,
   * settles once Redis has dropped it too (UNSUBACK waits).
   */
  unsubscribe(session: Session, raw: string): { existed: boolean; stored?: Promise<void> };
  /**
   * The connection of `channel` has ended. `will` is the message to publish (after its delay), or
   * undefined after a normal DISCONNECT. For a session the cluster keeps, resolves once its last
   * writes are in Redis.
   */
  channelClosed(channel: Channel, will: PendingWill | undefined): Promise<void> | undefined;
}
