/**
 * Fuzzing the decoder with random and mutated byte streams, in random chunkings.
 *
 * Invariants: push() either delivers packets or throws a ProtocolError (a decoder code, reason code
 * >= 0x80) — never another exception, never a hang; after an error the decoder refuses input; with a
 * maximum packet size of 64 KiB it never holds more than 64 KiB; every packet it delivers re-encodes,
 * and that encoding decodes again to a packet encoding to the same bytes (a fixpoint).
 *
 * Deterministic: a seeded PRNG (and fast-check samples with the same seed). Reproduce a failure with
 * FUZZ_SEED=<seed printed in the failure> npx vitest run test/fuzz.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  decodeAll,
  encode,
  type Packet,
  PacketDecoder,
  ProtocolError,
  type ProtocolErrorCode,
  type ProtocolVersion,
} from '../../src/protocol/index.js';
import { packetStreamArb } from '../fixtures/arbitraries.js';
import { toHex } from '../fixtures/hex.js';

const SEED = Number(process.env.FUZZ_SEED ?? 0x5e_a1ed);
/** FUZZ_SCALE=<n> multiplies the stream counts (and the time limits) for a longer local run. */
const SCALE = Number(process.env.FUZZ_SCALE ?? 1);
const RANDOM_STREAMS = 20_000 * SCALE;
const MUTATIONS = 20_000 * SCALE;
const TIME_LIMIT = 15_000 * SCALE;
const MAX_PACKET_SIZE = 64 * 1024;

/** The codes the decoder itself raises; the others belong to the channel. */
const DECODER_CODES: ReadonlySet<ProtocolErrorCode> = new Set([
  'MALFORMED_PACKET',
  'PROTOCOL_ERROR',
  'PACKET_TOO_LARGE',
  'UNSUPPORTED_PROTOCOL_VERSION',
  'UNSUPPORTED_PROTOCOL_NAME',
]);

/** mulberry32: small, fast, good enough to drive a fuzzer. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

class Rng {
  readonly next: () => number;
  constructor(seed: number) {
    this.next = prng(seed);
  }
  int(maxExclusive: number): number {
    return Math.floor(this.next() * maxExclusive);
  }
  byte(): number {
    return this.int(256);
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  bytes(n: number): number[] {
    return Array.from({ length: n }, () => this.byte());
  }
}

function vbi(value: number): number[] {
  const out: number[] = [];
  let v = value;
  do {
    let byte = v % 128;
    v = Math.floor(v / 128);
    if (v > 0) byte |= 0x80;
    out.push(byte);
  } while (v > 0);
  return out;
}

interface Stats {
  streams: number;
  packets: number;
  errors: Map<string, number>;
}

class FuzzFailure extends Error {}

/** Feeds `bytes` in a random chunking and checks every invariant; returns normally or throws FuzzFailure. */
function feed(bytes: Buffer, version: ProtocolVersion, rng: Rng, stats: Stats): void {
  function fail(why: string): never {
    const input = toHex(bytes.subarray(0, 256));
    throw new FuzzFailure(`${why}\n  version ${version}, input (${bytes.length} bytes): ${input}`);
  }
  const delivered: { packet: Packet; version: ProtocolVersion }[] = [];
  const decoder = new PacketDecoder((packet) => delivered.push({ packet, version: decoder.version }), {
    version,
    maxPacketSize: MAX_PACKET_SIZE,
  });
  const mode = rng.int(3); // 0: 1-byte chunks, 1: small chunks, 2: large chunks
  stats.streams++;
  let pos = 0;
  let failed = false;
  while (pos < bytes.length && !failed) {
    const size = mode === 0 ? 1 : mode === 1 ? 1 + rng.int(8) : 1 + rng.int(bytes.length);
    const chunk = bytes.subarray(pos, pos + size);
    pos += chunk.length;
    try {
      decoder.push(chunk);
    } catch (err) {
      failed = true;
      if (!(err instanceof ProtocolError)) fail(`push threw a non-protocol error: ${String(err)}`);
      const e = err as ProtocolError;
      // push() wraps unexpected exceptions (a RangeError, a TypeError) as "undecodable packet".
      if (e.message.startsWith('undecodable packet'))
        fail(`internal exception escaped the parser: ${e.message}`);
      if (!DECODER_CODES.has(e.code)) fail(`unexpected code ${e.code}`);
      if (!(e.reasonCode >= 0x80)) fail(`reason code ${e.reasonCode} for ${e.code}`);
      stats.errors.set(e.code, (stats.errors.get(e.code) ?? 0) + 1);
      try {
        decoder.push(Buffer.from([0xc0, 0x00]));
        fail('the decoder accepted input after an error');
      } catch (again) {
        if (!(again instanceof ProtocolError)) fail(`refusal is not a ProtocolError: ${String(again)}`);
      }
    }
    if (decoder.buffered > MAX_PACKET_SIZE) fail(`decoder holds ${decoder.buffered} bytes`);
  }
  for (const { packet, version: v } of delivered) {
    stats.packets++;
    let once: Buffer;
    try {
      once = encode(packet, v);
    } catch (err) {
      fail(`a decoded ${packet.type} does not re-encode: ${String(err)}`);
    }
    let again: Packet[];
    try {
      again = decodeAll(once, { version: v });
    } catch (err) {
      fail(`the re-encoded ${packet.type} does not decode: ${String(err)}; ${toHex(once)}`);
    }
    if (again.length !== 1 || again[0].type !== packet.type)
      fail(`re-encoded ${packet.type} decodes differently`);
    if (!encode(again[0], v).equals(once)) fail(`${packet.type} encoding is not a fixpoint: ${toHex(once)}`);
  }
}

/** Packet types with the fixed-header flags they must have (PUBLISH flags are free). */
const FLAGS = [0, 0, 0, -1, 0, 0, 2, 0, 2, 0, 2, 0, 0, 0, 0, 0];
const PROPERTY_IDS = [
  0x01, 0x02, 0x03, 0x08, 0x09, 0x0b, 0x11, 0x12, 0x13, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1c, 0x1f, 0x21,
  0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2a,
];

/** A body made of plausible fields, so the parsers get past their first check. */
function plausibleBody(rng: Rng, type: number): number[] {
  const body: number[] = [];
  if (type === 1 && rng.chance(0.8)) {
    const [name, level] = rng.pick([
      ['MQTT', 4],
      ['MQTT', 5],
      ['MQIsdp', 3],
      ['MQTT', rng.byte()],
    ] as const);
    body.push(0, name.length, ...Buffer.from(name), level, rng.byte() & 0xfe, rng.byte(), rng.byte());
  }
  const fields = rng.int(8);
  for (let i = 0; i < fields; i++) {
    switch (rng.int(7)) {
      case 0:
        body.push(rng.byte());
        break;
      case 1: // packet identifier or two-byte integer
        body.push(rng.byte(), rng.byte());
        break;
      case 2: {
        // length-prefixed string, sometimes lying about its length
        const s = rng.bytes(rng.int(6)).map((b) => (rng.chance(0.8) ? 0x61 + (b % 26) : b));
        const len = rng.chance(0.9) ? s.length : rng.int(300);
        body.push(len >> 8, len & 0xff, ...s);
        break;
      }
      case 3: {
        // a property list
        const props: number[] = [];
        for (let n = rng.int(3); n > 0; n--) props.push(rng.pick(PROPERTY_IDS), ...rng.bytes(rng.int(6)));
        body.push(...vbi(rng.chance(0.9) ? props.length : rng.int(200)), ...props);
        break;
      }
      case 4:
        body.push(0);
        break;
      case 5:
        body.push(...vbi(rng.int(1 << (7 * (1 + rng.int(4))))));
        break;
      default:
        body.push(...rng.bytes(rng.int(5)));
    }
  }
  return body;
}

function randomStream(rng: Rng): Buffer {
  if (rng.chance(0.25)) return Buffer.from(rng.bytes(rng.int(64)));
  const out: number[] = [];
  for (let n = 1 + rng.int(3); n > 0; n--) {
    const type = rng.chance(0.97) ? 1 + rng.int(15) : 0;
    const flags = FLAGS[type] === -1 || rng.chance(0.05) ? rng.int(16) : FLAGS[type];
    const body = plausibleBody(rng, type);
    const declared = rng.chance(0.85)
      ? body.length
      : rng.chance(0.5)
        ? Math.max(0, body.length + rng.int(7) - 3)
        : rng.int(268_435_456);
    out.push((type << 4) | flags, ...vbi(declared), ...body);
  }
  return Buffer.from(out);
}

function mutate(rng: Rng, input: Buffer, starts: number[]): Buffer {
  let bytes = [...input];
  for (let n = 1 + rng.int(3); n > 0; n--) {
    const at = rng.int(bytes.length + 1);
    switch (rng.int(7)) {
      case 0: // flip a bit
        if (bytes.length > 0) bytes[at % bytes.length] ^= 1 << rng.int(8);
        break;
      case 1: // overwrite a byte
        if (bytes.length > 0) bytes[at % bytes.length] = rng.byte();
        break;
      case 2: // insert bytes
        bytes.splice(at, 0, ...rng.bytes(1 + rng.int(4)));
        break;
      case 3: // delete bytes
        bytes.splice(at, 1 + rng.int(4));
        break;
      case 4: // truncate
        bytes = bytes.slice(0, at);
        break;
      case 5: {
        // tamper with a packet's remaining length (its start is known from the clean stream)
        const start = rng.pick(starts);
        if (start + 1 >= bytes.length) break;
        let end = start + 1;
        while (end < bytes.length && end < start + 4 && bytes[end] & 0x80) end++;
        const old = bytes.slice(start + 1, end + 1).reduce((v, b, i) => v + (b & 0x7f) * 128 ** i, 0);
        const value = rng.chance(0.7) ? Math.max(0, old + rng.int(9) - 4) : rng.int(70_000);
        bytes.splice(start + 1, end - start, ...vbi(value));
        break;
      }
      default: {
        // tamper with a two-byte length field somewhere in a body
        if (bytes.length < 2) break;
        const i = at % (bytes.length - 1);
        const value = rng.chance(0.5) ? ((bytes[i] << 8) | bytes[i + 1]) + rng.int(5) - 2 : rng.int(0x10000);
        bytes[i] = (value >> 8) & 0xff;
        bytes[i + 1] = value & 0xff;
      }
    }
  }
  return Buffer.from(bytes);
}

function run(what: string, body: (stats: Stats) => void): Stats {
  const stats: Stats = { streams: 0, packets: 0, errors: new Map() };
  try {
    body(stats);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    throw new Error(`${what} failed with FUZZ_SEED=${SEED} after ${stats.streams} streams: ${message}`);
  }
  return stats;
}

describe('codec fuzzing', () => {
  it(`${RANDOM_STREAMS} random byte streams yield packets or typed ProtocolErrors`, {
    timeout: TIME_LIMIT,
  }, () => {
    const rng = new Rng(SEED);
    const stats = run('random streams', (s) => {
      for (let i = 0; i < RANDOM_STREAMS; i++) feed(randomStream(rng), rng.pick([3, 4, 5] as const), rng, s);
    });
    expect(stats.streams).toBe(RANDOM_STREAMS);
    // The generator reaches past the fixed header: some streams decode, and every decoder code occurs.
    expect(stats.packets).toBeGreaterThan(200);
    expect([...stats.errors.keys()].sort()).toEqual([...DECODER_CODES].sort());
  });

  it(`${MUTATIONS} mutations of valid streams yield packets or typed ProtocolErrors`, {
    timeout: TIME_LIMIT,
  }, () => {
    const pool = fc.sample(packetStreamArb(3), { seed: SEED, numRuns: 500 }).map(({ version, packets }) => {
      const encoded = packets.map((p) => encode(p, version));
      const starts: number[] = [];
      let at = 0;
      for (const e of encoded) {
        starts.push(at);
        at += e.length;
      }
      return { version, bytes: Buffer.concat(encoded), starts };
    });
    const rng = new Rng(SEED ^ 0x9e3779b9);
    const stats = run('mutations', (s) => {
      for (let i = 0; i < MUTATIONS; i++) {
        const { version, bytes, starts } = rng.pick(pool);
        feed(mutate(rng, bytes, starts), version, rng, s);
      }
    });
    expect(stats.streams).toBe(MUTATIONS);
    expect(stats.packets).toBeGreaterThan(1_000);
    expect(stats.errors.get('MALFORMED_PACKET')).toBeGreaterThan(1_000);
  });

  it('declared lengths beyond 64 KiB fail at the fixed header without buffering', () => {
    const rng = new Rng(SEED + 1);
    for (let i = 0; i < 2_000; i++) {
      const declared = MAX_PACKET_SIZE + rng.int(268_435_455 - MAX_PACKET_SIZE);
      const header = Buffer.from([0x30, ...vbi(declared)]);
      const decoder = new PacketDecoder(() => {}, { version: 5, maxPacketSize: MAX_PACKET_SIZE });
      expect(() => decoder.push(header)).toThrow(expect.objectContaining({ code: 'PACKET_TOO_LARGE' }));
      expect(decoder.buffered).toBe(0);
    }
  });

  it('a packet just under 64 KiB arriving in small chunks never holds more than its own size', () => {
    const payload = Buffer.alloc(MAX_PACKET_SIZE - 10, 0x5a);
    const bytes = encode({ type: 'publish', topic: 't', payload, qos: 0, retain: false, dup: false }, 4);
    expect(bytes.length).toBeLessThanOrEqual(MAX_PACKET_SIZE);
    const out: Packet[] = [];
    const decoder = new PacketDecoder((p) => out.push(p), { version: 4, maxPacketSize: MAX_PACKET_SIZE });
    for (let i = 0; i < bytes.length; i += 1000) {
      decoder.push(bytes.subarray(i, i + 1000));
      expect(decoder.buffered).toBeLessThanOrEqual(bytes.length);
    }
    expect(out).toHaveLength(1);
  });
});
