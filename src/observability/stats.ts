/**
 * The broker's counters as one plain object, read on demand (a metrics scrape, $SYS). The broker
 * keeps these as plain numbers; nothing is computed per message for observability.
 */
export interface BrokerStats {
  clientsConnected: number;
  /** Connections accepted since start (monotonic). */
  clientsTotal: number;
  messagesReceived: number;
  messagesSent: number;
  bytesReceived: number;
  bytesSent: number;
  subscriptions: number;
  retained: number;
  /** Messages dropped since start, by reason (monotonic per reason). */
  dropped: Record<string, number>;
  sessions: number;
  /** Cluster mode: messages sent to other nodes (one per target node), batches they went in, messages received. */
  clusterMessagesSent: number;
  clusterBatchesSent: number;
  clusterMessagesReceived: number;
  /** Network connections open, including those that have not sent CONNECT yet. */
  connectionsOpen: number;
  /** Connected clients by `<listener> <protocol level>` (`tcp 5`, `ws 4`). */
  connectedBy: Record<string, number>;
  /** Accepted CONNECTs since start by `<listener> <protocol level>` (monotonic). */
  connectsBy: Record<string, number>;
  /** Sessions kept on this node whose client is not connected (persistent sessions). */
  sessionsOffline: number;
  /** Shared subscriptions (group + filter) with at least one member on this node. */
  sharedGroups: number;
  /** PUBLISH packets and payload bytes by QoS (index 0..2), from clients and to clients (monotonic). */
  receivedByQos: readonly number[];
  receivedBytesByQos: readonly number[];
  sentByQos: readonly number[];
  sentBytesByQos: readonly number[];
  /** CONNECTs refused for bad credentials or lack of authorization (monotonic). */
  authFailures: number;
  /** Requests refused or delayed by a limit, by limit name (monotonic per name). */
  rateLimited: Record<string, number>;
  /** CONNECTs whose claim of their client id runs now, and those waiting their turn (limits.maxConcurrentClaims). */
  claimsRunning: number;
  claimsQueued: number;
  /** Sessions taken over by a new connection with the same client id (monotonic). */
  takeovers: number;
  /** True from the start of a graceful drain. */
  draining: boolean;
  /** CONNACKs sent, by `<protocol level> <code>` (`5 0x86`, `4 0x05`: the code on the wire) (monotonic). */
  connacks: Record<string, number>;
  /** Connected clients' connections that ended, by reason (`client_disconnect`, `connection_lost`, `keep_alive_timeout`...). */
  disconnects: Record<string, number>;
  /** Authorization answers, by `<publish|subscribe> <allow|deny>` (monotonic). */
  authz: Record<string, number>;
  /** MQTT packets received from and sent to clients, by type (monotonic). */
  packetsReceived: Record<string, number>;
  packetsSent: Record<string, number>;
  /** Sessions opened here: created, resumed (Session Present 1); stored ones a Clean Start discarded; expired (as the store saw them). */
  sessionsCreated: number;
  sessionsResumed: number;
  sessionsDiscarded: number;
  sessionsExpired: number;
  /** Topics rewritten by topicRewrite, by `publish` / `subscribe`; subscriptions made by autoSubscribe (monotonic). */
  rewrites: Record<string, number>;
  autoSubscriptions: number;
  /** Bans in force (cluster-wide); CONNECTs refused for one on this node; flapping bans this node made (monotonic). */
  bans: number;
  bannedConnects: number;
  flappingBans: number;
  /** Delayed messages stored (cluster-wide, as of the last look) and published by this node (monotonic). */
  delayedStored: number;
  delayedPublished: number;
  /** QoS 1/2 messages sent to this node's clients and not yet acknowledged; messages queued here for them. */
  inflight: number;
  queued: number;
  /** Cluster mode: routes of other nodes and persistent-session routes in this node's replica. */
  clusterRoutes: number;
  clusterSessionRoutes: number;
}
