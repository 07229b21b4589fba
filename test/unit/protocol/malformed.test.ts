import { describe, expect, it } from 'vitest';
import {
  type DecoderOptions,
  decodeAll,
  type Packet,
  PacketDecoder,
  ProtocolError,
  ReasonCode,
} from '../../../src/protocol/index.js';
import { type MalformedCase, malformedCases } from '../../fixtures/malformed.js';

/** The error `push` throws for these chunks (the test fails if none is thrown). */
function errorOf(chunks: Buffer[], options: DecoderOptions, packets: Packet[] = []): ProtocolError {
  const decoder = new PacketDecoder((p) => packets.push(p), options);
  try {
    for (const chunk of chunks) decoder.push(chunk);
  } catch (err) {
    expect(err).toBeInstanceOf(ProtocolError);
    return err as ProtocolError;
  }
  throw new Error('no ProtocolError was thrown');
}

const optionsOf = (c: MalformedCase): DecoderOptions => ({ version: c.version, ...c.options });

describe('malformed-input corpus', () => {
  it('has at least 40 cases with unique names', () => {
    expect(malformedCases.length).toBeGreaterThanOrEqual(40);
    expect(new Set(malformedCases.map((c) => c.name)).size).toBe(malformedCases.length);
  });

  describe.each(malformedCases.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    it(`raises ${c.code} (0x${c.reasonCode.toString(16)})`, () => {
      const err = errorOf([c.bytes], optionsOf(c));
      expect({ code: err.code, reasonCode: err.reasonCode }).toEqual({
        code: c.code,
        reasonCode: c.reasonCode,
      });
      expect(() => decodeAll(c.bytes, optionsOf(c))).toThrow(ProtocolError);
    });

    it('raises the same error when fed one byte at a time, and emits nothing', () => {
      const packets: Packet[] = [];
      const chunks = [...c.bytes].map((byte) => Buffer.from([byte]));
      const err = errorOf(chunks, optionsOf(c), packets);
      expect(err.code).toBe(c.code);
      expect(packets).toEqual([]);
    });

    it('after the error the decoder refuses further input', () => {
      const decoder = new PacketDecoder(() => {}, optionsOf(c));
      expect(() => decoder.push(c.bytes)).toThrow(ProtocolError);
      const pingreq = Buffer.from([0xc0, 0x00]);
      expect(() => decoder.push(pingreq)).toThrow(ProtocolError);
      expect(() => decoder.push(pingreq)).toThrow(ProtocolError);
    });
  });
});

describe('errors are raised as early as the stream allows', () => {
  it('(3.1.2.25) PACKET_TOO_LARGE (0x95) as soon as the fixed header is read, before any body byte', () => {
    const decoder = new PacketDecoder(() => {}, { version: 5, maxPacketSize: 16 });
    // 30 0f: a PUBLISH of 1 + 1 + 15 = 17 bytes. The chunk holds only the fixed header.
    let err: unknown;
    try {
      decoder.push(Buffer.from([0x30, 0x0f]));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ProtocolError);
    expect((err as ProtocolError).code).toBe('PACKET_TOO_LARGE');
    expect((err as ProtocolError).reasonCode).toBe(ReasonCode.PacketTooLarge);
    expect(decoder.buffered).toBe(0);
  });

  it('(3.1.2.25) a packet of exactly the maximum packet size is accepted', () => {
    const bytes = Buffer.from([0x30, 0x0e, 0x00, 0x01, 0x74, ...Buffer.alloc(11, 0x61)]);
    expect(bytes.length).toBe(16);
    expect(decodeAll(bytes, { version: 4, maxPacketSize: 16 })).toHaveLength(1);
  });

  it('(3.1.2.25) a four-byte remaining length beyond the limit fails without allocating the body', () => {
    const decoder = new PacketDecoder(() => {}, { version: 4, maxPacketSize: 1 << 20 });
    expect(() => decoder.push(Buffer.from([0x30, 0xff, 0xff, 0xff, 0x7f]))).toThrow(
      expect.objectContaining({ code: 'PACKET_TOO_LARGE', reasonCode: 0x95 }),
    );
  });

  it('(1.5.5) a fifth remaining-length byte fails on that byte, without waiting for more input', () => {
    const decoder = new PacketDecoder(() => {}, { version: 4 });
    decoder.push(Buffer.from([0x30, 0xff, 0xff, 0xff]));
    expect(() => decoder.push(Buffer.from([0xff]))).toThrow(
      expect.objectContaining({ code: 'MALFORMED_PACKET' }),
    );
  });

  it('packets before the malformed one in the same chunk are still delivered', () => {
    const packets: Packet[] = [];
    const err = errorOf([Buffer.from([0xc0, 0x00, 0xd0, 0x00, 0x00, 0x00])], { version: 4 }, packets);
    expect(packets).toEqual([{ type: 'pingreq' }, { type: 'pingresp' }]);
    expect(err.code).toBe('MALFORMED_PACKET');
  });

  it('decodeAll rejects input ending inside a packet', () => {
    expect(() => decodeAll(Buffer.from([0x30, 0x05, 0x00]), { version: 4 })).toThrow(ProtocolError);
  });

  it('every ProtocolError code maps to a reason code of 0x80 or more', () => {
    for (const c of malformedCases) expect(c.reasonCode, c.name).toBeGreaterThanOrEqual(0x80);
  });
});
