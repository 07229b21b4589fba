/**
 * The one error family of the wire protocol: every violation the decoder or a channel finds is a
 * ProtocolError carrying the MQTT 5 reason code to send (CONNACK or DISCONNECT) and a stable `code`.
 */
import { ReasonCode } from './reason-codes.js';

export type ProtocolErrorCode =
  | 'MALFORMED_PACKET'
  | 'PROTOCOL_ERROR'
  | 'PACKET_TOO_LARGE'
  | 'UNSUPPORTED_PROTOCOL_VERSION'
  | 'UNSUPPORTED_PROTOCOL_NAME'
  | 'TOPIC_NAME_INVALID'
  | 'TOPIC_ALIAS_INVALID'
  | 'RECEIVE_MAXIMUM_EXCEEDED'
  | 'PACKET_ID_IN_USE'
  | 'QOS_NOT_SUPPORTED'
  | 'RETAIN_NOT_SUPPORTED'
  | 'PAYLOAD_FORMAT_INVALID'
  | 'SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED';

const reasonOf: Record<ProtocolErrorCode, number> = {
  MALFORMED_PACKET: ReasonCode.MalformedPacket,
  PROTOCOL_ERROR: ReasonCode.ProtocolError,
  PACKET_TOO_LARGE: ReasonCode.PacketTooLarge,
  UNSUPPORTED_PROTOCOL_VERSION: ReasonCode.UnsupportedProtocolVersion,
  // [MQTT-3.1.2-1] an unknown protocol name: the server may close without CONNACK.
  UNSUPPORTED_PROTOCOL_NAME: ReasonCode.UnsupportedProtocolVersion,
  TOPIC_NAME_INVALID: ReasonCode.TopicNameInvalid,
  TOPIC_ALIAS_INVALID: ReasonCode.TopicAliasInvalid,
  RECEIVE_MAXIMUM_EXCEEDED: ReasonCode.ReceiveMaximumExceeded,
  PACKET_ID_IN_USE: ReasonCode.PacketIdentifierInUse,
  QOS_NOT_SUPPORTED: ReasonCode.QoSNotSupported,
  RETAIN_NOT_SUPPORTED: ReasonCode.RetainNotSupported,
  PAYLOAD_FORMAT_INVALID: ReasonCode.PayloadFormatInvalid,
  SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED: ReasonCode.SubscriptionIdentifiersNotSupported,
};

export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
  /** The MQTT 5 reason code for the DISCONNECT (or CONNACK) that ends the connection. */
  readonly reasonCode: number;

  constructor(
    readonly code: ProtocolErrorCode,
    message: string,
  ) {
    super(message);
    this.reasonCode = reasonOf[code];
  }
}

export const malformed = (message: string): ProtocolError => new ProtocolError('MALFORMED_PACKET', message);
export const protocolError = (message: string): ProtocolError => new ProtocolError('PROTOCOL_ERROR', message);
