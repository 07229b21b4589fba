import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  decodeAll,
  encode,
  type Packet,
  PacketDecoder,
  type ProtocolVersion,
} from '../../../src/protocol/index.js';
import { fcParams, packetArb, packetStreamArb, packetTypesOf } from '../../fixtures/arbitraries.js';

const VERSIONS: ProtocolVersion[] = [3, 4, 5];

/** Split points for a buffer of `length` bytes: 1-byte chunks, or arbitrary cuts (possibly none). */
const chunkingArb = fc.oneof(
  fc.constant('bytes' as const),
  fc.array(fc.nat(), { maxLength: 24 }),
  fc.array(fc.integer({ min: 1, max: 7 }), { minLength: 1, maxLength: 4 }).map((sizes) => ({ sizes })),
);

type Chunking = 'bytes' | number[] | { sizes: number[] };

function cutPoints(length: number, chunking: Chunking): number[] {
  if (chunking === 'bytes') return Array.from({ length: length + 1 }, (_, i) => i);
  if (Array.isArray(chunking)) {
    const cuts = new Set([0, length, ...chunking.map((c) => c % (length + 1))]);
    return [...cuts].sort((a, b) => a - b);
  }
  const { sizes } = chunking;
  const cuts = [0];
  for (let i = 0; cuts[cuts.length - 1] < length; i++) {
    cuts.push(Math.min(length, cuts[cuts.length - 1] + sizes[i % sizes.length]));
  }
  return cuts;
}

describe('decode(encode(p)) = p', () => {
  for (const version of VERSIONS) {
    for (const type of packetTypesOf(version)) {
      it(`${type.toUpperCase()} at protocol level ${version}`, () => {
        fc.assert(
          fc.property(packetArb(version, type), (packet) => {
            const bytes = encode(packet, version);
            expect(decodeAll(bytes, { version })).toStrictEqual([packet]);
            // The encoding is canonical: re-encoding the decoded packet gives the same bytes.
            const [again] = decodeAll(bytes, { version });
            expect(encode(again, version).equals(bytes)).toBe(true);
          }),
          fcParams(100),
        );
      });
    }
  }
});

describe('decoding is invariant under chunking', () => {
  it('any split of a stream of packets, including 1-byte chunks, yields the same packets', () => {
    fc.assert(
      fc.property(packetStreamArb(8), chunkingArb, ({ version, packets }, chunking) => {
        const encoded = packets.map((p) => encode(p, version));
        const stream = Buffer.concat(encoded);
        // Packet boundaries: packet k spans [starts[k], starts[k + 1]).
        const starts = [0];
        for (const e of encoded) starts.push(starts[starts.length - 1] + e.length);

        const out: Packet[] = [];
        const decoder = new PacketDecoder((p) => out.push(p), { version });
        const cuts = cutPoints(stream.length, chunking);
        for (let c = 1; c < cuts.length; c++) {
          const end = cuts[c];
          decoder.push(stream.subarray(cuts[c - 1], end));
          // Between packets the decoder holds nothing; inside one, no more than that packet's bytes.
          const k = starts.findIndex((s, i) => i + 1 < starts.length && s <= end && end < starts[i + 1]);
          if (k === -1 || starts[k] === end) {
            expect(decoder.idle).toBe(true);
            expect(decoder.buffered).toBe(0);
          } else {
            expect(decoder.idle).toBe(false);
            expect(decoder.buffered).toBeLessThanOrEqual(encoded[k].length);
            expect(decoder.buffered).toBeLessThanOrEqual(end - starts[k]);
          }
        }
        expect(decoder.idle).toBe(true);
        expect(out).toStrictEqual(packets);
      }),
      fcParams(400),
    );
  });

  it('a stream decoded in one piece equals the packets', () => {
    fc.assert(
      fc.property(packetStreamArb(12), ({ version, packets }) => {
        const stream = Buffer.concat(packets.map((p) => encode(p, version)));
        expect(decodeAll(stream, { version })).toStrictEqual(packets);
      }),
      fcParams(200),
    );
  });
});
