import { describe, expect, it } from 'vitest';
import {
  decodeAll,
  encode,
  type Packet,
  PacketCode,
  PacketDecoder,
  type PacketType,
  type ProtocolVersion,
} from '../../../src/protocol/index.js';
import { goldenFixtures, toHex } from '../../fixtures/packets.js';

describe('golden byte fixtures', () => {
  describe.each(goldenFixtures.map((f) => [f.name, f] as const))('%s', (_name, f) => {
    it('decodes to the packet', () => {
      expect(decodeAll(f.bytes, { version: f.version })).toStrictEqual([f.packet]);
    });

    it('encodes to the bytes exactly', () => {
      const bytes = encode(f.packet, f.version);
      expect(toHex(bytes)).toBe(toHex(f.bytes));
    });

    it('decodes the same when fed one byte at a time', () => {
      const out: Packet[] = [];
      const decoder = new PacketDecoder((p) => out.push(p), { version: f.version });
      for (let i = 0; i < f.bytes.length; i++) decoder.push(f.bytes.subarray(i, i + 1));
      expect(decoder.idle).toBe(true);
      expect(out).toStrictEqual([f.packet]);
    });
  });

  it('fixture names are unique', () => {
    const names = goldenFixtures.map((f) => f.name);
    expect(new Set(names).size).toBe(names.length);
  });

  it('covers every packet type of every protocol level', () => {
    const types = Object.keys(PacketCode) as PacketType[];
    for (const version of [3, 4, 5] as ProtocolVersion[]) {
      const covered = new Set(goldenFixtures.filter((f) => f.version === version).map((f) => f.packet.type));
      const expected = version === 5 ? types : types.filter((t) => t !== 'auth');
      expect([...covered].sort(), `version ${version}`).toEqual([...expected].sort());
    }
  });

  it('the fixed header of each fixture matches its packet type and remaining length', () => {
    for (const f of goldenFixtures) {
      expect(f.bytes[0] >> 4, f.name).toBe(PacketCode[f.packet.type]);
      let length = 0;
      let multiplier = 1;
      let i = 1;
      for (;;) {
        const byte = f.bytes[i++];
        length += (byte & 0x7f) * multiplier;
        multiplier *= 128;
        if ((byte & 0x80) === 0) break;
      }
      expect(f.bytes.length - i, f.name).toBe(length);
    }
  });

  it('decodes all fixtures of a level as one stream, CONNECT first', () => {
    for (const version of [3, 4, 5] as ProtocolVersion[]) {
      const fixtures = goldenFixtures.filter((f) => f.version === version);
      // A CONNECT sets the decoder's level; start on a different one to prove it.
      const ordered = [...fixtures].sort(
        (a, b) => Number(b.packet.type === 'connect') - Number(a.packet.type === 'connect'),
      );
      const stream = Buffer.concat(ordered.map((f) => f.bytes));
      const other: ProtocolVersion = version === 4 ? 5 : 4;
      expect(decodeAll(stream, { version: other })).toStrictEqual(ordered.map((f) => f.packet));
    }
  });
});
