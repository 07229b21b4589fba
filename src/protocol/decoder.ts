/**
 * The streaming decoder: one per connection. Bytes arrive in any chunking; complete packets come out
 * through `onPacket`. Parse state is explicit (fixed header, then body), the maximum packet size is
 * checked from the fixed header before any body byte is buffered, and a body that arrives whole in one
 * chunk is parsed in place (payloads are views of that chunk, never copied here).
 */
import { malformed, ProtocolError } from './errors.js';
import type { Packet, ProtocolVersion } from './packets.js';
import { parsePacket } from './parse.js';
import { MAX_VARIABLE_BYTE_INTEGER } from './primitives.js';

/** The largest packet MQTT can express: 1 type byte + 4 length bytes + 268,435,455 body bytes. */
export const MAX_PACKET_SIZE = 1 + 4 + MAX_VARIABLE_BYTE_INTEGER;

export interface DecoderOptions {
  /** Largest total packet size accepted, in bytes (fixed header included) [MQTT-3.2.2-15]. */
  maxPacketSize?: number;
  /** Protocol level for packets other than CONNECT; a decoded CONNECT sets it. Default 4. */
  version?: ProtocolVersion;
}

const EMPTY = Buffer.alloc(0);
/** First allocation for a body that spans chunks. */
const INITIAL_BODY = 16 * 1024;

enum State {
  TypeByte,
  Length,
  Body,
  Failed,
}

export class PacketDecoder {
  /** The protocol level used to parse non-CONNECT packets. */
  version: ProtocolVersion;
  maxPacketSize: number;

  private state = State.TypeByte;
  private first = 0;
  private length = 0;
  private multiplier = 1;
  private lengthBytes = 0;
  private body: Buffer = EMPTY;
  private filled = 0;

  constructor(
    private readonly onPacket: (packet: Packet) => void,
    options: DecoderOptions = {},
  ) {
    this.version = options.version ?? 4;
    this.maxPacketSize = options.maxPacketSize ?? MAX_PACKET_SIZE;
  }

  /** True between packets: no partial packet is held. */
  get idle(): boolean {
    return this.state === State.TypeByte;
  }

  /** Bytes held for an incomplete packet (bounded by the maximum packet size). */
  get buffered(): number {
    return this.state === State.Body ? this.filled : 0;
  }

  /** Bytes allocated for an incomplete packet: grows with what arrived, not with what was declared. */
  get allocated(): number {
    return this.state === State.Body ? this.body.length : 0;
  }

  /**
   * Feeds a chunk. Throws a ProtocolError on the first violation; the decoder then refuses further
   * input, since the stream can no longer be framed.
   */
  push(chunk: Buffer): void {
    if (this.state === State.Failed) throw malformed('the stream already failed to decode');
    try {
      this.consume(chunk);
    } catch (err) {
      // A ProtocolError from parsing, or whatever the onPacket callback threw: either way the rest of
      // the chunk was not consumed, so the stream can no longer be framed.
      this.state = State.Failed;
      this.body = EMPTY;
      throw err;
    }
  }

  private consume(chunk: Buffer): void {
    const n = chunk.length;
    let i = 0;
    while (i < n) {
      switch (this.state) {
        case State.TypeByte:
          this.first = chunk[i++];
          this.length = 0;
          this.multiplier = 1;
          this.lengthBytes = 0;
          this.state = State.Length;
          break;
        case State.Length: {
          const byte = chunk[i++];
          this.length += (byte & 0x7f) * this.multiplier;
          this.multiplier *= 128;
          this.lengthBytes++;
          if (byte & 0x80) {
            // [MQTT-1.5.5-1] at most four bytes
            if (this.lengthBytes === 4) throw malformed('remaining length is longer than four bytes');
            break;
          }
          // [MQTT-1.5.5-1] minimum number of bytes: a final 0 byte after a continuation only pads.
          if (byte === 0 && this.lengthBytes > 1) {
            throw malformed('remaining length is not in the minimum number of bytes');
          }
          const total = 1 + this.lengthBytes + this.length;
          if (total > this.maxPacketSize) {
            throw new ProtocolError(
              'PACKET_TOO_LARGE',
              `packet of ${total} bytes exceeds the maximum packet size of ${this.maxPacketSize}`,
            );
          }
          if (this.length === 0) {
            this.state = State.TypeByte;
            this.emit(EMPTY, 0, 0);
          } else if (n - i >= this.length) {
            // Whole body in this chunk: parse in place.
            const end = i + this.length;
            this.state = State.TypeByte;
            this.emit(chunk, i, end);
            i = end;
          } else {
            // The body buffer grows with what arrives (doubling, up to the declared length), so a
            // peer that declares a large packet and sends little cannot make us allocate it all.
            this.body = Buffer.allocUnsafe(Math.min(this.length, Math.max(INITIAL_BODY, 2 * (n - i))));
            this.filled = chunk.copy(this.body, 0, i);
            i = n;
            this.state = State.Body;
          }
          break;
        }
        case State.Body: {
          const want = Math.min(n - i, this.length - this.filled);
          if (this.filled + want > this.body.length) {
            const grown = Buffer.allocUnsafe(
              Math.min(this.length, Math.max(2 * this.body.length, this.filled + want)),
            );
            this.body.copy(grown, 0, 0, this.filled);
            this.body = grown;
          }
          const copied = chunk.copy(this.body, this.filled, i, i + want);
          this.filled += copied;
          i += copied;
          if (this.filled === this.length) {
            const body = this.body;
            this.body = EMPTY;
            this.state = State.TypeByte;
            this.emit(body, 0, body.length);
          }
          break;
        }
        case State.Failed:
          return;
      }
    }
  }

  private emit(buf: Buffer, start: number, end: number): void {
    let packet: Packet;
    try {
      packet = parsePacket(this.first, buf, start, end, this.version);
    } catch (err) {
      if (err instanceof ProtocolError) throw err;
      throw malformed(`undecodable packet: ${(err as Error).message}`);
    }
    if (packet.type === 'connect') this.version = packet.protocolVersion;
    this.onPacket(packet);
  }
}

/** Decodes a buffer holding whole packets (tests, tools). Throws on a trailing partial packet. */
export function decodeAll(bytes: Buffer, options: DecoderOptions = {}): Packet[] {
  const out: Packet[] = [];
  const decoder = new PacketDecoder((p) => out.push(p), options);
  decoder.push(bytes);
  if (!decoder.idle) throw malformed('input ends inside a packet');
  return out;
}
