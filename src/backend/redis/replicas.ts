/**
 * The replicas on this node of what every node shares through Redis: the route table (RouteReplica)
 * and the retained messages (RedisRetainedStore). Each is loaded from a snapshot and kept current
 * by reading its log (the route log and the retained log, one blocking XREAD for both); when a log
 * was trimmed past what this node had read (a gap), both are loaded again from a snapshot.
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
  /** The connection the blocking XREAD of the logs runs on (used for nothing else). */
  reader: RedisClient;
  /** The connection for the snapshot and everything else. */
  cmd: RedisClient;
  keys: Keys;
  clock: Clock;
  logger: Logger;
  /** Approximate length the route and retained logs are trimmed to. */
  logMaxLen: number;
  /** The route replica: cleared and filled by a snapshot, changed by the route log. */
  replica: Pick<RouteReplica, 'clear' | 'apply'>;
  /** The retained replica: its snapshot, and the bodies the retained log refers to (op h). */
  retained: Pick<RedisRetainedStore, 'loadSnapshot' | 'bodies' | 'applyLog'>;
  /** This node applied the route log up to `id` (RouteSync). */
  appliedUpTo(id: string): void;
  /** False once the node stops. */
  running(): boolean;
  /** After each snapshot is applied: what the node does before it counts as loaded again. */
  snapshotApplied(): Promise<void>;
}

export class Replicas {
  /** Raised by every snapshot: a read or a snapshot that a later snapshot overtook applies nothing. */
  private generation = 0;
  /** The last entry of each log applied here: the next read starts after it. */
  private routeLogId = '0-0';
  private retainedLogId = '0-0';

  constructor(private readonly o: ReplicasOptions) {}

  /**
   * Snapshot of routes and retained messages, then this node's own routes announced again
   * (snapshotApplied).
   */
  async resync(): Promise<void> {
    const gen = ++this.generation;
    const k = this.o.keys;
    const [routeTail, retainedTail] = await Promise.all([
      this.o.cmd.xrevrange(k.routeLog, '+', '-', 'COUNT', 1),
      this.o.cmd.xrevrange(k.retainedLog, '+', '-', 'COUNT', 1),
    ]);
    // Guarantee 3 (no QoS >= 1 loss on a Redis blip): the current replica keeps routing publishes
    // until the snapshot is complete and is replaced in one step. Clearing it before the awaits let
    // publishes arriving meanwhile find no remote route: acknowledged (0x10), sent nowhere, lost.
    // Every registered node's set of filterKeys, read side by side (a node registers before it
    // routes anything; one removed is unlinked in the step that unregisters it).
    const nodes = await this.o.cmd.hkeys(k.nodeRuns);
    const routes = await Promise.all(
      nodes.map(async (node): Promise<[node: string, filterKeys: string[]]> => {
        const filterKeys: string[] = [];
        let cursor = '0';
        do {
          const [next, items] = await this.o.cmd.sscan(k.nodeRoutes(node), cursor, 'COUNT', 1000);
          cursor = next;
          filterKeys.push(...items);
        } while (cursor !== '0');
        return [node, filterKeys];
      }),
    );
    const sessionRoutes: string[] = [];
    let cursor = '0';
    do {
      const [next, items] = await this.o.cmd.hscan(k.sessionRoutes, cursor, 'COUNT', 1000);
      cursor = next;
      sessionRoutes.push(...items);
    } while (cursor !== '0');
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
    this.routeLogId = routeTail[0]?.[0] ?? '0-0';
    this.retainedLogId = retainedTail[0]?.[0] ?? '0-0';
    this.o.appliedUpTo(this.routeLogId);
    await this.o.snapshotApplied();
  }

  /** Applies the logs' entries as they come, until the node stops (paused after a failed read). */
  async run(): Promise<void> {
    const k = this.o.keys;
    while (this.o.running()) {
      const gen = this.generation;
      const from: Record<string, string> = {
        [k.routeLog]: this.routeLogId,
        [k.retainedLog]: this.retainedLogId,
      };
      let reply: StreamReply;
      try {
        reply = (await this.o.reader.xreadBuffer(
          'COUNT',
          LOG_READ_COUNT,
          'BLOCK',
          1000,
          'STREAMS',
          k.routeLog,
          k.retainedLog,
          this.routeLogId,
          this.retainedLogId,
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
          routeLog: from[k.routeLog],
          retainedLog: from[k.retainedLog],
        });
        await this.resync().catch((err: Error) =>
          this.o.logger.warn({ event: 'cluster.resync_failed', err: err.message }),
        );
        continue;
      }
      // Large retained messages are logged by topic only (op h): their bodies come from the hash.
      let bodies: Map<string, Buffer | null>;
      try {
        bodies = await this.o.retained.bodies(retainedRefs(reply, k.retainedLog));
      } catch {
        if (!this.o.running()) return;
        await pause(this.o.clock);
        continue; // nothing applied: the same entries are read again
      }
      if (gen !== this.generation) continue;
      for (const [key, entries] of reply) {
        const isRoutes = key.toString() === k.routeLog;
        for (const [id, fields] of entries) {
          const f = fieldsOf(fields);
          if (isRoutes) {
            this.o.replica.apply(
              f.op?.toString() ?? '',
              f.n?.toString() ?? '',
              f.f?.toString() ?? '',
              f.o?.toString(),
            );
            this.routeLogId = id.toString();
          } else {
            const op = f.op?.toString() ?? '';
            const topic = f.t?.toString() ?? '';
            if (op === 'h') this.o.retained.applyLog('s', topic, bodies.get(topic) ?? EMPTY);
            else this.o.retained.applyLog(op, topic, f.m ?? EMPTY);
            this.retainedLogId = id.toString();
          }
        }
      }
      this.o.appliedUpTo(this.routeLogId);
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
