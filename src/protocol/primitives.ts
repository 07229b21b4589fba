/**
 * MQTT data representations (section 1.5): integers, Variable Byte Integers, UTF-8 strings and binary
 * data, read from and written to Buffers. Reading past the end or an ill-formed value is a
 * ProtocolError, never a RangeError.
 */
import { isUtf8 } from 'node:buffer';
import { malformed } from './errors.js';

/** Largest value a Variable Byte Integer can hold (four bytes) [MQTT-1.5.5-1]. */
export const MAX_VARIABLE_BYTE_INTEGER = 268_435_455;

/** Reads the fields of one packet body, bounded by `end`. */
export class Reader {
  constructor(
    readonly buf: Buffer,
    public pos: number,
    readonly end: number,
  ) {}

  get remaining(): number {
    return this.end - this.pos;
  }

  private need(n: number, what: string): void {
    if (this.pos + n > this.end) throw malformed(`packet ends inside ${what}`);
  }

  u8(what = 'a byte'): number {
    this.need(1, what);
    return this.buf[this.pos++];
  }

  u16(what = 'a two byte integer'): number {
    this.need(2, what);
    const v = (this.buf[this.pos] << 8) | this.buf[this.pos + 1];
    this.pos += 2;
    return v;
  }

  u32(what = 'a four byte integer'): number {
    this.need(4, what);
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  /** A Variable Byte Integer: at most four bytes, in the minimum number of bytes [MQTT-1.5.5-1]. */
  vbi(what = 'a variable byte integer'): number {
    let value = 0;
    let multiplier = 1;
    for (let i = 0; i < 4; i++) {
      const byte = this.u8(what);
      value += (byte & 0x7f) * multiplier;
      if ((byte & 0x80) === 0) {
        // [MQTT-1.5.5-1] "The encoded value MUST use the minimum number of bytes necessary": a last
        // byte of 0 after a continuation byte only pads the value.
        if (i > 0 && byte === 0) throw malformed(`${what} is not in the minimum number of bytes`);
        return value;
      }
      multiplier *= 128;
    }
    throw malformed(`${what} is longer than four bytes`);
  }

  /** A UTF-8 Encoded String [MQTT-1.5.4-1..3]: well-formed, no U+0000. */
  utf8(what = 'a string'): string {
    const len = this.u16(`the length of ${what}`);
    this.need(len, what);
    const start = this.pos;
    const end = start + len;
    this.pos = end;
    return decodeUtf8(this.buf, start, end, what);
  }

  /** Binary Data: a view of the input, not a copy. */
  binary(what = 'binary data'): Buffer {
    const len = this.u16(`the length of ${what}`);
    this.need(len, what);
    const view = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    return view;
  }

  /** The rest of the packet (a PUBLISH payload): a view of the input. */
  rest(): Buffer {
    const view = this.buf.subarray(this.pos, this.end);
    this.pos = this.end;
    return view;
  }
}

/** Decodes and validates UTF-8 per [MQTT-1.5.4-1] (well-formed, no surrogates) and [MQTT-1.5.4-2] (no U+0000). */
export function decodeUtf8(buf: Buffer, start: number, end: number, what: string): string {
  let ascii = true;
  for (let i = start; i < end; i++) {
    const b = buf[i];
    if (b === 0) throw malformed(`${what} contains U+0000`);
    if (b > 0x7f) ascii = false;
  }
  if (!ascii && !isUtf8(buf.subarray(start, end))) throw malformed(`${what} is not well-formed UTF-8`);
  return buf.toString(ascii ? 'latin1' : 'utf8', start, end);
}

/** Bytes a Variable Byte Integer takes. */
export function vbiLength(value: number): number {
  if (value < 128) return 1;
  if (value < 16_384) return 2;
  if (value < 2_097_152) return 3;
  return 4;
}

/** Writes a Variable Byte Integer at `offset`, returns the offset after it. */
export function writeVbi(buf: Buffer, offset: number, value: number): number {
  let v = value;
  do {
    let byte = v % 128;
    v = Math.floor(v / 128);
    if (v > 0) byte |= 0x80;
    buf[offset++] = byte;
  } while (v > 0);
  return offset;
}

/**
 * Writes a length-prefixed UTF-8 string whose byte length is `len` (as `utf8Length` computes it).
 * A string whose UTF-8 length equals its UTF-16 length is pure ASCII, for which Latin-1 writes the
 * very same bytes at about half the cost of the UTF-8 encoder.
 */
export function writeUtf8(buf: Buffer, offset: number, value: string, len: number): number {
  buf[offset] = len >> 8;
  buf[offset + 1] = len & 0xff;
  if (len > 0) buf.write(value, offset + 2, len, len === value.length ? 'latin1' : 'utf8');
  return offset + 2 + len;
}

export function writeBinary(buf: Buffer, offset: number, value: Buffer): number {
  const len = value.length;
  buf[offset] = len >> 8;
  buf[offset + 1] = len & 0xff;
  value.copy(buf, offset + 2);
  return offset + 2 + len;
}

export function writeU16(buf: Buffer, offset: number, value: number): number {
  buf[offset] = value >> 8;
  buf[offset + 1] = value & 0xff;
  return offset + 2;
}

export function writeU32(buf: Buffer, offset: number, value: number): number {
  buf.writeUInt32BE(value, offset);
  return offset + 4;
}

/**
 * UTF-8 byte length. Buffer.byteLength is a V8 fast-API call and beats a JavaScript ASCII scan even
 * for short topics and client ids (bench/codec.ts).
 */
export function utf8Length(value: string): number {
  return Buffer.byteLength(value, 'utf8');
}
