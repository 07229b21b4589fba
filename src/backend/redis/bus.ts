/**
 * Node-to-node delivery. Envelopes for the same node are batched per event-loop turn: QoS >= 1 go
 * into the node's inbox stream (one XADD per batch; callers hear back once Redis accepted it), QoS 0
 * into its pub/sub channel (sharded pub/sub on Redis Cluster).
 */
import type { ClusterBus, Envelope } from '../types.js';
import type { RedisClient } from './connect.js';
import type { Keys } from './keys.js';
import { encodeBatch } from './serialize.js';

interface Pending {
  durable: Envelope[];
  callbacks: ((err?: Error) => void)[];
  volatile: Envelope[];
}

/** Largest number of envelopes in one batch. */
const MAX_BATCH = 512;

export interface BusStats {
  batches: number;
  envelopes: number;
}

export class RedisBus implements ClusterBus {
  private pending = new Map<string, Pending>();
  private scheduled = false;
  readonly stats: BusStats = { batches: 0, envelopes: 0 };
  /** Told the size of every batch sent (metrics). */
  onBatch: ((durable: boolean, envelopes: number) => void) | undefined;

  constructor(
    private readonly redis: RedisClient,
    private readonly keys: Keys,
    private readonly sharded: boolean,
    private readonly inboxMaxLen: number,
  ) {}

  send(nodeId: string, envelope: Envelope, accepted?: (err?: Error) => void): void {
    let p = this.pending.get(nodeId);
    if (p === undefined) {
      p = { durable: [], callbacks: [], volatile: [] };
      this.pending.set(nodeId, p);
    }
    if (envelope.message.qos > 0) {
      p.durable.push(envelope);
      if (accepted) p.callbacks.push(accepted);
    } else {
      p.volatile.push(envelope);
    }
    if (p.durable.length + p.volatile.length >= MAX_BATCH) this.flushNode(nodeId, p);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** Sends every pending batch now. */
  flush(): void {
    this.scheduled = false;
    const pending = this.pending;
    this.pending = new Map();
    for (const [node, p] of pending) this.flushNode(node, p);
  }

  private flushNode(node: string, p: Pending): void {
    if (p.durable.length > 0) {
      const batch = encodeBatch(p.durable);
      const callbacks = p.callbacks;
      this.stats.batches++;
      this.stats.envelopes += p.durable.length;
      this.onBatch?.(true, p.durable.length);
      p.durable = [];
      p.callbacks = [];
      this.redis.xaddBuffer(this.keys.inbox(node), 'MAXLEN', '~', this.inboxMaxLen, '*', 'b', batch).then(
        () => {
          for (const cb of callbacks) cb();
        },
        (err: Error) => {
          for (const cb of callbacks) cb(err);
        },
      );
    }
    if (p.volatile.length > 0) {
      const batch = encodeBatch(p.volatile);
      this.stats.batches++;
      this.stats.envelopes += p.volatile.length;
      this.onBatch?.(false, p.volatile.length);
      p.volatile = [];
      const channel = this.keys.inbox0(node);
      const sent = this.sharded ? this.redis.spublish(channel, batch) : this.redis.publish(channel, batch);
      // QoS 0 may be lost in a blip: nothing to report to the publisher.
      sent.catch(() => undefined);
    }
  }
}
