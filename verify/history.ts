/**
 * The history of one verifier segment: every client operation and every fault, with the verifier's
 * own wall-clock time (one clock for all events, so "before" means before). The checker
 * (check.ts) reads nothing else; the workload and the nemesis only append.
 */

/** A connection is one MQTT.js client instance: one CONNECT, at most one CONNACK, one close. */
export interface ConnectEvent {
  type: 'connect';
  t: number;
  conn: string;
  /** MQTT client id; several connections may share it (takeover, reconnect). */
  client: string;
  persistent: boolean;
  protocolVersion: 4 | 5;
  /** v5 Session Expiry Interval in seconds (v3.1.1 persistent: no expiry, Infinity). */
  sessionExpirySeconds: number;
  /** 'balancer' or the index of the node it connects to directly (through that node's proxy). */
  via: 'balancer' | number;
  /** Will payload id and topic, if the connection carries a will. */
  will?: { id: string; topic: string };
  /** A slow consumer: stops reading its socket for a while (excluded from latency checks). */
  slow?: boolean;
}

export interface ConnackEvent {
  type: 'connack';
  t: number;
  conn: string;
  client: string;
  sessionPresent: boolean;
}

export interface ConnectFailedEvent {
  type: 'connect-failed';
  t: number;
  conn: string;
  client: string;
  error: string;
}

/**
 * How a connection ended: `disconnect` we sent DISCONNECT (normal, no will); `destroyed` we destroyed
 * the socket without DISCONNECT (abnormal: the will must fire); `lost` the broker or the network ended
 * it (a will may or may not fire).
 */
export type CloseHow = 'disconnect' | 'destroyed' | 'lost';

export interface CloseEvent {
  type: 'close';
  t: number;
  conn: string;
  client: string;
  how: CloseHow;
}

export interface SubscribeEvent {
  type: 'subscribe';
  t: number;
  conn: string;
  client: string;
  filters: string[];
}

export interface SubackEvent {
  type: 'suback';
  t: number;
  conn: string;
  client: string;
  filters: string[];
  /** Reason codes per filter (granted QoS 0-2, or >= 0x80 for failure). */
  codes: number[];
}

export interface PublishEvent {
  type: 'publish';
  t: number;
  conn: string;
  client: string;
  /** Unique message id `publisher:seq`, carried in the payload. */
  id: string;
  topic: string;
  qos: 0 | 1 | 2;
  retain: boolean;
}

/** PUBACK (QoS 1) or PUBREC/PUBCOMP (QoS 2) for a publish; `ok` false when the broker refused it. */
export interface AckEvent {
  type: 'ack';
  t: number;
  conn: string;
  client: string;
  id: string;
  ok: boolean;
}

export interface ReceiveEvent {
  type: 'receive';
  t: number;
  conn: string;
  client: string;
  id: string;
  topic: string;
  qos: number;
  dup: boolean;
  retain: boolean;
}

export interface FaultEvent {
  type: 'fault';
  t: number;
  /** Fault class (see promises.ts). */
  fault: string;
  phase: 'start' | 'end';
  detail: string;
}

export type HistoryEvent =
  | ConnectEvent
  | ConnackEvent
  | ConnectFailedEvent
  | CloseEvent
  | SubscribeEvent
  | SubackEvent
  | PublishEvent
  | AckEvent
  | ReceiveEvent
  | FaultEvent;

/** Bounded append-only log; past `limit` events further ones are counted as dropped. */
export class History {
  readonly events: HistoryEvent[] = [];
  dropped = 0;

  constructor(
    private readonly now: () => number = Date.now,
    private readonly limit = 2_000_000,
  ) {}

  /** Appends an event stamped with the current time. */
  add(event: DistributiveOmit<HistoryEvent, 't'>): void {
    if (this.events.length >= this.limit) {
      this.dropped++;
      return;
    }
    this.events.push({ ...event, t: this.now() } as HistoryEvent);
  }

  /** One JSON object per line, for a results file. */
  toJsonLines(): string {
    return this.events.map((e) => JSON.stringify(e)).join('\n');
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** The payload every workload message carries: its unique id (and padding). */
export function encodePayload(id: string, padding = 0): string {
  return JSON.stringify({ id, pad: 'x'.repeat(padding) });
}

/** The id of a workload payload, or undefined for anything else. */
export function decodePayload(payload: Buffer | string): string | undefined {
  try {
    const v = JSON.parse(payload.toString()) as { id?: unknown };
    return typeof v.id === 'string' ? v.id : undefined;
  } catch {
    return undefined;
  }
}
