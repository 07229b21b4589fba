/**
 * The Redis cluster backend of one node (ClusterBackend), composed of its parts: this file builds
 * them, wires them to each other and to the broker's handlers, and starts and stops them. The parts:
 *   membership.ts      the heartbeat in the node set, liveness on Redis' clock, reaping dead nodes
 *   ownership.ts       claims of client ids (fencing epoch) and takeover requests
 *   control.ts         each node's control channel: takeover requests and answers, pokes
 *   routes.ts          the route table: this node's routes written, confirmed everywhere (route-sync.ts)
 *   replicas.ts        the route and retained replicas: snapshot, logs, resync on a gap
 *   bus.ts, inbox.ts   envelopes to other nodes (batches, flow control); this node's inbox read and delivered
 *   wills.ts           wills stored and taken, the due wills of dead nodes, durable kicks
 *   session-store.ts   persistent sessions
 *   retained-store.ts  retained messages, written to Redis and read from this node's replica
 *   stats.ts           counters shared for the cluster-wide $SYS topics
 *   readiness.ts       Redis outages (lost, back, data lost) and readiness
 *   tick.ts            what runs every heartbeat interval
 *   pubsub.ts          the subscriptions of the pub/sub connection
 * See docs/cluster.md for the key schema and the reasons.
 */

import { randomBytes } from 'node:crypto';
import { Cluster } from 'ioredis';
import type { Clock } from '../../clock.js';
import type { Instruments } from '../../observability/instruments.js';
import type { Logger } from '../../observability/logger.js';
import { RouteReplica } from '../route-replica.js';
import type { Claim, ClusterBackend, ClusterHandlers, ClusterNodeInfo, StoredWill } from '../types.js';
import { RedisBanStore } from './bans.js';
import { RedisBus, type ReplicaAcks } from './bus.js';
import { parseRedisUrl, type RedisClient, type RedisTarget } from './connect.js';
import { ControlChannel } from './control.js';
import { RedisDelayedStore } from './delayed.js';
import { handOverInbox, InboxReader } from './inbox.js';
import { observeCommands } from './instrument.js';
import { Keys, MAX_PARTITIONS } from './keys.js';
import { RedisMembership } from './membership.js';
import { RedisOwnership } from './ownership.js';
import { PubSubListener } from './pubsub.js';
import { Readiness } from './readiness.js';
import { withTimeout } from './redis-util.js';
import { Replicas } from './replicas.js';
import { RedisRetainedStore } from './retained-store.js';
import { RouteSync } from './route-sync.js';
import { RedisRoutes } from './routes.js';
import { RedisSessionStore } from './session-store.js';
import { RedisStats } from './stats.js';
import { HeartbeatTick } from './tick.js';
import { decodeWill, fenceAdmits, RedisWills } from './wills.js';

export interface RedisBackendOptions {
  url: string;
  nodeId: string;
  clock: Clock;
  logger: Logger;
  heartbeatMs?: number;
  livenessTimeoutMs?: number;
  prefix?: string;
  /** Approximate length the route and retained logs are trimmed to. */
  logMaxLen?: number;
  /** Approximate length an inbox stream is trimmed to (batches). */
  inboxMaxLen?: number;
  /** Messages a persistent session's queue holds at most. */
  maxQueued?: number;
  /** Acknowledge QoS >= 1 batches only once Redis replicas hold them (WAIT); off when absent. */
  replicaAcks?: ReplicaAcks;
  /** Redis command latency, batch sizes and inbox lag go here (metrics.ts). */
  instruments?: Instruments;
  /** cluster.partitions: 0 or absent = the data set's own (a new one: 6 on Redis Cluster, else 1). */
  partitions?: number;
}

/** Partitions of a new data set on Redis Cluster (cluster.partitions 0): 2 per master of 3. */
const CLUSTER_PARTITIONS = 6;

export class RedisClusterBackend implements ClusterBackend {
  readonly nodeId: string;
  readonly routes: RedisRoutes;
  readonly bus: RedisBus;
  readonly retained: RedisRetainedStore;
  readonly replica: RouteReplica;
  readonly sessions: RedisSessionStore;
  readonly bans: RedisBanStore;
  readonly delayed: RedisDelayedStore;

  private readonly target: RedisTarget;
  private readonly keys: Keys;
  // Connections: commands; the blocking reads of the logs (one per partition, made at start) and
  // of the inbox; pub/sub.
  private readonly cmd: RedisClient;
  private logReaders: RedisClient[] = [];
  private readonly partitions: number;
  private readonly inboxReader: RedisClient;
  private readonly sub: RedisClient;
  private readonly heartbeatMs: number;
  private readonly livenessMs: number;
  private readonly logMaxLen: number;
  private readonly inboxMaxLen: number;
  private readonly log: Logger;
  private readonly clock: Clock;
  private handlers: ClusterHandlers | undefined;
  private running = false;
  /** Set once start() finished: connection events before that belong to the start itself. */
  private joined = false;
  /** This process's run: a claim ioredis re-sends is recognised by it. */
  private readonly run = randomBytes(6).toString('hex');
  // The parts.
  private readonly membership: RedisMembership;
  private readonly ownership: RedisOwnership;
  private readonly control: ControlChannel;
  private readonly replicas: Replicas;
  private readonly sync: RouteSync;
  private readonly inbox: InboxReader;
  private readonly wills: RedisWills;
  private readonly stats: RedisStats;
  private readonly readiness: Readiness;
  private readonly tick: HeartbeatTick;
  private readonly pubsub: PubSubListener;

  constructor(o: RedisBackendOptions) {
    this.nodeId = o.nodeId;
    this.clock = o.clock;
    this.log = o.logger;
    this.heartbeatMs = o.heartbeatMs ?? 1000;
    this.livenessMs = o.livenessTimeoutMs ?? 5000;
    this.logMaxLen = o.logMaxLen ?? 100_000;
    this.inboxMaxLen = o.inboxMaxLen ?? 100_000;
    this.keys = new Keys(o.prefix);
    this.partitions = o.partitions ?? 0;
    this.target = parseRedisUrl(o.url);
    this.cmd = this.target.create();
    this.inboxReader = this.target.create();
    this.sub = this.target.create();
    this.replica = new RouteReplica(this.nodeId);
    this.pubsub = new PubSubListener(this.sub, this.target.kind === 'cluster');
    this.delayed = new RedisDelayedStore(this.cmd, this.keys);
    this.bans = new RedisBanStore({
      cmd: this.cmd,
      keys: this.keys,
      clock: this.clock,
      logger: this.log,
      sharded: this.target.kind === 'cluster',
      pubsub: this.pubsub,
    });
    this.control = new ControlChannel({
      cmd: this.cmd,
      keys: this.keys,
      nodeId: this.nodeId,
      sharded: this.target.kind === 'cluster',
      release: (clientId, epoch) => this.handlers?.release(clientId, epoch),
      released: (clientId, epoch) => this.ownership.released(clientId, epoch),
      poke: (clientIds) => this.handlers?.poke(clientIds),
      clock: this.clock,
    });
    this.readiness = new Readiness({
      cmd: this.cmd,
      keys: this.keys,
      nodeId: this.nodeId,
      logger: this.log,
      active: () => this.joined && this.running,
      heartbeat: () => this.tick.heartbeat(),
      resync: () => this.replicas.resync(),
      holdReaping: () => this.membership.holdReaping(),
      stateLost: () => this.handlers?.stateLost(),
      readinessChanged: (ready) => this.handlers?.readinessChanged(ready),
    });
    this.retained = new RedisRetainedStore(
      this.cmd,
      this.keys,
      this.clock,
      this.logMaxLen,
      `${this.nodeId}/${this.run}`,
    );
    this.bus = new RedisBus(
      this.cmd,
      this.keys,
      this.target.kind === 'cluster',
      this.inboxMaxLen,
      o.replicaAcks,
      this.nodeId,
    );
    // cluster.replicaAcks: what waits for Redis replicas to hold its writes (one WAIT per slot at a time).
    const replicated = o.replicaAcks === undefined ? undefined : (key: string) => this.bus.replicated(key);
    this.sessions = new RedisSessionStore({
      redis: this.cmd,
      keys: this.keys,
      nodeId: this.nodeId,
      replica: this.replica,
      clock: this.clock,
      logger: this.log,
      maxQueued: o.maxQueued ?? 1000,
      logMaxLen: this.logMaxLen,
      handlers: () => this.handlers,
      sendControl: (node, msg) => this.control.send(node, msg),
      replicated,
      routeApplied: (p, id) => this.sync.confirmed(p, id),
    });
    this.membership = new RedisMembership({
      cmd: this.cmd,
      keys: this.keys,
      nodeId: this.nodeId,
      clock: this.clock,
      logger: this.log,
      heartbeatMs: this.heartbeatMs,
      livenessMs: this.livenessMs,
      logMaxLen: this.logMaxLen,
      connected: () => this.readiness.connected,
      reapWills: (node, fence) => this.reapWills(node, fence),
      reapSessions: (node, fence) => this.sessions.reap(node, fence),
      handOver: (node) =>
        handOverInbox(
          this.cmd,
          this.keys.inbox(node),
          (e) => this.handlers?.handOver?.(e, node) ?? Promise.resolve(),
        ),
    });
    this.wills = new RedisWills({
      cmd: this.cmd,
      keys: this.keys,
      nodeId: this.nodeId,
      clock: this.clock,
      logger: this.log,
      replicated,
      publish: (will) => this.handlers?.publishWill(will),
      release: (clientId, epoch) => this.handlers?.release(clientId, epoch),
    });
    this.sync = new RouteSync({
      cmd: this.cmd,
      keys: this.keys,
      nodeId: this.nodeId,
      clock: this.clock,
      logger: this.log,
      livenessMs: this.livenessMs,
      sharded: this.target.kind === 'cluster',
      liveNodes: () => this.liveNodes(),
    });
    this.ownership = new RedisOwnership({
      cmd: this.cmd,
      keys: this.keys,
      nodeId: this.nodeId,
      clock: this.clock,
      livenessMs: this.livenessMs,
      sessions: this.sessions,
      run: this.run,
      incarnation: () => this.membership.incarnation,
      connected: () => this.readiness.connected,
      mayAnswer: (node) => this.membership.mayAnswer(node),
      sendControl: (node, msg) => this.control.send(node, msg),
      kick: (node, clientId, epoch) => this.wills.kick(node, clientId, epoch, 10 * this.livenessMs),
      lateWill: (will) => this.handlers?.publishWill(will),
      replicated,
      decodeWill,
    });
    this.stats = new RedisStats({
      cmd: this.cmd,
      keys: this.keys,
      nodeId: this.nodeId,
      liveNodes: () => this.liveNodes(),
    });
    this.inbox = new InboxReader({
      reader: this.inboxReader,
      cmd: this.cmd,
      key: this.keys.inbox(this.nodeId),
      clock: this.clock,
      logger: this.log,
      instruments: o.instruments,
      deliver: (envelope) => this.handlers?.deliver(envelope),
    });
    this.replicas = new Replicas({
      readers: () => this.logReaders,
      cmd: this.cmd,
      keys: this.keys,
      clock: this.clock,
      logger: this.log,
      logMaxLen: this.logMaxLen,
      replica: this.replica,
      retained: this.retained,
      appliedUpTo: (p, id) => this.sync.appliedUpTo(p, id),
      running: () => this.running,
      snapshotApplied: async () => {
        if (this.running) await this.inbox.create(this.run);
        this.routes.announce();
        this.readiness.loaded = true;
      },
    });
    if (o.instruments !== undefined) {
      observeCommands(this.cmd, o.instruments.redisCommand);
      this.bus.onBatch = o.instruments.clusterBatch;
    }
    this.routes = new RedisRoutes({
      cmd: this.cmd,
      keys: this.keys,
      nodeId: this.nodeId,
      clock: this.clock,
      logger: this.log,
      livenessMs: this.livenessMs,
      logMaxLen: this.logMaxLen,
      replica: this.replica,
      incarnation: () => this.membership.incarnation,
      confirmed: (p, id) => this.sync.confirmed(p, id),
      connected: () => this.readiness.connected,
      running: () => this.running,
    });
    this.tick = new HeartbeatTick({
      clock: this.clock,
      logger: this.log,
      heartbeatMs: this.heartbeatMs,
      membership: this.membership,
      sessions: this.sessions,
      retained: this.retained,
      wills: this.wills,
      connected: () => this.readiness.connected,
      joined: () => this.joined,
      resync: () => this.replicas.resync(),
      stateLost: () => this.handlers?.stateLost(),
      serves: (clientId) => this.handlers?.serves(clientId) ?? false,
    });
    for (const c of [this.cmd, this.inboxReader, this.sub]) c.on('error', () => undefined);
  }

  get ready(): boolean {
    return this.readiness.ready;
  }

  get busStats(): { envelopes: number; batches: number } {
    return this.bus.stats;
  }

  /** The node serving `clientId` now, or undefined (offline, or no such client). */
  async ownerOf(clientId: string): Promise<string | undefined> {
    const node = await this.cmd.hget(this.keys.owner(clientId), 'node');
    return node === null || node === '' ? undefined : node;
  }

  /** Asks another node to serve an admin request (its answer, or an error after a timeout). */
  adminCall(node: string, request: unknown): Promise<unknown> {
    return this.control.call(node, request);
  }

  /** What serves the admin requests other nodes send here. */
  serveAdmin(serve: (request: unknown) => Promise<unknown>): void {
    this.control.serve = serve;
  }

  /** The other nodes with a route matching `topic`, plain or shared (this one's subscribers are local). */
  nodesMatching(topic: string): string[] {
    const out = new Set<string>();
    this.replica.matchNodes(topic, (n) => out.add(n));
    this.replica.matchShared(topic, (_group, nodes) => {
      for (const n of nodes) out.add(n);
    });
    return [...out];
  }

  get routeStats(): { routes: number; sessionRoutes: number } {
    return { routes: this.replica.size, sessionRoutes: this.replica.sessionRoutes };
  }

  /**
   * Redis' used_memory (summed over the masters on Redis Cluster: what the data set takes, Shoal's
   * keys and anything else sharing that Redis) and the persistent sessions offline (the expiry
   * index: one entry per offline session with an expiry).
   */
  async redisStats(): Promise<{ usedMemoryBytes: number; offlineSessions: number }> {
    const masters = this.cmd instanceof Cluster ? this.cmd.nodes('master') : [this.cmd];
    const infos = await Promise.all(masters.map((m) => m.info('memory')));
    const usedMemoryBytes = infos.reduce(
      (sum, info) => sum + Number(/^used_memory:(\d+)/m.exec(info)?.[1] ?? 0),
      0,
    );
    const offlineSessions = await this.cmd.zcard(this.keys.sessionExpiry);
    return { usedMemoryBytes, offlineSessions };
  }

  async start(handlers: ClusterHandlers): Promise<void> {
    this.handlers = handlers;
    this.running = true;
    this.cmd.on('ready', () => this.readiness.back());
    // Pokes come over pub/sub, which loses what is sent while its connection is down.
    this.sub.on('ready', () => {
      if (this.joined && this.running) this.handlers?.refetch();
    });
    this.cmd.on('close', () => this.readiness.lost());
    await Promise.all([this.cmd.connect(), this.inboxReader.connect(), this.sub.connect()]);
    try {
      await this.adoptLayout();
    } catch (err) {
      // Refused before it changed anything: it leaves nothing behind (no leave, no reaping).
      this.running = false;
      for (const c of [this.cmd, this.inboxReader, this.sub]) c.disconnect();
      throw err;
    }
    this.logReaders = this.keys.allPartitions().map(() => this.target.create());
    for (const c of this.logReaders) c.on('error', () => undefined);
    await Promise.all(this.logReaders.map((c) => c.connect()));
    // A previous process with this node id may have left routes behind.
    await this.membership.removeNode(this.nodeId);
    await this.readiness.joinDataSet();
    await this.tick.heartbeat();
    await this.pubsub.listen(this.keys.inbox0(this.nodeId), (batch) => void this.inbox.deliverBatch(batch));
    await this.pubsub.listen(this.control.channel, (msg) => this.control.receive(msg));
    for (const channel of this.sync.channels) await this.pubsub.listen(channel, () => this.sync.nudged());
    await this.bans.start();
    await this.replicas.resync();
    this.readiness.connected = true;
    this.tick.start();
    void this.replicas.run();
    void this.inbox.run();
    // Its wills and sessions too: reaped like a dead node's (no survivor reaps a node that came back
    // within the liveness timeout), once this node routes like the others.
    const earlier = `!${this.membership.incarnation}`;
    const wills = await this.reapWills(this.nodeId, earlier);
    const sessions = await this.sessions.reap(this.nodeId, earlier);
    if (wills + sessions > 0) this.log.warn({ event: 'cluster.previous_run_reaped', wills, sessions });
    this.joined = true;
    this.readiness.update();
    this.log.info({
      event: 'cluster.joined',
      nodeId: this.nodeId,
      redis: this.target.display,
      kind: this.target.kind,
    });
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.inbox.stop();
    this.tick.stop();
    this.bans.stop();
    this.ownership.stop();
    this.sync.stop();
    this.bus.flush();
    try {
      // The last session writes (drained clients going offline) before this node leaves.
      await withTimeout(this.sessions.settle(), 1000);
      // Sessions still marked as served here (a client whose detach failed) go offline now: no
      // reaper looks at a node that left.
      await withTimeout(this.sessions.reap(this.nodeId, `=${this.membership.incarnation}`), 1000);
      // Bounded: with Redis away, commands would wait for it forever. Leave nothing behind that no
      // reaper would remove (a stopped node is no longer in the node set).
      await withTimeout(this.membership.leave(), 1000);
      await this.stats.leave();
      await this.sync.leave();
      await this.retained.leave();
    } catch {
      // Redis is gone: survivors reap this node after the liveness timeout.
    }
    this.sessions.close();
    for (const c of [this.cmd, ...this.logReaders, this.inboxReader, this.sub]) c.disconnect();
  }

  /**
   * The data set's number of partitions (Keys), one cluster-wide fact: its first node stores it,
   * every later node adopts it. A data set from before partitions (its node set or retained hash
   * exists, no layout) has one. A node configured (cluster.partitions) otherwise refuses to start.
   */
  private async adoptLayout(): Promise<void> {
    const k = this.keys;
    if ((await this.cmd.get(k.layout)) === null) {
      const legacy = (await this.cmd.exists(k.nodeRuns, k.retained(0), k.routeLog(0))) > 0;
      const fresh =
        this.partitions > 0 ? this.partitions : this.target.kind === 'cluster' ? CLUSTER_PARTITIONS : 1;
      await this.cmd.set(k.layout, String(legacy ? 1 : fresh), 'NX');
    }
    const stored = Number(await this.cmd.get(k.layout));
    if (!Number.isInteger(stored) || stored < 1 || stored > MAX_PARTITIONS)
      throw new Error(`Redis key ${k.layout} holds no partition count (1 to ${MAX_PARTITIONS})`);
    if (this.partitions > 0 && stored !== this.partitions)
      throw new Error(
        `cluster.partitions is ${this.partitions} but this Redis data set has ${stored} partitions ` +
          `(key ${k.layout}): set cluster.partitions to ${stored} or 0, or use an empty data set`,
      );
    this.keys.setPartitions(stored);
  }

  // ---- the ClusterBackend calls, each answered by its part ---------------------------------------

  claim(clientId: string, clean: boolean, expirySeconds = 0): Promise<Claim> {
    return this.ownership.claim(clientId, clean, expirySeconds);
  }

  requestRelease(node: string, clientId: string, epoch: number): Promise<void> {
    return this.ownership.requestRelease(node, clientId, epoch);
  }

  releaseOwnership(clientId: string, epoch: number): Promise<void> {
    return this.ownership.release(clientId, epoch);
  }

  storeWill(clientId: string, epoch: number, will: StoredWill): Promise<void> {
    return this.wills.store(clientId, epoch, will);
  }

  takeWill(clientId: string, epoch: number): Promise<boolean> {
    return this.wills.take(clientId, epoch);
  }

  /**
   * Schedules the wills a dead node's run left: each published after its delay, if still there then.
   * `fence` names the run (see session-orphan.lua): a client claimed by a later run of the node keeps its
   * will and its entry in the index.
   */
  /** Puts the wills a dead node's run left (fence: see session-orphan.lua) into the due set. */
  reapWills(node: string, fence: string): Promise<number> {
    return this.wills.reap(node, (inc) => fenceAdmits(fence, inc));
  }

  shareStats(mine: Record<string, number>): Promise<Record<string, Record<string, number>>> {
    return this.stats.share(mine);
  }

  liveNodes(): Promise<ClusterNodeInfo[]> {
    return this.membership.liveNodes();
  }
}
