/**
 * Retained messages over real sockets: storing, replacing and deleting, delivery on subscribe (RETAIN
 * 1, through wildcards, per Retain Handling, never to shared subscriptions), the RETAIN flag on live
 * forwarding, Message Expiry of retained messages and `retainAvailable: false`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ReasonCode } from '../../../src/protocol/index.js';
import { startTestBroker, type TestBroker } from '../../helpers/broker.js';
import { FakeClock } from '../../helpers/fake-clock.js';
import {
  closeAll,
  connect,
  expectDisconnect,
  nextPublish,
  publish,
  publishAcked,
  settle,
  subscribe,
  sync,
  takePublishes,
  uid,
  unsubscribe,
} from '../../helpers/mqtt.js';
import { RawClient } from '../../helpers/raw-client.js';

let b: TestBroker;
beforeAll(async () => {
  b = await startTestBroker();
});
afterAll(async () => {
  await b.close();
});

/** Subscribes and returns the retained messages sent for it (everything that arrived up to a PINGRESP). */
async function retainedOnSubscribe(c: RawClient, ...args: Parameters<typeof subscribe>[1][]) {
  for (const spec of args) await subscribe(c, spec);
  await sync(c);
  return takePublishes(c).map((p) => ({
    topic: p.topic,
    payload: p.payload.toString(),
    retain: p.retain,
    qos: p.qos,
  }));
}

describe.each([4, 5] as const)('retained messages, MQTT v%i', (version) => {
  it('[MQTT-3.3.1-5] [MQTT-3.3.1-9] a retained message is stored and sent to a new subscription with RETAIN 1', async () => {
    const topic = uid('ret');
    const pub = await connect(b.port, version);
    await publishAcked(pub, topic, 'kept', { qos: 1, retain: true });
    const sub = await connect(b.port, version);
    expect(await retainedOnSubscribe(sub, { topic, qos: 1 })).toEqual([
      { topic, payload: 'kept', retain: true, qos: 1 },
    ]);
    closeAll(pub, sub);
  });

  it('[MQTT-3.3.1-5] a new retained message replaces the stored one', async () => {
    const topic = uid('replace');
    const pub = await connect(b.port, version);
    await publishAcked(pub, topic, 'old', { retain: true });
    await publishAcked(pub, topic, 'new', { retain: true });
    const sub = await connect(b.port, version);
    expect(await retainedOnSubscribe(sub, topic)).toEqual([{ topic, payload: 'new', retain: true, qos: 0 }]);
    closeAll(pub, sub);
  });

  it('[MQTT-3.3.1-6] [MQTT-3.3.1-7] an empty retained message is forwarded as usual and deletes the stored one', async () => {
    const topic = uid('delete');
    const pub = await connect(b.port, version);
    await publishAcked(pub, topic, 'soon gone', { qos: 1, retain: true });
    const before = b.broker.stats.retained;
    const live = await connect(b.port, version);
    expect(await retainedOnSubscribe(live, topic)).toHaveLength(1);
    await publishAcked(pub, topic, '', { qos: 1, retain: true });
    const forwarded = await nextPublish(live);
    expect(forwarded.payload.length).toBe(0);
    expect(forwarded.retain).toBe(false); // [MQTT-3.3.1-12]
    expect(b.broker.stats.retained).toBe(before - 1);
    const late = await connect(b.port, version);
    expect(await retainedOnSubscribe(late, topic)).toEqual([]);
    closeAll(pub, live, late);
  });

  it('[MQTT-3.3.1-8] a PUBLISH with RETAIN 0 neither stores nor replaces the retained message', async () => {
    const topic = uid('plain');
    const pub = await connect(b.port, version);
    await publishAcked(pub, topic, 'retained', { retain: true });
    await publishAcked(pub, topic, 'not retained', { qos: 1 });
    await publishAcked(pub, `${topic}/other`, 'not retained either', { qos: 1 });
    const sub = await connect(b.port, version);
    expect(await retainedOnSubscribe(sub, `${topic}/#`)).toEqual([
      { topic, payload: 'retained', retain: true, qos: 0 },
    ]);
    closeAll(pub, sub);
  });

  it('[MQTT-3.3.1-9] retained messages reach wildcard subscriptions, each with RETAIN 1', async () => {
    const base = uid('wild');
    const pub = await connect(b.port, version);
    for (const t of ['a/b', 'a/c', 'a/b/c', 'x'])
      await publishAcked(pub, `${base}/${t}`, t, { retain: true });
    const plus = await connect(b.port, version);
    const viaPlus = await retainedOnSubscribe(plus, `${base}/a/+`);
    expect(viaPlus.map((m) => m.payload).sort()).toEqual(['a/b', 'a/c']);
    const hash = await connect(b.port, version);
    const viaHash = await retainedOnSubscribe(hash, `${base}/a/#`);
    expect(viaHash.map((m) => m.payload).sort()).toEqual(['a/b', 'a/b/c', 'a/c']);
    expect([...viaPlus, ...viaHash].every((m) => m.retain)).toBe(true);
    const mid = await connect(b.port, version);
    expect((await retainedOnSubscribe(mid, `${base}/+/b/#`)).map((m) => m.payload).sort()).toEqual([
      'a/b',
      'a/b/c',
    ]);
    closeAll(pub, plus, hash, mid);
  });

  it('[MQTT-3.8.4-8] a retained message goes out at the lower of its stored QoS and the granted QoS', async () => {
    const topic = uid('rq');
    const pub = await connect(b.port, version);
    await publishAcked(pub, topic, 'q1', { qos: 1, retain: true });
    const s0 = await connect(b.port, version);
    expect((await retainedOnSubscribe(s0, { topic, qos: 0 }))[0].qos).toBe(0);
    const s2 = await connect(b.port, version);
    expect((await retainedOnSubscribe(s2, { topic, qos: 2 }))[0].qos).toBe(1);
    closeAll(pub, s0, s2);
  });

  it('[MQTT-3.3.1-12] live forwarding clears RETAIN for a subscription that already exists', async () => {
    const topic = uid('live');
    const sub = await connect(b.port, version);
    await subscribe(sub, topic);
    const pub = await connect(b.port, version);
    await publishAcked(pub, topic, 'r', { retain: true });
    const p = await nextPublish(sub);
    expect(p.retain).toBe(false);
    closeAll(pub, sub);
  });
});

describe('retained messages, MQTT 5 subscription options', () => {
  it('[MQTT-3.3.1-13] Retain As Published keeps the RETAIN flag as published on live forwarding', async () => {
    const topic = uid('rap');
    const sub = await connect(b.port, 5);
    await subscribe(sub, { topic, retainAsPublished: true });
    const plain = await connect(b.port, 5);
    await subscribe(plain, topic);
    const pub = await connect(b.port, 5);
    await publishAcked(pub, topic, 'retained', { retain: true });
    await publishAcked(pub, topic, 'not retained');
    expect((await nextPublish(sub)).retain).toBe(true);
    expect((await nextPublish(sub)).retain).toBe(false);
    expect((await nextPublish(plain)).retain).toBe(false);
    expect((await nextPublish(plain)).retain).toBe(false);
    closeAll(pub, sub, plain);
  });

  it('[MQTT-3.3.1-9] [MQTT-3.8.4-4] Retain Handling 0 sends retained messages on every SUBSCRIBE, new or repeated', async () => {
    const topic = uid('rh0');
    const pub = await connect(b.port, 5);
    await publishAcked(pub, topic, 'r', { retain: true });
    const sub = await connect(b.port, 5);
    expect(await retainedOnSubscribe(sub, { topic, retainHandling: 0 })).toHaveLength(1);
    expect(await retainedOnSubscribe(sub, { topic, retainHandling: 0 })).toHaveLength(1);
    closeAll(pub, sub);
  });

  it('[MQTT-3.3.1-10] Retain Handling 1 sends retained messages only when the subscription is new', async () => {
    const topic = uid('rh1');
    const pub = await connect(b.port, 5);
    await publishAcked(pub, topic, 'r', { retain: true });
    const sub = await connect(b.port, 5);
    expect(await retainedOnSubscribe(sub, { topic, retainHandling: 1 })).toHaveLength(1);
    expect(await retainedOnSubscribe(sub, { topic, retainHandling: 1 })).toEqual([]);
    await unsubscribe(sub, topic);
    expect(await retainedOnSubscribe(sub, { topic, retainHandling: 1 })).toHaveLength(1); // new again
    closeAll(pub, sub);
  });

  it('[MQTT-3.3.1-11] Retain Handling 2 never sends retained messages', async () => {
    const topic = uid('rh2');
    const pub = await connect(b.port, 5);
    await publishAcked(pub, topic, 'r', { retain: true });
    const sub = await connect(b.port, 5);
    expect(await retainedOnSubscribe(sub, { topic, retainHandling: 2 })).toEqual([]);
    await publishAcked(pub, topic, 'live', { retain: true });
    expect((await nextPublish(sub)).payload.toString()).toBe('live'); // the subscription itself works
    closeAll(pub, sub);
  });

  it('[MQTT-3.3.1-9] retained messages are not sent to a new shared subscription', async () => {
    const topic = uid('rshare');
    const pub = await connect(b.port, 5);
    await publishAcked(pub, topic, 'r', { retain: true });
    for (const version of [4, 5] as const) {
      const sub = await connect(b.port, version);
      expect(await retainedOnSubscribe(sub, { topic: `$share/g/${topic}`, qos: 1 })).toEqual([]);
      await publishAcked(pub, topic, 'live');
      expect((await nextPublish(sub)).payload.toString()).toBe('live');
      closeAll(sub);
    }
    closeAll(pub);
  });

  it('[MQTT-3.3.2-5] [MQTT-3.3.2-6] a retained message expires with its Message Expiry Interval', async () => {
    const clock = new FakeClock();
    const t = await startTestBroker({}, { clock });
    try {
      const pub = await connect(t.port, 5);
      await publishAcked(pub, 'exp/a', 'short', { retain: true, properties: { messageExpiryInterval: 10 } });
      await publishAcked(pub, 'exp/b', 'forever', { retain: true });
      clock.advance(4000);
      const early = await connect(t.port, 5);
      await subscribe(early, 'exp/#');
      await sync(early);
      const got = takePublishes(early).sort((x, y) => x.topic.localeCompare(y.topic));
      expect(got.map((p) => [p.topic, p.properties?.messageExpiryInterval])).toEqual([
        ['exp/a', 6],
        ['exp/b', undefined],
      ]);
      clock.advance(6000);
      const late = await connect(t.port, 5);
      await subscribe(late, 'exp/#');
      await sync(late);
      expect(takePublishes(late).map((p) => p.topic)).toEqual(['exp/b']);
      expect(t.broker.stats.retained).toBe(1);
      closeAll(pub, early, late);
    } finally {
      await t.close();
    }
  });
});

describe('retainAvailable: false', () => {
  let nr: TestBroker;
  beforeAll(async () => {
    nr = await startTestBroker({ retainAvailable: false });
  });
  afterAll(async () => {
    await nr.close();
  });

  it('[MQTT-3.2.2-14] CONNACK carries Retain Available 0 and a retained PUBLISH gets DISCONNECT 0x9A', async () => {
    const pub = await RawClient.connect(nr.port, 5);
    const ack = await pub.handshake({ protocolVersion: 5, clientId: uid('nr') });
    expect(ack.properties?.retainAvailable).toBe(0);
    await publishAcked(pub, 'nr/t', 'plain is fine');
    publish(pub, 'nr/t', 'retained', { qos: 1, retain: true });
    await expectDisconnect(pub, ReasonCode.RetainNotSupported);
    expect(nr.broker.stats.retained).toBe(0);
  });

  it('[MQTT-3.2.2-14] a 3.1.1 client publishing with RETAIN 1 is disconnected and nothing is stored', async () => {
    const sub = await connect(nr.port, 4);
    await subscribe(sub, 'nr4/#');
    const pub = await connect(nr.port, 4);
    publish(pub, 'nr4/t', 'retained', { retain: true });
    await expectDisconnect(pub);
    await sync(sub);
    expect(takePublishes(sub)).toEqual([]);
    expect(nr.broker.stats.retained).toBe(0);
    closeAll(sub);
  });
});

describe('retained message content', () => {
  it('[MQTT-3.3.2-4] [MQTT-3.3.2-17] a retained message keeps its forwarded properties', async () => {
    const topic = uid('rprops');
    const pub = await connect(b.port, 5);
    const properties = {
      payloadFormatIndicator: 1 as const,
      contentType: 'text/plain',
      userProperties: [
        ['k', 'v1'],
        ['k', 'v2'],
      ] as [string, string][],
    };
    await publishAcked(pub, topic, 'hello', { retain: true, properties });
    const sub = await connect(b.port, 5);
    await subscribe(sub, topic);
    const p = await nextPublish(sub);
    expect(p.retain).toBe(true);
    expect(p.properties).toEqual(properties);
    await settle(pub, sub);
    closeAll(pub, sub);
  });
});
