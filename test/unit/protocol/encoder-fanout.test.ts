/**
 * The fan-out path: a PUBLISH header encoded once per distinct (version, QoS, flags, properties), the
 * payload buffer shared by every receiver, and a packet id patched into a per-receiver copy.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  decodeAll,
  encode,
  encodePublishHeader,
  headerWithPacketId,
  type ProtocolVersion,
  type PublishPacket,
} from '../../../src/protocol/index.js';
import { fcParams, packetIdArb, publishArb } from '../../fixtures/arbitraries.js';
import { fixture, toHex } from '../../fixtures/packets.js';

const VERSIONS: ProtocolVersion[] = [3, 4, 5];
const withId = (p: PublishPacket, packetId: number, dup: boolean): PublishPacket => ({
  ...p,
  packetId,
  dup: p.dup || dup,
});

describe('encodePublishHeader', () => {
  for (const version of VERSIONS) {
    it(`header + payload equals encode() of the same packet (level ${version})`, () => {
      fc.assert(
        fc.property(publishArb(version), (p) => {
          const encoded = encodePublishHeader(p, version);
          expect(toHex(Buffer.concat([encoded.header, encoded.payload]))).toBe(toHex(encode(p, version)));
          // The payload is shared, not copied.
          expect(encoded.payload).toBe(p.payload);
          if (p.qos === 0) expect(encoded.packetIdOffset).toBe(-1);
          else expect(encoded.header.readUInt16BE(encoded.packetIdOffset)).toBe(p.packetId);
        }),
        fcParams(200),
      );
    });
  }

  it('matches the golden fixtures', () => {
    for (const name of [
      'PUBLISH 5.0 QoS 1 with every PUBLISH property',
      'PUBLISH 3.1.1 with a two-byte remaining length (200-byte payload)',
    ]) {
      const f = fixture(name);
      const encoded = encodePublishHeader(f.packet as PublishPacket, f.version);
      expect(toHex(Buffer.concat([encoded.header, encoded.payload])), name).toBe(toHex(f.bytes));
      expect(encoded.header.length, name).toBe(f.bytes.length - (f.packet as PublishPacket).payload.length);
    }
  });

  it('a QoS > 0 header without a packet id holds 0 there until patched', () => {
    const p: PublishPacket = {
      type: 'publish',
      topic: 'a/b',
      payload: Buffer.from('x'),
      qos: 1,
      retain: false,
      dup: false,
    };
    const encoded = encodePublishHeader(p, 5);
    expect(encoded.header.readUInt16BE(encoded.packetIdOffset)).toBe(0);
    const patched = headerWithPacketId(encoded, 42);
    expect(decodeAll(Buffer.concat([patched, encoded.payload]), { version: 5 })).toEqual([
      { ...p, packetId: 42 },
    ]);
  });
});

describe('headerWithPacketId', () => {
  for (const version of VERSIONS) {
    it(`patches the id and DUP into a copy, leaving the shared header untouched (level ${version})`, () => {
      fc.assert(
        fc.property(
          publishArb(version).filter((p) => p.qos > 0),
          fc.array(fc.tuple(packetIdArb, fc.boolean()), { minLength: 1, maxLength: 5 }),
          (p, receivers) => {
            const encoded = encodePublishHeader(p, version);
            const pristine = Buffer.from(encoded.header);
            const copies = receivers.map(([id, dup]) => headerWithPacketId(encoded, id, dup));
            receivers.forEach(([id, dup], i) => {
              const copy = copies[i];
              expect(copy).not.toBe(encoded.header);
              expect(
                copy.buffer === encoded.header.buffer && copy.byteOffset === encoded.header.byteOffset,
              ).toBe(false);
              const full = Buffer.concat([copy, encoded.payload]);
              expect(toHex(full)).toBe(toHex(encode(withId(p, id, dup), version)));
              expect(decodeAll(full, { version })).toEqual([withId(p, id, dup)]);
            });
            // The shared header is never mutated, however many receivers were patched.
            expect(encoded.header.equals(pristine)).toBe(true);
            // Copies are independent of each other.
            copies[0].fill(0xee);
            expect(encoded.header.equals(pristine)).toBe(true);
            if (copies.length > 1) expect(copies[1][0] >> 4).toBe(3);
          },
        ),
        fcParams(200),
      );
    });
  }

  it('a QoS 0 header has no packet id to patch: the copy equals the header', () => {
    const p: PublishPacket = {
      type: 'publish',
      topic: 't',
      payload: Buffer.from('x'),
      qos: 0,
      retain: true,
      dup: false,
    };
    for (const version of VERSIONS) {
      const encoded = encodePublishHeader(p, version);
      const copy = headerWithPacketId(encoded, 7);
      expect(copy.equals(encoded.header)).toBe(true);
      expect(copy).not.toBe(encoded.header);
    }
  });

  it('DUP false keeps a DUP already in the shared header', () => {
    const p: PublishPacket = {
      type: 'publish',
      topic: 't',
      payload: Buffer.alloc(0),
      qos: 2,
      retain: false,
      dup: true,
      packetId: 1,
    };
    const encoded = encodePublishHeader(p, 4);
    expect(headerWithPacketId(encoded, 9, false)[0] & 0x08).toBe(0x08);
  });
});
