/**
 * The subscriptions of a node's pub/sub connection (sharded pub/sub on Redis Cluster): its inbox's
 * QoS 0 channel, its control channel (control.ts) and the route-applied nudges (route-sync.ts).
 */
import type { RedisClient } from './connect.js';

export class PubSubListener {
  /** Pub/sub channels this node listens to, and their handlers (listen()). */
  private readonly channels = new Map<string, (msg: Buffer) => void>();

  constructor(
    private readonly sub: RedisClient,
    private readonly sharded: boolean,
  ) {}

  /**
   * Subscribes the pub/sub connection to `channel` (sharded on Redis Cluster). One listener on the
   * connection hands each message to its channel's handler, so channels never see each other's.
   */
  async listen(channel: string, handler: (msg: Buffer) => void): Promise<void> {
    if (this.channels.size === 0) {
      const dispatch = (ch: Buffer, msg: Buffer) => this.channels.get(ch.toString())?.(msg);
      this.sub.on(this.sharded ? 'smessageBuffer' : 'messageBuffer', dispatch);
    }
    this.channels.set(channel, handler);
    if (this.sharded) await this.sub.ssubscribe(channel);
    else await this.sub.subscribe(channel);
  }
}
