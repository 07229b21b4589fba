/**
 * Parses the body of one control packet whose fixed header has been read. Pure: a buffer range in,
 * a packet out, or a ProtocolError naming the rule that was broken.
 */
import { malformed, ProtocolError, protocolError } from './errors.js';
import type {
  AuthPacket,
  ConnackPacket,
  ConnectPacket,
  DisconnectPacket,
  Packet,
  Properties,
  ProtocolVersion,
  PublishPacket,
  QoS,
  SubackPacket,
  SubscribePacket,
  Subscription,
  UnsubackPacket,
  UnsubscribePacket,
  Will,
} from './packets.js';
import { Reader } from './primitives.js';
import { readProperties } from './properties.js';
import { allowedReasonCodes, allowedV4SubackCodes } from './reason-codes.js';

type AckType = 'puback' | 'pubrec' | 'pubrel' | 'pubcomp';
const ackTypes: Record<number, AckType> = { 4: 'puback', 5: 'pubrec', 6: 'pubrel', 7: 'pubcomp' };

/**
 * @param first the first byte of the fixed header (type and flags)
 * @param version the connection's protocol level; a CONNECT carries its own
 */
export function parsePacket(
  first: number,
  buf: Buffer,
  start: number,
  end: number,
  version: ProtocolVersion,
): Packet {
  const code = first >> 4;
  const flags = first & 0x0f;
  const r = new Reader(buf, start, end);
  switch (code) {
    case 1:
      expectFlags(flags, 0, 'CONNECT');
      return parseConnect(r);
    case 2:
      expectFlags(flags, 0, 'CONNACK');
      return parseConnack(r, version);
    case 3:
      return parsePublish(r, flags, version);
    case 4:
    case 5:
    case 7:
      expectFlags(flags, 0, ackTypes[code].toUpperCase());
      return parseAck(r, ackTypes[code], version);
    case 6:
      expectFlags(flags, 2, 'PUBREL'); // [MQTT-3.6.1-1]
      return parseAck(r, 'pubrel', version);
    case 8:
      expectFlags(flags, 2, 'SUBSCRIBE'); // [MQTT-3.8.1-1]
      return parseSubscribe(r, version);
    case 9:
      expectFlags(flags, 0, 'SUBACK');
      return parseSuback(r, version);
    case 10:
      expectFlags(flags, 2, 'UNSUBSCRIBE'); // [MQTT-3.10.1-1]
      return parseUnsubscribe(r, version);
    case 11:
      expectFlags(flags, 0, 'UNSUBACK');
      return parseUnsuback(r, version);
    case 12:
      expectFlags(flags, 0, 'PINGREQ');
      expectEmpty(r, 'PINGREQ');
      return { type: 'pingreq' };
    case 13:
      expectFlags(flags, 0, 'PINGRESP');
      expectEmpty(r, 'PINGRESP');
      return { type: 'pingresp' };
    case 14:
      expectFlags(flags, 0, 'DISCONNECT');
      return parseDisconnect(r, version);
    case 15:
      if (version < 5) throw malformed('packet type 15 is reserved before MQTT 5');
      expectFlags(flags, 0, 'AUTH');
      return parseAuth(r);
    default:
      throw malformed('packet type 0 is reserved');
  }
}

/** [MQTT-2.1.3-1] reserved flag bits must have the values the spec lists. */
function expectFlags(flags: number, expected: number, name: string): void {
  if (flags !== expected) throw malformed(`${name} has invalid fixed header flags 0x${flags.toString(16)}`);
}

function expectEmpty(r: Reader, name: string): void {
  if (r.remaining !== 0) throw malformed(`${name} must have no body`);
}

function expectEnd(r: Reader, name: string): void {
  if (r.remaining !== 0) throw malformed(`${name} has ${r.remaining} unexpected trailing bytes`);
}

function packetId(r: Reader, name: string): number {
  const id = r.u16(`the ${name} packet identifier`);
  if (id === 0) throw malformed(`${name} packet identifier must be non-zero`); // [MQTT-2.2.1-3]
  return id;
}

function reasonCode(r: Reader, allowed: ReadonlySet<number>, name: string): number {
  const code = r.u8(`the ${name} reason code`);
  if (!allowed.has(code)) throw malformed(`${name} reason code 0x${code.toString(16)} is not allowed`);
  return code;
}

function parseConnect(r: Reader): ConnectPacket {
  const protocolName = r.utf8('the protocol name');
  const level = r.u8('the protocol level');
  if (protocolName !== 'MQTT' && protocolName !== 'MQIsdp') {
    // [MQTT-3.1.2-1]
    throw new ProtocolError('UNSUPPORTED_PROTOCOL_NAME', `unsupported protocol name "${protocolName}"`);
  }
  if ((protocolName === 'MQTT' && level !== 4 && level !== 5) || (protocolName === 'MQIsdp' && level !== 3)) {
    // [MQTT-3.1.2-2] answered with CONNACK 0x01 (channel/refusal.ts)
    throw new ProtocolError(
      'UNSUPPORTED_PROTOCOL_VERSION',
      `unsupported protocol level ${level} for ${protocolName}`,
    );
  }
  const version = level as ProtocolVersion;
  const flags = r.u8('the connect flags');
  if (flags & 0x01) throw malformed('the reserved connect flag must be 0'); // [MQTT-3.1.2-3]
  const clean = (flags & 0x02) !== 0;
  const hasWill = (flags & 0x04) !== 0;
  const willQos = (flags >> 3) & 0x03;
  const willRetain = (flags & 0x20) !== 0;
  const hasPassword = (flags & 0x40) !== 0;
  const hasUsername = (flags & 0x80) !== 0;
  if (willQos === 3) throw malformed('Will QoS must not be 3'); // [MQTT-3.1.2-14]
  if (!hasWill && (willQos !== 0 || willRetain)) {
    throw malformed('Will QoS and Will Retain must be 0 without a Will'); // [MQTT-3.1.2-13] [MQTT-3.1.2-15]
  }
  if (version < 5 && hasPassword && !hasUsername) {
    throw malformed('a password requires a user name before MQTT 5'); // [MQTT-3.1.2-22] (3.1.1)
  }
  const keepalive = r.u16('the keep alive');
  const properties = version === 5 ? readProperties(r, 'connect') : undefined;
  const clientId = r.utf8('the client identifier');
  const packet: ConnectPacket = {
    type: 'connect',
    protocolName,
    protocolVersion: version,
    clean,
    keepalive,
    clientId,
  };
  if (properties !== undefined) packet.properties = properties;
  if (hasWill) {
    const willProperties = version === 5 ? readProperties(r, 'will') : undefined;
    const will: Will = {
      topic: r.utf8('the will topic'),
      payload: r.binary('the will payload'),
      qos: willQos as QoS,
      retain: willRetain,
    };
    if (willProperties !== undefined) will.properties = willProperties;
    packet.will = will;
  }
  if (hasUsername) packet.username = r.utf8('the user name');
  if (hasPassword) packet.password = r.binary('the password');
  expectEnd(r, 'CONNECT');
  return packet;
}

function parseConnack(r: Reader, version: ProtocolVersion): ConnackPacket {
  const flags = r.u8('the connect acknowledge flags');
  if (flags & 0xfe) throw malformed('reserved CONNACK flags must be 0'); // [MQTT-3.2.2-1]
  const sessionPresent = (flags & 1) === 1;
  let code: number;
  let properties: Properties | undefined;
  if (version === 5) {
    code = reasonCode(r, allowedReasonCodes.connack, 'CONNACK');
    properties = readProperties(r, 'connack');
  } else {
    code = r.u8('the CONNACK return code');
    if (code > 5) throw malformed(`CONNACK return code ${code} is reserved`);
  }
  if (sessionPresent && code !== 0)
    throw malformed('session present must be 0 when the connection is refused');
  expectEnd(r, 'CONNACK');
  const packet: ConnackPacket = { type: 'connack', sessionPresent, reasonCode: code };
  if (properties !== undefined) packet.properties = properties;
  return packet;
}

function parsePublish(r: Reader, flags: number, version: ProtocolVersion): PublishPacket {
  const qos = (flags >> 1) & 0x03;
  if (qos === 3) throw malformed('PUBLISH QoS must not be 3'); // [MQTT-3.3.1-4]
  const dup = (flags & 0x08) !== 0;
  if (dup && qos === 0) throw malformed('DUP must be 0 for QoS 0'); // [MQTT-3.3.1-2]
  const topic = r.utf8('the topic name');
  const packet: PublishPacket = {
    type: 'publish',
    topic,
    payload: EMPTY,
    qos: qos as QoS,
    retain: (flags & 0x01) !== 0,
    dup,
  };
  if (qos > 0) packet.packetId = packetId(r, 'PUBLISH');
  if (version === 5) {
    const properties = readProperties(r, 'publish');
    if (properties !== undefined) packet.properties = properties;
  }
  packet.payload = r.rest();
  return packet;
}

const EMPTY = Buffer.alloc(0);

function parseAck(r: Reader, type: AckType, version: ProtocolVersion) {
  const name = type.toUpperCase();
  const id = packetId(r, name);
  if (version < 5 || r.remaining === 0) {
    expectEnd(r, name);
    return { type, packetId: id };
  }
  // [MQTT-3.4.2-1] a reason code of 0 with no properties may be omitted (remaining length 2).
  const code = reasonCode(r, allowedReasonCodes[type], name);
  const properties = r.remaining > 0 ? readProperties(r, type) : undefined;
  expectEnd(r, name);
  return properties === undefined
    ? { type, packetId: id, reasonCode: code }
    : { type, packetId: id, reasonCode: code, properties };
}

function parseSubscribe(r: Reader, version: ProtocolVersion): SubscribePacket {
  const id = packetId(r, 'SUBSCRIBE');
  const properties = version === 5 ? readProperties(r, 'subscribe') : undefined;
  const subscriptions: Subscription[] = [];
  while (r.remaining > 0) {
    const topic = r.utf8('a topic filter');
    const options = r.u8('the subscription options');
    const qos = options & 0x03;
    // 3.1.1 [MQTT-3-8.3-4] (so printed there); in MQTT 5 a rule without an id (§3.8.3.1).
    if (qos === 3) throw malformed('requested QoS must not be 3');
    if (version < 5) {
      if (options & 0xfc) throw malformed('reserved subscription option bits must be 0'); // 3.1.1 [MQTT-3-8.3-4]
      subscriptions.push({
        topic,
        qos: qos as QoS,
        noLocal: false,
        retainAsPublished: false,
        retainHandling: 0,
      });
      continue;
    }
    if (options & 0xc0) throw malformed('reserved subscription option bits must be 0'); // [MQTT-3.8.3-5]
    const retainHandling = (options >> 4) & 0x03;
    if (retainHandling === 3) throw protocolError('Retain Handling must not be 3');
    subscriptions.push({
      topic,
      qos: qos as QoS,
      noLocal: (options & 0x04) !== 0,
      retainAsPublished: (options & 0x08) !== 0,
      retainHandling: retainHandling as 0 | 1 | 2,
    });
  }
  // [MQTT-3.8.3-3] at least one topic filter
  if (subscriptions.length === 0) throw protocolError('SUBSCRIBE must contain at least one topic filter');
  const packet: SubscribePacket = { type: 'subscribe', packetId: id, subscriptions };
  if (properties !== undefined) packet.properties = properties;
  return packet;
}

function parseSuback(r: Reader, version: ProtocolVersion): SubackPacket {
  const id = packetId(r, 'SUBACK');
  const properties = version === 5 ? readProperties(r, 'suback') : undefined;
  const allowed = version === 5 ? allowedReasonCodes.suback : allowedV4SubackCodes;
  const reasonCodes: number[] = [];
  while (r.remaining > 0) reasonCodes.push(reasonCode(r, allowed, 'SUBACK'));
  if (reasonCodes.length === 0) throw protocolError('SUBACK must contain at least one reason code');
  const packet: SubackPacket = { type: 'suback', packetId: id, reasonCodes };
  if (properties !== undefined) packet.properties = properties;
  return packet;
}

function parseUnsubscribe(r: Reader, version: ProtocolVersion): UnsubscribePacket {
  const id = packetId(r, 'UNSUBSCRIBE');
  const properties = version === 5 ? readProperties(r, 'unsubscribe') : undefined;
  const topics: string[] = [];
  while (r.remaining > 0) topics.push(r.utf8('a topic filter'));
  // [MQTT-3.10.3-2] at least one topic filter
  if (topics.length === 0) throw protocolError('UNSUBSCRIBE must contain at least one topic filter');
  const packet: UnsubscribePacket = { type: 'unsubscribe', packetId: id, topics };
  if (properties !== undefined) packet.properties = properties;
  return packet;
}

function parseUnsuback(r: Reader, version: ProtocolVersion): UnsubackPacket {
  const id = packetId(r, 'UNSUBACK');
  if (version < 5) {
    expectEnd(r, 'UNSUBACK');
    return { type: 'unsuback', packetId: id };
  }
  const properties = readProperties(r, 'unsuback');
  const reasonCodes: number[] = [];
  while (r.remaining > 0) reasonCodes.push(reasonCode(r, allowedReasonCodes.unsuback, 'UNSUBACK'));
  if (reasonCodes.length === 0) throw protocolError('UNSUBACK must contain at least one reason code');
  const packet: UnsubackPacket = { type: 'unsuback', packetId: id, reasonCodes };
  if (properties !== undefined) packet.properties = properties;
  return packet;
}

function parseDisconnect(r: Reader, version: ProtocolVersion): DisconnectPacket {
  if (version < 5 || r.remaining === 0) {
    expectEnd(r, 'DISCONNECT');
    return { type: 'disconnect' };
  }
  const code = reasonCode(r, allowedReasonCodes.disconnect, 'DISCONNECT');
  const properties = r.remaining > 0 ? readProperties(r, 'disconnect') : undefined;
  expectEnd(r, 'DISCONNECT');
  return properties === undefined
    ? { type: 'disconnect', reasonCode: code }
    : { type: 'disconnect', reasonCode: code, properties };
}

function parseAuth(r: Reader): AuthPacket {
  // [MQTT-3.15.2-1] remaining length 0 means Success with no properties.
  if (r.remaining === 0) return { type: 'auth', reasonCode: 0 };
  const code = reasonCode(r, allowedReasonCodes.auth, 'AUTH');
  const properties = r.remaining > 0 ? readProperties(r, 'auth') : undefined;
  expectEnd(r, 'AUTH');
  return properties === undefined
    ? { type: 'auth', reasonCode: code }
    : { type: 'auth', reasonCode: code, properties };
}
