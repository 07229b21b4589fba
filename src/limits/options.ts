/**
 * What the overload protection can be told. The config schema (src/config) exposes these under
 * `limits.*`; units are in the names, 0 switches a limit off. Defaults are generous: they bound
 * what a runaway or hostile client can take without getting in the way of normal use.
 */

export const RATE_LIMIT_ACTIONS = ['pause', 'disconnect'] as const;
export type RateLimitAction = (typeof RATE_LIMIT_ACTIONS)[number];

export interface LimitOptions {
  /** Open network connections on this node (CONNECT sent or not); beyond it new ones are closed at once. */
  maxConnections: number;
  /** CONNECT packets accepted per second on this node; beyond it CONNACK 0x9F (3.x: 3). 0 = no limit. */
  connectRatePerSecond: number;
  /** CONNECTs accepted at once before the rate applies; 0 = one second's worth. */
  connectBurst: number;
  /**
   * Claims of a client id (the cluster-wide ownership step of CONNECT) running at once on this node;
   * the others wait their turn (claim-gate.ts). 0 = no limit.
   */
  maxConcurrentClaims: number;
  /** CONNECTs waiting for a claim slot; beyond it CONNACK 0x89 Server busy (3.x: 3) at once. */
  maxQueuedClaims: number;
  /** The longest a CONNECT waits for a claim slot; then CONNACK 0x89 Server busy (3.x: 3). */
  claimQueueTimeoutMs: number;
  /** PUBLISH packets per second from one client. 0 = no limit. */
  clientMessagesPerSecond: number;
  /** Messages a client may send at once before its rate applies; 0 = one second's worth. */
  clientMessageBurst: number;
  /** PUBLISH payload bytes per second from one client. 0 = no limit. */
  clientBytesPerSecond: number;
  /** Payload bytes a client may send at once before its rate applies; 0 = one second's worth. */
  clientByteBurst: number;
  /**
   * Over a client rate: 'pause' stops reading from it until the rate allows (TCP pushes back);
   * 'disconnect' closes it (MQTT 5: DISCONNECT 0x96).
   */
  rateLimitAction: RateLimitAction;
  /** Subscriptions one session may hold; beyond it SUBACK 0x97 (3.x: 0x80) for the filter. */
  maxSubscriptionsPerClient: number;
  /** Of those, subscriptions with `+` or `#`. 0 = no limit. */
  maxWildcardSubscriptionsPerClient: number;
  /** Levels in a topic name or filter; PUBLISH beyond it is refused (0x90), SUBSCRIBE gets 0x8F. */
  maxTopicLevels: number;
  /** UTF-8 bytes of a topic name or filter, refused like too many levels. */
  maxTopicLengthBytes: number;
  /** Retained messages kept (cluster: the shared store); a new retained topic beyond it is refused (0x97). */
  maxRetainedMessages: number;
  /** Payload bytes of one retained message; a larger retained PUBLISH is refused (0x97). */
  maxRetainedPayloadBytes: number;
  /**
   * TCP keep-alive probes after this many seconds of silence, so dead peers (half-open sockets) are
   * found even with MQTT keep-alive 0.
   */
  tcpKeepAliveSeconds: number;
  /** Per-username quotas, cluster-wide when clustered (limits.user.*). */
  user: UserQuotaOptions;
}

/** Quotas per username (clients without a username are not counted); 0 switches one off. */
export interface UserQuotaOptions {
  /** Connections one username may hold at once (cluster: across all nodes); beyond it CONNACK 0x97 (3.x: 3). */
  maxConnections: number;
  /**
   * PUBLISH packets one username may send per minute (fixed window); beyond it PUBACK / PUBREC 0x97
   * (3.x: dropped). Cluster: enforced through Redis with up to one flush interval of slack.
   */
  messagesPerMinute: number;
}

export const defaultLimitOptions: Readonly<LimitOptions> = Object.freeze({
  maxConnections: 0,
  connectRatePerSecond: 0,
  connectBurst: 0,
  maxConcurrentClaims: 512,
  maxQueuedClaims: 50_000,
  claimQueueTimeoutMs: 5000,
  clientMessagesPerSecond: 0,
  clientMessageBurst: 0,
  clientBytesPerSecond: 0,
  clientByteBurst: 0,
  rateLimitAction: 'pause',
  maxSubscriptionsPerClient: 100_000,
  maxWildcardSubscriptionsPerClient: 10_000,
  maxTopicLevels: 128,
  maxTopicLengthBytes: 65_535,
  maxRetainedMessages: 1_000_000,
  maxRetainedPayloadBytes: 0,
  tcpKeepAliveSeconds: 300,
  user: Object.freeze({ maxConnections: 0, messagesPerMinute: 0 }),
});
