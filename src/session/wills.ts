/**
 * The wills of one node's connections once they are due or delayed (MQTT 5 3.1.3.2.2): the delayed
 * ones and their timers, the take from the cluster that makes a will go out once, and its publish,
 * tried again in cluster mode until the cluster accepts it. The session manager decides when a will
 * is due; the broker's publish pipeline routes it (a port).
 */
import { randomBytes } from 'node:crypto';
import type { ClusterBackend } from '../backend/types.js';
import type { Clock, TimerHandle } from '../clock.js';
import type { Message } from '../message.js';
import type { Logger } from '../observability/logger.js';

export interface PendingWill {
  message: Message;
  /** Will Delay Interval in seconds (MQTT 5 3.1.3.2.2). */
  delaySeconds: number;
  /** Message Expiry Interval of the will, applied when it is published. */
  expirySeconds?: number;
  /** The epoch of the connection it belongs to (it is taken from the store under it). */
  epoch?: number;
  /** Settles once the will is stored (the hub, the disk or Redis); it is taken only after that. */
  stored?: Promise<void>;
}

/** What the wills need of the backend: taking a will once. */
export type WillCluster = Pick<ClusterBackend, 'takeWill'>;

export interface WillsDeps {
  clock: Clock;
  logger: Logger;
  cluster: WillCluster;
  /** Routes a message like a client's PUBLISH (the broker's pipeline); `accepted` as there. */
  publish(message: Message, accepted?: (err?: Error) => void): number;
  /** The node is draining: a refused will is not published again. */
  closing(): boolean;
}

/** A refused will is published again this many times at most, this far apart (~30 s in all). */
const WILL_PUBLISH_ATTEMPTS = 60;
const WILL_RETRY_MS = 500;

export class Wills {
  private readonly delayed = new Map<string, { will: PendingWill; timer: TimerHandle }>();

  constructor(private readonly d: WillsDeps) {}

  /** A will of a closed connection: sent after its delay or when the session ends, whichever is first. */
  schedule(id: string, will: PendingWill, sessionExpirySeconds: number): void {
    const delay = Math.min(will.delaySeconds, sessionExpirySeconds);
    if (delay === 0) {
      this.fire(id, will);
      return;
    }
    this.cancel(id);
    const timer = this.d.clock.setTimeout(() => {
      this.delayed.delete(id);
      this.fire(id, will);
    }, delay * 1000);
    this.delayed.set(id, { will, timer });
  }

  /** The delayed will of `id`, if any, is not sent. */
  cancel(id: string): void {
    const pending = this.delayed.get(id);
    if (pending !== undefined) {
      pending.timer.cancel();
      this.delayed.delete(id);
    }
  }

  /** Cancels the delayed will of `id` if it belongs to a connection older than `epoch`. */
  cancelOlder(id: string, epoch: number): void {
    const pending = this.delayed.get(id);
    if (pending !== undefined && (pending.will.epoch ?? 0) < epoch) this.cancel(id);
  }

  /** The session of `id` ended: its delayed will, if any, goes out now. */
  sessionEnded(id: string): void {
    const pending = this.delayed.get(id);
    if (pending !== undefined) {
      pending.timer.cancel();
      this.delayed.delete(id);
      this.fire(id, pending.will);
    }
  }

  /** Stops every delay timer (shutdown): those wills are not sent. */
  stop(): void {
    for (const w of this.delayed.values()) w.timer.cancel();
    this.delayed.clear();
  }

  /**
   * A will of a connection of this node is due. In cluster mode it is taken from Redis first, so it
   * goes out once even if a survivor or a new owner could also send it (guarantee 4).
   */
  private fire(id: string, will: PendingWill): void {
    const cluster = this.d.cluster;
    if (will.epoch === undefined) {
      this.publish(will);
      return;
    }
    const epoch = will.epoch;
    (will.stored ?? Promise.resolve())
      .then(() => cluster.takeWill(id, epoch))
      .then(
        (taken) => {
          if (taken) this.publish(will);
        },
        (err: Error) => {
          // Redis unreachable: better twice than never for a will.
          this.d.logger.warn({ event: 'will.untracked', clientId: id, err: err.message });
          this.publish(will);
        },
      );
  }

  /**
   * Publishes a will. In cluster mode a QoS >= 1 will whose routing the cluster refused (e.g. a
   * replica could not confirm it in a Redis failover: the write may be discarded with the former
   * master) is published again until accepted; nobody else holds it any more. Under one dedupe id,
   * so a subscriber that got an earlier attempt does not get it twice.
   */
  publish(will: PendingWill): void {
    const { clock, logger } = this.d;
    const message: Message = { ...will.message };
    if (will.expirySeconds !== undefined) message.expiresAt = clock.now() + will.expirySeconds * 1000;
    logger.debug({ event: 'will.published', clientId: message.origin, topic: message.topic });
    if (message.qos === 0) {
      this.d.publish(message);
      return;
    }
    message.dedupe = `will.${randomBytes(9).toString('base64url')}`;
    let attempts = 0;
    const attempt = () =>
      this.d.publish({ ...message }, (err) => {
        if (err === undefined) return;
        if (++attempts >= WILL_PUBLISH_ATTEMPTS || this.d.closing()) {
          logger.warn({ event: 'will.not_published', clientId: message.origin, err: err.message });
          return;
        }
        clock.setTimeout(attempt, WILL_RETRY_MS);
      });
    attempt();
  }
}
