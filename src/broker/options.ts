/**
 * What the broker can be told: MQTT limits and capabilities, with production defaults. The config
 * schema (src/config) exposes these under `mqtt.*`; units are in the names.
 */
import type { QoS } from '../protocol/index.js';

export interface BrokerOptions {
  /** Largest packet accepted from a client, fixed header included (CONNACK Maximum Packet Size). */
  maxPacketSizeBytes: number;
  /** In-flight QoS 1/2 PUBLISH packets a client may send before acknowledgement (CONNACK Receive Maximum). */
  receiveMaximum: number;
  /** Topic aliases a client may use towards the broker (CONNACK Topic Alias Maximum); 0 disables. */
  topicAliasMaximum: number;
  /** Upper bound on the keep-alive a client may ask for; 0 means no bound. Sent as Server Keep Alive. */
  maxKeepAliveSeconds: number;
  /** Highest QoS the broker accepts from publishers and grants to subscribers. */
  maximumQoS: QoS;
  retainAvailable: boolean;
  wildcardSubscriptionAvailable: boolean;
  subscriptionIdentifiersAvailable: boolean;
  sharedSubscriptionAvailable: boolean;
  /** Upper bound on a session's expiry interval; 0xFFFFFFFF = never expires. */
  maxSessionExpirySeconds: number;
  /** QoS 1/2 messages kept per session while its client is offline or its window is full. */
  maxQueuedMessages: number;
  /**
   * Most unacknowledged QoS 1/2 messages towards one client: its window grows up to it while its
   * acknowledgements keep pace (the client's Receive Maximum may lower it). src/channel/window.ts.
   */
  maxInflightMessages: number;
  /** The window of a new connection, and of one whose client stopped acknowledging for a second. */
  initialInflightMessages: number;
  /** Bytes in flight to one client (payload + topic + 128 each) past which its window sends nothing more. */
  maxInflightBytes: number;
  /** Time a new connection has to send CONNECT. */
  connectTimeoutMs: number;
  /**
   * Outbound bytes buffered for one client above which QoS 0 to it is dropped and reading from it pauses.
   * Must be at least the socket write high-water mark (64 KiB): only above it does the socket emit the
   * 'drain' that resumes the client (the config schema enforces the floor).
   */
  slowClientBufferBytes: number;
  /** Interval of the $SYS/broker topics; 0 disables them. */
  sysIntervalSeconds: number;
  /** Longest client identifier accepted (bytes). */
  maxClientIdLength: number;
}

export const defaultBrokerOptions: Readonly<BrokerOptions> = Object.freeze({
  maxPacketSizeBytes: 1024 * 1024,
  receiveMaximum: 1024,
  topicAliasMaximum: 64,
  maxKeepAliveSeconds: 0,
  maximumQoS: 2,
  retainAvailable: true,
  wildcardSubscriptionAvailable: true,
  subscriptionIdentifiersAvailable: true,
  sharedSubscriptionAvailable: true,
  maxSessionExpirySeconds: 0xffffffff,
  maxQueuedMessages: 1000,
  maxInflightMessages: 65535,
  initialInflightMessages: 100,
  maxInflightBytes: 1024 * 1024,
  connectTimeoutMs: 10_000,
  slowClientBufferBytes: 4 * 1024 * 1024,
  sysIntervalSeconds: 10,
  maxClientIdLength: 256,
});
