/**
 * The encoder: sizes a packet first, then writes it into one buffer of exactly that size. PUBLISH has a
 * split form for fan-out: the header (fixed header, topic, packet id, properties) is encoded once per
 * distinct (version, QoS, flags, properties) and the payload buffer is shared by every subscriber; a
 * packet id is patched into a small copy of the header.
 */
import type {
  AuthPacket,
  ConnackPacket,
  ConnectPacket,
  DisconnectPacket,
  Packet,
  ProtocolVersion,
  PublishPacket,
  SubackPacket,
  SubscribePacket,
  UnsubackPacket,
  UnsubscribePacket,
} from './packets.js';
import {
  MAX_VARIABLE_BYTE_INTEGER,
  utf8Length,
  vbiLength,
  writeBinary,
  writeU16,
  writeUtf8,
  writeVbi,
} from './primitives.js';
import { propertiesLength, writeProperties } from './properties.js';

const MAX_STRING = 65_535;

function strLen(value: string, what: string): number {
  const len = utf8Length(value);
  if (len > MAX_STRING) throw new RangeError(`${what} is ${len} bytes, more than 65535`);
  return len;
}

function binLen(value: Buffer, what: string): number {
  if (value.length > MAX_STRING) throw new RangeError(`${what} is ${value.length} bytes, more than 65535`);
  return value.length;
}

/** Allocates the packet buffer and writes the fixed header; returns [buffer, offset of the body]. */
function start(first: number, bodyLength: number): [Buffer, number] {
  if (bodyLength > MAX_VARIABLE_BYTE_INTEGER)
    throw new RangeError(`packet body of ${bodyLength} bytes is too large`);
  const buf = Buffer.allocUnsafe(1 + vbiLength(bodyLength) + bodyLength);
  buf[0] = first;
  return [buf, writeVbi(buf, 1, bodyLength)];
}

/** The property block size: length prefix plus properties. */
function propsBlock(props: PublishPacket['properties']): [block: number, inner: number] {
  const inner = propertiesLength(props);
  return [vbiLength(inner) + inner, inner];
}

/** Encodes any packet for a connection at `version`. Fields the version lacks are left out. */
export function encode(packet: Packet, version: ProtocolVersion): Buffer {
  switch (packet.type) {
    case 'connect':
      return encodeConnect(packet);
    case 'connack':
      return encodeConnack(packet, version);
    case 'publish':
      return encodePublish(packet, version);
    case 'puback':
    case 'pubrec':
    case 'pubrel':
    case 'pubcomp':
      return encodeAck(packet.type, packet.packetId, packet.reasonCode ?? 0, packet.properties, version);
    case 'subscribe':
      return encodeSubscribe(packet, version);
    case 'suback':
      return encodeSuback(packet, version);
    case 'unsubscribe':
      return encodeUnsubscribe(packet, version);
    case 'unsuback':
      return encodeUnsuback(packet, version);
    case 'pingreq':
      return PINGREQ;
    case 'pingresp':
      return PINGRESP;
    case 'disconnect':
      return encodeDisconnect(packet, version);
    case 'auth':
      return encodeAuth(packet);
  }
}

const PINGREQ = Buffer.from([0xc0, 0x00]);
const PINGRESP = Buffer.from([0xd0, 0x00]);

function encodeConnect(p: ConnectPacket): Buffer {
  const v5 = p.protocolVersion === 5;
  const nameLen = strLen(p.protocolName, 'protocol name');
  const idLen = strLen(p.clientId, 'client identifier');
  let len = 2 + nameLen + 1 + 1 + 2 + 2 + idLen;
  const [connProps, connInner] = v5 ? propsBlock(p.properties) : [0, 0];
  len += connProps;
  let willTopicLen = 0;
  let willProps = 0;
  let willInner = 0;
  if (p.will) {
    willTopicLen = strLen(p.will.topic, 'will topic');
    if (v5) [willProps, willInner] = propsBlock(p.will.properties);
    len += willProps + 2 + willTopicLen + 2 + binLen(p.will.payload, 'will payload');
  }
  const userLen = p.username !== undefined ? strLen(p.username, 'user name') : -1;
  if (userLen >= 0) len += 2 + userLen;
  if (p.password !== undefined) len += 2 + binLen(p.password, 'password');

  const [buf, o0] = start(0x10, len);
  let o = writeUtf8(buf, o0, p.protocolName, nameLen);
  buf[o++] = p.protocolVersion;
  let flags = p.clean ? 0x02 : 0;
  if (p.will) flags |= 0x04 | (p.will.qos << 3) | (p.will.retain ? 0x20 : 0);
  if (p.password !== undefined) flags |= 0x40;
  if (userLen >= 0) flags |= 0x80;
  buf[o++] = flags;
  o = writeU16(buf, o, p.keepalive);
  if (v5) o = writeProperties(buf, o, p.properties, connInner);
  o = writeUtf8(buf, o, p.clientId, idLen);
  if (p.will) {
    if (v5) o = writeProperties(buf, o, p.will.properties, willInner);
    o = writeUtf8(buf, o, p.will.topic, willTopicLen);
    o = writeBinary(buf, o, p.will.payload);
  }
  if (userLen >= 0) o = writeUtf8(buf, o, p.username as string, userLen);
  if (p.password !== undefined) o = writeBinary(buf, o, p.password);
  return buf;
}

function encodeConnack(p: ConnackPacket, version: ProtocolVersion): Buffer {
  const [block, inner] = version === 5 ? propsBlock(p.properties) : [0, 0];
  const [buf, o] = start(0x20, 2 + block);
  // MQTT 3.1 has no session present flag.
  buf[o] = p.sessionPresent && version > 3 ? 1 : 0;
  buf[o + 1] = p.reasonCode;
  if (version === 5) writeProperties(buf, o + 2, p.properties, inner);
  return buf;
}

function publishFirstByte(p: PublishPacket): number {
  return 0x30 | (p.dup ? 0x08 : 0) | (p.qos << 1) | (p.retain ? 0x01 : 0);
}

function encodePublish(p: PublishPacket, version: ProtocolVersion): Buffer {
  const topicLen = strLen(p.topic, 'topic name');
  const [block, inner] = version === 5 ? propsBlock(p.properties) : [0, 0];
  const idLen = p.qos > 0 ? 2 : 0;
  const [buf, o0] = start(publishFirstByte(p), 2 + topicLen + idLen + block + p.payload.length);
  let o = writeUtf8(buf, o0, p.topic, topicLen);
  if (idLen) o = writeU16(buf, o, requireId(p));
  if (version === 5) o = writeProperties(buf, o, p.properties, inner);
  p.payload.copy(buf, o);
  return buf;
}

function requireId(p: { packetId?: number }): number {
  const id = p.packetId;
  if (id === undefined || id < 1 || id > 0xffff)
    throw new RangeError(`packet identifier ${id} is not 1..65535`);
  return id;
}

/** A PUBLISH encoded once for many receivers: the payload is shared, never copied. */
export interface EncodedPublish {
  /** Fixed header, topic, packet id (0 until patched) and properties. */
  readonly header: Buffer;
  readonly payload: Buffer;
  /** Where the packet id stands in `header`, or -1 for QoS 0. */
  readonly packetIdOffset: number;
}

export function encodePublishHeader(p: PublishPacket, version: ProtocolVersion): EncodedPublish {
  const topicLen = strLen(p.topic, 'topic name');
  const [block, inner] = version === 5 ? propsBlock(p.properties) : [0, 0];
  const idLen = p.qos > 0 ? 2 : 0;
  const headLen = 2 + topicLen + idLen + block;
  const bodyLen = headLen + p.payload.length;
  if (bodyLen > MAX_VARIABLE_BYTE_INTEGER)
    throw new RangeError(`packet body of ${bodyLen} bytes is too large`);
  const header = Buffer.allocUnsafe(1 + vbiLength(bodyLen) + headLen);
  header[0] = publishFirstByte(p);
  let o = writeVbi(header, 1, bodyLen);
  o = writeUtf8(header, o, p.topic, topicLen);
  let packetIdOffset = -1;
  if (idLen) {
    packetIdOffset = o;
    o = writeU16(header, o, p.packetId ?? 0);
  }
  if (version === 5) writeProperties(header, o, p.properties, inner);
  return { header, payload: p.payload, packetIdOffset };
}

/** A copy of the shared header carrying `packetId`; the shared header itself is never mutated. */
export function headerWithPacketId(encoded: EncodedPublish, packetId: number, dup = false): Buffer {
  const copy = Buffer.allocUnsafe(encoded.header.length);
  encoded.header.copy(copy);
  if (encoded.packetIdOffset >= 0) writeU16(copy, encoded.packetIdOffset, packetId);
  // [MQTT-3.3.1-2] DUP is never set on QoS 0 (no packet id slot).
  if (dup && encoded.packetIdOffset >= 0) copy[0] |= 0x08;
  return copy;
}

const ackFirstByte = { puback: 0x40, pubrec: 0x50, pubrel: 0x62, pubcomp: 0x70 } as const;

export function encodeAck(
  type: 'puback' | 'pubrec' | 'pubrel' | 'pubcomp',
  packetId: number,
  reasonCode: number,
  properties: PublishPacket['properties'],
  version: ProtocolVersion,
): Buffer {
  requireId({ packetId });
  if (version < 5 || (reasonCode === 0 && properties === undefined)) {
    // [MQTT-3.4.2-1] reason code 0 and no properties: the short form.
    const [buf, o] = start(ackFirstByte[type], 2);
    writeU16(buf, o, packetId);
    return buf;
  }
  const inner = propertiesLength(properties);
  const block = inner === 0 ? 0 : vbiLength(inner) + inner;
  const [buf, o0] = start(ackFirstByte[type], 3 + block);
  let o = writeU16(buf, o0, packetId);
  buf[o++] = reasonCode;
  if (block > 0) writeProperties(buf, o, properties, inner);
  return buf;
}

function encodeSubscribe(p: SubscribePacket, version: ProtocolVersion): Buffer {
  const [block, inner] = version === 5 ? propsBlock(p.properties) : [0, 0];
  let len = 2 + block;
  const lens = p.subscriptions.map((s) => strLen(s.topic, 'topic filter'));
  for (const l of lens) len += 3 + l;
  const [buf, o0] = start(0x82, len);
  let o = writeU16(buf, o0, requireId(p));
  if (version === 5) o = writeProperties(buf, o, p.properties, inner);
  p.subscriptions.forEach((s, i) => {
    o = writeUtf8(buf, o, s.topic, lens[i]);
    let options = s.qos;
    if (version === 5) {
      options |= (s.noLocal ? 0x04 : 0) | (s.retainAsPublished ? 0x08 : 0) | (s.retainHandling << 4);
    }
    buf[o++] = options;
  });
  return buf;
}

function encodeSuback(p: SubackPacket, version: ProtocolVersion): Buffer {
  const [block, inner] = version === 5 ? propsBlock(p.properties) : [0, 0];
  const [buf, o0] = start(0x90, 2 + block + p.reasonCodes.length);
  let o = writeU16(buf, o0, requireId(p));
  if (version === 5) o = writeProperties(buf, o, p.properties, inner);
  for (const code of p.reasonCodes) buf[o++] = code;
  return buf;
}

function encodeUnsubscribe(p: UnsubscribePacket, version: ProtocolVersion): Buffer {
  const [block, inner] = version === 5 ? propsBlock(p.properties) : [0, 0];
  const lens = p.topics.map((t) => strLen(t, 'topic filter'));
  let len = 2 + block;
  for (const l of lens) len += 2 + l;
  const [buf, o0] = start(0xa2, len);
  let o = writeU16(buf, o0, requireId(p));
  if (version === 5) o = writeProperties(buf, o, p.properties, inner);
  p.topics.forEach((t, i) => {
    o = writeUtf8(buf, o, t, lens[i]);
  });
  return buf;
}

function encodeUnsuback(p: UnsubackPacket, version: ProtocolVersion): Buffer {
  if (version < 5) {
    const [buf, o] = start(0xb0, 2);
    writeU16(buf, o, requireId(p));
    return buf;
  }
  const [block, inner] = propsBlock(p.properties);
  const codes = p.reasonCodes ?? [];
  const [buf, o0] = start(0xb0, 2 + block + codes.length);
  let o = writeU16(buf, o0, requireId(p));
  o = writeProperties(buf, o, p.properties, inner);
  for (const code of codes) buf[o++] = code;
  return buf;
}

function encodeDisconnect(p: DisconnectPacket, version: ProtocolVersion): Buffer {
  const code = p.reasonCode ?? 0;
  if (version < 5 || (code === 0 && p.properties === undefined)) return Buffer.from([0xe0, 0x00]);
  const inner = propertiesLength(p.properties);
  const block = inner === 0 ? 0 : vbiLength(inner) + inner;
  const [buf, o] = start(0xe0, 1 + block);
  buf[o] = code;
  if (block > 0) writeProperties(buf, o + 1, p.properties, inner);
  return buf;
}

function encodeAuth(p: AuthPacket): Buffer {
  if (p.reasonCode === 0 && p.properties === undefined) return Buffer.from([0xf0, 0x00]);
  const inner = propertiesLength(p.properties);
  const block = inner === 0 ? 0 : vbiLength(inner) + inner;
  const [buf, o] = start(0xf0, 1 + block);
  buf[o] = p.reasonCode;
  if (block > 0) writeProperties(buf, o + 1, p.properties, inner);
  return buf;
}
