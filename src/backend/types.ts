/**
 * The seams between MQTT behaviour and where state lives. The broker talks only to these interfaces;
 * `memory/` implements them for a single node and the cluster backends (Redis) implement the same
 * contracts (test/contract/ runs one suite against every implementation).
 */
import type { ErrorCode } from '../errors.js';
import type { Delivery, Message, SubscriptionOptions } from '../message.js';

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
  /**
   * This node's first local subscriber of `filter` (in `group` for a shared subscription). Resolves
   * once the route is stored and every live node applied it (guarantee 8: SUBACK waits for it);
   * rejects when it could not be stored. Undefined where it is applied at once (in process).
   */
  add(filter: string, group: string | null): Promise<void> | undefined;
  /** The confirmation of an add still under way for `filter` (in `group`): a later subscriber waits for it too. */
  pending(filter: string, group: string | null): Promise<void> | undefined;
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
  /**
   * With a SessionStore: the persistent session this connection serves, loaded in the same atomic
   * step as the claim; undefined when the connection has no persistent session (expiry 0, nothing
   * stored), which then lives on this node only.
   */
  session?: StoredSession;
  /** A Clean Start ended the persistent session the store kept for the id. */
  discarded?: boolean;
}

/** A persistent session as loaded by the node that now serves it. */
export interface StoredSession {
  /** It existed before this connection (CONNACK Session Present). */
  present: boolean;
  /** Its subscriptions, by the filter as subscribed (`$share/...` included). */
  subscriptions: Map<string, SubscriptionOptions>;
  /** Messages sent and not acknowledged, in the order they were sent. */
  inflight: { packetId: number; phase: 'publish' | 'pubrel'; delivery: Delivery }[];
  /** Inbound QoS 2 packet ids between PUBREC and PUBREL. */
  awaitingRelease: number[];
  /** The dedupe ids of those messages (Message.dedupe), by packet id: a re-send is routed under it. */
  dedupeIds: Map<number, string>;
  /** How far the queue was taken (the position the next fetch starts after). */
  position: string;
}

/**
 * A session write refused by the fence: another connection owns the client id now (a takeover, or
 * the reaper orphaned the session). The connection that tried is being closed by the takeover.
 */
export class FencedError extends Error {
  readonly code = 'SESSION_FENCED' satisfies ErrorCode;

  constructor() {
    super('session fenced: another connection owns this client id');
    this.name = 'FencedError';
  }
}

/** A queued message taken by the serving node: QoS 1/2 ones carry the packet id they are sent with. */
export interface FetchedDelivery {
  packetId: number;
  delivery: Delivery;
  /** Its place in the queue: the next fetch passes the last one it got. */
  position: string;
}

/**
 * Persistent sessions kept by the cluster (Redis), so a client resumes through any node and nothing
 * acknowledged to a publisher is lost when a node dies (docs/cluster.md "Persistent sessions").
 * Publishers append to a session's queue wherever it is served; the serving node takes messages
 * from it as the client's window allows. Every write of the serving node carries its epoch and node
 * (the fence): after a takeover or a reap, a former owner's writes are refused.
 */
/** An offline persistent session as the admin API shows it. */
export interface OfflineSession {
  clientId: string;
  expirySeconds: number;
  subscriptions: ReadonlyMap<string, SubscriptionOptions>;
  /** Messages queued, in flight included. */
  queued: number;
  inflight: number;
}

export interface SessionStore {
  /** Persistent sessions with a plain subscription matching `topic`, once per matching filter. */
  matchSessions(
    topic: string,
    visit: (clientId: string, options: SubscriptionOptions, filter: string) => void,
  ): void;
  /**
   * Queues a delivery for a persistent session (batched per loop turn). `accepted` (QoS >= 1) once
   * Redis holds it; a full queue drops it (ClusterHandlers.dropped) and still accepts.
   */
  append(clientId: string, delivery: Delivery, accepted?: (err?: Error) => void): void;
  /**
   * Takes up to `max` queued messages after the last one taken, with packet ids; [] when fenced out.
   * `after`: the last position the caller received. If the store is further (a fetch ran whose
   * answer was lost), the messages taken since are handed over again first, with their ids.
   */
  fetch(clientId: string, epoch: number, max: number, after: string): Promise<FetchedDelivery[]>;
  /** The client acknowledged `packetId` (PUBACK, PUBCOMP, or PUBREC with a failure code). */
  acknowledged(clientId: string, epoch: number, packetId: number): void;
  /**
   * PUBREC received for `packetId`: PUBCOMP awaited. Resolves once stored: PUBREL goes out only then,
   * so a client that delivers on PUBREL never gets the PUBLISH again from the next node.
   */
  releasing(clientId: string, epoch: number, packetId: number): Promise<void>;
  /**
   * An inbound QoS 2 id received (true, with the message's dedupe id) or released (false); resolves
   * once stored.
   */
  awaitRelease(
    clientId: string,
    epoch: number,
    packetId: number,
    waiting: boolean,
    dedupe?: string,
  ): Promise<void>;
  /** Stores a subscription (and routes it, when plain); resolves once both are in Redis. */
  subscribe(
    clientId: string,
    epoch: number,
    raw: string,
    options: SubscriptionOptions,
    plain: boolean,
  ): Promise<void>;
  unsubscribe(clientId: string, epoch: number, raw: string, plain: boolean): Promise<void>;
  /** The client's connection ended: the session is kept `expirySeconds` (0: ends now, routes dropped). */
  detach(clientId: string, epoch: number, expirySeconds: number): Promise<void>;
  /**
   * Shared subscriptions of offline sessions matching `topic`, as `group\nfilter` keys with their
   * members (where the store keeps them: the memory hub; not Redis). A group with no live member
   * anywhere queues its share for one of them.
   */
  matchOfflineShared?(
    topic: string,
    visit: (key: string, clientId: string, options: SubscriptionOptions) => void,
  ): void;
  /** Offline sessions it keeps, where it can count them at once (the memory hub; not Redis). */
  offlineCount?(): number;
  /**
   * Offline sessions that expired since start, as this store saw them: the memory hub's timers; on
   * Redis, those whose routes this node's sweep dropped (the nodes' sum is the cluster's).
   */
  expiredCount?(): number;
  /** Its offline sessions, where it can read them at once (the memory hub; not Redis): the admin API's view. */
  offlineSessions?(): Iterable<OfflineSession>;
  /** Ends an offline session at once (the admin API's discard); false when there is none offline. */
  discardOffline?(clientId: string): boolean;
}

/** What a cluster backend calls back into the broker. */
export interface ClusterHandlers {
  /** Another node claimed `clientId` with `epoch`: close the local connection if it is older. */
  release(clientId: string, epoch: number): void;
  /** A will of a dead node, taken by this node (exactly once cluster-wide): publish it. */
  publishWill(will: StoredWill): void;
  /**
   * An envelope from another node: deliver to local subscribers only (a shared subscription with no
   * member left here goes to a member on another node). A promise when writes it started (to
   * persistent sessions' queues, to other nodes) are still in flight.
   */
  deliver(envelope: Envelope): void | Promise<void>;
  /**
   * Shares (`Envelope.shared`) left unprocessed in the inbox of `gone`, a dead node: each goes to a
   * live member of its group (here or on another node). Resolves once Redis holds what was sent.
   */
  handOver?(envelopes: Envelope[], gone: string): Promise<void>;
  /** The backend's readiness changed (Redis lost or regained). */
  readinessChanged(ready: boolean): void;
  /**
   * Redis came back without the cluster's data (restarted without persistence), or this node was
   * away so long that the others reaped it: its connections hold claims Redis no longer honours.
   * They are closed, and their clients claim again.
   */
  stateLost(): void;
  /** Pokes may have been lost (the pub/sub connection came back): every session served here fetches. */
  refetch(): void;
  /** Messages were queued for these persistent sessions, served here: fetch them. */
  poke(clientIds: readonly string[]): void;
  /** Whether a connection (or a CONNECT still claiming) of `clientId` is on this node. */
  serves(clientId: string): boolean;
  /**
   * A delivery to a persistent session was dropped: its queue was full, QoS 0 while it is offline,
   * or (where the store purges them) expired in its queue.
   */
  dropped(reason: 'queue_full' | 'offline_qos0' | 'expired', clientId: string): void;
}

export interface ClusterNodeInfo {
  nodeId: string;
  lastSeenMs: number;
}

/** A ban (docs/extensions.md "Banned clients"): by client id, user name or address (an IP or CIDR range). */
export interface Ban {
  kind: 'clientId' | 'username' | 'address';
  value: string;
  reason: string;
  /** When it ends (ms since the epoch); null: never. */
  until: number | null;
  /** Who made it: `admin`, `flapping`. */
  by: string;
  /** When it was made (ms since the epoch). */
  at: number;
}

/**
 * The bans of a node or cluster: kept where every node sees them at once (Redis in a cluster, memory
 * on a single node). `current()` answers from a copy kept up to date (a change anywhere reaches each
 * node's copy at once, through pub/sub, and a poll makes up for a lost notice).
 */
export interface BanStore {
  /** The bans in force now (expired ones left out). */
  current(): readonly Ban[];
  /** Adds or replaces the ban of (kind, value); resolves once every node can see it. */
  add(ban: Ban): Promise<void>;
  /** Removes a ban; false when there was none. */
  remove(kind: Ban['kind'], value: string): Promise<boolean>;
  /** Called after the bans changed, on any node (this node's copy is current by then). */
  onChange(listener: () => void): void;
  /** Counts a CONNECT of `clientId` in the current window of `windowMs` (flapping detection); resolves the count. */
  countConnect(clientId: string, windowMs: number): Promise<number>;
  start(): Promise<void>;
  stop(): void;
}

/** A delayed message as stored ($delayed/<seconds>/<topic>: docs/extensions.md "Delayed publish"). */
export interface DelayedMessage {
  id: string;
  message: Message;
  /** When it is published (ms since the epoch; the store's clock: Redis' in a cluster). */
  dueAt: number;
}

/**
 * Delayed messages, kept where any node can fire them (Redis in a cluster, memory on one node).
 * `take` hands due messages to one node at a time: taken ones are leased to it until `done`; a
 * lease that runs out (its node died while publishing) makes them due again, for another node.
 */
export interface DelayedStore {
  /** Stores `message` to be published in `delayMs`; false when `max` messages are stored already. */
  add(message: Message, delayMs: number, max: number): Promise<string | false>;
  /** Up to `limit` due messages, leased to this node for `leaseMs`. */
  take(limit: number, leaseMs: number): Promise<DelayedMessage[]>;
  /** The taken messages were published: gone for good. */
  done(ids: readonly string[]): Promise<void>;
  /** Stored messages by due time, paged after `after` (an id). */
  list(limit: number, after?: string): Promise<DelayedMessage[]>;
  /** Cancels one; false when there is none (or it is being published). */
  cancel(id: string): Promise<boolean>;
  /** How many are stored (as of the last take, for the metrics). */
  readonly size: number;
}

/** The cluster as one node sees it: membership, routes, the bus; single-node mode has none. */
export interface ClusterBackend {
  readonly nodeId: string;
  readonly routes: RouteTable;
  readonly bus: ClusterBus;
  readonly retained: RetainedStore;
  /** Persistent sessions: the memory hub's (a single node, in memory or on disk) or Redis'. */
  readonly sessions: SessionStore;
  /** True for a single node's own backend (its memory hub): there is no cluster to report. */
  readonly standalone?: boolean;
  /** True once the route replica is loaded and the inbox is read, and while Redis is reachable. */
  readonly ready: boolean;
  start(handlers: ClusterHandlers): Promise<void>;
  /** Messages and batches sent to other nodes since start. */
  readonly busStats: { readonly envelopes: number; readonly batches: number };
  /** The bans every node of the cluster sees (docs/extensions.md "Banned clients"). */
  readonly bans: BanStore;
  /** Delayed messages any node fires (docs/extensions.md "Delayed publish"). */
  readonly delayed: DelayedStore;
  /**
   * What this node's replica of the cluster route table holds: other nodes' routes, and the plain
   * subscriptions of persistent sessions (cluster mode; absent on a single node).
   */
  readonly routeStats?: { readonly routes: number; readonly sessionRoutes: number };
  /**
   * Cluster-wide figures only Redis knows, read at scrape time (a Redis round trip): its memory
   * in use (the sum over the masters of a Redis Cluster) and the persistent sessions offline.
   */
  redisStats?(): Promise<{ usedMemoryBytes: number; offlineSessions: number }>;
  /** Cluster mode: the node serving `clientId` now (undefined: offline or unknown). */
  ownerOf?(clientId: string): Promise<string | undefined>;
  /** Cluster mode: asks another node to serve an admin API request (its answer). */
  adminCall?(node: string, request: unknown): Promise<unknown>;
  /** Cluster mode: what serves the admin API requests other nodes send here. */
  serveAdmin?(serve: (request: unknown) => Promise<unknown>): void;
  /** Cluster mode: the other nodes with a route matching `topic`. */
  nodesMatching?(topic: string): string[];
  /**
   * Makes this node the owner of `clientId` (fencing epoch raised). With a SessionStore it also
   * discards (`clean`) or loads the stored session, and creates one when `expirySeconds` > 0.
   */
  claim(clientId: string, clean: boolean, expirySeconds?: number): Promise<Claim>;
  /** Asks the node holding `clientId` to close its connection; resolves when it did, or it is dead. */
  requestRelease(node: string, clientId: string, epoch: number): Promise<void>;
  /**
   * The connection `epoch` of `clientId` ended and keeps no session in the cluster: what the cluster
   * holds for the id may go once nothing needs it, and later claims still get higher epochs.
   */
  releaseOwnership(clientId: string, epoch: number): Promise<void>;
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
