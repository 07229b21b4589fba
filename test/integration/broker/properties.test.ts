/**
 * MQTT 5 PUBLISH properties over real sockets: what is forwarded unaltered, Message Expiry (remaining
 * time forwarded, expired messages dropped from offline queues) and the client's Maximum Packet Size.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encode, type Properties } from '../../../src/protocol/index.js';
import { startTestBroker, type TestBroker } from '../../helpers/broker.js';
import { FakeClock } from '../../helpers/fake-clock.js';
import {
  closeAll,
  connect,
  nextPublish,
  publishAcked,
  receive,
  settle,
  subscribe,
  sync,
  takePublishes,
  uid,
} from '../../helpers/mqtt.js';

let b: TestBroker;
beforeAll(async () => {
  b = await startTestBroker();
});
afterAll(async () => {
  await b.close();
});

describe('forwarded properties', () => {
  const properties: Properties = {
    payloadFormatIndicator: 1,
    contentType: 'application/json; charset=utf-8',
    responseTopic: 'reply/to/me',
    correlationData: Buffer.from([0, 1, 2, 0xff]),
    userProperties: [
      ['b', '2'],
      ['a', '1'],
      ['b', '2'],
      ['b', 'another'],
      ['ünïcode', 'välue'],
    ],
  };

  it('[MQTT-3.3.2-4] [MQTT-3.3.2-15] [MQTT-3.3.2-16] [MQTT-3.3.2-17] [MQTT-3.3.2-18] [MQTT-3.3.2-20] reach every subscriber unaltered, user properties in order with duplicates', async () => {
    const topic = uid('props');
    const plain = await connect(b.port, 5);
    await subscribe(plain, { topic, qos: 1 });
    const withId = await connect(b.port, 5);
    await subscribe(withId, { topic, qos: 2 }, { subscriptionIdentifiers: [3] });
    const v4 = await connect(b.port, 4);
    await subscribe(v4, { topic, qos: 1 });
    const pub = await connect(b.port, 5);
    for (const qos of [0, 1, 2] as const) await publishAcked(pub, topic, '{"x":1}', { qos, properties });
    for (const qos of [0, 1, 2]) {
      const p = await nextPublish(plain);
      expect(p.qos).toBe(Math.min(qos, 1));
      expect(p.properties).toEqual(properties);
      const q = await nextPublish(withId);
      expect(q.properties).toEqual({ ...properties, subscriptionIdentifiers: [3] });
      const r = await nextPublish(v4);
      expect(r.properties).toBeUndefined();
      expect(r.payload.toString()).toBe('{"x":1}');
    }
    closeAll(plain, withId, v4, pub);
  });

  it('[MQTT-3.3.2-4] Payload Format Indicator 0 is forwarded too', async () => {
    const topic = uid('pfi0');
    const sub = await connect(b.port, 5);
    await subscribe(sub, topic);
    const pub = await connect(b.port, 5);
    await publishAcked(pub, topic, Buffer.from([0xff]), { properties: { payloadFormatIndicator: 0 } });
    expect((await nextPublish(sub)).properties).toEqual({ payloadFormatIndicator: 0 });
    closeAll(sub, pub);
  });

  it('[MQTT-3.3.4-6] a Subscription Identifier or Topic Alias of the publisher is not forwarded', async () => {
    const topic = uid('perhop');
    const sub = await connect(b.port, 5);
    await subscribe(sub, topic);
    const pub = await connect(b.port, 5);
    await publishAcked(pub, topic, 'x', { properties: { subscriptionIdentifiers: [99], topicAlias: 1 } });
    const p = await nextPublish(sub);
    expect(p.topic).toBe(topic);
    expect(p.properties).toBeUndefined();
    closeAll(sub, pub);
  });
});

describe('Message Expiry Interval', () => {
  let t: TestBroker;
  const clock = new FakeClock();
  const persistent = { clean: false, properties: { sessionExpiryInterval: 3600 } };
  beforeAll(async () => {
    t = await startTestBroker({}, { clock });
  });
  afterAll(async () => {
    await t.close();
  });

  /** A persistent session subscribed to `topic` at QoS 1, then disconnected. */
  async function offlineSubscriber(topic: string, version: 4 | 5 = 5): Promise<string> {
    const clientId = uid('sleeper');
    const fields = version === 5 ? { clientId, ...persistent } : { clientId, clean: false };
    const c = await connect(t.port, version, fields);
    await subscribe(c, { topic, qos: 1 });
    c.send({ type: 'disconnect' });
    await c.closed;
    return clientId;
  }

  it('[MQTT-3.3.2-6] a live message carries the interval as received', async () => {
    const topic = uid('live');
    const sub = await connect(t.port, 5);
    await subscribe(sub, { topic, qos: 1 });
    const pub = await connect(t.port, 5);
    await publishAcked(pub, topic, 'x', { qos: 1, properties: { messageExpiryInterval: 10 } });
    await publishAcked(pub, topic, 'y', { qos: 0, properties: { messageExpiryInterval: 10 } });
    expect((await nextPublish(sub)).properties?.messageExpiryInterval).toBe(10);
    expect((await nextPublish(sub)).properties?.messageExpiryInterval).toBe(10);
    closeAll(sub, pub);
  });

  it('[MQTT-3.3.2-6] a queued message is forwarded with the remaining interval (10 s, 4 s offline: 6)', async () => {
    const topic = uid('remaining');
    const clientId = await offlineSubscriber(topic);
    const pub = await connect(t.port, 5);
    await publishAcked(pub, topic, 'x', { qos: 1, properties: { messageExpiryInterval: 10 } });
    await publishAcked(pub, topic, 'forever', { qos: 1 });
    clock.advance(4000);
    const sub = await connect(t.port, 5, { clientId, ...persistent });
    const [x, forever] = await receive(sub, 2);
    expect(x.properties?.messageExpiryInterval).toBe(6);
    expect(forever.properties?.messageExpiryInterval).toBeUndefined();
    closeAll(sub, pub);
  });

  it('[MQTT-3.3.2-5] messages that expire in an offline queue are dropped, the others delivered', async () => {
    for (const version of [4, 5] as const) {
      const topic = uid('expired');
      const clientId = await offlineSubscriber(topic, version);
      const pub = await connect(t.port, 5);
      const dropped = t.broker.stats.dropped.expired ?? 0;
      await publishAcked(pub, topic, 'short', { qos: 1, properties: { messageExpiryInterval: 2 } });
      await publishAcked(pub, topic, 'long', { qos: 1, properties: { messageExpiryInterval: 60 } });
      await publishAcked(pub, topic, 'exact', { qos: 1, properties: { messageExpiryInterval: 3 } });
      clock.advance(3000);
      const fields = version === 5 ? { clientId, ...persistent } : { clientId, clean: false };
      const sub = await connect(t.port, version, fields);
      const [long] = await receive(sub, 1);
      expect(long.payload.toString()).toBe('long');
      if (version === 5) expect(long.properties?.messageExpiryInterval).toBe(57);
      await sync(sub);
      expect(takePublishes(sub)).toEqual([]);
      expect(t.broker.stats.dropped.expired ?? 0).toBe(dropped + 2);
      closeAll(sub, pub);
    }
  });
});

describe('Message Expiry in a full offline queue', () => {
  it('[MQTT-3.3.2-5] expired messages do not take queue places from live ones', async () => {
    const clock = new FakeClock();
    const t = await startTestBroker({ maxQueuedMessages: 3 }, { clock });
    try {
      const topic = uid('fullq');
      const clientId = uid('sleeper');
      const persistent = { clientId, clean: false, properties: { sessionExpiryInterval: 3600 } };
      const first = await connect(t.port, 5, persistent);
      await subscribe(first, { topic, qos: 1 });
      first.send({ type: 'disconnect' });
      await first.closed;
      const pub = await connect(t.port, 5);
      for (let i = 0; i < 3; i++) {
        await publishAcked(pub, topic, `old${i}`, { qos: 1, properties: { messageExpiryInterval: 1 } });
      }
      clock.advance(2000);
      for (let i = 0; i < 3; i++) await publishAcked(pub, topic, `new${i}`, { qos: 1 });
      const sub = await connect(t.port, 5, persistent);
      expect((await receive(sub, 3)).map((p) => p.payload.toString())).toEqual(['new0', 'new1', 'new2']);
      expect(t.broker.stats.dropped.queue_full ?? 0).toBe(0);
      expect(t.broker.stats.dropped.expired).toBe(3);
      closeAll(sub, pub);
    } finally {
      await t.close();
    }
  });
});

describe('client Maximum Packet Size', () => {
  /** Total size of the PUBLISH the broker would send (plain MQTT 5, QoS `qos`, no properties). */
  const size = (topic: string, payload: number, qos: 0 | 1) =>
    encode(
      {
        type: 'publish',
        topic,
        payload: Buffer.alloc(payload),
        qos,
        retain: false,
        dup: false,
        packetId: qos ? 1 : undefined,
      },
      5,
    ).length;

  it('[MQTT-3.1.2-24] [MQTT-3.1.2-25] a PUBLISH larger than the client maximum is not sent; one exactly at it is', async () => {
    const topic = uid('mps');
    const max = 200;
    const sub = await connect(b.port, 5, { properties: { maximumPacketSize: max } });
    await subscribe(sub, [topic, `${topic}/end`]);
    const pub = await connect(b.port, 5);
    let fits = 0;
    while (size(topic, fits + 1, 0) <= max) fits++;
    const before = b.broker.stats.dropped.too_large ?? 0;
    await publishAcked(pub, topic, Buffer.alloc(fits + 1, 0x61));
    await publishAcked(pub, topic, Buffer.alloc(fits, 0x62));
    await publishAcked(pub, topic, Buffer.alloc(5000, 0x63));
    await publishAcked(pub, `${topic}/end`, 'end');
    await settle(pub, sub);
    const got = takePublishes(sub);
    expect(got.map((p) => p.payload.length)).toEqual([fits, 3]);
    expect(b.broker.stats.dropped.too_large ?? 0).toBe(before + 2);
    closeAll(sub, pub);
  });

  it('[MQTT-3.1.2-25] a QoS 1 message too large to send is treated as delivered: it does not hold the window', async () => {
    const topic = uid('mps1');
    const sub = await connect(b.port, 5, { properties: { maximumPacketSize: 100, receiveMaximum: 1 } });
    await subscribe(sub, { topic, qos: 1 });
    const pub = await connect(b.port, 5);
    await publishAcked(pub, topic, Buffer.alloc(500), { qos: 1 });
    await publishAcked(pub, topic, 'small', { qos: 1 });
    const p = await nextPublish(sub);
    expect(p.payload.toString()).toBe('small');
    expect(size(topic, 0, 1)).toBeLessThan(100);
    closeAll(sub, pub);
  });

  it('[MQTT-3.1.2-24] the limit also applies to retained messages sent on subscribe', async () => {
    const topic = uid('mpsret');
    const pub = await connect(b.port, 5);
    await publishAcked(pub, `${topic}/big`, Buffer.alloc(1000), { retain: true });
    await publishAcked(pub, `${topic}/small`, 'ok', { retain: true });
    const sub = await connect(b.port, 5, { properties: { maximumPacketSize: 128 } });
    await subscribe(sub, `${topic}/#`);
    await sync(sub);
    expect(takePublishes(sub).map((p) => p.topic)).toEqual([`${topic}/small`]);
    closeAll(sub, pub);
  });
});
