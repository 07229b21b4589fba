/**
 * Messages as records, between nodes, in Redis and on disk: a compact binary record, several of which make one batch
 * (one stream entry or pub/sub message per target node and event-loop turn). Properties use the MQTT 5
 * property encoding of the codec.
 *
 * record = flags u8 | [expiresAt f64] | [origin str] | [dedupe str] | sharedCount u16 {str} | topic str
 *          | propsLen vbi props | payloadLen u32 payload        (str = u16 length + UTF-8)
 */

import type { Delivery, Message } from '../message.js';
import type { QoS } from '../protocol/index.js';
import { Reader, utf8Length, vbiLength, writeU16, writeUtf8 } from '../protocol/primitives.js';
import { propertiesLength, readProperties, writeProperties } from '../protocol/properties.js';
import type { Envelope } from './types.js';

const RETAIN = 0x04;
const DIRECT = 0x08;
const EXPIRES = 0x10;
const ORIGIN = 0x20;
const DEDUPE = 0x40;

function recordLength(e: Envelope): number {
  const m = e.message;
  let n = 1 + 2 + 2 + utf8Length(m.topic) + 4 + m.payload.length;
  if (m.expiresAt !== undefined) n += 8;
  if (m.origin !== undefined) n += 2 + utf8Length(m.origin);
  if (m.dedupe !== undefined) n += 2 + utf8Length(m.dedupe);
  if (e.shared) for (const s of e.shared) n += 2 + utf8Length(s);
  const props = propertiesLength(m.properties);
  return n + vbiLength(props) + props;
}

function writeRecord(buf: Buffer, o: number, e: Envelope): number {
  const m = e.message;
  buf[o++] =
    m.qos |
    (m.retain ? RETAIN : 0) |
    (e.direct ? DIRECT : 0) |
    (m.expiresAt !== undefined ? EXPIRES : 0) |
    (m.origin !== undefined ? ORIGIN : 0) |
    (m.dedupe !== undefined ? DEDUPE : 0);
  if (m.expiresAt !== undefined) o = buf.writeDoubleBE(m.expiresAt, o);
  if (m.origin !== undefined) o = writeUtf8(buf, o, m.origin, utf8Length(m.origin));
  if (m.dedupe !== undefined) o = writeUtf8(buf, o, m.dedupe, utf8Length(m.dedupe));
  const shared = e.shared ?? [];
  o = writeU16(buf, o, shared.length);
  for (const s of shared) o = writeUtf8(buf, o, s, utf8Length(s));
  o = writeUtf8(buf, o, m.topic, utf8Length(m.topic));
  o = writeProperties(buf, o, m.properties, propertiesLength(m.properties));
  o = buf.writeUInt32BE(m.payload.length, o);
  m.payload.copy(buf, o);
  return o + m.payload.length;
}

/** Encodes envelopes into one batch buffer. */
export function encodeBatch(envelopes: readonly Envelope[]): Buffer {
  let total = 0;
  for (const e of envelopes) total += recordLength(e);
  const buf = Buffer.allocUnsafe(total);
  let o = 0;
  for (const e of envelopes) o = writeRecord(buf, o, e);
  return buf;
}

/** Decodes a batch; payloads are views of `buf`. Throws a ProtocolError on a corrupt batch. */
export function decodeBatch(buf: Buffer): Envelope[] {
  const r = new Reader(buf, 0, buf.length);
  const out: Envelope[] = [];
  while (r.remaining > 0) {
    const flags = r.u8();
    const message: Message = {
      topic: '',
      payload: EMPTY,
      qos: (flags & 0x03) as QoS,
      retain: (flags & RETAIN) !== 0,
    };
    if (flags & EXPIRES) {
      if (r.remaining < 8) throw new RangeError('truncated batch');
      message.expiresAt = buf.readDoubleBE(r.pos);
      r.pos += 8;
    }
    if (flags & ORIGIN) message.origin = r.utf8('origin');
    if (flags & DEDUPE) message.dedupe = r.utf8('dedupe id');
    const sharedCount = r.u16();
    const shared: string[] = [];
    for (let i = 0; i < sharedCount; i++) shared.push(r.utf8('shared group'));
    message.topic = r.utf8('topic');
    const props = readProperties(r, 'publish');
    if (props !== undefined) message.properties = props;
    const len = r.u32();
    if (len > r.remaining) throw new RangeError('truncated batch');
    message.payload = buf.subarray(r.pos, r.pos + len);
    r.pos += len;
    const envelope: Envelope = { message, direct: (flags & DIRECT) !== 0 };
    if (shared.length > 0) envelope.shared = shared;
    out.push(envelope);
  }
  return out;
}

/** One retained message as stored in Redis. */
export function encodeMessage(m: Message): Buffer {
  return encodeBatch([{ message: m, direct: false }]);
}

export function decodeMessage(buf: Buffer): Message {
  const [e] = decodeBatch(buf);
  if (e === undefined) throw new RangeError('empty record');
  return e.message;
}

/** A delivery as queued: the message with the subscriber's QoS, RETAIN and subscription ids. */
export function encodeDelivery(d: Delivery): Buffer {
  const m: Message = { ...d.message, qos: d.qos, retain: d.retain };
  if (d.subscriptionIds !== undefined && d.subscriptionIds.length > 0)
    m.properties = { ...m.properties, subscriptionIdentifiers: d.subscriptionIds };
  return encodeMessage(m);
}

export function decodeDelivery(buf: Buffer): Delivery {
  const message = decodeMessage(Buffer.from(buf));
  const d: Delivery = { message, qos: message.qos, retain: message.retain };
  const ids = message.properties?.subscriptionIdentifiers;
  if (ids !== undefined) {
    d.subscriptionIds = ids;
    const { subscriptionIdentifiers: _ids, ...rest } = message.properties!;
    message.properties = Object.keys(rest).length > 0 ? rest : undefined;
  }
  return d;
}

const EMPTY = Buffer.alloc(0);
