/**
 * Node-to-node delivery. Envelopes for the same node are batched per event-loop turn: QoS >= 1 go
 * into the node's inbox stream (one XADD per batch; callers hear back once Redis accepted it), QoS 0
 * into its pub/sub channel (sharded pub/sub on Redis Cluster). An inbox is never capped (its reader
 * trims what it processed): a node whose inbox holds more than `inboxMaxLen` batches unread gets no
 * more acknowledged batches from here until it has read below it (callers hear back then).
 */
import { randomBytes } from 'node:crypto';
import { encodeBatch } from '../record.js';
import type { ClusterBus, Envelope } from '../types.js';
import { onConnectionClose, type RedisClient } from './connect.js';
import type { Keys } from './keys.js';
import { scripts } from './scripts.js';

interface Pending {
  durable: Envelope[];
  callbacks: ((err?: Error) => void)[];
  volatile: Envelope[];
}

/** Largest number of envelopes in one batch. */
const MAX_BATCH = 512;

/** How often the length of an inbox past its bound is looked at again. */
const BOUND_POLL_MS = 10;

/**
 * Replication before acknowledgement (config `cluster.replicaAcks`): a QoS >= 1 batch counts as
 * accepted only once WAIT says this many replicas hold it. Redis replicates asynchronously, so
 * without it a failover can discard a batch its publishers were already acknowledged for.
 */
export interface ReplicaAcks {
  replicas: number;
  /** A batch not replicated within this time is refused (its publishers get no PUBACK / 0x80). */
  timeoutMs: number;
}

/** Batches Redis accepted on connection generation `connection`, waiting for replication. */
interface Unreplicated {
  callbacks: ((err?: Error) => void)[];
  connection: number;
}

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
  /** Per inbox key: batches waiting for replication; one WAIT in flight per key covers them all. */
  private readonly unreplicated = new Map<string, { waiting: boolean; batches: Unreplicated[] }>();
  /** Grows when the connection closes: WAIT only covers the writes made on its own connection. */
  private connection = 0;
  /** This node and process run, and the durable batches it sent: how receivers spot a re-send. */
  private readonly sender: string;
  private sent = 0;
  /** Per inbox key past its bound: accepted batches whose callers wait for the inbox to be read. */
  private readonly overBound = new Map<string, ((err?: Error) => void)[]>();

  constructor(
    private readonly redis: RedisClient,
    private readonly keys: Keys,
    private readonly sharded: boolean,
    private readonly inboxMaxLen: number,
    private readonly replicaAcks?: ReplicaAcks,
    nodeId = '',
  ) {
    this.sender = `${nodeId}/${randomBytes(6).toString('hex')}`;
    // WAIT counts only the writes of the connection it is sent on: a batch accepted on a connection
    // that closed since (a shard's master killed) is not covered by a WAIT on the next one, which
    // a promoted replica answers at once for a connection that wrote nothing.
    if (replicaAcks !== undefined) onConnectionClose(redis, () => this.connection++);
  }

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
      const key = this.keys.inbox(node);
      // `f`: sender and run, `s`: batch number — the receiver skips a batch ioredis re-sent after a
      // reconnect cut off its answer (it would otherwise be delivered twice).
      scripts.inboxAdd.run(this.redis, [key], batch, this.sender, String(++this.sent)).then(
        (len) => {
          // -1: the node stopped or was reaped, and its clients' subscriptions went with it: there is
          // nobody left to deliver to (and its inbox must not be made again).
          if (Number(len) > this.inboxMaxLen || this.overBound.has(key)) this.holdForReader(key, callbacks);
          else this.accepted(key, callbacks);
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

  private accepted(key: string, callbacks: ((err?: Error) => void)[]): void {
    if (this.replicaAcks !== undefined) this.awaitReplicas(key, callbacks);
    else for (const cb of callbacks) cb();
  }

  /**
   * The inbox holds more than its bound unread: its publishers' acknowledgements wait (in order)
   * until its reader trimmed it below the bound, so a slow or stopped node pushes back on the
   * publishers of what goes to it instead of having unread batches trimmed.
   */
  private holdForReader(key: string, callbacks: ((err?: Error) => void)[]): void {
    const held = this.overBound.get(key);
    if (held !== undefined) {
      held.push(...callbacks);
      return;
    }
    this.overBound.set(key, [...callbacks]);
    const poll = () => {
      this.redis.xlen(key).then(
        (len) => {
          if (len > this.inboxMaxLen) {
            setTimeout(poll, BOUND_POLL_MS);
            return;
          }
          const waiting = this.overBound.get(key) ?? [];
          this.overBound.delete(key);
          this.accepted(key, waiting);
        },
        () => setTimeout(poll, BOUND_POLL_MS),
      );
    };
    setTimeout(poll, BOUND_POLL_MS);
  }

  /** Whether acknowledgements wait for Redis replicas (cluster.replicaAcks). */
  get waitsForReplicas(): boolean {
    return this.replicaAcks !== undefined;
  }

  /**
   * Calls back once Redis replicas hold the writes made so far to `key` (one WAIT per key covers
   * every write waiting); used for inbox batches and for persistent-session queues.
   */
  awaitReplicas(key: string, callbacks: ((err?: Error) => void)[]): void {
    let q = this.unreplicated.get(key);
    if (q === undefined) {
      q = { waiting: false, batches: [] };
      this.unreplicated.set(key, q);
    }
    q.batches.push({ callbacks, connection: this.connection });
    if (!q.waiting) this.waitReplicas(key, q);
  }

  /** awaitReplicas as a promise: resolves once Redis replicas hold the writes made so far to `key`. */
  replicated(key: string): Promise<void> {
    return new Promise((resolve, reject) =>
      this.awaitReplicas(key, [(err) => (err === undefined ? resolve() : reject(err))]),
    );
  }

  /** One WAIT for every batch of `key` accepted so far (group commit); refuses what it cannot confirm. */
  private waitReplicas(key: string, q: { waiting: boolean; batches: Unreplicated[] }): void {
    const { replicas, timeoutMs } = this.replicaAcks!;
    const connection = this.connection;
    const batches = q.batches;
    q.batches = [];
    const settle = (list: Unreplicated[], err?: Error) => {
      for (const b of list) for (const cb of b.callbacks) cb(err);
    };
    // Accepted on a connection that is gone since: WAIT on this one would not cover them.
    settle(
      batches.filter((b) => b.connection !== connection),
      new Error('Redis connection lost before replication was confirmed'),
    );
    const covered = batches.filter((b) => b.connection === connection);
    if (covered.length === 0) {
      this.unreplicated.delete(key);
      return;
    }
    q.waiting = true;
    // WAIT has no key: the EXISTS sends the pipeline to the inbox's node on Redis Cluster, the
    // connection the XADDs went through.
    this.redis
      .pipeline()
      .exists(key)
      .wait(replicas, timeoutMs)
      .exec()
      .then(
        (results) => {
          const [err, acked] = results?.[1] ?? [new Error('no reply to WAIT'), 0];
          if (err) settle(covered, err);
          else if (this.connection !== connection)
            settle(covered, new Error('Redis connection lost before replication was confirmed'));
          else if (Number(acked) < replicas)
            settle(
              covered,
              new Error(`${acked} of ${replicas} Redis replicas confirmed within ${timeoutMs} ms`),
            );
          else settle(covered);
        },
        (err: Error) => settle(covered, err),
      )
      .finally(() => {
        q.waiting = false;
        if (q.batches.length > 0) this.waitReplicas(key, q);
        else this.unreplicated.delete(key);
      });
  }
}
