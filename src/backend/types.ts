/**
 * The seams between MQTT behaviour and where state lives. The broker talks only to these interfaces;
 * `memory/` implements them for a single node and the cluster backends (Redis) implement the same
 * contracts (test/contract/ runs one suite against every implementation).
 */
import type { Message } from '../broker/message.js';

/** Retained messages by topic (MQTT 3.3.1.3): last writer wins, an empty payload deletes. */
export interface RetainedStore {
  /** Stores `message` as the retained message of its topic, or deletes it when the payload is empty [MQTT-3.3.1-6] [MQTT-3.3.1-7]. */
  set(message: Message): void | Promise<void>;
  get(topic: string): Message | undefined;
  /** Visits every retained message whose topic `filter` matches; expired ones are removed instead. */
  match(filter: string, visit: (message: Message) => void): void;
  readonly size: number;
}

/**
 * A message travelling between nodes: the message, and which of the receiving node's subscriptions
 * it is for — its plain subscriptions (`direct`) and/or one member of each listed shared
 * subscription (`shared`, as `group\n filter` keys chosen by the publishing node, MQTT 5 4.8.2).
 */
export interface Envelope {
  message: Message;
  direct: boolean;
  shared?: string[];
}

/** The cluster-wide route table: which nodes hold subscribers for which filters (CLUSTER.md). */
export interface RouteTable {
  /** This node's first local subscriber of `filter` (in `group` for a shared subscription). */
  add(filter: string, group: string | null): void;
  /** This node's last local subscriber of `filter` (in `group`) is gone. */
  remove(filter: string, group: string | null): void;
  /** Other nodes with a plain subscription matching `topic` (each once). */
  matchNodes(topic: string, visit: (nodeId: string) => void): void;
  /** Other nodes with members of a shared subscription matching `topic`: one call per (group, filter). */
  matchShared(topic: string, visit: (groupKey: string, nodes: ReadonlySet<string>) => void): void;
}

/** Per-node inboxes between nodes; batched per event-loop turn. */
export interface ClusterBus {
  /**
   * Queues `envelope` for `nodeId`. For QoS >= 1, `accepted` is called once the cluster holds it
   * durably (Redis accepted the write) or with an error; QoS 0 may be lost in a blip.
   */
  send(nodeId: string, envelope: Envelope, accepted?: (err?: Error) => void): void;
}

/** A will as the cluster keeps it: the message, its delay and its Message Expiry Interval. */
export interface StoredWill {
  message: Message;
  delaySeconds: number;
  expirySeconds?: number;
}

/** The outcome of claiming a client id cluster-wide. */
export interface Claim {
  /** The fencing token of this connection: raised by every claim of the id. */
  epoch: number;
  /** The node that owned the id before, if any (maybe this one). */
  previous: string | null;
  /** The previous connection's will, to publish now (its session ended, or it had no delay). */
  will: StoredWill | null;
}

/** What a cluster backend calls back into the broker. */
export interface ClusterHandlers {
  /** Another node claimed `clientId` with `epoch`: close the local connection if it is older. */
  release(clientId: string, epoch: number): void;
  /** A will of a dead node, taken by this node (exactly once cluster-wide): publish it. */
  publishWill(will: StoredWill): void;
  /** An envelope from another node: deliver to local subscribers only. */
  deliver(envelope: Envelope): void | Promise<void>;
  /** The backend's readiness changed (Redis lost or regained). */
  readinessChanged(ready: boolean): void;
}

export interface ClusterNodeInfo {
  nodeId: string;
  lastSeenMs: number;
}

/** The cluster as one node sees it: membership, routes, the bus; single-node mode has none. */
export interface ClusterBackend {
  readonly nodeId: string;
  readonly routes: RouteTable;
  readonly bus: ClusterBus;
  readonly retained: RetainedStore;
  /** True once the route replica is loaded and the inbox is read, and while Redis is reachable. */
  readonly ready: boolean;
  start(handlers: ClusterHandlers): Promise<void>;
  /** Messages and batches sent to other nodes since start. */
  readonly busStats: { readonly envelopes: number; readonly batches: number };
  /** Makes this node the owner of `clientId` (fencing epoch raised). */
  claim(clientId: string, clean: boolean): Promise<Claim>;
  /** Asks the node holding `clientId` to close its connection; resolves when it did, or it is dead. */
  requestRelease(node: string, clientId: string, epoch: number): Promise<void>;
  /** Keeps a connection's will in Redis, so a survivor can publish it if this node dies. */
  storeWill(clientId: string, epoch: number, will: StoredWill): Promise<void>;
  /** Takes the will of `clientId` for publishing if `epoch` still owns it: true exactly once. */
  takeWill(clientId: string, epoch: number): Promise<boolean>;
  /** Stores this node's counters and returns those of every live node (for cluster-wide $SYS). */
  shareStats(mine: Record<string, number>): Promise<Record<string, Record<string, number>>>;
  /** Live nodes (heartbeat within the liveness timeout), this one included. */
  liveNodes(): Promise<ClusterNodeInfo[]>;
  stop(): Promise<void>;
}

/**
 * Per-username quotas (limits.user.*): connections held and PUBLISH packets per minute. In memory on
 * a single node (exact); in a cluster through Redis, where connections are counted at CONNECT (async)
 * and messages are counted locally and flushed once per interval, so the hot-path check stays a Map
 * lookup (docs/security.md: the slack this allows).
 */
export interface QuotaStore {
  /** Takes one of `max` connection slots of `user` for `connectionId`; false when all are taken. */
  acquireConnection(user: string, connectionId: string, max: number): Promise<boolean>;
  /** Gives the slot of `connectionId` back (idempotent). */
  releaseConnection(user: string, connectionId: string): void;
  /**
   * Counts one PUBLISH of `user` in the current minute; false (not counted) when the user has used
   * `perMinute` in it (cluster: as far as this node knows). Synchronous: on the hot path.
   */
  takeMessage(user: string, perMinute: number): boolean;
  /** Pushes local counts to the shared store now and refreshes connection slots (no-op in memory). */
  flush(): Promise<void>;
  start(): void;
  stop(): Promise<void>;
}
