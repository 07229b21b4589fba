/**
 * Delayed messages of a cluster in Redis (docs/extensions.md "Delayed publish"): a schedule (ZSET id
 * -> due ms on Redis' clock), the bodies (HASH) and the firing set (ZSET id -> lease end). Any node
 * takes due messages with one script (never two nodes the same one), publishes them and says so;
 * a node that dies while publishing leaves its lease to run out, and another node publishes them.
 */
import { randomBytes } from 'node:crypto';
import type { Message } from '../../message.js';
import { decodeMessage, encodeMessage } from '../record.js';
import type { DelayedMessage, DelayedStore } from '../types.js';
import type { RedisClient } from './connect.js';
import type { Keys } from './keys.js';
import { scripts } from './scripts.js';

export class RedisDelayedStore implements DelayedStore {
  size = 0;
  private readonly run = randomBytes(4).toString('hex');
  private seq = 0;

  constructor(
    private readonly cmd: RedisClient,
    private readonly keys: Keys,
  ) {}

  async add(message: Message, delayMs: number, max: number): Promise<string | false> {
    const k = this.keys;
    const id = `${Date.now().toString(36)}-${this.run}-${++this.seq}`;
    const stored = await scripts.delayedAdd.run(
      this.cmd,
      [k.delayed, k.delayedMessages, k.delayedFiring],
      id,
      encodeMessage(message),
      Math.max(0, Math.round(delayMs)),
      max,
    );
    if (Number(stored) !== 1) return false;
    this.size++;
    return id;
  }

  async take(limit: number, leaseMs: number): Promise<DelayedMessage[]> {
    const k = this.keys;
    const reply = (await scripts.delayedTake.run(
      this.cmd,
      [k.delayed, k.delayedMessages, k.delayedFiring],
      limit,
      leaseMs,
    )) as (Buffer | number)[];
    this.size = Number(reply[0]);
    const out: DelayedMessage[] = [];
    for (let i = 1; i + 2 < reply.length; i += 3) {
      out.push({
        id: reply[i].toString(),
        dueAt: Number(reply[i + 1].toString()),
        message: decodeMessage(reply[i + 2] as Buffer),
      });
    }
    return out;
  }

  async done(ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return;
    const k = this.keys;
    await scripts.delayedDone.run(this.cmd, [k.delayedMessages, k.delayedFiring], ...ids);
  }

  async list(limit: number, after?: string): Promise<DelayedMessage[]> {
    const k = this.keys;
    let start = 0;
    if (after !== undefined) {
      const rank = await this.cmd.zrank(k.delayed, after);
      start = rank === null ? 0 : rank + 1;
    }
    const flat = await this.cmd.zrange(k.delayed, start, start + limit - 1, 'WITHSCORES');
    const ids: string[] = [];
    const due: number[] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) {
      ids.push(flat[i]);
      due.push(Number(flat[i + 1]));
    }
    if (ids.length === 0) return [];
    const bodies = await this.cmd.hmgetBuffer(k.delayedMessages, ...ids);
    const out: DelayedMessage[] = [];
    for (let i = 0; i < ids.length; i++) {
      const body = bodies[i];
      if (body !== null) out.push({ id: ids[i], dueAt: due[i], message: decodeMessage(body) });
    }
    return out;
  }

  async cancel(id: string): Promise<boolean> {
    const k = this.keys;
    const removed =
      Number(await scripts.delayedCancel.run(this.cmd, [k.delayed, k.delayedMessages], id)) === 1;
    if (removed) this.size = Math.max(0, this.size - 1);
    return removed;
  }
}
