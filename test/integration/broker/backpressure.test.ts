/**
 * Backpressure over real sockets: a subscriber that stops reading costs the broker a bounded buffer;
 * QoS 0 to it is dropped (counted as slow_consumer), QoS 1 waits in its bounded queue and is delivered
 * once it reads again, and the publisher feeding it is not slowed down. Every load loop is bounded in
 * count and in time.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { validateConfig } from '../../../src/config/schema.js';
import type { Transport } from '../../../src/transport/types.js';
import { startTestBroker, type TestBroker } from '../../helpers/broker.js';
import {
  closeAll,
  connect,
  nextPublish,
  publish,
  publishAcked,
  receive,
  subscribe,
  sync,
  takePublishes,
  uid,
} from '../../helpers/mqtt.js';
import type { RawClient } from '../../helpers/raw-client.js';

const LIMIT = 64 * 1024;
const PAYLOAD = Buffer.alloc(4096, 0x61);
const BURST = 32;
const MAX_BURSTS = 400; // 50 MiB: far beyond what loopback socket buffers absorb
const TIME_BUDGET_MS = 10_000;

let t: TestBroker | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
});

/** Starts a broker that records the transport of every accepted connection, in order. */
async function brokerWithTransports(options: Parameters<typeof startTestBroker>[0]) {
  const transports: Transport[] = [];
  const broker = await startTestBroker(options, { onTransport: (t) => transports.push(t) });
  return { broker, transports };
}

/**
 * Publishes QoS 0 bursts (each followed by a PINGREQ round trip, so the broker has routed it) until
 * `done` holds; returns the number of messages sent. Throws if the bounds run out first.
 */
async function flood(
  pub: RawClient,
  topic: string,
  done: () => boolean,
  afterBurst?: () => void,
): Promise<number> {
  const deadline = Date.now() + TIME_BUDGET_MS;
  let sent = 0;
  for (let burst = 0; burst < MAX_BURSTS && Date.now() < deadline; burst++) {
    for (let i = 0; i < BURST; i++) publish(pub, topic, Buffer.concat([Buffer.from(`${sent++}:`), PAYLOAD]));
    await sync(pub); // also proves the publisher's connection keeps being served
    afterBurst?.();
    if (done()) return sent;
  }
  throw new Error(`flood bounds reached after ${sent} messages`);
}

const slowDrops = (b: TestBroker) => b.broker.stats.dropped.slow_consumer ?? 0;

describe('slow subscribers', () => {
  it('(backpressure) QoS 0 to a subscriber that stops reading is dropped; the broker buffers stay bounded', async () => {
    const { broker, transports } = await brokerWithTransports({ slowClientBufferBytes: LIMIT });
    t = broker;
    const topic = uid('flood');
    const slow = await connect(broker.port, 5);
    const slowTransport = transports[0];
    await subscribe(slow, topic);
    const healthy = await connect(broker.port, 4);
    await subscribe(healthy, [topic, `${topic}/end`]);
    healthy.received.length = 0;
    const pub = await connect(broker.port, 4);
    slow.socket.pause();

    let maxBuffered = 0;
    let healthyCount = 0;
    const sent = await flood(
      pub,
      topic,
      () => slowDrops(broker) >= 200,
      () => {
        maxBuffered = Math.max(maxBuffered, slowTransport.bufferedBytes);
        healthyCount += takePublishes(healthy).length; // keep the inbox small
      },
    );
    // Bounded: at most the limit plus the one packet that crossed it.
    expect(maxBuffered).toBeGreaterThan(0);
    expect(maxBuffered).toBeLessThanOrEqual(LIMIT + PAYLOAD.length + 64);
    expect(slowDrops(broker)).toBeGreaterThanOrEqual(200);

    // The publisher is not harmed: QoS 1 still completes at once, and a reading subscriber gets it.
    expect(await publishAcked(pub, `${topic}/end`, 'end', { qos: 1 })).toBe(0);
    for (;;) {
      const p = await nextPublish(healthy);
      if (p.topic === `${topic}/end`) break;
      healthyCount++;
    }
    expect(healthyCount).toBeGreaterThan(0);
    expect(healthyCount).toBeLessThanOrEqual(sent);

    // Reading again, the slow subscriber gets what was buffered, in order, with gaps where drops were.
    slow.socket.resume();
    await sync(slow);
    const seqs = takePublishes(slow).map((p) => Number(p.payload.subarray(0, 12).toString().split(':')[0]));
    expect(seqs.length).toBeGreaterThan(0);
    expect(seqs.length).toBeLessThan(sent);
    for (let i = 1; i < seqs.length; i++) expect(seqs[i]).toBeGreaterThan(seqs[i - 1]);
    closeAll(slow, healthy, pub);
  });

  it("(backpressure) [MQTT-4.9.0-2] QoS 1 to a slow subscriber waits in its bounded queue, and the publisher's PUBACKs wait for it to drain", async () => {
    const { broker, transports } = await brokerWithTransports({
      slowClientBufferBytes: LIMIT,
      maxQueuedMessages: 50,
      maxInflightMessages: 10,
    });
    t = broker;
    const base = uid('q1slow');
    const slow = await connect(broker.port, 5);
    await subscribe(slow, [`${base}/bulk`, { topic: `${base}/important`, qos: 1 }]);
    const pub = await connect(broker.port, 5);
    slow.socket.pause();
    // Until the socket buffers are full and the broker holds the limit itself: the client is not writable.
    await flood(pub, `${base}/bulk`, () => transports[0].bufferedBytes >= LIMIT);

    // 230 QoS 1 messages while the subscriber does not read. Once the queue is half full (25) the
    // broker holds the PUBACKs, so a publisher that respects its window stops there; this one does
    // not, and since its acknowledgements are held the queue may hold up to 4 x 50 = 200 of them
    // (bounded), and the last 30 are dropped.
    const queueFull = broker.broker.stats.dropped.queue_full ?? 0;
    for (let i = 0; i < 230; i++) publish(pub, `${base}/important`, `imp${i}`, { qos: 1 });
    await sync(pub); // every PUBLISH before the PINGREQ has been handled
    const early = pub.received.filter((p) => p.type === 'puback').length;
    expect(early).toBe(24);
    expect((broker.broker.stats.dropped.queue_full ?? 0) - queueFull).toBe(30);

    slow.socket.resume();
    const important: string[] = [];
    while (important.length < 200) {
      const p = await nextPublish(slow); // acknowledges, which frees the window for the rest
      if (p.topic === `${base}/important`) {
        expect(p.qos).toBe(1);
        important.push(p.payload.toString());
      }
    }
    expect(important).toEqual(Array.from({ length: 200 }, (_, i) => `imp${i}`));
    for (let i = 0; i < 230; i++) await pub.next('puback'); // the held ones follow once it drained
    await sync(slow);
    expect(takePublishes(slow).filter((p) => p.topic === `${base}/important`)).toEqual([]);
    closeAll(slow, pub);
  });

  it('(backpressure) the buffer limit cannot be configured below the socket high-water mark', () => {
    // Below it (16 KiB in Node 20, 64 KiB from 22) a full buffer never brings a 'drain': the client's
    // reads and its QoS 1 queue would stay paused for good.
    expect(() => validateConfig({ mqtt: { slowClientBufferBytes: 4096 } })).toThrow(/slowClientBufferBytes/);
    expect(validateConfig({ mqtt: { slowClientBufferBytes: LIMIT } }).mqtt.slowClientBufferBytes).toBe(LIMIT);
  });

  it('(backpressure) a paused subscriber does not hold up other subscribers of the same messages at QoS 1', async () => {
    const { broker } = await brokerWithTransports({ slowClientBufferBytes: LIMIT, maxQueuedMessages: 1000 });
    t = broker;
    const topic = uid('fair');
    const slow = await connect(broker.port, 5);
    await subscribe(slow, { topic, qos: 1 });
    const fast = await connect(broker.port, 5);
    await subscribe(fast, { topic, qos: 1 });
    const pub = await connect(broker.port, 5);
    slow.socket.pause();
    const n = 300; // 1.2 MiB: more than the slow subscriber's window and buffer allow
    for (let i = 0; i < n; i++) publish(pub, topic, PAYLOAD, { qos: 1 });
    const got = await receive(fast, n);
    expect(got).toHaveLength(n);
    for (let i = 0; i < n; i++) await pub.next('puback');
    slow.socket.resume();
    expect(await receive(slow, n)).toHaveLength(n);
    closeAll(slow, fast, pub);
  });
});
