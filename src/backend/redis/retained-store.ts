/**
 * Retained messages in cluster mode: Redis (a hash plus a change log) is the truth; this node keeps a
 * full replica in a TopicTree, loaded from a snapshot and kept current from the log, so subscribes
 * with wildcards read memory and never SCAN Redis. Last writer (in log order) wins. Topics are
 * spread over the partitions (Keys.partitionOf): each partition has its hash, expiry index and log.
 */

import { randomBytes } from 'node:crypto';
import type { Clock } from '../../clock.js';
import type { Message } from '../../message.js';
import { isExpired } from '../../message.js';
import { TopicTree } from '../../topics/index.js';
import { decodeMessage, encodeMessage } from '../record.js';
import type { RetainedStore } from '../types.js';
import type { RedisClient } from './connect.js';
import type { Keys } from './keys.js';
import { scripts } from './scripts.js';

interface Entry {
  message: Message;
  encoded: Buffer;
}

export class RedisRetainedStore implements RetainedStore {
  private tree = new TopicTree<Entry>();

  constructor(
    private readonly redis: RedisClient,
    private readonly keys: Keys,
    private readonly clock: Clock,
    private readonly logMaxLen: number,
    /** This process's name as a writer of retained messages (node and run): re-sends are told by it. */
    private readonly writer = randomBytes(6).toString('hex'),
  ) {}
  private writes = 0;
  /** The partition the next sweep looks at. */
  private sweepNext = 0;

  get size(): number {
    return this.tree.size;
  }

  /** Writes through to Redis; the promise settles once Redis has it. The replica changes at once. */
  set(message: Message): Promise<void> {
    const encoded = message.payload.length === 0 ? EMPTY : encodeMessage(message);
    this.applyLocal(message.topic, message.payload.length === 0 ? undefined : { message, encoded });
    const k = this.keys;
    const p = k.partitionOf(message.topic);
    return scripts.retainedSet
      .run(
        this.redis,
        [k.retained(p), k.retainedLog(p), k.retainedSeq(this.writer, p), k.retainedExpiry(p)],
        message.topic,
        encoded,
        this.logMaxLen,
        ++this.writes,
        // Redis indexes it by its expiry on Redis' own clock (the sweep's).
        message.expiresAt === undefined || encoded.length === 0
          ? ''
          : Math.max(1, Math.ceil(message.expiresAt - this.clock.now())),
      )
      .then(() => undefined);
  }

  get(topic: string): Message | undefined {
    const e = this.tree.get(topic);
    if (e === undefined) return undefined;
    if (isExpired(e.message, this.clock.now())) {
      this.expire(topic, e);
      return undefined;
    }
    return e.message;
  }

  match(filter: string, visit: (message: Message) => void): void {
    const now = this.clock.now();
    this.tree.matchFilter(filter, (topic, e) => {
      if (isExpired(e.message, now)) this.expire(topic, e);
      else visit(e.message);
    });
  }

  private expire(topic: string, e: Entry): void {
    this.tree.delete(topic);
    const k = this.keys;
    const p = k.partitionOf(topic);
    scripts.retainedExpire
      .run(
        this.redis,
        [k.retained(p), k.retainedLog(p), k.retainedExpiry(p)],
        topic,
        e.encoded,
        this.logMaxLen,
      )
      .catch(() => undefined);
  }

  /** The node leaves: its writes are in (one connection, in order), no re-send can follow. */
  async leave(): Promise<void> {
    const k = this.keys;
    await Promise.all(k.allPartitions().map((p) => this.redis.del(k.retainedSeq(this.writer, p))));
  }

  /**
   * Removes from Redis up to `batch` retained messages whose expiry passed (Redis' clock), read or
   * not, in the next partition in turn (one short script per call); the replicas drop them from the
   * log. Any node may run it: each delete happens once.
   */
  async sweep(batch = SWEEP_BATCH): Promise<number> {
    const k = this.keys;
    const p = this.sweepNext++ % k.partitions;
    return Number(
      await scripts.retainedSweep.run(
        this.redis,
        [k.retained(p), k.retainedLog(p), k.retainedExpiry(p)],
        this.logMaxLen,
        batch,
      ),
    );
  }

  private applyLocal(topic: string, entry: Entry | undefined): void {
    if (entry === undefined) this.tree.delete(topic);
    else this.tree.set(topic, entry);
  }

  /**
   * The stored bodies of `topics` (null: gone), for retained-log entries of op h, which carry only
   * their topic (RETAINED_LOG_INLINE_MAX). A body read after its entry was written is that write's or
   * a later one's (whose entry comes later): applied in log order, the replica converges all the same.
   */
  async bodies(topics: Iterable<string>): Promise<Map<string, Buffer | null>> {
    const byPartition = new Map<number, string[]>();
    for (const topic of new Set(topics)) {
      const p = this.keys.partitionOf(topic);
      const list = byPartition.get(p);
      if (list === undefined) byPartition.set(p, [topic]);
      else list.push(topic);
    }
    const out = new Map<string, Buffer | null>();
    const reads: Promise<void>[] = [];
    for (const [p, wanted] of byPartition)
      for (let i = 0; i < wanted.length; i += BODY_READ_BATCH) {
        const chunk = wanted.slice(i, i + BODY_READ_BATCH);
        reads.push(
          this.redis.hmgetBuffer(this.keys.retained(p), ...chunk).then((values) => {
            for (let j = 0; j < chunk.length; j++) out.set(chunk[j], values[j] ?? null);
          }),
        );
      }
    await Promise.all(reads);
    return out;
  }

  /** Applies a retained-log entry (op s with the encoded message, or d). */
  applyLog(op: string, topic: string, encoded: Buffer): void {
    if (op === 'd' || encoded.length === 0) {
      this.tree.delete(topic);
      return;
    }
    const message = decodeMessage(Buffer.from(encoded));
    this.tree.set(topic, { message, encoded });
  }

  /** Replaces the replica with a full snapshot from Redis (the partitions read side by side). */
  async loadSnapshot(): Promise<void> {
    const tree = new TopicTree<Entry>();
    await Promise.all(
      this.keys.allPartitions().map(async (p) => {
        let cursor = '0';
        do {
          const [next, items] = await this.redis.hscanBuffer(this.keys.retained(p), cursor, 'COUNT', 1000);
          cursor = next.toString();
          for (let i = 0; i < items.length; i += 2) {
            const encoded = items[i + 1];
            tree.set(items[i].toString(), { message: decodeMessage(encoded), encoded });
          }
        } while (cursor !== '0');
      }),
    );
    this.tree = tree;
  }
}

const EMPTY = Buffer.alloc(0);
/** Retained bodies asked for per HMGET (a log read refers to up to LOG_READ_COUNT). */
const BODY_READ_BATCH = 100;
/** Expired retained messages removed per sweep (one per heartbeat): bounded work per tick. */
const SWEEP_BATCH = 100;
