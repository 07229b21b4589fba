/**
 * Codec benchmark: Shoal's hand-written MQTT codec (src/protocol) against mqtt-packet, the library it
 * replaces. Every scenario runs both contenders in the same process on the same input buffers, with
 * repetitions alternating A B A B, and reports median ops/s and the ratio Shoal / mqtt-packet.
 *
 *   node --import tsx bench/codec.ts [--quick] [--json out.json] [--filter text]
 *
 * Fairness rules, for both sides alike:
 * - decode: one long-lived decoder/parser per scenario (as per connection), fed the very same Buffers;
 *   each packet is parsed into an object and delivered to a callback that reads a field of it;
 * - encode: a prepared packet object in the library's own shape is encoded into a fresh Buffer, whose
 *   length is consumed;
 * - before timing, the outputs are cross-checked (both decoders see the same packets, both encoders
 *   produce bytes the other side decodes to the same packet), and all scenarios of both libraries are
 *   warmed up once so call sites have seen every packet shape, as in a broker;
 * - fan-out is the one deliberately asymmetric row: it compares the two ways of sending one PUBLISH to
 *   100 QoS 1 subscribers (shared payload and patched header vs a full packet per subscriber).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus, loadavg, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import mqttPacket from 'mqtt-packet';
import {
  decodeAll,
  encode,
  encodePublishHeader,
  headerWithPacketId,
  type Packet,
  PacketDecoder,
  type ProtocolVersion,
  type PublishPacket,
} from '../src/protocol/index.js';
import { max, min, relativeIqr } from './lib/stats.js';
import { formatRate, formatRatio, markdownTable } from './lib/table.js';
import { type Contender, gc, sink, type TimeItResult, timeIt } from './lib/timeit.js';

// ---------------------------------------------------------------------------------------------------
// Options

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const jsonIndex = args.indexOf('--json');
const jsonPath = jsonIndex >= 0 ? args[jsonIndex + 1] : undefined;
if (jsonIndex >= 0 && (jsonPath === undefined || jsonPath.startsWith('--'))) {
  console.error('--json needs a file name');
  process.exit(2);
}
const filterIndex = args.indexOf('--filter');
const filter = filterIndex >= 0 ? args[filterIndex + 1]?.toLowerCase() : undefined;

const REPS = quick ? 3 : 11;
const TARGET_MS = quick ? 100 : 150;
const WARMUP_MS = quick ? 120 : 300;
const GLOBAL_WARMUP_MS = quick ? 15 : 40;

// ---------------------------------------------------------------------------------------------------
// Packets, in both libraries' shapes

type MqttPacketObject = mqttPacket.Packet;

const TOPIC = 'sensors/building-7/floor-3/room-42/temperature';

function payloadOf(size: number): Buffer {
  const b = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) b[i] = 0x20 + (i % 95);
  return b;
}

function publishPair(
  size: number,
  qos: 0 | 1,
  withProperties = false,
): { ours: PublishPacket; theirs: MqttPacketObject } {
  const payload = payloadOf(size);
  const ours: PublishPacket = { type: 'publish', topic: TOPIC, payload, qos, retain: false, dup: false };
  const theirs: Record<string, unknown> = {
    cmd: 'publish',
    topic: TOPIC,
    payload,
    qos,
    retain: false,
    dup: false,
  };
  if (qos > 0) {
    ours.packetId = 4242;
    theirs.messageId = 4242;
  }
  if (withProperties) {
    // Keys in identifier order: mqtt-packet writes them in key order, Shoal in identifier order.
    ours.properties = { messageExpiryInterval: 3600, contentType: 'application/json' };
    theirs.properties = { messageExpiryInterval: 3600, contentType: 'application/json' };
  }
  return { ours, theirs: theirs as unknown as MqttPacketObject };
}

const connectV4 = {
  ours: {
    type: 'connect',
    protocolName: 'MQTT',
    protocolVersion: 4,
    clean: true,
    keepalive: 60,
    clientId: 'sensor-gateway-0042',
    will: { topic: 'devices/0042/status', payload: Buffer.from('offline'), qos: 1, retain: true },
    username: 'device-0042',
    password: Buffer.from('s3cr3t-t0ken-value'),
  } satisfies Packet,
  theirs: {
    cmd: 'connect',
    protocolId: 'MQTT',
    protocolVersion: 4,
    clean: true,
    keepalive: 60,
    clientId: 'sensor-gateway-0042',
    will: { topic: 'devices/0042/status', payload: Buffer.from('offline'), qos: 1, retain: true },
    username: 'device-0042',
    password: Buffer.from('s3cr3t-t0ken-value'),
  } as MqttPacketObject,
};

const connectV5 = {
  ours: {
    type: 'connect',
    protocolName: 'MQTT',
    protocolVersion: 5,
    clean: true,
    keepalive: 60,
    clientId: 'sensor-gateway-0042',
    properties: {
      sessionExpiryInterval: 3600,
      receiveMaximum: 100,
      topicAliasMaximum: 16,
      userProperties: [['region', 'eu-west-1']],
      maximumPacketSize: 1_048_576,
    },
    will: {
      topic: 'devices/0042/status',
      payload: Buffer.from('offline'),
      qos: 1,
      retain: true,
      properties: { willDelayInterval: 30 },
    },
    username: 'device-0042',
    password: Buffer.from('s3cr3t-t0ken-value'),
  } satisfies Packet,
  theirs: {
    cmd: 'connect',
    protocolId: 'MQTT',
    protocolVersion: 5,
    clean: true,
    keepalive: 60,
    clientId: 'sensor-gateway-0042',
    properties: {
      sessionExpiryInterval: 3600,
      receiveMaximum: 100,
      topicAliasMaximum: 16,
      userProperties: { region: 'eu-west-1' },
      maximumPacketSize: 1_048_576,
    },
    will: {
      topic: 'devices/0042/status',
      payload: Buffer.from('offline'),
      qos: 1,
      retain: true,
      properties: { willDelayInterval: 30 },
    },
    username: 'device-0042',
    password: Buffer.from('s3cr3t-t0ken-value'),
  } as MqttPacketObject,
};

const subscribeV4 = {
  ours: {
    type: 'subscribe',
    packetId: 42,
    subscriptions: [
      { topic: 'sensors/+/temperature', qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0 },
      {
        topic: 'devices/0042/commands/#',
        qos: 2,
        noLocal: false,
        retainAsPublished: false,
        retainHandling: 0,
      },
      { topic: '$SYS/broker/load/#', qos: 0, noLocal: false, retainAsPublished: false, retainHandling: 0 },
    ],
  } satisfies Packet,
  theirs: {
    cmd: 'subscribe',
    messageId: 42,
    subscriptions: [
      { topic: 'sensors/+/temperature', qos: 1 },
      { topic: 'devices/0042/commands/#', qos: 2 },
      { topic: '$SYS/broker/load/#', qos: 0 },
    ],
  } as MqttPacketObject,
};

const subscribeV5 = {
  ours: {
    type: 'subscribe',
    packetId: 42,
    properties: { subscriptionIdentifiers: [7] },
    subscriptions: [
      { topic: 'sensors/+/temperature', qos: 1, noLocal: true, retainAsPublished: false, retainHandling: 0 },
      {
        topic: 'devices/0042/commands/#',
        qos: 2,
        noLocal: false,
        retainAsPublished: true,
        retainHandling: 1,
      },
      { topic: '$SYS/broker/load/#', qos: 0, noLocal: false, retainAsPublished: false, retainHandling: 2 },
    ],
  } satisfies Packet,
  theirs: {
    cmd: 'subscribe',
    messageId: 42,
    properties: { subscriptionIdentifier: 7 },
    subscriptions: [
      { topic: 'sensors/+/temperature', qos: 1, nl: true, rap: false, rh: 0 },
      { topic: 'devices/0042/commands/#', qos: 2, nl: false, rap: true, rh: 1 },
      { topic: '$SYS/broker/load/#', qos: 0, nl: false, rap: false, rh: 2 },
    ],
  } as MqttPacketObject,
};

// ---------------------------------------------------------------------------------------------------
// What each side's callback reads from a decoded packet (cheap, type-specific, never dead)

function touchOurs(p: Packet): number {
  switch (p.type) {
    case 'publish':
      return p.payload.length + p.topic.length;
    case 'connect':
      return p.clientId.length + p.keepalive;
    case 'subscribe':
      return p.subscriptions.length + p.packetId;
    default:
      return 1;
  }
}

function touchTheirs(p: mqttPacket.Packet): number {
  switch (p.cmd) {
    case 'publish':
      return (p.payload as Buffer).length + p.topic.length;
    case 'connect':
      return p.clientId.length + (p.keepalive ?? 0);
    case 'subscribe':
      return p.subscriptions.length + (p.messageId ?? 0);
    default:
      return 1;
  }
}

// ---------------------------------------------------------------------------------------------------
// Contenders

interface Scenario {
  name: string;
  /** Table column: what one op is. */
  unit: string;
  opsPerIteration?: number;
  /** Target from the issue, Shoal / mqtt-packet, if this row is held to one. */
  target?: number;
  ours: Contender;
  theirs: Contender;
  /** Throws if the two sides would not do equivalent work; returns what was verified. */
  check: () => string;
}

function decodeScenario(
  name: string,
  version: ProtocolVersion,
  chunks: Buffer[],
  packetsPerPass: number,
  unit: string,
  target?: number,
): Scenario {
  let oursSum = 0;
  let oursCount = 0;
  const decoder = new PacketDecoder(
    (p) => {
      oursSum += touchOurs(p);
      oursCount++;
    },
    { version },
  );
  let theirsSum = 0;
  let theirsCount = 0;
  const parser = mqttPacket.parser({ protocolVersion: version });
  parser.on('packet', (p: mqttPacket.Packet) => {
    theirsSum += touchTheirs(p);
    theirsCount++;
  });
  parser.on('error', (err: Error) => {
    throw err;
  });
  const n = chunks.length;
  return {
    name,
    unit,
    target,
    opsPerIteration: packetsPerPass,
    ours: {
      name: 'shoal',
      run(iterations) {
        for (let it = 0; it < iterations; it++) {
          for (let i = 0; i < n; i++) decoder.push(chunks[i]);
        }
        return oursSum;
      },
    },
    theirs: {
      name: 'mqtt-packet',
      run(iterations) {
        for (let it = 0; it < iterations; it++) {
          for (let i = 0; i < n; i++) parser.parse(chunks[i]);
        }
        return theirsSum;
      },
    },
    check() {
      oursSum = oursCount = theirsSum = theirsCount = 0;
      for (const c of chunks) decoder.push(c);
      for (const c of chunks) parser.parse(c);
      if (!decoder.idle || parser.parse(Buffer.alloc(0)) !== 0)
        throw new Error(`${name}: a partial packet is left`);
      if (oursCount !== packetsPerPass || theirsCount !== packetsPerPass || oursSum !== theirsSum) {
        throw new Error(
          `${name}: shoal saw ${oursCount} packets (sum ${oursSum}), mqtt-packet ${theirsCount} (sum ${theirsSum}), expected ${packetsPerPass}`,
        );
      }
      return `both decode ${packetsPerPass} packet(s), same checksum`;
    },
  };
}

/** One packet per push: what a connection sees when the client sends one packet per socket write. */
function decodeOne(name: string, version: ProtocolVersion, wire: Buffer, target?: number): Scenario {
  return decodeScenario(name, version, [wire], 1, 'packets/s', target);
}

function encodeScenario(
  name: string,
  version: ProtocolVersion,
  ours: Packet,
  theirs: MqttPacketObject,
  target?: number,
): Scenario {
  const opts = { protocolVersion: version };
  return {
    name,
    unit: 'packets/s',
    target,
    ours: {
      name: 'shoal',
      run(iterations) {
        let s = 0;
        for (let i = 0; i < iterations; i++) s += encode(ours, version).length;
        return s;
      },
    },
    theirs: {
      name: 'mqtt-packet',
      run(iterations) {
        let s = 0;
        for (let i = 0; i < iterations; i++) s += mqttPacket.generate(theirs, opts).length;
        return s;
      },
    },
    check() {
      const a = encode(ours, version);
      const b = mqttPacket.generate(theirs, opts);
      if (a.equals(b)) return 'byte-identical output';
      // Same packet, possibly different (legal) byte layout: both must decode to the same packet.
      const da = decodeAll(a, { version });
      const db = decodeAll(b, { version });
      if (!isDeepStrictEqual(da, db)) throw new Error(`${name}: the encoders produce different packets`);
      return `same packet, different bytes (${a.length} vs ${b.length} B)`;
    },
  };
}

const SUBSCRIBERS = 100;

function fanOutScenario(name: string, size: number): Scenario {
  const { ours, theirs } = publishPair(size, 1);
  const t = theirs as mqttPacket.IPublishPacket;
  return {
    name,
    unit: `fan-outs/s (×${SUBSCRIBERS})`,
    ours: {
      name: 'shoal',
      run(iterations) {
        let s = 0;
        for (let i = 0; i < iterations; i++) {
          const encoded = encodePublishHeader(ours, 4);
          for (let k = 1; k <= SUBSCRIBERS; k++) {
            // What a connection writes: the patched header, then the shared payload.
            s += headerWithPacketId(encoded, k).length + encoded.payload.length;
          }
        }
        return s;
      },
    },
    theirs: {
      name: 'mqtt-packet',
      run(iterations) {
        let s = 0;
        for (let i = 0; i < iterations; i++) {
          for (let k = 1; k <= SUBSCRIBERS; k++) {
            t.messageId = k;
            s += mqttPacket.generate(t, { protocolVersion: 4 }).length;
          }
        }
        return s;
      },
    },
    check() {
      const encoded = encodePublishHeader(ours, 4);
      for (const k of [1, 77, SUBSCRIBERS]) {
        t.messageId = k;
        const whole = Buffer.concat([headerWithPacketId(encoded, k), encoded.payload]);
        if (!whole.equals(mqttPacket.generate(t, { protocolVersion: 4 })))
          throw new Error(`${name}: different bytes for subscriber ${k}`);
      }
      return 'header + shared payload byte-identical to the generated packet';
    },
  };
}

/**
 * Fan-in: many small PUBLISH packets (QoS 0 and 1, various topics and payload sizes) back to back,
 * cut into 64 KB reads, so packets straddle chunk boundaries as they do on a busy socket.
 */
function buildStream(): { chunks: Buffer[]; packets: number; bytes: number } {
  const parts: Buffer[] = [];
  let bytes = 0;
  let packets = 0;
  const TOTAL = 1 << 20;
  while (bytes < TOTAL) {
    const i = packets;
    const qos = i % 4 === 3 ? 1 : 0;
    const p: PublishPacket = {
      type: 'publish',
      topic: `sensors/building-${i % 7}/room-${i % 113}/${i % 3 === 0 ? 'temperature' : 'humidity'}`,
      payload: payloadOf(16 + ((i * 7) % 49)),
      qos,
      retain: false,
      dup: false,
    };
    if (qos) p.packetId = (i % 65_535) + 1;
    const wire = encode(p, 4);
    parts.push(wire);
    bytes += wire.length;
    packets++;
  }
  const all = Buffer.concat(parts);
  const chunks: Buffer[] = [];
  for (let o = 0; o < all.length; o += 65_536) {
    // Each read its own buffer, as the socket gives them.
    chunks.push(Buffer.from(all.subarray(o, Math.min(all.length, o + 65_536))));
  }
  return { chunks, packets, bytes: all.length };
}

// ---------------------------------------------------------------------------------------------------
// Scenarios

const pub16 = publishPair(16, 0);
const pub1k = publishPair(1024, 0);
const pub64k = publishPair(65_536, 0);
const pub16v5 = publishPair(16, 1, true);
const stream = buildStream();

// The issue's targets name small PUBLISH packets: decode >= 3x, encode >= 2x mqtt-packet. Only the
// rows with 16 B payloads (and the stream of small packets) carry them; the others are context.
const DECODE_TARGET = 3;
const ENCODE_TARGET = 2;

const scenarios: Scenario[] = [
  decodeOne('decode PUBLISH QoS 0, 16 B (v4)', 4, encode(pub16.ours, 4), DECODE_TARGET),
  decodeOne('decode PUBLISH QoS 0, 1 KB (v4)', 4, encode(pub1k.ours, 4)),
  decodeOne('decode PUBLISH QoS 0, 64 KB (v4)', 4, encode(pub64k.ours, 4)),
  decodeOne('decode PUBLISH QoS 1, 16 B, 2 props (v5)', 5, encode(pub16v5.ours, 5), DECODE_TARGET),
  decodeScenario(
    `decode stream: ${stream.packets} small PUBLISH in 64 KB chunks (v4)`,
    4,
    stream.chunks,
    stream.packets,
    'packets/s',
    DECODE_TARGET,
  ),
  decodeOne('decode CONNECT, user/pass + will (v4)', 4, encode(connectV4.ours, 4)),
  decodeOne('decode CONNECT, properties + will (v5)', 5, encode(connectV5.ours, 5)),
  decodeOne('decode SUBSCRIBE, 3 filters (v4)', 4, encode(subscribeV4.ours, 4)),
  decodeOne('decode SUBSCRIBE, options + sub id (v5)', 5, encode(subscribeV5.ours, 5)),
  encodeScenario('encode PUBLISH QoS 0, 16 B (v4)', 4, pub16.ours, pub16.theirs, ENCODE_TARGET),
  encodeScenario('encode PUBLISH QoS 0, 1 KB (v4)', 4, pub1k.ours, pub1k.theirs),
  encodeScenario('encode PUBLISH QoS 0, 64 KB (v4)', 4, pub64k.ours, pub64k.theirs),
  encodeScenario('encode PUBLISH QoS 1, 16 B, 2 props (v5)', 5, pub16v5.ours, pub16v5.theirs, ENCODE_TARGET),
  encodeScenario('encode CONNECT, user/pass + will (v4)', 4, connectV4.ours, connectV4.theirs),
  encodeScenario('encode CONNECT, properties + will (v5)', 5, connectV5.ours, connectV5.theirs),
  encodeScenario('encode SUBSCRIBE, 3 filters (v4)', 4, subscribeV4.ours, subscribeV4.theirs),
  encodeScenario('encode SUBSCRIBE, options + sub id (v5)', 5, subscribeV5.ours, subscribeV5.theirs),
  fanOutScenario(`fan-out PUBLISH QoS 1, 16 B to ${SUBSCRIBERS} subscribers (v4)`, 16),
  fanOutScenario(`fan-out PUBLISH QoS 1, 1 KB to ${SUBSCRIBERS} subscribers (v4)`, 1024),
].filter((s) => filter === undefined || s.name.toLowerCase().includes(filter));

// ---------------------------------------------------------------------------------------------------
// Run

const cpuList = cpus();
const env = {
  node: process.version,
  v8: process.versions.v8,
  cpu: cpuList[0]?.model ?? 'unknown',
  cores: cpuList.length,
  memoryGiB: Math.round(totalmem() / 2 ** 30),
  loadAverage1m: loadavg()[0],
  platform: `${process.platform}-${process.arch}`,
  command: ['node', ...process.execArgv, process.argv[1].replace(`${process.cwd()}/`, ''), ...args].join(' '),
  reps: REPS,
  targetMsPerRep: TARGET_MS,
  gcBetweenReps: gc !== undefined,
};

const started = Date.now();
const checks = scenarios.map((s) => `${s.name}: ${s.check()}`);

// Global warm-up: every scenario of both libraries once, so that later rows do not run against
// call sites that only ever saw the earlier rows' packet shapes.
for (const s of scenarios) {
  for (const c of [s.ours, s.theirs]) {
    const t0 = Date.now();
    let n = 1;
    while (Date.now() - t0 < GLOBAL_WARMUP_MS) {
      sink.value += c.run(n);
      n *= 2;
    }
  }
}

interface Row {
  scenario: Scenario;
  result: TimeItResult;
}
const rows: Row[] = [];
for (const s of scenarios) {
  const result = timeIt(s.ours, s.theirs, {
    reps: REPS,
    targetMs: TARGET_MS,
    warmupMs: WARMUP_MS,
    opsPerIteration: s.opsPerIteration,
  });
  rows.push({ scenario: s, result });
  const r = result;
  process.stderr.write(
    `  ${s.name}: ${formatRate(r.a.medianOpsPerSec)} vs ${formatRate(r.b.medianOpsPerSec)} ${s.unit} = ${formatRatio(r.ratio)}\n`,
  );
}
const seconds = (Date.now() - started) / 1000;

const table = markdownTable(
  [
    'scenario',
    'Shoal ops/s (median)',
    'mqtt-packet ops/s (median)',
    'ratio',
    'pair ratios min–max',
    'spread (IQR) S / m',
    'target',
  ],
  rows.map(({ scenario: s, result: r }) => [
    s.name + (s.unit === 'packets/s' ? '' : ` [${s.unit}]`),
    formatRate(r.a.medianOpsPerSec),
    formatRate(r.b.medianOpsPerSec),
    formatRatio(r.ratio),
    `${formatRatio(min(r.pairRatios))}–${formatRatio(max(r.pairRatios))}`,
    `${relativeIqr(r.a.opsPerSec).toFixed(0)}% / ${relativeIqr(r.b.opsPerSec).toFixed(0)}%`,
    s.target === undefined ? '' : `≥ ${s.target}x ${r.ratio >= s.target ? 'met' : 'MISSED'}`,
  ]),
  ['left', 'right', 'right', 'right', 'right', 'right', 'left'],
);

console.log(`# Codec benchmark: Shoal vs mqtt-packet ${mqttPacketVersion()}\n`);
console.log(`- command: \`${env.command}\``);
console.log(`- node ${env.node} (V8 ${env.v8}), ${env.platform}`);
console.log(
  `- CPU: ${env.cpu} × ${env.cores}, ${env.memoryGiB} GiB; load average at start ${env.loadAverage1m.toFixed(2)}`,
);
console.log(
  `- ${REPS} repetitions of ~${TARGET_MS} ms per contender, alternating; ops/s are medians; ratio = Shoal / mqtt-packet` +
    ` (pair ratios: each Shoal repetition against the mqtt-packet one after it)`,
);
console.log(`- full GC before each repetition: ${env.gcBetweenReps ? 'yes' : 'no'}`);
console.log("- target: the issue's goal for small PUBLISH (decode ≥ 3x, encode ≥ 2x), on the rows it names");
console.log(`- total ${seconds.toFixed(1)} s\n`);
console.log(table);
console.log(`\nEquivalence checks before timing:\n${checks.map((c) => `- ${c}`).join('\n')}`);
console.log(`\n(sink ${sink.value % 1000})`);

if (jsonPath !== undefined) {
  const out = {
    env,
    mqttPacket: mqttPacketVersion(),
    seconds,
    checks,
    scenarios: rows.map(({ scenario: s, result: r }) => ({
      name: s.name,
      unit: s.unit,
      target: s.target ?? null,
      ratio: r.ratio,
      pairRatios: r.pairRatios,
      shoal: r.a,
      mqttPacket: r.b,
    })),
  };
  writeFileSync(jsonPath, `${JSON.stringify(out, null, 2)}\n`);
  console.log(`raw numbers written to ${jsonPath}`);
}

function mqttPacketVersion(): string {
  const require = createRequire(import.meta.url);
  const main = require.resolve('mqtt-packet');
  const pkg = JSON.parse(readFileSync(join(dirname(main), 'package.json'), 'utf8')) as { version: string };
  return pkg.version;
}
