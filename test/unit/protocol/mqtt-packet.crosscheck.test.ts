/**
 * Cross-checks against mqtt-packet, the library this codec replaces, in both directions:
 * (a) mqtt-packet generate -> our decodeAll, (b) our encode -> mqtt-packet parser; for every packet
 * type and protocol level, on fast-check packets. Both sides are compared in `semantic` form: v5
 * properties come out in a different order, and mqtt-packet writes some optional fields we omit.
 */
import fc from 'fast-check';
import { generate, type Packet as MpPacket, parser } from 'mqtt-packet';
import { describe, expect, it } from 'vitest';
import {
  decodeAll,
  encode,
  type Packet,
  type ProtocolVersion,
  type UserProperty,
} from '../../../src/protocol/index.js';
import { fcParams, packetArb, packetTypesOf } from '../../fixtures/arbitraries.js';
import { fromMp, semantic, toMp } from '../../fixtures/mqtt-packet-convert.js';
import { goldenFixtures, toHex } from '../../fixtures/packets.js';

const VERSIONS: ProtocolVersion[] = [3, 4, 5];

/** mqtt-packet's parser over one buffer; throws its first error. */
function mpParse(bytes: Buffer, version: ProtocolVersion): MpPacket[] {
  const p = parser({ protocolVersion: version });
  const packets: MpPacket[] = [];
  const errors: Error[] = [];
  p.on('packet', (packet) => packets.push(packet));
  p.on('error', (err) => errors.push(err));
  p.parse(bytes);
  if (errors.length > 0) throw errors[0];
  return packets;
}

/**
 * Restrictions where mqtt-packet's generator refuses packets the spec allows; the packet is mapped to
 * the nearest one it accepts rather than dropped, so every type keeps full coverage otherwise.
 */
function expressible(p: Packet): Packet {
  if (p.type !== 'connect') return p;
  const q = { ...p };
  // mqtt-packet refuses a zero-byte client id with Clean Session 0 at every level; the rule is 3.1.1's
  // [MQTT-3.1.3-7], 5.0 allows it (3.1.3.1: the server may assign one or reject).
  if (q.clientId === '') q.clean = true;
  // mqtt-packet refuses a password without a user name at every level; 5.0 allows it (3.1.2.9).
  if (q.password !== undefined && q.username === undefined) delete q.password;
  return q;
}

/** A user property name repeated after a first occurrence with an empty value. */
function repeatsAfterEmptyValue(list: UserProperty[] | undefined): boolean {
  const first = new Map<string, string>();
  for (const [k, v] of list ?? []) {
    if (first.get(k) === '') return true;
    if (!first.has(k)) first.set(k, v);
  }
  return false;
}

/**
 * Cases where mqtt-packet's parser is wrong per the spec, excluded from direction (b):
 * - AUTH with Remaining Length 0: "The Reason Code and Property Length can be omitted if the Reason
 *   Code is 0x00 (Success) and there are no Properties" (3.15.2.1); mqtt-packet reads a reason code
 *   past the packet and reports "Invalid auth reason code".
 * - A user property name repeated after an empty value: "The same name is allowed to appear more
 *   than once" (2.2.2.2, 3.3.2.3.7) and "" is a valid UTF-8 Encoded String (1.5.4), but mqtt-packet
 *   tests the value it holds for truthiness and overwrites "" instead of collecting both values.
 */
function mpCannotParse(p: Packet): boolean {
  if (p.type === 'auth' && p.reasonCode === 0 && p.properties === undefined) return true;
  const props = 'properties' in p ? p.properties : undefined;
  const willProps = p.type === 'connect' ? p.will?.properties : undefined;
  return repeatsAfterEmptyValue(props?.userProperties) || repeatsAfterEmptyValue(willProps?.userProperties);
}

describe('mqtt-packet cross-check', () => {
  for (const version of VERSIONS) {
    for (const type of packetTypesOf(version)) {
      const packets = packetArb(version, type).map(expressible);
      const name = `${type.toUpperCase()} at protocol level ${version}`;

      it(`(a) mqtt-packet generate -> decodeAll: ${name}`, () => {
        fc.assert(
          fc.property(packets, (packet) => {
            const bytes = generate(toMp(packet, version), { protocolVersion: version });
            const decoded = decodeAll(bytes, { version });
            expect(decoded.map(semantic), toHex(bytes)).toEqual([semantic(packet)]);
          }),
          fcParams(100),
        );
      });

      it(`(b) encode -> mqtt-packet parser: ${name}`, () => {
        fc.assert(
          fc.property(
            packets.filter((p) => !mpCannotParse(p)),
            (packet) => {
              const bytes = encode(packet, version);
              const parsed = mpParse(bytes, version);
              expect(
                parsed.map((m) => semantic(fromMp(m, version))),
                toHex(bytes),
              ).toEqual([semantic(packet)]);
            },
          ),
          fcParams(100),
        );
      });

      if (version < 5) {
        // Without properties and optional reason codes, both encoders write the one canonical form.
        it(`(c) identical bytes from both encoders: ${name}`, () => {
          fc.assert(
            fc.property(packets, (packet) => {
              const ours = encode(packet, version);
              const theirs = generate(toMp(packet, version), { protocolVersion: version });
              expect(toHex(ours)).toBe(toHex(theirs));
            }),
            fcParams(100),
          );
        });
      }
    }
  }

  it('mqtt-packet parses every golden fixture to the fixture packet', () => {
    for (const f of goldenFixtures) {
      if (mpCannotParse(f.packet)) continue;
      const parsed = mpParse(f.bytes, f.version);
      expect(
        parsed.map((m) => semantic(fromMp(m, f.version))),
        f.name,
      ).toEqual([semantic(f.packet)]);
    }
  });

  it('(3.15.2.1) excluded: mqtt-packet rejects the AUTH short form that the spec allows', () => {
    expect(() => mpParse(Buffer.from([0xf0, 0x00]), 5)).toThrow(/auth reason code/);
    expect(decodeAll(Buffer.from([0xf0, 0x00]), { version: 5 })).toEqual([{ type: 'auth', reasonCode: 0 }]);
  });

  it('(3.14.2.1) mqtt-packet reads a short DISCONNECT reason code from the next packet, so (b) parses one packet per parser', () => {
    const stream = Buffer.from([0xe0, 0x00, 0xc0, 0x00]); // DISCONNECT (remaining length 0), PINGREQ
    expect(() => mpParse(stream, 5)).toThrow(/disconnect reason code/);
    expect(decodeAll(stream, { version: 5 })).toEqual([{ type: 'disconnect' }, { type: 'pingreq' }]);
  });

  it('(2.2.2.2) excluded: mqtt-packet drops a repeated user property whose first value is empty', () => {
    const packet: Packet = {
      type: 'puback',
      packetId: 1,
      reasonCode: 0,
      properties: {
        userProperties: [
          ['k', ''],
          ['k', 'v'],
        ],
      },
    };
    const bytes = encode(packet, 5);
    expect(decodeAll(bytes, { version: 5 })).toEqual([packet]);
    expect((mpParse(bytes, 5)[0] as { properties?: unknown }).properties).toEqual({
      userProperties: { k: 'v' },
    });
  });
});
