/**
 * Every Redis key Shoal uses, in one place (docs/cluster.md lists them). Keys that Lua scripts
 * change together share a hash tag, so on Redis Cluster they live in one slot: the node set and
 * its bookkeeping have the `{prefix}` tag; what grows with the cluster (routes, retained messages,
 * their logs, persistent sessions' routes) is split into `partitions`, each with a tag of its own
 * that lands in its own band of slots, so on Redis Cluster the partitions spread over the masters
 * (#13.6); each node's inbox and each client's keys have their own tags too.
 */
/**
 * The hash tag of a client's keys. Redis hashes the text between the first `{` and the next `}`: an
 * id starting with `}` would make that empty (the whole key hashed, its keys in different slots),
 * so such ids get a `~` in front — and so do ids starting with `~`, so that no two ids share keys.
 */
function clientTag(clientId: string): string {
  return clientId.startsWith('}') || clientId.startsWith('~') ? `~${clientId}` : clientId;
}

/** The Redis Cluster slot of a key: CRC16 (XMODEM) of its hash tag, mod 16384. */
export function slotOf(key: string): number {
  let s = key;
  const open = key.indexOf('{');
  if (open >= 0) {
    const close = key.indexOf('}', open + 1);
    if (close > open + 1) s = key.slice(open + 1, close);
  }
  let crc = 0;
  for (const byte of Buffer.from(s)) {
    crc ^= byte << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc % 16384;
}

/** Partitions at most (cluster.partitions). */
export const MAX_PARTITIONS = 64;
const SLOTS = 16384;

/**
 * The hash tags of `count` partitions. One partition keeps the `{prefix}` tag (the layout before
 * partitions). With more, partition i's tag is the first `prefix:n` whose slot is the middle of the
 * i-th of `count` equal bands of slots: Redis Cluster gives each master a contiguous range of
 * slots, so the partitions spread over the masters as evenly as the bands do (6 partitions on 3
 * masters: 2 each). Every node computes the same tags.
 */
function partitionTags(prefix: string, count: number): string[] {
  if (count === 1) return [prefix];
  const want = new Map<number, number>();
  for (let i = 0; i < count; i++) want.set(Math.floor(((2 * i + 1) * SLOTS) / (2 * count)), i);
  const tags: string[] = new Array(count);
  let found = 0;
  for (let n = 0; found < count; n++) {
    const tag = `${prefix}:${n}`;
    const i = want.get(slotOf(tag));
    if (i !== undefined && tags[i] === undefined) {
      tags[i] = tag;
      found++;
    }
  }
  return tags;
}

/** FNV-1a over the string's UTF-16 code units: which partition a filter, topic or client id is in. */
function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

export class Keys {
  private tags: string[] = [];

  constructor(
    readonly prefix = 'shoal',
    partitions = 1,
  ) {
    this.setPartitions(partitions);
  }

  /** How many partitions the cluster's data set is split into (one cluster-wide fact: `layout`). */
  get partitions(): number {
    return this.tags.length;
  }

  /** Set once at start, before any partitioned key is used, to the data set's layout. */
  setPartitions(count: number): void {
    if (!Number.isInteger(count) || count < 1 || count > MAX_PARTITIONS)
      throw new Error(`partitions must be an integer from 1 to ${MAX_PARTITIONS}`);
    this.tags = partitionTags(this.prefix, count);
  }

  /** The partition of a route (its filterKey), a retained topic or a persistent session's client id. */
  partitionOf(s: string): number {
    return this.tags.length === 1 ? 0 : hash32(s) % this.tags.length;
  }

  /** The partitions, 0 to partitions - 1. */
  allPartitions(): number[] {
    return this.tags.map((_t, i) => i);
  }

  private get tag(): string {
    return `{${this.prefix}}`;
  }

  private ptag(p: number): string {
    return `{${this.tags[p]}}`;
  }

  /** STRING: the number of partitions the data set was created with (set once by its first node). */
  get layout(): string {
    return `${this.tag}:layout`;
  }

  /** ZSET node id -> last heartbeat (ms, Redis' clock). */
  get nodes(): string {
    return `${this.tag}:nodes`;
  }
  /** HASH node id -> its registered incarnation (run): what a reaper's every step is fenced by. */
  get nodeRuns(): string {
    return `${this.tag}:node-runs`;
  }
  /**
   * SET of one node's filterKeys in partition p: its part of the route table (snapshots read the
   * sets of the nodes in nodeRuns), unlinked whole when the node leaves or is reaped.
   */
  nodeRoutes(node: string, p: number): string {
    return `${this.ptag(p)}:node-routes:${node}`;
  }
  /**
   * HASH node id -> the run (incarnation) that last wrote its routes in partition p: a reaper drops
   * the routes of the run it judged dead only (route-node-drop.lua), never those of a later run.
   */
  routeRuns(p: number): string {
    return `${this.ptag(p)}:route-runs`;
  }
  /** STREAM of partition p's route changes: op a (add), d (delete), n (node removed), s / u (session routes). */
  routeLog(p: number): string {
    return `${this.ptag(p)}:route-log`;
  }
  /** HASH node id -> the last entry of partition p's route log it applied to its replica (RouteSync). */
  routeApplied(p: number): string {
    return `${this.ptag(p)}:route-applied`;
  }
  /** Pub/sub channel: `node\nentry id`, sent when a node applied more of partition p's route log. */
  routeAppliedChannel(p: number): string {
    return `${this.ptag(p)}:route-applied`;
  }
  /**
   * ZSET: the sequence numbers of a writer's (node run's) retained writes to partition p applied
   * lately, so its re-sends are ignored; kept a day past its last write, removed when the node leaves.
   */
  retainedSeq(writer: string, p: number): string {
    return `${this.ptag(p)}:retained-seq:${writer}`;
  }
  /** HASH topic -> encoded retained message, for partition p's topics: the truth for retained messages. */
  retained(p: number): string {
    return `${this.ptag(p)}:retained`;
  }
  /** ZSET topic -> expiry time (ms, Redis' clock) of partition p's retained messages with an expiry. */
  retainedExpiry(p: number): string {
    return `${this.ptag(p)}:retained-expiry`;
  }
  /** STREAM of partition p's retained changes: op s (set, with the message), h (set, body in the hash) or d. */
  retainedLog(p: number): string {
    return `${this.ptag(p)}:retained-log`;
  }
  /** STRING: a random id set once per Redis data set; a node that finds another one knows Redis lost its data. */
  get dataSet(): string {
    return `${this.tag}:data-set`;
  }
  /** HASH node id -> JSON counters, for cluster-wide $SYS totals. */
  get nodeStats(): string {
    return `${this.tag}:node-stats`;
  }
  /** HASH node -> incarnation: nodes removed by a reaper whose other reaping steps are not done yet. */
  get reaping(): string {
    return `${this.tag}:reaping`;
  }
  /** HASH `kind:value` -> a ban as JSON (docs/extensions.md "Banned clients"). */
  get bans(): string {
    return `${this.tag}:bans`;
  }
  /** Pub/sub channel: a ban was added or removed (every node reloads its copy). */
  get bansChannel(): string {
    return `${this.tag}:bans-changed`;
  }
  /** STRING counter: a client id's CONNECTs in one flapping window (expires with the window). */
  flapping(clientId: string, window: number): string {
    return `${this.prefix}:flap:{${clientTag(clientId)}}:${window}`;
  }
  /** ZSET id -> due time (ms, Redis' clock): the delayed messages waiting ($delayed/...). */
  get delayed(): string {
    return `${this.tag}:delayed`;
  }
  /** HASH id -> encoded message: the delayed messages' bodies. */
  get delayedMessages(): string {
    return `${this.tag}:delayed-msgs`;
  }
  /** ZSET id -> lease end (ms, Redis' clock): delayed messages a node is publishing. */
  get delayedFiring(): string {
    return `${this.tag}:delayed-firing`;
  }
  /** Lock held by the survivor that reaps a dead node. */
  reaper(node: string): string {
    return `${this.tag}:reaper:${node}`;
  }
  /** HASH per client id: owning node, fencing epoch, pending will (and its delay). */
  owner(clientId: string): string {
    return `${this.prefix}:owner:{${clientTag(clientId)}}`;
  }
  /** SET of `clientId\nepoch` of the wills a node's connections stored, for the reaper of that node. */
  nodeWills(node: string): string {
    return `${this.tag}:node-wills:${node}`;
  }
  /** ZSET `clientId\nepoch` -> due time (ms, Redis' clock): dead nodes' wills, fired by any node. */
  get dueWills(): string {
    return `${this.tag}:due-wills`;
  }
  /** LIST `clientId\nepoch`: takeovers a node must close its old connection for (drained each tick). */
  kicks(node: string): string {
    return `${this.prefix}:kicks:{${node}}`;
  }
  /** Pub/sub channel: control messages to a node (takeover requests and answers). */
  control(node: string): string {
    return `${this.prefix}:ctl:{${node}}`;
  }
  /** STREAM: a node's inbox for QoS >= 1 batches. */
  inbox(node: string): string {
    return `${this.prefix}:inbox:{${node}}`;
  }
  /** STRING: the incarnation reading a node's inbox, in the inbox's slot (a reaper's fence). */
  inboxRun(node: string): string {
    return `${this.prefix}:inbox-run:{${node}}`;
  }
  /** ZSET client id -> slot expiry (ms): a username's connections (limits.user.maxConnections). */
  userConnections(user: string): string {
    return `${this.prefix}:quota-conn:{${user}}`;
  }
  /** STRING counter: a username's PUBLISH packets in one minute window (limits.user.messagesPerMinute). */
  userMessages(user: string, window: number): string {
    return `${this.prefix}:quota-msg:{${user}}:${window}`;
  }
  /** Pub/sub channel: a node's inbox for QoS 0 batches. */
  inbox0(node: string): string {
    return `${this.prefix}:inbox0:{${node}}`;
  }

  // ---- persistent sessions (docs/cluster.md "Persistent sessions"): one {clientId} slot each ----

  /** HASH: a persistent session: on (node serving it, '' offline), exp (expiry s), rd (last stream id fetched), np (next packet id), s:<filter> (subscription options). */
  session(clientId: string): string {
    return `${this.prefix}:sess:{${clientTag(clientId)}}`;
  }
  /** STREAM: the session's queue; publishers append, the serving node fetches and deletes on acknowledgement. */
  queue(clientId: string): string {
    return `${this.prefix}:q:{${clientTag(clientId)}}`;
  }
  /** HASH packet id -> `<stream id> <phase>`: messages sent to the client and not yet acknowledged. */
  inflight(clientId: string): string {
    return `${this.prefix}:inf:{${clientTag(clientId)}}`;
  }
  /**
   * ZSET dedupe id -> time (ms, Redis clock): QoS 2 messages queued for the session lately. A
   * publisher's re-send routed again under the same id is not queued twice (docs/cluster.md).
   */
  dedupe(clientId: string): string {
    return `${this.prefix}:dd:{${clientTag(clientId)}}`;
  }
  /**
   * ZSET `<node>/<run>/<batch>` -> time (ms, Redis clock): the append batches applied to the
   * session lately, so one ioredis re-sends is queued once, in whatever order the batches land.
   */
  appliedBatches(clientId: string): string {
    return `${this.prefix}:ab:{${clientTag(clientId)}}`;
  }
  /** SET of inbound QoS 2 packet ids between PUBREC and PUBREL. */
  awaitingRelease(clientId: string): string {
    return `${this.prefix}:rel:{${clientTag(clientId)}}`;
  }
  /**
   * HASH `clientId\0filter` -> subscription options: plain subscriptions of the persistent sessions
   * of partition p (a session's routes are in the partition of its client id).
   */
  sessionRoutes(p: number): string {
    return `${this.ptag(p)}:session-routes`;
  }
  /**
   * HASH of one session's filters in sessionRoutes -> the epoch that routed them, and '' -> the
   * floor below which no connection may route (the fence of route writes); kept a day after a drop.
   * In the partition of the client id, with its sessionRoutes and routeLog.
   */
  clientRoutes(clientId: string): string {
    return `${this.ptag(this.partitionOf(clientId))}:client-routes:${clientId}`;
  }
  /** ZSET client id -> expiry time (ms) of offline sessions: where to look for routes to drop. */
  get sessionExpiry(): string {
    return `${this.tag}:session-expiry`;
  }
  /** SET of client ids with a session served by a node, for the reaper of that node. */
  nodeSessions(node: string): string {
    return `${this.tag}:node-sessions:${node}`;
  }
}
