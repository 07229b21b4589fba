/**
 * Redis outages as one node lives through them, and its readiness (ClusterBackend.ready, /readyz):
 * ready once the replicas are loaded, and while Redis is reachable. When the command connection
 * closes the node is not ready (claims are refused, routes are written again later, no reaping);
 * once Redis answers again it catches up before it is ready again: did Redis keep its data (the
 * data set id), its heartbeat, a snapshot of the replicas, then no reaping for a liveness period.
 * See docs/cluster.md "Redis unavailable".
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from '../../observability/logger.js';
import type { RedisClient } from './connect.js';
import type { Keys } from './keys.js';

export interface ReadinessOptions {
  cmd: RedisClient;
  keys: Keys;
  nodeId: string;
  logger: Logger;
  /** start() finished and stop() was not called: connection events before belong to the start itself. */
  active(): boolean;
  /** This node's heartbeat (found reaped: its clients claim again). */
  heartbeat(): Promise<unknown>;
  /** The snapshot of the replicas, loaded again. */
  resync(): Promise<void>;
  /** Redis came back: no reaping for a liveness period, while the others heartbeat again. */
  holdReaping(): void;
  /** Redis came back without the cluster's data: the node's clients must claim again. */
  stateLost(): void;
  readinessChanged(ready: boolean): void;
}

export class Readiness {
  /**
   * Redis is reachable: set once start() loaded the snapshot, cleared when the connection closes,
   * set again once caught up (back()).
   */
  connected = false;
  /** A snapshot of the replicas was applied. */
  loaded = false;
  private lastReady = false;
  /** The Redis data set this node joined (Keys.dataSet); another one after a reconnect: data lost. */
  private dataSet = '';

  constructor(private readonly o: ReadinessOptions) {}

  get ready(): boolean {
    return this.loaded && this.connected;
  }

  /** At start: the data set this node joins. */
  async joinDataSet(): Promise<void> {
    this.dataSet = await this.markDataSet();
  }

  /** The command connection closed. */
  lost(): void {
    if (!this.o.active() || !this.connected) return;
    this.connected = false;
    this.o.logger.warn({ event: 'cluster.redis_lost', nodeId: this.o.nodeId });
    this.update();
  }

  /** The command connection is ready again. */
  back(): void {
    if (!this.o.active() || this.connected) return;
    this.o.logger.info({ event: 'cluster.redis_back', nodeId: this.o.nodeId });
    this.checkDataSet()
      .then(() => this.o.heartbeat())
      .then(() => this.o.resync())
      .then(() => {
        this.connected = true;
        this.o.holdReaping();
        this.update();
      })
      .catch((err: Error) => this.o.logger.warn({ event: 'cluster.resync_failed', err: err.message }));
  }

  /** Tells the handlers when readiness changed. */
  update(): void {
    const ready = this.ready;
    if (ready === this.lastReady) return;
    this.lastReady = ready;
    this.o.readinessChanged(ready);
  }

  /** The id of the Redis data set, made by the first node that finds none. */
  private async markDataSet(): Promise<string> {
    // A data set that lost everything gets this node's layout back, before a new node picks its own.
    await this.o.cmd.set(this.o.keys.layout, String(this.o.keys.partitions), 'NX');
    await this.o.cmd.set(this.o.keys.dataSet, randomBytes(8).toString('hex'), 'NX');
    return (await this.o.cmd.get(this.o.keys.dataSet)) ?? '';
  }

  /** After a reconnect: did Redis keep its data? If not, the node's clients must claim again. */
  private async checkDataSet(): Promise<void> {
    const now = await this.markDataSet();
    if (now === this.dataSet) return;
    this.dataSet = now;
    this.o.logger.error({ event: 'cluster.redis_data_lost', nodeId: this.o.nodeId });
    this.o.stateLost();
  }
}
