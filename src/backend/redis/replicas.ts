/**
 * The replicas on this node of what every node shares through Redis: the route table (RouteReplica)
 * and the retained messages (RedisRetainedStore). Each is loaded from a snapshot and kept current
 * by reading its logs. Each partition has a route log and a retained log, read together by one
 * blocking XREAD on a connection of the partition's own (on Redis Cluster a partition's keys are in
 * one slot, the partitions on different masters); when a log was trimmed past what this node had
 * read (a gap), everything is loaded again from a snapshot.
 * See docs/cluster.md "Route table" and "Retained messages".
 */
import type { Clock } from '../../clock.js';
import type { Logger } from '../../observability/logger.js';
import type { RouteReplica } from '../route-replica.js';
import type { RedisClient } from './connect.js';
import { fieldsOf } from './inbox.js';
import type { Keys } from './keys.js';
import { pause } from './redis-util.js';
import type { RedisRetainedStore } from './retained-store.js';
import { compareIds } from './route-sync.js';

type StreamReply = [key: Buffer, entries: [id: Buffer, fields: Buffer[]][]][] | null;

export interface ReplicasOptions {
  /** Per partition, the connection the blocking XREAD of its logs runs on (used for nothing else). */
  readers(): RedisClient[];
  /** The connection for the snapshot and everything else. */
  cmd: RedisClient;
  keys: Keys;
  clock: Clock;
  logger: Logger;
  /** Approximate length the route and retained logs are trimmed to. */
  logMaxLen: number;
  /** The route replica: cleared and filled by a snapshot, changed by the route log. */
  replica: Pick<RouteReplica, 'clear' | 'apply' | 'dropNode'>;
  /** The retained replica: its snapshot, and the bodies the retained log refers to (op h). */
  retained: Pick<RedisRetainedStore, 'loadSnapshot' | 'bodies' | 'applyLog'>;
  /** This node applied partition p's route log up to `id` (RouteSync). */
  appliedUpTo(p: number, id: string): void;
  /** False once the node stops. */
  running(): boolean;
  /** After each snapshot is applied: what the node does before it counts as loaded again. */
  snapshotApplied(): Promise<void>;
}

export class Replicas {
  /** Raised by every snapshot: a read or a snapshot that a later snapshot overtook applies nothing. */
  private generation = 0;
  /** Per partition, the last entry of each log applied here: the next read starts after it. */
  private routeLogIds: string[] = [];
  private retainedLogIds: string[] = [];

  constructor(private readonly o: ReplicasOptions) {}

  /**
   * Snapshot of routes and retained messages, then this node's own routes announced again
   * (snapshotApplied).
   */
  async resync(): Promise<void> {
    const gen = ++this.generation;
    const k = this.o.keys;
    const parts = k.allPartitions();
    const lastId = async (key: string) =>
      (await this.o.cmd.xrevrange(key, '+', '-', 'COUNT', 1))[0]?.[0] ?? '0-0';
    const [routeTails, retainedTails] = await Promise.all([
      Promise.all(parts.map((p) => lastId(k.routeLog(p)))),
      Promise.all(parts.map((p) => lastId(k.retainedLog(p)))),
    ]);
    // Guarantee 3 (no QoS >= 1 loss on a Redis blip): the current replica keeps routing publishes
    // until the snapshot is complete and is replaced in one step. Clearing it before the awaits let
    // publishes arriving meanwhile find no remote route: acknowledged (0x10), sent nowhere, lost.
    // Every registered node's set of filterKeys in each partition, read side by side (a node
    // registers before it routes anything; one removed is dropped in the steps after it unregisters).
    const nodes = await this.o.cmd.hkeys(k.nodeRuns);
    const routes = await Promise.all(
      nodes.flatMap((node) =>
        parts.map(
          async (p): Promise<[node: string, filterKeys: string[]]> => [
            node,
            await this.scanAll((cursor) => this.o.cmd.sscan(k.nodeRoutes(node, p), cursor, 'COUNT', 1000)),
          ],
        ),
      ),
    );
    const sessionRoutes = (
      await Promise.all(
        parts.map((p) =>
          this.scanAll((cursor) => this.o.cmd.hscan(k.sessionRoutes(p), cursor, 'COUNT', 1000)),
        ),
      )
    ).flat();
    await this.o.retained.loadSnapshot();
    if (gen !== this.generation) return;
    this.o.replica.clear();
    for (const [node, filterKeys] of routes) for (const f of filterKeys) this.o.replica.apply('a', node, f);
    for (let i = 0; i + 1 < sessionRoutes.length; i += 2) {
      // `clientId\0filter`: NUL is the one character no MQTT string may hold [MQTT-1.5.4-2].
      const field = sessionRoutes[i];
      const nul = field.indexOf('\0');
      if (nul > 0) this.o.replica.apply('s', field.slice(0, nul), field.slice(nul + 1), sessionRoutes[i + 1]);
    }
    this.routeLogIds = routeTails;
    this.retainedLogIds = retainedTails;
    for (const p of parts) this.o.appliedUpTo(p, routeTails[p]);
    await this.o.snapshotApplied();
  }

  /** Every item of a SCAN-like command, cursor after cursor. */
  private async scanAll(
    scan: (cursor: string) => Promise<[cursor: string, items: string[]]>,
  ): Promise<string[]> {
    const out: string[] = [];
    let cursor = '0';
    do {
      const [next, items] = await scan(cursor);
      cursor = next;
      out.push(...items);
    } while (cursor !== '0');
    return out;
  }

  /** Applies the logs' entries as they come, until the node stops: one reader per partition. */
  async run(): Promise<void> {
    const readers = this.o.readers();
    await Promise.all(this.o.keys.allPartitions().map((p) => this.runPartition(p, readers[p])));
  }

  /** Applies partition p's log entries as they come (paused after a failed read). */
  private async runPartition(p: number, reader: RedisClient): Promise<void> {
    const k = this.o.keys;
    const routeLog = k.routeLog(p);
    const retainedLog = k.retainedLog(p);
    const inPartition = (fkey: string) => k.partitionOf(fkey) === p;
    while (this.o.running()) {
      const gen = this.generation;
      const from: Record<string, string> = {
        [routeLog]: this.routeLogIds[p] ?? '0-0',
        [retainedLog]: this.retainedLogIds[p] ?? '0-0',
      };
      let reply: StreamReply;
      try {
        reply = (await reader.xreadBuffer(
          'COUNT',
          LOG_READ_COUNT,
          'BLOCK',
          1000,
          'STREAMS',
          routeLog,
          retainedLog,
          from[routeLog],
          from[retainedLog],
        )) as StreamReply;
      } catch {
        if (!this.o.running()) return;
        await pause(this.o.clock);
        continue;
      }
      if (reply === null || gen !== this.generation) continue;
      if (await this.missedEntries(reply, from).catch(() => false)) {
        // The log was trimmed past what this node read (it was paused or saturated): what it missed
        // is only in the snapshot.
        this.o.logger.warn({
          event: 'cluster.log_gap',
          partition: p,
          routeLog: from[routeLog],
          retainedLog: from[retainedLog],
        });
        await this.resync().catch((err: Error) =>
          this.o.logger.warn({ event: 'cluster.resync_failed', err: err.message }),
        );
        continue;
      }
      // Large retained messages are logged by topic only (op h): their bodies come from the hash.
      let bodies: Map<string, Buffer | null>;
      try {
        bodies = await this.o.retained.bodies(retainedRefs(reply, retainedLog));
      } catch {
        if (!this.o.running()) return;
        await pause(this.o.clock);
        continue; // nothing applied: the same entries are read again
      }
      if (gen !== this.generation) continue;
      for (const [key, entries] of reply) {
        const isRoutes = key.toString() === routeLog;
        for (const [id, fields] of entries) {
          const f = fieldsOf(fields);
          if (isRoutes) {
            const op = f.op?.toString() ?? '';
            const node = f.n?.toString() ?? '';
            // A node's routes of this partition went (those of the others are in their own logs).
            if (op === 'n') this.o.replica.dropNode(node, inPartition);
            else this.o.replica.apply(op, node, f.f?.toString() ?? '', f.o?.toString());
            this.routeLogIds[p] = id.toString();
          } else {
            const op = f.op?.toString() ?? '';
            const topic = f.t?.toString() ?? '';
            if (op === 'h') this.o.retained.applyLog('s', topic, bodies.get(topic) ?? EMPTY);
            else this.o.retained.applyLog(op, topic, f.m ?? EMPTY);
            this.retainedLogIds[p] = id.toString();
          }
        }
      }
      this.o.appliedUpTo(p, this.routeLogIds[p] ?? '0-0');
    }
  }

  /**
   * Whether the logs lost entries this node had not read: Redis trims them to about `logMaxLen`
   * entries. Once the entry this node read last is gone (the stream's first entry, XINFO STREAM, is
   * newer), entries after it may have been trimmed unread: the node is about `logMaxLen` entries
   * behind (paused, saturated), and only the snapshot has what it missed. From an empty log ('0-0'),
   * any trimmed entry was missed. (Conservative: near the cap it may resync with nothing missed.)
   * Asked only of a stream whose reply is as long as it can be: with fewer unread entries than the
   * cap keeps, none were trimmed, so the common read costs no extra round trip.
   */
  private async missedEntries(
    reply: NonNullable<StreamReply>,
    from: Record<string, string>,
  ): Promise<boolean> {
    const full = reply.filter(([, entries]) => entries.length >= Math.min(LOG_READ_COUNT, this.o.logMaxLen));
    if (full.length === 0) return false;
    const pipeline = this.o.cmd.pipeline();
    for (const [key] of full) pipeline.xinfo('STREAM', key.toString());
    const infos = (await pipeline.exec()) ?? [];
    return full.some(([key], i) => {
      const info = infos[i]?.[1];
      if (!Array.isArray(info)) return false;
      const field = (name: string) => info[info.indexOf(name) + 1];
      const read = from[key.toString()] ?? '0-0';
      if (read === '0-0') return Number(field('entries-added')) > Number(field('length'));
      const first = field('first-entry');
      return Array.isArray(first) && compareIds(String(first[0]), read) > 0;
    });
  }
}

const EMPTY = Buffer.alloc(0);
/** Log entries read per XREAD. */
const LOG_READ_COUNT = 1000;

/** Topics of the retained-log entries in `reply` that carry no body (op h). */
function retainedRefs(reply: NonNullable<StreamReply>, retainedLog: string): string[] {
  const topics: string[] = [];
  for (const [key, entries] of reply) {
    if (key.toString() !== retainedLog) continue;
    for (const [, fields] of entries) {
      const f = fieldsOf(fields);
      if (f.op?.toString() === 'h' && f.t !== undefined) topics.push(f.t.toString());
    }
  }
  return topics;
}
