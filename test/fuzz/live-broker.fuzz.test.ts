/**
 * Fuzzing a live broker over sockets: a Shoal process (the CLI, as deployed) takes mutated packet
 * streams on many concurrent connections for a bounded time, while a subscriber and a publisher with
 * ordinary sessions work next to them.
 *
 * Streams are built from the golden fixtures, samples of the valid-packet arbitraries and the
 * malformed corpus (a CONNECT first, most of the time, so the fuzz reaches the connected states),
 * then mutated: bit flips, random bytes, insertions, deletions, duplicated ranges, huge lengths,
 * truncation, splices of two streams. Each goes out in a few writes on its own connection, which is
 * then half-closed.
 *
 * Invariants: the process stays up and logs no error (no internal error, no listener failure); every
 * connection ends (no hang); resident memory stays bounded; once the fuzz stops, no connection is left
 * open but the two ordinary clients; and those received every message, in order, and still answer.
 *
 * Bounded to FUZZ_SECONDS (default 20) of fuzzing; FUZZ_SEED reproduces a run. FUZZ_SECONDS=600 runs
 * millions of streams.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encode, type Packet, type PacketType, type ProtocolVersion } from '../../src/protocol/index.js';
import { connectArb, packetArb } from '../fixtures/arbitraries.js';
import { malformedCases } from '../fixtures/malformed.js';
import { fixturesFor } from '../fixtures/packets.js';
import { freePort, waitForPort } from '../helpers/ports.js';
import { spawnTracked, type TrackedProcess } from '../helpers/processes.js';
import { RawClient } from '../helpers/raw-client.js';

const SECONDS = Number(process.env.FUZZ_SECONDS ?? 20);
const SEED = Number(process.env.FUZZ_SEED ?? 0x11_7e_b0);
const CONCURRENCY = 32;
/** A connection that neither the broker nor the stream ends within this is a hang. */
const HANG_MS = 10_000;
/** Resident memory may grow this much over its level after the warm-up, at most. */
const RSS_GROWTH_LIMIT = 256 * 1024 * 1024;
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const VERSIONS: ProtocolVersion[] = [3, 4, 5];
/** What a client may send after CONNECT (the rest are refused as protocol errors: fuzzed too). */
const CLIENT_TYPES: PacketType[] = [
  'publish',
  'puback',
  'pubrec',
  'pubrel',
  'pubcomp',
  'subscribe',
  'unsubscribe',
  'pingreq',
  'disconnect',
];

/** mulberry32, as in codec.fuzz.test.ts. */
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
  readonly next = prng(SEED);
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }
  bytes(n: number): Buffer {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
}

interface Pools {
  connects: Map<ProtocolVersion, Buffer[]>;
  packets: Map<ProtocolVersion, Buffer[]>;
  malformed: Buffer[];
}

/** Encoded CONNECTs and client packets per level: golden fixtures plus arbitrary samples. */
function buildPools(): Pools {
  const connects = new Map<ProtocolVersion, Buffer[]>();
  const packets = new Map<ProtocolVersion, Buffer[]>();
  for (const v of VERSIONS) {
    const sampled = fc.sample(connectArb(v), { seed: SEED + v, numRuns: 200 });
    // Never the ordinary clients' ids: a takeover of them would be by the book, not harm.
    connects.set(v, [
      ...fixturesFor(v, 'connect').map((f) => f.bytes),
      ...sampled.map((p) => encode({ ...p, clientId: `fz${p.clientId.slice(0, 20)}` }, v)),
    ]);
    const golden = CLIENT_TYPES.flatMap((t) => fixturesFor(v, t).map((f) => f.bytes));
    const arbitrary = CLIENT_TYPES.flatMap((t) =>
      fc.sample(packetArb(v, t), { seed: SEED + v * 31 + t.length, numRuns: 60 }).map((p) => encode(p, v)),
    );
    packets.set(v, [...golden, ...arbitrary]);
  }
  return { connects, packets, malformed: malformedCases.map((c) => c.bytes) };
}

/** A mutated stream for one connection. */
function makeStream(rng: Rng, pools: Pools, previous: Buffer | undefined): Buffer {
  const v = rng.pick(VERSIONS);
  const parts: Buffer[] = [];
  if (rng.chance(0.85)) parts.push(rng.pick(pools.connects.get(v)!));
  const prefix = parts.length > 0 ? parts[0].length : 0;
  for (let n = 1 + rng.int(8); n > 0; n--) {
    parts.push(rng.chance(0.08) ? rng.pick(pools.malformed) : rng.pick(pools.packets.get(v)!));
  }
  let bytes = Buffer.concat(parts);
  if (rng.chance(0.1)) return bytes; // valid as generated
  for (let m = 1 + rng.int(4); m > 0; m--) {
    // Mostly after the CONNECT, so connected states get fuzzed too.
    const from = rng.chance(0.75) && prefix < bytes.length ? prefix : 0;
    const at = from + rng.int(Math.max(1, bytes.length - from));
    switch (rng.int(9)) {
      case 0:
        if (at < bytes.length) bytes[at] ^= 1 << rng.int(8);
        break;
      case 1:
        if (at < bytes.length) bytes[at] = rng.int(256);
        break;
      case 2:
        bytes = Buffer.concat([bytes.subarray(0, at), rng.bytes(1 + rng.int(8)), bytes.subarray(at)]);
        break;
      case 3:
        bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + 1 + rng.int(16))]);
        break;
      case 4: {
        const end = Math.min(bytes.length, at + 1 + rng.int(32));
        bytes = Buffer.concat([bytes.subarray(0, end), bytes.subarray(at, end), bytes.subarray(end)]);
        break;
      }
      case 5: // a huge declared length
        bytes = Buffer.concat([bytes.subarray(0, at), Buffer.from([0x30, 0xff, 0xff, 0xff, 0x7f])]);
        break;
      case 6:
        bytes = bytes.subarray(0, at);
        break;
      case 7:
        if (previous !== undefined)
          bytes = Buffer.concat([bytes.subarray(0, at), previous.subarray(rng.int(previous.length))]);
        break;
      default:
        if (at < bytes.length) bytes[at] = rng.pick([0x00, 0x7f, 0x80, 0xff]);
    }
  }
  return bytes;
}

interface Totals {
  streams: number;
  bytes: number;
  hangs: number;
  connectErrors: number;
}

/** Sends one stream on a fresh connection in a few writes, half-closes, resolves when it is closed. */
function runStream(port: number, bytes: Buffer, rng: Rng, totals: Totals): Promise<void> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    const timer = setTimeout(() => {
      totals.hangs++;
      socket.destroy();
    }, HANG_MS);
    socket.on('error', (err: NodeJS.ErrnoException) => {
      // Resets are the broker refusing; only failing to connect at all is worth counting.
      if (err.syscall === 'connect') totals.connectErrors++;
    });
    socket.on('data', () => undefined);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
    socket.once('connect', () => {
      const writes = 1 + rng.int(4);
      let at = 0;
      for (let w = 0; w < writes && at < bytes.length; w++) {
        const size = w === writes - 1 ? bytes.length - at : 1 + rng.int(bytes.length - at);
        socket.write(bytes.subarray(at, at + size));
        at += size;
      }
      socket.end();
      totals.streams++;
      totals.bytes += bytes.length;
    });
  });
}

async function rssOf(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return kb * 1024;
}

async function metric(httpPort: number, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? Number.NaN : Number(line.slice(name.length + 1));
}

describe('live broker fuzz', () => {
  let dir: string;
  let shoal: TrackedProcess;
  let port: number;
  let httpPort: number;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'shoal-fuzz-'));
    const config = path.join(dir, 'config.json');
    await writeFile(
      config,
      JSON.stringify({
        // Bounds on what fuzzed sessions may keep (they never come back): memory must then stay flat.
        mqtt: {
          maxPacketSizeBytes: 65_536,
          connectTimeoutMs: 2000,
          sysIntervalSeconds: 0,
          maxSessionExpirySeconds: 5,
          maxQueuedMessages: 100,
        },
        limits: {
          maxSubscriptionsPerClient: 64,
          maxTopicLevels: 16,
          maxRetainedMessages: 2000,
          maxRetainedPayloadBytes: 1024,
        },
      }),
    );
    port = await freePort();
    httpPort = await freePort();
    shoal = await spawnTracked(
      process.execPath,
      [
        '--import',
        'tsx',
        'test/helpers/shoal-main.ts',
        'start',
        '--config',
        config,
        '--host',
        '127.0.0.1',
        '--port',
        String(port),
        '--ws-port',
        '0',
        '--http-port',
        String(httpPort),
        '--log-level',
        'warn',
      ],
      { cwd: ROOT, name: 'shoal (fuzz)', env: { ...process.env, NODE_ENV: 'test' } },
    );
    await waitForPort(port, '127.0.0.1', 30_000);
  }, 60_000);

  afterAll(async () => {
    await shoal?.terminate(5_000);
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it(
    `survives ${SECONDS} s of mutated packet streams; other sessions are unharmed`,
    async () => {
      const rng = new Rng();
      const pools = buildPools();
      const totals: Totals = { streams: 0, bytes: 0, hangs: 0, connectErrors: 0 };

      // The ordinary clients: a persistent QoS 1 subscriber and a publisher, all the way through.
      const suffix = Math.random().toString(36).slice(2, 12);
      const subscriber = await RawClient.connect(port, 5);
      await subscriber.handshake({
        protocolVersion: 5,
        clientId: `bystander-sub-${suffix}`,
        clean: false,
        properties: { sessionExpiryInterval: 600 },
      });
      subscriber.send({
        type: 'subscribe',
        packetId: 1,
        subscriptions: [
          {
            topic: `bystander/${suffix}`,
            qos: 1,
            noLocal: false,
            retainAsPublished: false,
            retainHandling: 0,
          },
        ],
      });
      expect((await subscriber.next('suback')).reasonCodes).toEqual([1]);
      const publisher = await RawClient.connect(port, 4);
      expect((await publisher.handshake({ clientId: `bystander-pub-${suffix}` })).reasonCode).toBe(0);

      let stop = false;
      const received: string[] = [];
      const consuming = (async () => {
        for (;;) {
          const p = await subscriber.next('publish', HANG_MS);
          subscriber.send({ type: 'puback', packetId: p.packetId! });
          const text = p.payload.toString();
          if (text === 'end') return;
          received.push(text);
        }
      })();
      let sent = 0;
      const publishing = (async () => {
        while (!stop) {
          const packetId = (sent % 65535) + 1;
          publisher.send({
            type: 'publish',
            topic: `bystander/${suffix}`,
            payload: Buffer.from(String(sent)),
            qos: 1,
            retain: false,
            dup: false,
            packetId,
          } satisfies Packet);
          await publisher.next('puback', HANG_MS);
          sent++;
          await new Promise((r) => setTimeout(r, 20));
        }
      })();

      // The fuzz: CONCURRENCY connections at a time until the time is up.
      const deadline = Date.now() + SECONDS * 1000;
      let warmRss = 0;
      let maxRss = 0;
      const warmAt = Date.now() + Math.min(3000, (SECONDS * 1000) / 4);
      const sampler = setInterval(() => {
        rssOf(shoal.pid).then(
          (rss) => {
            if (warmRss === 0 && Date.now() >= warmAt) warmRss = rss;
            maxRss = Math.max(maxRss, rss);
          },
          () => undefined,
        );
      }, 250);
      let previous: Buffer | undefined;
      const worker = async () => {
        while (Date.now() < deadline && shoal.running) {
          const stream = makeStream(rng, pools, previous);
          previous = stream;
          await runStream(port, stream, rng, totals);
        }
      };
      await Promise.all(Array.from({ length: CONCURRENCY }, worker));
      clearInterval(sampler);

      stop = true;
      await publishing;
      publisher.send({
        type: 'publish',
        topic: `bystander/${suffix}`,
        payload: Buffer.from('end'),
        qos: 1,
        retain: false,
        dup: false,
        packetId: 65535,
      });
      await publisher.next('puback');
      await consuming;

      const finalRss = await rssOf(shoal.pid);
      console.log(
        `live fuzz: ${totals.streams} streams, ${(totals.bytes / 1e6).toFixed(1)} MB in ${SECONDS} s; ` +
          `RSS warm ${(warmRss / 2 ** 20).toFixed(0)} MiB, max ${(maxRss / 2 ** 20).toFixed(0)} MiB, ` +
          `end ${(finalRss / 2 ** 20).toFixed(0)} MiB; ${sent} messages to the bystander`,
      );

      // The process is up and said nothing alarming.
      expect(shoal.running).toBe(true);
      const output = shoal.output();
      expect(output).not.toMatch(/internal_error|"level":(50|60)/);
      // Every connection ended; memory stayed bounded.
      expect(totals.hangs).toBe(0);
      expect(totals.connectErrors).toBe(0);
      expect(totals.streams).toBeGreaterThan(SECONDS * 100);
      expect(maxRss - (warmRss || maxRss)).toBeLessThan(RSS_GROWTH_LIMIT);
      // Nothing is left open but the two ordinary clients.
      const deadlineOpen = Date.now() + 10_000;
      let open = await metric(httpPort, 'shoal_connections_open');
      while (open > 2 && Date.now() < deadlineOpen) {
        await new Promise((r) => setTimeout(r, 100)); // the broker closes what remains in its own time
        open = await metric(httpPort, 'shoal_connections_open');
      }
      expect(open).toBe(2);
      // The ordinary sessions are unharmed: every message, in order, and both still answer.
      expect(received).toEqual(Array.from({ length: sent }, (_, i) => String(i)));
      for (const c of [subscriber, publisher]) {
        c.send({ type: 'pingreq' });
        await c.next('pingresp');
      }
      subscriber.destroy();
      publisher.destroy();
    },
    SECONDS * 1000 + 90_000,
  );
});
