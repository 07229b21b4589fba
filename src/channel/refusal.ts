/**
 * The last word of a connection, decided in one place: given why it ends (a refused CONNECT, a
 * protocol violation, the server's own decision) and where the channel stands (state, protocol
 * version, Request Problem Information), which packet goes out before the close: a CONNACK with
 * which code, a DISCONNECT with which reason, or none (a bare close). Pure: the packet comes back as
 * data, and the channel encodes it and hands it to its connection. docs/errors.md lists what each
 * error code (src/errors.ts) and each refusal ends up as.
 */
import {
  allowedReasonCodes,
  type ConnackPacket,
  ConnackReturnCode,
  type DisconnectPacket,
  type Properties,
  type ProtocolError,
  type ProtocolVersion,
  ReasonCode,
  toV3ConnackCode,
} from '../protocol/index.js';
import type { ChannelState } from './channel.js';

/** Why a connection ends. */
export type Ending =
  /** A step of the CONNECT flow refused it (client id, will, authentication, quota, cluster claim). */
  | { readonly kind: 'refuse'; readonly reasonCode: number }
  /** The decoder or a flow found a violation. */
  | { readonly kind: 'violation'; readonly error: ProtocolError }
  /** The server ends the connection: takeover, drain, keep-alive, a rate, an administrator, a failure. */
  | {
      readonly kind: 'disconnect';
      readonly reasonCode: number;
      readonly reasonString?: string;
      /** With 0x9C Use another server: where to go (MQTT 5 §4.11). */
      readonly serverReference?: string;
    };

/** What the decision reads of the channel. */
export interface EndingChannel {
  readonly state: ChannelState;
  readonly version: ProtocolVersion;
  /** False when the client asked for no Reason String (Request Problem Information 0). */
  readonly problemInformation: boolean;
}

/** The packet to send before closing, and the protocol version to encode it with. */
export interface FinalPacket {
  readonly packet: ConnackPacket | DisconnectPacket;
  readonly version: ProtocolVersion;
}

/** The packet that goes out before the close, or undefined for a close without one. */
export function finalPacket(ending: Ending, ch: EndingChannel): FinalPacket | undefined {
  switch (ending.kind) {
    case 'refuse':
      return connack(ch.version, ending.reasonCode);
    case 'violation':
      return violation(ending.error, ch);
    case 'disconnect':
      return disconnect(ch, ending.reasonCode, ending.reasonString, ending.serverReference);
  }
}

/** Refusals counted as authentication failures (shoal_auth_failures_total). */
const AUTH_FAILURES: ReadonlySet<number> = new Set([
  ReasonCode.BadUserNameOrPassword,
  ReasonCode.NotAuthorized,
  ReasonCode.BadAuthenticationMethod,
]);

export function isAuthFailure(reasonCode: number): boolean {
  return AUTH_FAILURES.has(reasonCode);
}

/**
 * A refused CONNECT: Session Present 0 [MQTT-3.2.2-6]; 3.x clients get the nearest return code of
 * 3.1.1 (the same decision for every version). Asked for while connecting only.
 */
function connack(version: ProtocolVersion, reasonCode: number): FinalPacket {
  const code = version === 5 ? reasonCode : toV3ConnackCode(reasonCode);
  return { packet: { type: 'connack', sessionPresent: false, reasonCode: code }, version };
}

function violation(err: ProtocolError, ch: EndingChannel): FinalPacket | undefined {
  if (ch.state === 'awaiting-connect' || ch.state === 'connecting') {
    // [MQTT-3.1.2-2] CONNACK 0x01 in the 3.1.1 form (3.1 reads it too): the client's own level is
    // the one the broker does not speak.
    if (err.code === 'UNSUPPORTED_PROTOCOL_VERSION') {
      const packet: ConnackPacket = {
        type: 'connack',
        sessionPresent: false,
        reasonCode: ConnackReturnCode.UnacceptableProtocolVersion,
      };
      return { packet, version: 4 };
    }
    // An MQTT 5 client whose CONNECT was read (enhanced authentication, a packet right behind
    // CONNECT) learns the reason (MQTT 5 §4.13.1). A CONNECT that does not conform, or a 3.x
    // client: close without CONNACK [MQTT-3.1.4-1].
    if (ch.state === 'connecting' && ch.version === 5)
      return connack(5, allowedOr(err.reasonCode, allowedReasonCodes.connack)); // [MQTT-3.2.2-8]
    return undefined;
  }
  // After CONNACK, a CONNECT is a Protocol Error whatever its level [MQTT-3.1.0-2]: 0x84 is a CONNACK
  // code only, never a DISCONNECT reason [MQTT-3.14.2-1].
  return disconnect(ch, allowedOr(err.reasonCode, allowedReasonCodes.disconnect), err.message);
}

/** The violation's own reason code where the packet may carry it, else 0x82 (MQTT 5 §4.13.1). */
function allowedOr(reasonCode: number, allowed: ReadonlySet<number>): number {
  return allowed.has(reasonCode) ? reasonCode : ReasonCode.ProtocolError;
}

/** DISCONNECT is MQTT 5 only, and never before CONNACK [MQTT-3.14.0-1]: 3.x clients see the close. */
function disconnect(
  ch: EndingChannel,
  reasonCode: number,
  reasonString?: string,
  serverReference?: string,
): FinalPacket | undefined {
  if (ch.state !== 'connected' || ch.version !== 5) return undefined;
  // Request Problem Information 0: no Reason String, though DISCONNECT may carry one [MQTT-3.1.2-29].
  let properties: Properties | undefined =
    reasonString !== undefined && ch.problemInformation ? { reasonString } : undefined;
  if (serverReference !== undefined) properties = { ...properties, serverReference };
  return { packet: { type: 'disconnect', reasonCode, properties }, version: 5 };
}
