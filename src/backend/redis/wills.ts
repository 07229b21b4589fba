/**
 * Wills in a cluster (guarantee 4): a connection's will is stored in its owner hash (fenced by the
 * connection's epoch) and indexed per node (`clientId\nepoch`, so one connection's entry never
 * removes another's); it is taken once cluster-wide (will-take.lua) by whoever publishes it. The wills
 * of a dead node go into a sorted set scored by their due time on Redis' clock, which every live
 * node polls: a will outlives the node that held its connection and the survivor that reaped it.
 * A will's store is made again while Redis refuses it; with `cluster.replicaAcks`, storing a will
 * and taking it count once a Redis replica holds the change (a failover must neither lose a stored
 * will nor bring back one a DISCONNECT dropped): a write WAIT cannot confirm is made again, for as
 * long as REPLICATION_RETRIES allow.
 * Also the durable half of takeover kicks: a list per node that it drains every tick, so a lost
 * pub/sub kick still closes the old connection.
 */

import type { Clock } from '../../clock.js';
import type { Message } from '../../message.js';
import type { Logger } from '../../observability/logger.js';
import { decodeMessage, encodeMessage } from '../record.js';
import type { StoredWill } from '../types.js';
import type { RedisClient } from './connect.js';
import type { Keys } from './keys.js';
import { scripts } from './scripts.js';

/** Due wills taken per poll, and kicks per drain: bounded work per tick. */
const BATCH = 100;

/** Times a will's store or take is made again while no replica confirms it, and the pause between. */
const REPLICATION_RETRIES = 20;
const REPLICATION_RETRY_MS = 250;

export interface WillsOptions {
  cmd: RedisClient;
  keys: Keys;
  nodeId: string;
  clock: Clock;
  logger: Logger;
  /** cluster.replicaAcks: resolves once Redis replicas hold the writes made so far to `key`'s slot. */
  replicated?: (key: string) => Promise<void>;
  /** Publishes a will this node took. */
  publish(will: StoredWill): void;
  /** A kick from the list: close the local connection of `clientId` older than `epoch`. */
  release(clientId: string, epoch: number): void;
}

export class RedisWills {
  constructor(private readonly o: WillsOptions) {}

  /**
   * Stores a connection's will; resolves once stored (and replicated, with replicaAcks), or refused
   * (the connection lost the id). Whatever takes the will waits for this.
   */
  store(clientId: string, epoch: number, will: StoredWill): Promise<void> {
    const k = this.o.keys;
    // The index first, the will second: once the will is in Redis a reaper can find it (an index
    // entry without a will, if this node dies in between, is skipped).
    const write = () =>
      this.o.cmd
        .sadd(k.nodeWills(this.o.nodeId), entry(clientId, epoch))
        .then(() =>
          scripts.willSet.run(
            this.o.cmd,
            [k.owner(clientId)],
            String(epoch),
            encodeWill(will),
            String(will.delaySeconds),
          ),
        );
    return this.durably(k.owner(clientId), clientId, write, false);
  }

  /**
   * Takes the will of connection `epoch` (once cluster-wide); true when this call took it. With
   * replicaAcks the take is made again until a replica holds it (in the background: the caller
   * publishes at once), so a failover cannot bring the will back for another node to fire.
   */
  async take(clientId: string, epoch: number): Promise<boolean> {
    const owner = this.o.keys.owner(clientId);
    const write = () => scripts.willTake.run(this.o.cmd, [owner], String(epoch));
    const taken = await write();
    // The connection's will is done (taken here, by a claim, or never stored): its index entry goes.
    this.o.cmd.srem(this.o.keys.nodeWills(this.o.nodeId), entry(clientId, epoch)).catch(() => undefined);
    if (this.o.replicated !== undefined) void this.durably(owner, clientId, write, true);
    return taken !== null;
  }

  /**
   * Makes the idempotent `write` (`written`: made once already) until Redis took it and, with
   * replicaAcks, a replica holds the writes to `key`'s slot: a write Redis refused (e.g. MOVED from
   * a shard failing over: ioredis#2075) or WAIT could not confirm (the master that took it may be
   * failing over) is made again, REPLICATION_RETRIES times at most. Never rejects: gives up logged.
   */
  private async durably(
    key: string,
    clientId: string,
    write: () => Promise<unknown>,
    written: boolean,
  ): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        if (!written || attempt > 0) await write();
        if (this.o.replicated !== undefined) await this.o.replicated(key);
        return;
      } catch (err) {
        if (attempt >= REPLICATION_RETRIES) {
          this.o.logger.warn({ event: 'cluster.will_write_failed', clientId, err: (err as Error).message });
          return;
        }
      }
      await new Promise<void>((resolve) => this.o.clock.setTimeout(resolve, REPLICATION_RETRY_MS));
    }
  }

  /**
   * A dead node's wills (those of run `admits`' incarnations) go into the due set, each at its
   * delay from now on Redis' clock; fired by whichever node polls first. Returns how many.
   */
  async reap(node: string, admits: (incarnation: string) => boolean): Promise<number> {
    // (`admits`: the reaping fence; a client claimed since by another run of the node is left alone.)
    const k = this.o.keys;
    const entries = await this.o.cmd.smembers(k.nodeWills(node));
    let n = 0;
    const done: string[] = [];
    for (const e of entries) {
      const clientId = clientOf(e);
      const [owner, epoch, will, delay, inc] = await this.o.cmd.hmget(
        k.owner(clientId),
        'node',
        'epoch',
        'will',
        'wdelay',
        'inc',
      );
      if (owner === node && !admits(inc ?? '')) continue;
      done.push(e);
      if (owner !== node || epoch === null || will === null) continue;
      n++;
      await scripts.dueWillAdd.run(
        this.o.cmd,
        [k.dueWills],
        entry(clientId, Number(epoch)),
        Number(delay ?? '0') * 1000,
      );
    }
    if (done.length > 0) await this.o.cmd.srem(k.nodeWills(node), ...done);
    if (n > 0) await this.fireDue();
    return n;
  }

  /** Publishes the due wills of dead nodes (each taken once cluster-wide), then forgets them. */
  async fireDue(): Promise<void> {
    const k = this.o.keys;
    const due = await scripts.dueWills.run(this.o.cmd, [k.dueWills], BATCH);
    for (const e of due) {
      const clientId = clientOf(e);
      const epoch = e.slice(clientId.length + 1);
      // With the session key: a dead node's connection, its owner hash may expire (owner-linger.lua).
      const will = await scripts.willTake.run(this.o.cmd, [k.owner(clientId), k.session(clientId)], epoch);
      // Taken (or gone: resumed within the delay, taken over): off the set either way.
      await this.o.cmd.zrem(k.dueWills, e);
      if (will !== null) this.o.publish(decodeWill(will));
    }
  }

  /** Asks `node` to close its connection of `clientId` older than `epoch`, durably (its kick list). */
  kick(node: string, clientId: string, epoch: number, keepMs: number): void {
    const key = this.o.keys.kicks(node);
    this.o.cmd
      .multi()
      .rpush(key, entry(clientId, epoch))
      .ltrim(key, -10_000, -1)
      .pexpire(key, keepMs)
      .exec()
      .catch(() => undefined);
  }

  /** Closes the connections other nodes took over from this one (kicks that pub/sub may have lost). */
  async drainKicks(): Promise<void> {
    const key = this.o.keys.kicks(this.o.nodeId);
    for (let round = 0; round < 10; round++) {
      const kicks = (await this.o.cmd.lpop(key, BATCH)) ?? [];
      for (const e of kicks) {
        const clientId = clientOf(e);
        this.o.release(clientId, Number(e.slice(clientId.length + 1)));
      }
      if (kicks.length < BATCH) return;
    }
  }
}

/** `clientId\nepoch` (a client id may hold a newline: the epoch is after the last one). */
function entry(clientId: string, epoch: number): string {
  return `${clientId}\n${epoch}`;
}

function clientOf(e: string): string {
  const nl = e.lastIndexOf('\n');
  return nl < 0 ? e : e.slice(0, nl);
}

/** Whether a reaper's incarnation fence ('=R', '!R' or '': session-orphan.lua) admits run `inc`'s claim. */
export function fenceAdmits(fence: string, inc: string): boolean {
  if (fence === '') return true;
  return (fence[0] === '=') === (inc === fence.slice(1));
}

/** A will in Redis: the message with its expiry carried as Message Expiry Interval. */
export function encodeWill(will: StoredWill): Buffer {
  const m: Message = { ...will.message };
  if (will.expirySeconds !== undefined)
    m.properties = { ...m.properties, messageExpiryInterval: will.expirySeconds };
  return encodeMessage(m);
}

export function decodeWill(buf: Buffer): StoredWill {
  const message = decodeMessage(Buffer.from(buf));
  const expirySeconds = message.properties?.messageExpiryInterval;
  if (message.properties !== undefined) {
    const { messageExpiryInterval: _drop, ...rest } = message.properties;
    message.properties = Object.keys(rest).length > 0 ? rest : undefined;
  }
  return { message, delaySeconds: 0, expirySeconds };
}
