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
}
