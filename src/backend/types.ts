/**
 * The seams between MQTT behaviour and where state lives. The broker talks only to these interfaces;
 * `memory/` implements them for a single node and the cluster backends (Redis) implement the same
 * contracts (test/contract/ runs one suite against every implementation).
 */
import type { Message } from '../broker/message.js';

/** Retained messages by topic (MQTT 3.3.1.3): last writer wins, an empty payload deletes. */
export interface RetainedStore {
  /** Stores `message` as the retained message of its topic, or deletes it when the payload is empty [MQTT-3.3.1-6] [MQTT-3.3.1-7]. */
  set(message: Message): void;
  get(topic: string): Message | undefined;
  /** Visits every retained message whose topic `filter` matches; expired ones are removed instead. */
  match(filter: string, visit: (message: Message) => void): void;
  readonly size: number;
}
