/**
 * What the admin API (admin-api.ts) needs from the node, and the JSON shapes it answers with
 * (docs/admin-api.md). The broker implements BrokerAdmin (broker/inspect.ts); the server adds the
 * node list.
 */
import type { Properties, QoS } from '../protocol/index.js';

export interface AdminPage<T> {
  items: T[];
  /** Cursor for the next page (pass as `after`), or null on the last page. */
  next: string | null;
}

export interface AdminClientQuery {
  /** Only client ids starting with this. */
  prefix?: string;
  /** Only clients connected with this user name. */
  username?: string;
  /** Only client ids sorting after this (the previous page's `next`). */
  after?: string;
  limit: number;
}

export interface AdminClient {
  clientId: string;
  connected: boolean;
  username: string | null;
  /** 3 (MQTT 3.1), 4 (3.1.1) or 5; null while offline. */
  protocolVersion: number | null;
  /** tcp, tls, ws or wss; null while offline. */
  listener: string | null;
  remoteAddress: string | null;
  sessionExpirySeconds: number;
  subscriptionCount: number;
  inflight: number;
  queued: number;
}

export interface AdminSubscription {
  topicFilter: string;
  qos: number;
  noLocal: boolean;
  retainAsPublished: boolean;
  retainHandling: number;
  subscriptionIdentifier: number | null;
}

export interface AdminClientDetail extends AdminClient {
  subscriptions: AdminSubscription[];
}

export interface AdminRetained {
  topic: string;
  qos: number;
  payloadBytes: number;
  /** The payload as text (`encoding` utf8) or base64; null when larger than 64 KiB. */
  payload: string | null;
  encoding: 'utf8' | 'base64';
  contentType: string | null;
  expiresInSeconds: number | null;
}

export interface AdminPublish {
  topic: string;
  payload: Buffer;
  qos: QoS;
  retain: boolean;
  properties?: Properties;
  messageExpiryInterval?: number;
}

/** A subscription matching a topic, somewhere in the cluster. */
export interface AdminSubscriber {
  clientId: string;
  /** The filter as subscribed (`$share/<group>/<filter>` for a shared subscription). */
  topicFilter: string;
  qos: number;
  /** The node whose client it is; null for a persistent session's subscription (its queue is in the store). */
  node: string | null;
  /** A persistent session's plain subscription, routed to its queue whether its client is online or not. */
  persistent: boolean;
}

export interface AdminNode {
  nodeId: string;
  self: boolean;
  /** Last heartbeat (ms since the epoch) in cluster mode; null on a single node. */
  lastSeenMs: number | null;
}

/** The broker side of the admin API. */
export interface BrokerAdmin {
  clients(query: AdminClientQuery): AdminPage<AdminClient>;
  client(clientId: string): AdminClientDetail | undefined;
  /** Disconnects the client (MQTT 5: 0x98); `discardSession` also drops its session. False if unknown. */
  kick(clientId: string, discardSession: boolean): boolean;
  retained(filter: string, limit: number, after: string | undefined): AdminPage<AdminRetained>;
  /** Deletes every retained message matching `filter`; resolves with how many. */
  deleteRetained(filter: string): Promise<number>;
  /** Publishes like a client would (QoS >= 1: once the cluster accepted it); resolves with deliveries started. */
  publish(message: AdminPublish): Promise<number>;
  /**
   * The subscriptions matching `topic` this node knows: its clients' (node = `node`), and with
   * `stored` the persistent sessions' plain ones the store routes (cluster-wide in cluster mode).
   */
  subscribers(topic: string, node: string, stored: boolean): AdminSubscriber[];
}
