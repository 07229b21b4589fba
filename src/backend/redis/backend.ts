/**
 * The Redis cluster backend of one node: membership (heartbeats, liveness, reaping dead nodes under a
 * lock), the route table (Lua writes + a replica kept current from the route log), the bus (inbox
 * stream and pub/sub) and retained messages. See docs/cluster.md for the key schema and the reasons.
 */

import { randomBytes } from 'node:crypto';
import type { Message } from '../../broker/message.js';
import type { Clock, TimerHandle } from '../../clock.js';
import type { Instruments } from '../../observability/instruments.js';
import type { Logger } from '../../observability/logger.js';
import { filterKey, RouteReplica } from '../route-replica.js';
import type {
  Claim,
  ClusterBackend,
  ClusterHandlers,
  ClusterNodeInfo,
  RouteTable,
  StoredWill,
} from '../types.js';
import { RedisBus, type ReplicaAcks } from './bus.js';
import { parseRedisUrl, type RedisClient, type RedisTarget } from './connect.js';
import { fieldsOf, handOverInbox, InboxReader } from './inbox.js';
import { observeCommands } from './instrument.js';
import { Keys } from './keys.js';
import { RedisRetainedStore } from './retained-store.js';
import { NODE_REMOVE, OWNER_CLAIM, ROUTE_ADD, ROUTE_DEL, WILL_SET, WILL_TAKE } from './scripts.js';
import { decodeMessage, encodeMessage } from './serialize.js';
import { decodeStoredSession, RedisSessionStore } from './session-store.js';

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
}

type StreamReply = [key: Buffer, entries: [id: Buffer, fields: Buffer[]][]][] | null;

export class RedisClusterBackend implements ClusterBackend {
  readonly nodeId: string;
  readonly routes: RouteTable;
  readonly bus: RedisBus;
  readonly retained: RedisRetainedStore;
  readonly replica: RouteReplica;
  readonly sessions: RedisSessionStore;

  private readonly target: RedisTarget;
  private readonly keys: Keys;
  private readonly cmd: RedisClient;
  private readonly logReader: RedisClient;
  private readonly inboxReader: RedisClient;
  private readonly sub: RedisClient;
  private readonly heartbeatMs: number;
  private readonly livenessMs: number;
  private readonly logMaxLen: number;
  private readonly inboxMaxLen: number;
  private readonly log: Logger;
  private readonly instruments: Instruments | undefined;
  private readonly clock: Clock;
  /** This node's own routes (filter keys), re-announced after Redis comes back. */
  private readonly own = new Set<string>();
  private handlers: ClusterHandlers | undefined;
  private timer: TimerHandle | undefined;
  private running = false;
  /** Set once start() finished: connection events before that belong to the start itself. */
  private joined = false;
  private loaded = false;
  private connected = false;
  /**
   * No reaping before this time. After Redis comes back every live node needs a moment to heartbeat
   * again: after a Sentinel failover the new master holds heartbeats as old as the failover, and a
   * node reaped while alive loses its inbox (messages already acknowledged to publishers).
   */
  private reapAfter = 0;
  private lastReady = false;
  private routeLogId = '0-0';
  /** The Redis data set this node joined (Keys.dataSet); another one after a reconnect: data lost. */
  private dataSet = '';
  private retainedLogId = '0-0';
  private readonly inbox: InboxReader;
  private generation = 0;
  /** Takeover requests this node sent and waits an answer for: `clientId\nepoch` -> resolve. */
  private readonly releaseWaiters = new Map<string, () => void>();
  /** This process's run and the claims it made: a claim ioredis re-sends is recognised by them. */
  private readonly run = randomBytes(6).toString('hex');
  private claims = 0;
  /** Pub/sub channels this node listens to, and their handlers (listen()). */
  private readonly channels = new Map<string, (msg: Buffer) => void>();
  /** Wills of dead nodes this node is waiting to publish (after their delay). */
  private readonly reapedWills = new Set<TimerHandle>();

  constructor(o: RedisBackendOptions) {
    this.nodeId = o.nodeId;
    this.clock = o.clock;
    this.log = o.logger;
    this.heartbeatMs = o.heartbeatMs ?? 1000;
    this.livenessMs = o.livenessTimeoutMs ?? 5000;
    this.logMaxLen = o.logMaxLen ?? 100_000;
    this.inboxMaxLen = o.inboxMaxLen ?? 100_000;
    this.keys = new Keys(o.prefix);
    this.target = parseRedisUrl(o.url);
    this.cmd = this.target.create();
    this.logReader = this.target.create();
    this.inboxReader = this.target.create();
    this.sub = this.target.create();
    this.replica = new RouteReplica(this.nodeId);
    this.retained = new RedisRetainedStore(this.cmd, this.keys, this.clock, this.logMaxLen);
    this.bus = new RedisBus(
      this.cmd,
      this.keys,
      this.target.kind === 'cluster',
      this.inboxMaxLen,
      o.replicaAcks,
      this.nodeId,
    );
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
      sendControl: (node, msg) => this.sendControl(node, msg),
      replicated: o.replicaAcks === undefined ? undefined : (key, cb) => this.bus.awaitReplicas(key, [cb]),
    });
    this.instruments = o.instruments;
    this.inbox = new InboxReader({
      reader: this.inboxReader,
      cmd: this.cmd,
      key: this.keys.inbox(this.nodeId),
      clock: this.clock,
      logger: this.log,
      instruments: o.instruments,
      deliver: (envelope) => this.handlers?.deliver(envelope),
    });
    if (o.instruments !== undefined) {
      observeCommands(this.cmd, o.instruments.redisCommand);
      this.bus.onBatch = o.instruments.clusterBatch;
    }
    this.routes = {
      add: (filter, group) => this.addRoute(filterKey(filter, group)),
      remove: (filter, group) => this.removeRoute(filterKey(filter, group)),
      matchNodes: (topic, visit) => this.replica.matchNodes(topic, visit),
      matchShared: (topic, visit) => this.replica.matchShared(topic, visit),
    };
    for (const c of [this.cmd, this.logReader, this.inboxReader, this.sub]) c.on('error', () => undefined);
  }

  get ready(): boolean {
    return this.loaded && this.connected;
  }

  get busStats(): { envelopes: number; batches: number } {
    return this.bus.stats;
  }

  get redisKind(): string {
    return this.target.kind;
  }

  async start(handlers: ClusterHandlers): Promise<void> {
    this.handlers = handlers;
    this.running = true;
    this.cmd.on('ready', () => this.onRedisReady());
    // Pokes come over pub/sub, which loses what is sent while its connection is down.
    this.sub.on('ready', () => {
      if (this.joined && this.running) this.handlers?.refetch();
    });
    this.cmd.on('close', () => this.onRedisLost());
    await Promise.all([
      this.cmd.connect(),
      this.logReader.connect(),
      this.inboxReader.connect(),
      this.sub.connect(),
    ]);
    // A previous process with this node id may have left routes behind.
    await this.removeNode(this.nodeId);
    this.dataSet = await this.markDataSet();
    await this.heartbeat();
    await this.listen(this.keys.inbox0(this.nodeId), (batch) => void this.inbox.deliverBatch(batch));
    await this.listen(this.keys.control(this.nodeId), (msg) => this.onControl(msg));
    await this.resync();
    this.connected = true;
    this.timer = this.clock.setInterval(() => this.tick(), this.heartbeatMs);
    void this.readLogs();
    void this.inbox.run();
    // Its wills and sessions too: reaped like a dead node's (no survivor reaps a node that came back
    // within the liveness timeout), once this node routes like the others.
    const wills = await this.reapWills(this.nodeId);
    const sessions = await this.sessions.reap(this.nodeId);
    if (wills + sessions > 0) this.log.warn({ event: 'cluster.previous_run_reaped', wills, sessions });
    this.joined = true;
    this.updateReadiness();
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
    this.timer?.cancel();
    for (const t of this.reapedWills) t.cancel();
    for (const resolve of this.releaseWaiters.values()) resolve();
    this.bus.flush();
    try {
      // The last session writes (drained clients going offline) before this node leaves.
      await withTimeout(this.sessions.settle(), 1000);
      // Sessions still marked as served here (a client whose detach failed) go offline now: no
      // reaper looks at a node that left.
      await withTimeout(this.sessions.reap(this.nodeId), 1000);
      // Bounded: with Redis away, commands would wait for it forever.
      await withTimeout(this.removeNode(this.nodeId), 1000);
      // Leave nothing behind that no reaper would remove (a stopped node is no longer in the node set).
      await Promise.all([
        this.cmd.del(this.keys.inbox(this.nodeId)),
        this.cmd.hdel(this.keys.nodeStats, this.nodeId),
      ]);
    } catch {
      // Redis is gone: survivors reap this node after the liveness timeout.
    }
    this.sessions.close();
    for (const c of [this.cmd, this.logReader, this.inboxReader, this.sub]) c.disconnect();
  }

  // ---- ownership and wills -----------------------------------------------------------------------

  async claim(clientId: string, clean: boolean, expirySeconds = 0): Promise<Claim> {
    // While Redis is away no claim can be made: refuse at once rather than let the client wait.
    if (!this.connected) throw new Error('Redis is not reachable');
    const k = this.keys;
    const persistent = !clean || expirySeconds > 0;
    if (persistent) await this.sessions.serving(clientId);
    const [previous, epoch, will, discarded, present, fields, inflight, rel] = (await withTimeout(
      evalBuffer(
        this.cmd,
        OWNER_CLAIM,
        5,
        k.owner(clientId),
        k.session(clientId),
        k.queue(clientId),
        k.inflight(clientId),
        k.awaitingRelease(clientId),
        this.nodeId,
        clean ? '1' : '0',
        String(expirySeconds),
        `${this.nodeId}/${this.run}/${++this.claims}`,
      ),
      this.livenessMs,
    )) as [Buffer | null, number, Buffer | null, number, number, Buffer[], Buffer[], Buffer[]];
    // Clean Start ended a stored session, or a new one starts where an expired one may have left
    // routes the sweep has not dropped yet: they go before CONNACK, so none outlives its session.
    if (discarded === 1 || (present === 0 && expirySeconds > 0))
      await this.sessions.dropRoutes(clientId, Number(epoch));
    const claim: Claim = {
      epoch: Number(epoch),
      previous: previous ? previous.toString() : null,
      will: will ? decodeWill(will) : null,
    };
    if (present === 1 || expirySeconds > 0)
      claim.session = decodeStoredSession(present, fields, inflight, rel);
    else if (persistent) this.sessions.notServing(clientId);
    return claim;
  }

  async requestRelease(node: string, clientId: string, epoch: number): Promise<void> {
    if (node === this.nodeId) return;
    const seen = await this.cmd.zscore(this.keys.nodes, node);
    if (seen === null || Number(seen) < this.clock.now() - this.livenessMs) return; // dead: nothing to wait for
    const key = `${clientId}\n${epoch}`;
    await new Promise<void>((resolve) => {
      // Bounded by the liveness timeout: a node that does not answer is fenced out by the epoch anyway.
      const timer = this.clock.setTimeout(() => {
        this.releaseWaiters.delete(key);
        resolve();
      }, this.livenessMs);
      this.releaseWaiters.set(key, () => {
        timer.cancel();
        this.releaseWaiters.delete(key);
        resolve();
      });
      this.sendControl(node, { t: 'kick', c: clientId, e: epoch, f: this.nodeId });
    });
  }

  storeWill(clientId: string, epoch: number, will: StoredWill): Promise<void> {
    // The reaper's index first, the will second: once the will is in Redis, a reaper can find it
    // (an index entry without a will, if this node dies in between, is skipped by the reaper).
    return this.cmd
      .sadd(this.keys.nodeWills(this.nodeId), clientId)
      .then(() =>
        this.cmd.eval(
          WILL_SET,
          1,
          this.keys.owner(clientId),
          String(epoch),
          encodeWill(will),
          String(will.delaySeconds),
        ),
      )
      .then(
        () => undefined,
        (err: Error) => {
          this.log.warn({ event: 'cluster.will_store_failed', clientId, err: err.message });
        },
      );
  }

  async takeWill(clientId: string, epoch: number): Promise<boolean> {
    const taken = await evalBuffer(this.cmd, WILL_TAKE, 1, this.keys.owner(clientId), String(epoch));
    return taken !== null;
  }

  private sendControl(node: string, msg: Record<string, unknown>): void {
    const channel = this.keys.control(node);
    const body = JSON.stringify(msg);
    const sent =
      this.target.kind === 'cluster' ? this.cmd.spublish(channel, body) : this.cmd.publish(channel, body);
    sent.catch(() => undefined);
  }

  /** The control channel: takeover requests and answers, pokes for the sessions served here. */
  private onControl(raw: Buffer): void {
    let msg: { t?: string; c?: unknown; e?: number; f?: string };
    try {
      msg = JSON.parse(raw.toString());
    } catch {
      return;
    }
    if (
      msg.t === 'kick' &&
      typeof msg.c === 'string' &&
      typeof msg.e === 'number' &&
      typeof msg.f === 'string'
    ) {
      this.handlers?.release(msg.c, msg.e);
      this.sendControl(msg.f, { t: 'released', c: msg.c, e: msg.e });
    } else if (msg.t === 'poke' && Array.isArray(msg.c)) {
      this.handlers?.poke(msg.c.filter((c): c is string => typeof c === 'string'));
    } else if (msg.t === 'released') {
      this.releaseWaiters.get(`${msg.c}\n${msg.e}`)?.();
    }
  }

  /**
   * Subscribes the pub/sub connection to `channel` (sharded on Redis Cluster). One listener on the
   * connection hands each message to its channel's handler, so channels never see each other's.
   */
  private async listen(channel: string, handler: (msg: Buffer) => void): Promise<void> {
    if (this.channels.size === 0) {
      const dispatch = (ch: Buffer, msg: Buffer) => this.channels.get(ch.toString())?.(msg);
      this.sub.on(this.target.kind === 'cluster' ? 'smessageBuffer' : 'messageBuffer', dispatch);
    }
    this.channels.set(channel, handler);
    if (this.target.kind === 'cluster') await this.sub.ssubscribe(channel);
    else await this.sub.subscribe(channel);
  }

  /** Schedules the wills a dead node left: each published after its delay, if still there then. */
  private async reapWills(node: string): Promise<number> {
    const ids = await this.cmd.smembers(this.keys.nodeWills(node));
    let n = 0;
    for (const clientId of ids) {
      const [owner, epoch, will, delay] = await this.cmd.hmgetBuffer(
        this.keys.owner(clientId),
        'node',
        'epoch',
        'will',
        'wdelay',
      );
      if (owner?.toString() !== node || epoch === null || will === null) continue;
      n++;
      const stored = decodeWill(will);
      const timer = this.clock.setTimeout(
        () => {
          this.reapedWills.delete(timer);
          this.takeWill(clientId, Number(epoch.toString()))
            .then((taken) => {
              if (taken) this.handlers?.publishWill(stored);
            })
            .catch(() => undefined);
        },
        Number(delay?.toString() ?? '0') * 1000,
      );
      this.reapedWills.add(timer);
    }
    await this.cmd.del(this.keys.nodeWills(node));
    return n;
  }

  async shareStats(mine: Record<string, number>): Promise<Record<string, Record<string, number>>> {
    await this.cmd.hset(this.keys.nodeStats, this.nodeId, JSON.stringify(mine));
    const [live, raw] = await Promise.all([this.liveNodes(), this.cmd.hgetall(this.keys.nodeStats)]);
    const out: Record<string, Record<string, number>> = {};
    for (const { nodeId } of live) if (raw[nodeId] !== undefined) out[nodeId] = JSON.parse(raw[nodeId]);
    return out;
  }

  async liveNodes(): Promise<ClusterNodeInfo[]> {
    const now = this.clock.now();
    const raw = await this.cmd.zrangebyscore(this.keys.nodes, now - this.livenessMs, '+inf', 'WITHSCORES');
    const out: ClusterNodeInfo[] = [];
    for (let i = 0; i < raw.length; i += 2) out.push({ nodeId: raw[i], lastSeenMs: Number(raw[i + 1]) });
    return out;
  }

  // ---- routes ------------------------------------------------------------------------------------

  private addRoute(fkey: string): void {
    this.own.add(fkey);
    this.runRoute(ROUTE_ADD, fkey);
  }

  private removeRoute(fkey: string): void {
    this.own.delete(fkey);
    this.runRoute(ROUTE_DEL, fkey);
  }

  private runRoute(script: string, fkey: string): void {
    const k = this.keys;
    this.cmd
      .eval(script, 3, k.routes, k.nodeRoutes(this.nodeId), k.routeLog, this.nodeId, fkey, this.logMaxLen)
      .catch((err: Error) => this.log.warn({ event: 'cluster.route_write_failed', err: err.message }));
  }

  /** Removes a node's routes; `deadline`: only if its last heartbeat is older (a reaper's check). */
  private async removeNode(node: string, deadline = '+inf'): Promise<number> {
    const k = this.keys;
    const n = (await this.cmd.eval(
      NODE_REMOVE,
      4,
      k.routes,
      k.nodeRoutes(node),
      k.routeLog,
      k.nodes,
      node,
      this.logMaxLen,
      deadline,
    )) as number;
    return n;
  }

  /** Snapshot of routes and retained messages, then this node's own routes announced again. */
  private async resync(): Promise<void> {
    const gen = ++this.generation;
    const k = this.keys;
    const [routeTail, retainedTail] = await Promise.all([
      this.cmd.xrevrange(k.routeLog, '+', '-', 'COUNT', 1),
      this.cmd.xrevrange(k.retainedLog, '+', '-', 'COUNT', 1),
    ]);
    // Guarantee 3 (no QoS >= 1 loss on a Redis blip): the current replica keeps routing publishes
    // until the snapshot is complete and is replaced in one step. Clearing it before the awaits let
    // publishes arriving meanwhile find no remote route: acknowledged (0x10), sent nowhere, lost.
    const fields: string[] = [];
    let cursor = '0';
    do {
      const [next, items] = await this.cmd.hscan(k.routes, cursor, 'COUNT', 1000);
      cursor = next;
      for (let i = 0; i < items.length; i += 2) fields.push(items[i]);
    } while (cursor !== '0');
    const sessionRoutes: string[] = [];
    cursor = '0';
    do {
      const [next, items] = await this.cmd.hscan(k.sessionRoutes, cursor, 'COUNT', 1000);
      cursor = next;
      sessionRoutes.push(...items);
    } while (cursor !== '0');
    await this.retained.loadSnapshot();
    if (gen !== this.generation) return;
    this.replica.clear();
    for (const field of fields) {
      const nl = field.indexOf('\n');
      if (nl > 0) this.replica.apply('a', field.slice(0, nl), field.slice(nl + 1));
    }
    for (let i = 0; i + 1 < sessionRoutes.length; i += 2) {
      // `clientId\0filter`: NUL is the one character no MQTT string may hold [MQTT-1.5.4-2].
      const field = sessionRoutes[i];
      const nul = field.indexOf('\0');
      if (nul > 0) this.replica.apply('s', field.slice(0, nul), field.slice(nul + 1), sessionRoutes[i + 1]);
    }
    this.routeLogId = routeTail[0]?.[0] ?? '0-0';
    this.retainedLogId = retainedTail[0]?.[0] ?? '0-0';
    // Senders never create an inbox (NOMKSTREAM): this node makes its own before it routes (again,
    // after a reaper or a Redis without persistence removed it).
    if (this.running) await this.cmd.xadd(k.inbox(this.nodeId), '*', 'o', this.run);
    for (const fkey of this.own) this.runRoute(ROUTE_ADD, fkey);
    this.loaded = true;
  }

  // ---- loops -------------------------------------------------------------------------------------

  private async readLogs(): Promise<void> {
    const k = this.keys;
    while (this.running) {
      const gen = this.generation;
      let reply: StreamReply;
      try {
        reply = (await this.logReader.xreadBuffer(
          'COUNT',
          1000,
          'BLOCK',
          1000,
          'STREAMS',
          k.routeLog,
          k.retainedLog,
          this.routeLogId,
          this.retainedLogId,
        )) as StreamReply;
      } catch {
        if (!this.running) return;
        await this.pause();
        continue;
      }
      if (reply === null || gen !== this.generation) continue;
      for (const [key, entries] of reply) {
        const isRoutes = key.toString() === k.routeLog;
        for (const [id, fields] of entries) {
          const f = fieldsOf(fields);
          if (isRoutes) {
            this.replica.apply(
              f.op?.toString() ?? '',
              f.n?.toString() ?? '',
              f.f?.toString() ?? '',
              f.o?.toString(),
            );
            this.routeLogId = id.toString();
          } else {
            this.retained.applyLog(f.op?.toString() ?? '', f.t?.toString() ?? '', f.m ?? EMPTY);
            this.retainedLogId = id.toString();
          }
        }
      }
    }
  }

  private pause(): Promise<void> {
    return new Promise((resolve) => this.clock.setTimeout(resolve, 200));
  }

  // ---- membership --------------------------------------------------------------------------------

  /**
   * Records this node as alive. Once joined, finding itself gone from the node set means the others
   * reaped it (it was paused, or cut from Redis, past the liveness timeout): its routes were dropped,
   * its sessions orphaned (its writes to them are refused), its clients' wills published. Its clients
   * must claim again, and its routes are announced again. Resolves true in that case.
   */
  private async heartbeat(): Promise<boolean> {
    const added = await this.cmd.zadd(this.keys.nodes, this.clock.now(), this.nodeId);
    if (Number(added) !== 1 || !this.joined) return false;
    this.log.warn({ event: 'cluster.was_reaped', nodeId: this.nodeId });
    this.handlers?.stateLost();
    return true;
  }

  private tick(): void {
    if (!this.connected) return;
    this.heartbeat()
      .then((reaped) => (reaped ? this.resync() : undefined))
      .catch((err: Error) => this.log.warn({ event: 'cluster.heartbeat_failed', err: err.message }));
    this.sessions
      .sweep()
      .catch((err: Error) => this.log.warn({ event: 'cluster.session_sweep_failed', err: err.message }));
    this.sessions
      .checkServed((id) => this.handlers?.serves(id) ?? false)
      .catch((err: Error) => this.log.warn({ event: 'cluster.session_check_failed', err: err.message }));
    this.reapDead().catch((err: Error) => this.log.warn({ event: 'cluster.reap_failed', err: err.message }));
  }

  /** A node silent past the liveness timeout is dead: one survivor (holding a lock) removes its routes. */
  private async reapDead(): Promise<void> {
    if (this.clock.now() < this.reapAfter) return;
    const deadline = this.clock.now() - this.livenessMs;
    const dead = await this.cmd.zrangebyscore(this.keys.nodes, '-inf', deadline);
    for (const node of dead) {
      if (node === this.nodeId) continue;
      // Redis went away meanwhile: the list may come from before a failover; let the others heartbeat.
      if (!this.connected || this.clock.now() < this.reapAfter) return;
      const locked = await this.cmd.set(this.keys.reaper(node), this.nodeId, 'PX', this.livenessMs, 'NX');
      if (locked !== 'OK') continue;
      if (!this.connected || this.clock.now() < this.reapAfter) return;
      // Routes first, checked against the heartbeat inside the script: a node that came back is kept.
      const routes = await this.removeNode(node, String(deadline));
      if (routes < 0) continue;
      // Wills before sessions: orphaning a session takes ownership from the dead node's connection.
      const wills = await this.reapWills(node);
      const sessions = await this.sessions.reap(node);
      // Shares it had not processed go to live members of their groups before its inbox goes.
      await handOverInbox(
        this.cmd,
        this.keys.inbox(node),
        (e) => this.handlers?.handOver?.(e, node) ?? Promise.resolve(),
      );
      await this.cmd.del(this.keys.inbox(node));
      await this.cmd.hdel(this.keys.nodeStats, node);
      this.log.warn({ event: 'cluster.node_reaped', node, routes, wills, sessions, by: this.nodeId });
    }
  }

  // ---- Redis connectivity ------------------------------------------------------------------------

  private onRedisLost(): void {
    if (!this.joined || !this.running || !this.connected) return;
    this.connected = false;
    this.log.warn({ event: 'cluster.redis_lost', nodeId: this.nodeId });
    this.updateReadiness();
  }

  /** The id of the Redis data set, made by the first node that finds none. */
  private async markDataSet(): Promise<string> {
    await this.cmd.set(this.keys.dataSet, randomBytes(8).toString('hex'), 'NX');
    return (await this.cmd.get(this.keys.dataSet)) ?? '';
  }

  /** After a reconnect: did Redis keep its data? If not, the node's clients must claim again. */
  private async checkDataSet(): Promise<void> {
    const now = await this.markDataSet();
    if (now === this.dataSet) return;
    this.dataSet = now;
    this.log.error({ event: 'cluster.redis_data_lost', nodeId: this.nodeId });
    this.handlers?.stateLost();
  }

  private onRedisReady(): void {
    if (!this.joined || !this.running || this.connected) return;
    this.log.info({ event: 'cluster.redis_back', nodeId: this.nodeId });
    this.checkDataSet()
      .then(() => this.heartbeat())
      .then(() => this.resync())
      .then(() => {
        this.connected = true;
        this.reapAfter = this.clock.now() + this.livenessMs;
        this.updateReadiness();
      })
      .catch((err: Error) => this.log.warn({ event: 'cluster.resync_failed', err: err.message }));
  }

  private updateReadiness(): void {
    const ready = this.ready;
    if (ready === this.lastReady) return;
    this.lastReady = ready;
    this.handlers?.readinessChanged(ready);
  }
}

const EMPTY = Buffer.alloc(0);

/**
 * EVAL with Buffer replies. ioredis has `evalBuffer` at run time but not in its typings, and its
 * `callBuffer('EVAL', ...)` drops the command name.
 */
function evalBuffer(
  client: RedisClient,
  script: string,
  numKeys: number,
  ...args: (string | Buffer)[]
): Promise<unknown> {
  return (client as unknown as { evalBuffer(...a: unknown[]): Promise<unknown> }).evalBuffer(
    script,
    numKeys,
    ...args,
  );
}

/** A will in Redis: the message with its expiry carried as Message Expiry Interval. */
function encodeWill(will: StoredWill): Buffer {
  const m: Message = { ...will.message };
  if (will.expirySeconds !== undefined)
    m.properties = { ...m.properties, messageExpiryInterval: will.expirySeconds };
  return encodeMessage(m);
}

function decodeWill(buf: Buffer): StoredWill {
  const message = decodeMessage(Buffer.from(buf));
  const expirySeconds = message.properties?.messageExpiryInterval;
  if (message.properties !== undefined) {
    const { messageExpiryInterval: _drop, ...rest } = message.properties;
    message.properties = Object.keys(rest).length > 0 ? rest : undefined;
  }
  return { message, delaySeconds: 0, expirySeconds };
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
    t.unref();
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(t);
        reject(e);
      },
    );
  });
}
