/**
 * What a channel needs from the rest of the broker: a narrow view, so the MQTT state machine can be
 * driven in tests without sockets and the broker behind it can be single-node or clustered.
 */
import type { AuthHooks } from '../auth/types.js';
import type { RetainedStore } from '../backend/types.js';
import type { Message } from '../broker/message.js';
import type { BrokerOptions } from '../broker/options.js';
import type { Clock } from '../clock.js';
import type { Logger } from '../observability/logger.js';
import type { Session, SubscriptionOptions } from '../session/session.js';
import type { Channel } from './channel.js';

/** Counters the channel bumps on its hot path (plain fields: no per-message metric calls). */
export interface Counters {
  messagesReceived: number;
  messagesSent: number;
  bytesReceived: number;
  bytesSent: number;
  dropped: Record<string, number>;
}

export interface OpenedSession {
  session: Session;
  /** CONNACK Session Present. */
  present: boolean;
}

export interface ChannelContext {
  readonly options: BrokerOptions;
  readonly clock: Clock;
  readonly auth: AuthHooks;
  readonly logger: Logger;
  readonly counters: Counters;
  readonly retained: RetainedStore;
  /** A fresh client identifier for a client that sent an empty one [MQTT-3.1.3-6]. */
  assignClientId(): string;
  /**
   * Makes `channel` the owner of its client id: closes any other connection with the same id
   * (DISCONNECT 0x8E) and opens, resumes or replaces the session [MQTT-3.1.4-2..4].
   */
  openSession(channel: Channel, clean: boolean, expirySeconds: number): OpenedSession;
  /**
   * Routes a message to every matching subscription; returns how many deliveries it started.
   * `accepted` (QoS >= 1) is called, maybe synchronously, once the message is safe to acknowledge.
   */
  publish(message: Message, accepted?: (err?: Error) => void): number;
  subscribe(
    session: Session,
    raw: string,
    filter: string,
    group: string | null,
    options: SubscriptionOptions,
  ): void;
  unsubscribe(session: Session, raw: string): boolean;
  /**
   * The connection of `channel` has ended. `will` is the message to publish (after its delay), or
   * undefined after a normal DISCONNECT.
   */
  channelClosed(channel: Channel, will: PendingWill | undefined): void;
}

export interface PendingWill {
  message: Message;
  /** Will Delay Interval in seconds (MQTT 5 3.1.3.2.2). */
  delaySeconds: number;
  /** Message Expiry Interval of the will, applied when it is published. */
  expirySeconds?: number;
}
