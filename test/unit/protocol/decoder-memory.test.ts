import { describe, expect, it } from 'vitest';
import { encode, type Packet, PacketDecoder } from '../../../src/protocol/index.js';

describe('decoder memory', () => {
  it('allocates for a spanning body in proportion to the bytes received, not the declared length', () => {
    const decoder = new PacketDecoder(() => undefined, { maxPacketSize: 8 * 1024 * 1024 });
    // PUBLISH declaring a 4 MiB body (remaining length 0x80 0x80 0x80 0x02), then 10 bytes of it.
    decoder.push(Buffer.from([0x30, 0x80, 0x80, 0x80, 0x02, 0, 1, 0x61, 1, 2, 3, 4, 5, 6, 7]));
    expect(decoder.buffered).toBe(10);
    expect(decoder.allocated).toBeLessThanOrEqual(16 * 1024);
  });

  it('grows the body buffer as chunks arrive and still decodes the packet exactly', () => {
    const payload = Buffer.alloc(300_000, 7);
    const bytes = encode({ type: 'publish', topic: 't', payload, qos: 0, retain: false, dup: false }, 4);
    const out: Packet[] = [];
    const decoder = new PacketDecoder((p) => out.push(p));
    for (let i = 0; i < bytes.length; i += 1000) {
      decoder.push(bytes.subarray(i, i + 1000));
      expect(decoder.allocated).toBeLessThanOrEqual(Math.max(16 * 1024, 2 * decoder.buffered + 2000));
    }
    expect(out).toHaveLength(1);
    expect((out[0] as Extract<Packet, { type: 'publish' }>).payload.equals(payload)).toBe(true);
  });

  it('an exception thrown by the packet callback reaches the caller unchanged', () => {
    const decoder = new PacketDecoder(() => {
      throw new RangeError('from the callback');
    });
    expect(() => decoder.push(Buffer.from([0xc0, 0x00]))).toThrow(RangeError);
  });
});
