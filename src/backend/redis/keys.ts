/**
 * Every Redis key Shoal uses, in one place (docs/cluster.md lists them). Keys that Lua scripts
 * change together share the `{prefix}` hash tag, so on Redis Cluster they live in one slot; each
 * node's inbox has its own tag so inboxes spread over the cluster.
 */
/**
 * The hash tag of a client's keys. Redis hashes the text between the first `{` and the next `}`: an
 * id starting with `}` would make that empty (the whole key hashed, its keys in different slots),
 * so such ids get a `~` in front — and so do ids starting with `~`, so that no two ids share keys.
 */
function clientTag(clientId: string): string {
  return clientId.startsWith('}') || clientId.startsWith('~') ? `~${clientId}` : clientId;
}

export class Keys {
  constructor(readonly prefix = 'shoal') {}

  private get tag(): string {
    return `{${this.prefix}}`;
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
   * SET of one node's filterKeys: its part of the route table (snapshots read the sets of the nodes
   * in nodeRuns), unlinked whole when the node leaves or is reaped.
   */
  nodeRoutes(node: string): string {
    return `${this.tag}:node-routes:${node}`;
  }
  /** STREAM of route changes: op a (add), d (delete), n (node removed). */
  get routeLog(): string {
    return `${this.tag}:route-log`;
  }
  /** HASH node id -> the last route-log entry it applied to its replica (RouteSync). */
  get routeApplied(): string {
    return `${this.tag}:route-applied`;
  }
  /** Pub/sub channel: `node\nentry id`, sent when a node applied more of the route log. */
  get routeAppliedChannel(): string {
    return `${this.tag}:route-applied`;
  }
  /**
   * ZSET: the sequence numbers of a writer's (node run's) retained writes applied lately, so its
   * re-sends are ignored; kept a day past its last write, removed when the node leaves.
   */
  retainedSeq(writer: string): string {
    return `${this.tag}:retained-seq:${writer}`;
  }
  /** HASH topic -> encoded retained message: the truth for retained messages. */
  get retained(): string {
    return `${this.tag}:retained`;
  }
  /** ZSET topic -> expiry time (ms, Redis' clock) of retained messages with an expiry, for the sweep. */
  get retainedExpiry(): string {
    return `${this.tag}:retained-expiry`;
  }
  /** STREAM of retained changes: op s (set, with the message) or d (delete). */
  get retainedLog(): string {
    return `${this.tag}:retained-log`;
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
  /** HASH `clientId\0filter` -> subscription options: plain subscriptions of persistent sessions. */
  get sessionRoutes(): string {
    return `${this.tag}:session-routes`;
  }
  /**
   * HASH of one session's filters in sessionRoutes -> the epoch that routed them, and '' -> the
   * floor below which no connection may route (the fence of route writes); kept a day after a drop.
   */
  clientRoutes(clientId: string): string {
    return `${this.tag}:client-routes:${clientId}`;
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
