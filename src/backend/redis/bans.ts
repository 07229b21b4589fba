/**
 * The bans of a cluster in Redis: one hash (`kind:value` -> the ban as JSON) is the truth, every
 * change is announced on a pub/sub channel (sharded on Redis Cluster) so each node reloads its copy
 * at once and kicks who is banned now; a reload every few seconds makes up for a notice lost in a
 * blip. Flapping counters: one key per client id and window (INCR, expiring with the window), in the
 * client's slot, so they spread over a Redis Cluster.
 */
import type { Clock } from '../../clock.js';
import type { Logger } from '../../observability/logger.js';
import type { Ban, BanStore } from '../types.js';
import type { RedisClient } from './connect.js';
import type { Keys } from './keys.js';
import type { PubSubListener } from './pubsub.js';

/** A missed notice is made up within this. */
const RELOAD_MS = 5000;

export interface RedisBanStoreOptions {
  cmd: RedisClient;
  keys: Keys;
  clock: Clock;
  logger: Logger;
  sharded: boolean;
  pubsub: PubSubListener;
}

export class RedisBanStore implements BanStore {
  private bans: Ban[] = [];
  private readonly listeners: (() => void)[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly o: RedisBanStoreOptions) {}

  current(): readonly Ban[] {
    const now = this.o.clock.now();
    return this.bans.filter((b) => b.until === null || b.until > now);
  }

  async add(ban: Ban): Promise<void> {
    const k = this.o.keys;
    await this.o.cmd.hset(k.bans, `${ban.kind}:${ban.value}`, JSON.stringify(ban));
    await this.announce();
  }

  async remove(kind: Ban['kind'], value: string): Promise<boolean> {
    const removed = (await this.o.cmd.hdel(this.o.keys.bans, `${kind}:${value}`)) === 1;
    if (removed) await this.announce();
    return removed;
  }

  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  async countConnect(clientId: string, windowMs: number): Promise<number> {
    const key = this.o.keys.flapping(clientId, Math.floor(this.o.clock.now() / windowMs));
    const [[, n]] = (await this.o.cmd
      .multi()
      .incr(key)
      .pexpire(key, 2 * windowMs)
      .exec()) as [[Error | null, number]];
    return Number(n);
  }

  async start(): Promise<void> {
    await this.o.pubsub.listen(this.o.keys.bansChannel, () => void this.reload());
    await this.reload();
    // Real time: a reload is I/O (a fake clock jumping ahead in a test must not run one per 5 s skipped).
    this.timer = setInterval(() => void this.reload(), RELOAD_MS);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** This node's copy made current; expired bans are removed from Redis on the way. */
  private async reload(): Promise<void> {
    let raw: Record<string, string>;
    try {
      raw = await this.o.cmd.hgetall(this.o.keys.bans);
    } catch (err) {
      this.o.logger.warn({ event: 'bans.reload_failed', err: String(err) });
      return;
    }
    const now = this.o.clock.now();
    const bans: Ban[] = [];
    const expired: string[] = [];
    for (const [field, json] of Object.entries(raw)) {
      try {
        const ban = JSON.parse(json) as Ban;
        if (ban.until !== null && ban.until <= now) expired.push(field);
        else bans.push(ban);
      } catch {
        expired.push(field); // not a ban this version wrote: dropped
      }
    }
    if (expired.length > 0) this.o.cmd.hdel(this.o.keys.bans, ...expired).catch(() => undefined);
    const changed = JSON.stringify(bans) !== JSON.stringify(this.bans);
    this.bans = bans;
    if (changed) for (const l of this.listeners) l();
  }

  private async announce(): Promise<void> {
    const channel = this.o.keys.bansChannel;
    await (this.o.sharded ? this.o.cmd.spublish(channel, '1') : this.o.cmd.publish(channel, '1'));
    await this.reload();
  }
}
