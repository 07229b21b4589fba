/**
 * The route table as one node sees it (RouteTable): this node's own routes written to Redis
 * (route-add.lua / route-del.lua, idempotent) and announced again after Redis comes back, the wait
 * until every live node applied a new one (route-sync.ts: guarantee 8), and other nodes' routes
 * matched in the replica (kept current by replicas.ts). See docs/cluster.md "Route table".
 */
import type { Clock } from '../../clock.js';
import type { Logger } from '../../observability/logger.js';
import { filterKey, type RouteReplica } from '../route-replica.js';
import type { RouteTable } from '../types.js';
import type { RedisClient } from './connect.js';
import type { Keys } from './keys.js';
import { pause, withTimeout } from './redis-util.js';
import { scripts } from './scripts.js';

export interface RoutesOptions {
  cmd: RedisClient;
  keys: Keys;
  nodeId: string;
  clock: Clock;
  logger: Logger;
  livenessMs: number;
  logMaxLen: number;
  /** Where other nodes' routes are matched. */
  replica: Pick<RouteReplica, 'matchNodes' | 'matchShared'>;
  /** This node's run (incarnation): recorded with its routes, the fence of a reaper's drop. */
  incarnation(): string;
  /** Resolves once every live node applied partition p's route log up to `id` (RouteSync). */
  confirmed(p: number, id: string): Promise<void>;
  /** False while Redis is away. */
  connected(): boolean;
  /** False once the node stops: a route write is not tried again then. */
  running(): boolean;
}

export class RedisRoutes implements RouteTable {
  /** This node's own routes (filter keys), re-announced after Redis comes back. */
  private readonly own = new Set<string>();
  /** Routes being stored and confirmed, by filter key: later local subscribers wait for them too. */
  private readonly confirming = new Map<string, Promise<void>>();

  constructor(private readonly o: RoutesOptions) {}

  add(filter: string, group: string | null): Promise<void> | undefined {
    return this.addRoute(filterKey(filter, group));
  }

  pending(filter: string, group: string | null): Promise<void> | undefined {
    return this.confirming.get(filterKey(filter, group));
  }

  remove(filter: string, group: string | null): void {
    this.removeRoute(filterKey(filter, group));
  }

  matchNodes(topic: string, visit: (nodeId: string) => void): void {
    this.o.replica.matchNodes(topic, visit);
  }

  matchShared(topic: string, visit: (groupKey: string, nodes: ReadonlySet<string>) => void): void {
    this.o.replica.matchShared(topic, visit);
  }

  /** This node's own routes announced again (after a snapshot: Redis may have lost or reaped them). */
  announce(): void {
    for (const fkey of this.own)
      this.writeRoute(fkey).catch((err: Error) =>
        this.o.logger.warn({ event: 'cluster.route_write_failed', filter: fkey, err: err.message }),
      );
  }

  /**
   * Stores the route (retried while Redis does not answer, within the liveness timeout: route-add.lua is
   * idempotent), then waits until every live node applied it (RouteSync): guarantee 8.
   */
  private addRoute(fkey: string): Promise<void> | undefined {
    this.own.add(fkey);
    if (!this.o.connected()) {
      // Redis is away: no node routes through it now, and this route is announced again (with
      // every own route) when it is back. Local subscribers are served meanwhile (guarantee 3).
      this.writeRoute(fkey).catch(() => undefined);
      return undefined;
    }
    const confirmed = this.storeRoute(fkey, this.o.clock.now() + this.o.livenessMs).then((id) =>
      this.o.confirmed(this.o.keys.partitionOf(fkey), id),
    );
    this.confirming.set(fkey, confirmed);
    const forget = () => {
      if (this.confirming.get(fkey) === confirmed) this.confirming.delete(fkey);
    };
    confirmed.then(forget, (err: Error) => {
      forget();
      this.o.logger.warn({ event: 'cluster.route_write_failed', filter: fkey, err: err.message });
    });
    return confirmed;
  }

  private async storeRoute(fkey: string, deadline: number): Promise<string> {
    for (;;) {
      try {
        // Bounded: ioredis holds commands while its connection is down.
        return String(await withTimeout(this.writeRoute(fkey), Math.max(1, deadline - this.o.clock.now())));
      } catch (err) {
        if (!this.o.running() || this.o.clock.now() >= deadline) throw err;
        await pause(this.o.clock);
      }
    }
  }

  private removeRoute(fkey: string): void {
    this.own.delete(fkey);
    const k = this.o.keys;
    const p = k.partitionOf(fkey);
    scripts.routeDel
      .run(this.o.cmd, [k.nodeRoutes(this.o.nodeId, p), k.routeLog(p)], this.o.nodeId, fkey, this.o.logMaxLen)
      .catch((err: Error) =>
        this.o.logger.warn({ event: 'cluster.route_write_failed', filter: fkey, err: err.message }),
      );
  }

  /** route-add.lua in the route's partition; resolves to the route-log entry to wait for. */
  private writeRoute(fkey: string): Promise<string> {
    const k = this.o.keys;
    const p = k.partitionOf(fkey);
    return scripts.routeAdd.run(
      this.o.cmd,
      [k.nodeRoutes(this.o.nodeId, p), k.routeLog(p), k.routeRuns(p)],
      this.o.nodeId,
      fkey,
      this.o.logMaxLen,
      this.o.incarnation(),
    );
  }
}
