/**
 * The one error family of the wire protocol: every violation the decoder or a channel finds is a
 * ProtocolError carrying the MQTT 5 reason code to send (CONNACK or DISCONNECT) and a stable `code`.
 * PROTOCOL_ERRORS declares each code once; src/errors.ts registers them with Shoal's other codes.
 */
import { ReasonCode } from './reason-codes.js';

/** A protocol error code: the reason code it is sent with and what it means (docs/errors.md). */
export interface ProtocolErrorSpec {
  readonly reasonCode: number;
  readonly meaning: string;
}

export const PROTOCOL_ERRORS = {
  MALFORMED_PACKET: {
    reasonCode: ReasonCode.MalformedPacket,
    meaning: 'a packet that does not parse: its length, flags, a field, a property or a string is invalid',
  },
  PROTOCOL_ERROR: {
    reasonCode: ReasonCode.ProtocolError,
    meaning: 'a well-formed packet the protocol does not allow where it came',
  },
  PACKET_TOO_LARGE: {
    reasonCode: ReasonCode.PacketTooLarge,
    meaning: 'a packet above mqtt.maxPacketSizeBytes, refused from its fixed header',
  },
  UNSUPPORTED_PROTOCOL_VERSION: {
    reasonCode: ReasonCode.UnsupportedProtocolVersion,
    meaning: 'a CONNECT with a protocol level other than 3 (MQIsdp), 4 or 5 (MQTT)',
  },
  // [MQTT-3.1.2-1] an unknown protocol name: the server may close without CONNACK.
  UNSUPPORTED_PROTOCOL_NAME: {
    reasonCode: ReasonCode.UnsupportedProtocolVersion,
    meaning: 'a CONNECT whose protocol name is neither MQTT nor MQIsdp',
  },
  TOPIC_NAME_INVALID: {
    reasonCode: ReasonCode.TopicNameInvalid,
    meaning: 'a PUBLISH whose topic is not a valid Topic Name',
  },
  TOPIC_ALIAS_INVALID: {
    reasonCode: ReasonCode.TopicAliasInvalid,
    meaning: 'a Topic Alias of 0 or above the Topic Alias Maximum of CONNACK',
  },
  RECEIVE_MAXIMUM_EXCEEDED: {
    reasonCode: ReasonCode.ReceiveMaximumExceeded,
    meaning: 'more unacknowledged QoS 2 PUBLISH packets than the Receive Maximum of CONNACK',
  },
  QOS_NOT_SUPPORTED: {
    reasonCode: ReasonCode.QoSNotSupported,
    meaning: 'a PUBLISH above the Maximum QoS of CONNACK (mqtt.maximumQoS)',
  },
  RETAIN_NOT_SUPPORTED: {
    reasonCode: ReasonCode.RetainNotSupported,
    meaning: 'a PUBLISH with RETAIN 1 while retained messages are disabled',
  },
  PAYLOAD_FORMAT_INVALID: {
    reasonCode: ReasonCode.PayloadFormatInvalid,
    meaning: 'a QoS 0 PUBLISH marked as UTF-8 (Payload Format Indicator 1) whose payload is not',
  },
  SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED: {
    reasonCode: ReasonCode.SubscriptionIdentifiersNotSupported,
    meaning: 'a SUBSCRIBE with a Subscription Identifier while they are disabled',
  },
} as const satisfies Record<string, ProtocolErrorSpec>;

export type ProtocolErrorCode = keyof typeof PROTOCOL_ERRORS;

export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
  /** The MQTT 5 reason code for the DISCONNECT (or CONNACK) that ends the connection. */
  readonly reasonCode: number;

  constructor(
    readonly code: ProtocolErrorCode,
    message: string,
  ) {
    super(message);
    this.reasonCode = PROTOCOL_ERRORS[code].reasonCode;
  }
}

export const malformed = (message: string): ProtocolError => new ProtocolError('MALFORMED_PACKET', message);
export const protocolError = (message: string): ProtocolError => new ProtocolError('PROTOCOL_ERROR', message);
