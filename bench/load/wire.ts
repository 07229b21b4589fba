/**
 * The load generator's side of the wire: MQTT 3.1.1 packets encoded ONCE with Shoal's own encoder
 * (src/protocol), and a receive-side frame scanner that reads only what it must — the fixed header
 * (type byte + remaining length) and, where asked, a small prefix of the body (topic length, packet
 * id, an 8-byte timestamp) — without allocating per message.
 */
import { encode, encodePublishHeader, type QoS } from '../../src/protocol/index.js';

/** Every load client speaks MQTT 3.1.1: the one level all three brokers implement fully. */
const V = 4;

export function connectPacket(clientId: string, keepalive = 0, clean = true): Buffer {
  return encode({ type: 'connect', protocolName: 'MQTT', protocolVersion: V, clean, keepalive, clientId }, V);
}

export function subscribePacket(filter: string, qos: QoS, packetId = 1): Buffer {
  return encode(
    {
      type: 'subscribe',
      packetId,
      subscriptions: [{ topic: filter, qos, noLocal: false, retainAsPublished: false, retainHandling: 0 }],
    },
    V,
  );
}

export const DISCONNECT = Buffer.from([0xe0, 0x00]);

/** A PUBLISH as bytes, plus where its packet id (QoS > 0) and payload start. */
export interface PublishTemplate {
  bytes: Buffer;
  /** Offset of the 2-byte packet id, or -1 for QoS 0. */
  idOffset: number;
  payloadOffset: number;
}

export function publishTemplate(topic: string, payload: Buffer, qos: QoS): PublishTemplate {
  const encoded = encodePublishHeader(
    { type: 'publish', topic, payload, qos, retain: false, dup: false, packetId: qos > 0 ? 1 : undefined },
    V,
  );
  const bytes = Buffer.concat([encoded.header, payload]);
  return { bytes, idOffset: encoded.packetIdOffset, payloadOffset: encoded.header.length };
}

/** `count` copies of `packet` back to back: one write sends them all. */
export function repeated(packet: Buffer, count: number): Buffer {
  const out = Buffer.allocUnsafe(packet.length * count);
  for (let i = 0; i < count; i++) packet.copy(out, i * packet.length);
  return out;
}

/** A payload of `size` printable bytes (the first 8 are overwritten by latency timestamps). */
export function payloadOf(size: number): Buffer {
  const b = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) b[i] = 0x61 + (i % 26);
  return b;
}

/**
 * Writes `n` PUBACKs (`ids[0..n)`) into one fresh buffer. Fresh because a socket may still hold the
 * previous batch when this one is written.
 */
export function pubackBatch(ids: Uint16Array, n: number): Buffer {
  const out = Buffer.allocUnsafe(4 * n);
  for (let i = 0, o = 0; i < n; i++, o += 4) {
    const id = ids[i];
    out[o] = 0x40;
    out[o + 1] = 0x02;
    out[o + 2] = id >> 8;
    out[o + 3] = id & 0xff;
  }
  return out;
}

/** What a frame scanner calls; implemented by the load clients. */
export interface FrameSink {
  /**
   * A PUBLISH. At least min(remaining, publishPrefix) body bytes are readable at buf[body...]; the
   * rest of the body may not be (it is skipped).
   */
  onPublish(first: number, buf: Buffer, body: number, remaining: number): void;
  /** Any other packet, with at least min(remaining, 8) body bytes readable. */
  onControl(first: number, buf: Buffer, body: number, remaining: number): void;
}

/**
 * Splits a byte stream into MQTT frames. Per frame it reads the type byte, the remaining length and
 * at most a small prefix of the body; the body itself is skipped, so a chunk full of PUBLISH packets
 * costs a handful of byte reads per packet and no allocation. A frame header (or the prefix a sink
 * asked for) cut by a chunk boundary is carried over in a small copy (the read buffer is reused).
 */
export class FrameScanner {
  private skip = 0;
  private carry: Buffer | null = null;

  constructor(
    private readonly sink: FrameSink,
    /** Body bytes a PUBLISH handler needs contiguous; 0 when it only counts. */
    private readonly publishPrefix: number,
  ) {}

  /** Scans chunk[0, length): sockets read into one reused buffer, so the length is given apart. */
  push(chunk: Buffer, length = chunk.length): void {
    let buf = chunk;
    let len = length;
    let i = 0;
    if (this.skip > 0) {
      if (this.skip >= len) {
        this.skip -= len;
        return;
      }
      i = this.skip;
      this.skip = 0;
    } else if (this.carry !== null) {
      buf = Buffer.concat([this.carry, chunk.subarray(0, length)]);
      len = buf.length;
      this.carry = null;
    }
    const sink = this.sink;
    while (i < len) {
      const first = buf[i];
      // Remaining length: 1..4 bytes, 7 bits each, least significant first.
      let j = i + 1;
      let remaining = 0;
      let mult = 1;
      let complete = false;
      while (j < len && j - i <= 4) {
        const b = buf[j++];
        remaining += (b & 0x7f) * mult;
        mult *= 128;
        if ((b & 0x80) === 0) {
          complete = true;
          break;
        }
      }
      if (!complete) {
        if (j - i > 4) throw new Error(`malformed remaining length at stream offset ${i}`);
        this.carry = Buffer.from(buf.subarray(i, len));
        return;
      }
      const isPublish = first >> 4 === 3;
      const want = isPublish ? this.publishPrefix : 8;
      const need = Math.min(remaining, want);
      if (len - j < need) {
        this.carry = Buffer.from(buf.subarray(i, len));
        return;
      }
      if (isPublish) sink.onPublish(first, buf, j, remaining);
      else sink.onControl(first, buf, j, remaining);
      const end = j + remaining;
      if (end > len) {
        this.skip = end - len;
        return;
      }
      i = end;
    }
  }
}

/** Where the payload of a PUBLISH starts, from the body offset (reads the topic length). */
export function payloadStart(first: number, buf: Buffer, body: number): number {
  const topicLen = (buf[body] << 8) | buf[body + 1];
  return body + 2 + topicLen + (first & 0x06 ? 2 : 0);
}
