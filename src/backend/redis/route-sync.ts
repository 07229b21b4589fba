/**
 * "SUBACK means routed everywhere" (guarantee 8): every node says how far it applied each
 * partition's route log (per partition a hash node -> last applied entry id, plus a pub/sub nudge),
 * and a node that wrote a route waits until every live node has applied the entry of the route's
 * partition before the client gets its SUBACK. Bounded by the
 * liveness timeout: a node that cannot answer in that time is being reaped (or cut from Redis, and
 * then serves no publishes routed through Redis meanwhile either); the wait then ends, logged.
 * See docs/cluster.md "Routes".
 */
import type { Clock, TimerHandle } from '../../clock.js';
import type { Logger } from '../../observability/logger.js';
import type { ClusterNodeInfo } from '../types.js';
import type { RedisClient } from './connect.js';
import type { Keys } from './keys.js';

/** While anyone waits, positions are read again this often (nudges lost in a blip are made up). */
const POLL_MS = 50;

interface Waiter {
  partition: number;
  id: string;
  deadline: number;
  resolve: () => void;
}

export interface RouteSyncOptions {
  cmd: RedisClient;
  keys: Keys;
  nodeId: string;
  clock: Clock;
  logger: Logger;
  livenessMs: number;
  sharded: boolean;
  liveNodes(): Promise<ClusterNodeInfo[]>;
}

export class RouteSync {
  private waiters: Waiter[] = [];
  private timer: TimerHandle | undefined;
  private checking = false;
  private again = false;
  /** This node's applied position in each partition, written once per loop turn. */
  private readonly applied = new Map<number, string>();
  /** Partitions whose position moved since the last write. */
  private readonly moved = new Set<number>();
  private writeScheduled = false;
  private stopped = false;

  constructor(private readonly o: RouteSyncOptions) {}

  /** The pub/sub channels of the nudges, one per partition (every node listens to each). */
  get channels(): string[] {
    return this.o.keys.allPartitions().map((p) => this.o.keys.routeAppliedChannel(p));
  }

  /** This node applied partition p's route log up to `id` (its log reader, or a snapshot resync). */
  appliedUpTo(p: number, id: string): void {
    if (compareIds(id, this.applied.get(p) ?? '0-0') <= 0) return;
    this.applied.set(p, id);
    this.moved.add(p);
    if (this.writeScheduled) return;
    this.writeScheduled = true;
    setImmediate(() => {
      this.writeScheduled = false;
      const k = this.o.keys;
      for (const q of this.moved) {
        const channel = k.routeAppliedChannel(q);
        const id = this.applied.get(q) ?? '0-0';
        const body = `${this.o.nodeId}\n${id}`;
        this.o.cmd
          .hset(k.routeApplied(q), this.o.nodeId, id)
          .then(() =>
            this.o.sharded ? this.o.cmd.spublish(channel, body) : this.o.cmd.publish(channel, body),
          )
          .catch(() => undefined); // read again by the waiters' polling once Redis is back
      }
      this.moved.clear();
    });
  }

  /** A nudge from a node that applied more: the waiters look again. */
  nudged(): void {
    if (this.waiters.length > 0) this.check();
  }

  /**
   * Resolves once every live node applied partition p's route log up to `id` (or the liveness
   * timeout passed).
   */
  confirmed(p: number, id: string): Promise<void> {
    if (this.stopped) return Promise.resolve();
    return new Promise((resolve) => {
      this.waiters.push({ partition: p, id, deadline: this.o.clock.now() + this.o.livenessMs, resolve });
      this.timer ??= this.o.clock.setInterval(() => this.check(), POLL_MS);
      this.check();
    });
  }

  /** This node leaves: its applied positions go. */
  async leave(): Promise<void> {
    const k = this.o.keys;
    await Promise.all(k.allPartitions().map((p) => this.o.cmd.hdel(k.routeApplied(p), this.o.nodeId)));
  }

  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
    this.timer = undefined;
    for (const w of this.waiters.splice(0)) w.resolve();
  }

  /**
   * Reads every live node's position in the partitions waited on (one round trip for all waiters)
   * and releases who can go.
   */
  private check(): void {
    if (this.checking) {
      this.again = true;
      return;
    }
    this.checking = true;
    const k = this.o.keys;
    const partitions = [...new Set(this.waiters.map((w) => w.partition))];
    Promise.all([
      this.o.liveNodes(),
      Promise.all(partitions.map((p) => this.o.cmd.hgetall(k.routeApplied(p)))),
    ])
      .then(([live, read]) => {
        const positions = new Map<number, Record<string, string>>();
        for (let i = 0; i < partitions.length; i++) positions.set(partitions[i], read[i]);
        this.release(live, positions);
      })
      .catch(() => this.release(undefined, new Map()))
      .finally(() => {
        this.checking = false;
        if (this.again && this.waiters.length > 0) {
          this.again = false;
          this.check();
        }
      });
  }

  private release(
    live: ClusterNodeInfo[] | undefined,
    byPartition: Map<number, Record<string, string>>,
  ): void {
    const now = this.o.clock.now();
    const waiting: Waiter[] = [];
    for (const w of this.waiters) {
      const positions = byPartition.get(w.partition) ?? {};
      const behind =
        live === undefined
          ? ['(Redis unreachable)']
          : live
              .map((n) => n.nodeId)
              .filter(
                (n) =>
                  compareIds(positions[n] ?? '0-0', w.id) < 0 &&
                  !(n === this.o.nodeId && compareIds(this.applied.get(w.partition) ?? '0-0', w.id) >= 0),
              );
      if (behind.length === 0) w.resolve();
      else if (now >= w.deadline) {
        this.o.logger.warn({
          event: 'cluster.route_unconfirmed',
          partition: w.partition,
          entry: w.id,
          nodes: behind,
        });
        w.resolve();
      } else waiting.push(w);
    }
    this.waiters = waiting;
    if (waiting.length === 0) {
      this.timer?.cancel();
      this.timer = undefined;
    }
  }
}

/** Orders two stream entry ids (`ms-seq`). */
export function compareIds(a: string, b: string): number {
  const da = a.indexOf('-');
  const db = b.indexOf('-');
  const ma = Number(a.slice(0, da));
  const mb = Number(b.slice(0, db));
  if (ma !== mb) return ma < mb ? -1 : 1;
  const sa = Number(a.slice(da + 1));
  const sb = Number(b.slice(db + 1));
  return sa === sb ? 0 : sa < sb ? -1 : 1;
}
