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
}
