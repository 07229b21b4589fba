/**
 * The Redis cluster backend of one node: membership (heartbeats, liveness, reaping dead nodes under a
 * lock), the route table (Lua writes + a replica kept current from the route log), the bus (inbox
 * stream and pub/sub) and retained messages. See docs/cluster.md for the key schema and the reasons.
 */
import type { Clock, TimerHandle } from '../../clock.js';
import type { Logger } from '../../observability/logger.js';
import type { ClusterBackend, ClusterHandlers, ClusterNodeInfo, Envelope, RouteTable } from '../types.js';
import { RedisBus } from './bus.js';
import { parseRedisUrl, type RedisClient, type RedisTarget } from './connect.js';
import { filterKey, Keys } from './keys.js';
import { RedisRetainedStore } from './retained-store.js';
import { RouteReplica } from './route-replica.js';
import { NODE_REMOVE, ROUTE_ADD, ROUTE_DEL } from './scripts.js';
import { decodeBatch } from './serialize.js';

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
}

type StreamReply = [key: Buffer, entries: [id: Buffer, fields: Buffer[]][]][] | null;

export class RedisClusterBackend implements ClusterBackend {
  readonly nodeId: string;
  readonly routes: RouteTable;
  readonly bus: RedisBus;
  readonly retained: RedisRetainedStore;
  readonly replica: RouteReplica;

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
  private lastReady = false;
  private routeLogId = '0-0';
  private retainedLogId = '0-0';
  private inboxId = '$';
  private generation = 0;

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
    this.bus = new RedisBus(this.cmd, this.keys, this.target.kind === 'cluster', this.inboxMaxLen);
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
    this.cmd.on('close', () => this.onRedisLost());
    await Promise.all([
      this.cmd.connect(),
      this.logReader.connect(),
      this.inboxReader.connect(),
      this.sub.connect(),
    ]);
    // A previous process with this node id may have left routes behind.
    await this.removeNode(this.nodeId);
    await this.heartbeat();
    await this.subscribeVolatile();
    await this.resync();
    this.connected = true;
    this.timer = this.clock.setInterval(() => this.tick(), this.heartbeatMs);
    void this.readLogs();
    void this.readInbox();
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
    this.timer?.cancel();
    this.bus.flush();
    try {
      await this.removeNode(this.nodeId);
    } catch {
      // Redis is gone: survivors reap this node after the liveness timeout.
    }
    for (const c of [this.cmd, this.logReader, this.inboxReader, this.sub]) c.disconnect();
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

  private async removeNode(node: string): Promise<number> {
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
    this.replica.clear();
    let cursor = '0';
    do {
      const [next, items] = await this.cmd.hscan(k.routes, cursor, 'COUNT', 1000);
      cursor = next;
      for (let i = 0; i < items.length; i += 2) {
        const field = items[i];
        const nl = field.indexOf('\n');
        if (nl > 0) this.replica.apply('a', field.slice(0, nl), field.slice(nl + 1));
      }
    } while (cursor !== '0');
    await this.retained.loadSnapshot();
    if (gen !== this.generation) return;
    this.routeLogId = routeTail[0]?.[0] ?? '0-0';
    this.retainedLogId = retainedTail[0]?.[0] ?? '0-0';
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
            this.replica.apply(f.op?.toString() ?? '', f.n?.toString() ?? '', f.f?.toString() ?? '');
            this.routeLogId = id.toString();
          } else {
            this.retained.applyLog(f.op?.toString() ?? '', f.t?.toString() ?? '', f.m ?? EMPTY);
            this.retainedLogId = id.toString();
          }
        }
      }
    }
  }

  private async readInbox(): Promise<void> {
    const key = this.keys.inbox(this.nodeId);
    if (this.inboxId === '$') {
      const tail = await this.cmd.xrevrange(key, '+', '-', 'COUNT', 1);
      this.inboxId = tail[0]?.[0] ?? '0-0';
    }
    let lastTrim = this.clock.now();
    while (this.running) {
      let reply: StreamReply;
      try {
        reply = (await this.inboxReader.xreadBuffer(
          'COUNT',
          100,
          'BLOCK',
          1000,
          'STREAMS',
          key,
          this.inboxId,
        )) as StreamReply;
      } catch {
        if (!this.running) return;
        await this.pause();
        continue;
      }
      if (reply === null) continue;
      for (const [, entries] of reply) {
        for (const [id, fields] of entries) {
          this.inboxId = id.toString();
          const batch = fieldsOf(fields).b;
          if (batch !== undefined) this.deliverBatch(batch);
        }
      }
      const now = this.clock.now();
      if (now - lastTrim >= 1000) {
        lastTrim = now;
        // Processed entries are not needed again: trim below the last processed id.
        this.cmd.xtrim(key, 'MINID', '~', this.inboxId).catch(() => undefined);
      }
    }
  }

  private deliverBatch(batch: Buffer): void {
    let envelopes: Envelope[];
    try {
      envelopes = decodeBatch(batch);
    } catch (err) {
      this.log.error({ event: 'cluster.bad_batch', err: String(err) });
      return;
    }
    for (const e of envelopes) this.handlers?.deliver(e);
  }

  private async subscribeVolatile(): Promise<void> {
    const channel = this.keys.inbox0(this.nodeId);
    if (this.target.kind === 'cluster') {
      this.sub.on('smessageBuffer', (_ch: Buffer, msg: Buffer) => this.deliverBatch(msg));
      await this.sub.ssubscribe(channel);
    } else {
      this.sub.on('messageBuffer', (_ch: Buffer, msg: Buffer) => this.deliverBatch(msg));
      await this.sub.subscribe(channel);
    }
  }

  private pause(): Promise<void> {
    return new Promise((resolve) => this.clock.setTimeout(resolve, 200));
  }

  // ---- membership --------------------------------------------------------------------------------

  private async heartbeat(): Promise<void> {
    await this.cmd.zadd(this.keys.nodes, this.clock.now(), this.nodeId);
  }

  private tick(): void {
    if (!this.connected) return;
    this.heartbeat().catch(() => undefined);
    this.reapDead().catch((err: Error) => this.log.warn({ event: 'cluster.reap_failed', err: err.message }));
  }

  /** A node silent past the liveness timeout is dead: one survivor (holding a lock) removes its routes. */
  private async reapDead(): Promise<void> {
    const dead = await this.cmd.zrangebyscore(this.keys.nodes, '-inf', this.clock.now() - this.livenessMs);
    for (const node of dead) {
      if (node === this.nodeId) continue;
      const locked = await this.cmd.set(this.keys.reaper(node), this.nodeId, 'PX', this.livenessMs, 'NX');
      if (locked !== 'OK') continue;
      const routes = await this.removeNode(node);
      await this.cmd.del(this.keys.inbox(node));
      await this.cmd.hdel(this.keys.nodeStats, node);
      this.log.warn({ event: 'cluster.node_reaped', node, routes, by: this.nodeId });
    }
  }

  // ---- Redis connectivity ------------------------------------------------------------------------

  private onRedisLost(): void {
    if (!this.joined || !this.running || !this.connected) return;
    this.connected = false;
    this.log.warn({ event: 'cluster.redis_lost', nodeId: this.nodeId });
    this.updateReadiness();
  }

  private onRedisReady(): void {
    if (!this.joined || !this.running || this.connected) return;
    this.log.info({ event: 'cluster.redis_back', nodeId: this.nodeId });
    this.heartbeat()
      .then(() => this.resync())
      .then(() => {
        this.connected = true;
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

function fieldsOf(fields: Buffer[]): Record<string, Buffer> {
  const out: Record<string, Buffer> = {};
  for (let i = 0; i + 1 < fields.length; i += 2) out[fields[i].toString()] = fields[i + 1];
  return out;
}
