/**
 * A node's inbox reader: reads its inbox stream (QoS >= 1 batches from other nodes) from the last
 * processed id, delivers each batch, skips batches ioredis re-sent, and trims the stream below what
 * it processed. It never waits for a congested subscriber (guarantee 10): what is addressed to one
 * goes into that subscriber's own session queue, so the inbox keeps flowing for the others. An entry
 * counts as processed once the writes its delivery started (appends to persistent sessions' queues)
 * are in Redis; only then is it trimmed.
 */
import type { Clock } from '../../clock.js';
import type { Instruments } from '../../observability/instruments.js';
import type { Logger } from '../../observability/logger.js';
import { decodeBatch } from '../record.js';
import type { Envelope } from '../types.js';
import type { RedisClient } from './connect.js';
import { SeenBatches } from './seen-batches.js';

type StreamReply = [key: Buffer, entries: [id: Buffer, fields: Buffer[]][]][] | null;

export interface InboxReaderOptions {
  /** The connection the blocking XREAD runs on (used for nothing else). */
  reader: RedisClient;
  /** The connection for trims. */
  cmd: RedisClient;
  key: string;
  clock: Clock;
  logger: Logger;
  instruments?: Instruments;
  /** Delivers an envelope locally; a promise when writes it started are still in flight. */
  deliver: (envelope: Envelope) => void | Promise<void>;
}

export class InboxReader {
  private running = false;
  private lastId = '$';
  private trims: Promise<void> = Promise.resolve();
  /** The batch numbers read from each sender (node and run). */
  private readonly seen = new SeenBatches();

  constructor(private readonly o: InboxReaderOptions) {}

  /** Reads until stop(); resumes from the last processed id after an error (a Redis blip). */
  async run(): Promise<void> {
    const { reader, key } = this.o;
    this.running = true;
    if (this.lastId === '$') {
      const tail = await this.o.cmd.xrevrange(key, '+', '-', 'COUNT', 1);
      this.lastId = tail[0]?.[0] ?? '0-0';
    }
    while (this.running) {
      let reply: StreamReply;
      try {
        reply = (await reader.xreadBuffer(
          'COUNT',
          100,
          'BLOCK',
          1000,
          'STREAMS',
          key,
          this.lastId,
        )) as StreamReply;
      } catch {
        if (!this.running) return;
        await new Promise<void>((resolve) => this.o.clock.setTimeout(() => resolve(), 200));
        continue;
      }
      if (reply === null) continue;
      const writes: Promise<void>[] = [];
      for (const [, entries] of reply) {
        for (const [id, fields] of entries) {
          this.lastId = id.toString();
          // The entry id starts with Redis' clock (ms) at XADD: its age is the inbox lag.
          this.o.instruments?.inboxLag((this.o.clock.now() - Number.parseInt(this.lastId, 10)) / 1000);
          const f = fieldsOf(fields);
          // A batch its sender re-sent (its first XADD went through, the answer was lost): skipped.
          if (f.b === undefined || this.resent(f.f, f.s)) continue;
          const pending = this.deliverBatch(f.b);
          if (pending !== undefined) writes.push(...pending);
        }
      }
      this.trimAfter(this.lastId, writes);
    }
  }

  stop(): void {
    this.running = false;
  }

  /**
   * Senders never create an inbox (NOMKSTREAM): this node makes its own before it routes (again,
   * after a reaper or a Redis without persistence removed it).
   */
  async create(run: string): Promise<void> {
    await this.o.cmd.xadd(this.o.key, '*', 'o', run);
  }

  /**
   * Trims below `id` once `writes` are in Redis (exactly, not `~`: the inbox length is what
   * publishers are held back by, and a reaper hands over what is left of a dead node's inbox).
   */
  private trimAfter(id: string, writes: Promise<void>[]): void {
    const trim = () =>
      this.o.cmd.xtrim(this.o.key, 'MINID', id).then(
        () => undefined,
        () => undefined,
      );
    // In read order: a later reply's trim never passes an earlier reply's writes still in flight.
    this.trims = this.trims.then(() => Promise.all(writes)).then(trim, () => undefined);
  }

  /** True for a batch already delivered (its sender re-sent it): see SeenBatches. */
  private resent(sender: Buffer | undefined, seq: Buffer | undefined): boolean {
    if (sender === undefined || seq === undefined) return false;
    return this.seen.resent(sender.toString(), Number(seq.toString()));
  }

  /** Delivers a batch (also the QoS 0 ones from pub/sub); the writes it started, if any. */
  deliverBatch(batch: Buffer): Promise<void>[] | undefined {
    let envelopes: Envelope[];
    try {
      envelopes = decodeBatch(batch);
    } catch (err) {
      this.o.logger.error({ event: 'cluster.bad_batch', err: String(err) });
      return undefined;
    }
    let writes: Promise<void>[] | undefined;
    for (const e of envelopes) {
      const pending = this.o.deliver(e);
      if (pending === undefined) continue;
      writes ??= [];
      writes.push(pending);
    }
    return writes;
  }
}

export function fieldsOf(fields: Buffer[]): Record<string, Buffer> {
  const out: Record<string, Buffer> = {};
  for (let i = 0; i + 1 < fields.length; i += 2) out[fields[i].toString()] = fields[i + 1];
  return out;
}

/**
 * Reads what is left in the inbox of a dead node (what it had not processed: its reader trims below
 * what it processed) and hands the shares in it to `handOver`, a chunk at a time: a shared
 * subscription's message goes to a live member of its group. Its direct part is not: it was for
 * the dead node's own clean sessions, which ended with it. Resolves once every chunk was handed over.
 */
export async function handOverInbox(
  cmd: RedisClient,
  key: string,
  handOver: (envelopes: Envelope[]) => Promise<void>,
): Promise<number> {
  let start = '-';
  let n = 0;
  // Bounded: nothing writes to the inbox of a node that left the node set (NOMKSTREAM writers
  // stop once it is deleted, and routes to it are gone), and each turn moves past what it read.
  for (let turn = 0; turn < 1_000_000; turn++) {
    const entries = (await cmd.xrangeBuffer(key, start, '+', 'COUNT', 100)) as [Buffer, Buffer[]][];
    if (entries.length === 0) break;
    const shares: Envelope[] = [];
    for (const [, fields] of entries) {
      const b = fieldsOf(fields).b;
      if (b === undefined) continue;
      try {
        for (const e of decodeBatch(b)) if (e.shared !== undefined) shares.push({ ...e, direct: false });
      } catch {
        // A corrupt batch was skipped by its reader too.
      }
    }
    if (shares.length > 0) await handOver(shares);
    n += shares.length;
    start = `(${entries[entries.length - 1][0].toString()}`;
  }
  return n;
}
