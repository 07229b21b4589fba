/**
 * Overlapping subscriptions and subscription identifiers over real sockets: one delivery per client
 * at the highest granted QoS, carrying the identifiers of every matching subscription (MQTT 5 3.3.4),
 * and the 3.1.1 rule of at least one delivery at the maximum QoS.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from '../../helpers/broker.js';
import {
  closeAll,
  connect,
  nextPublish,
  publishAcked,
  settle,
  subscribe,
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

const sorted = (ids: number[] | undefined) =>
  ids === undefined ? undefined : [...ids].sort((x, y) => x - y);

describe('subscription identifiers (MQTT 5)', () => {
  it('[MQTT-3.3.4-3] a message carries the Subscription Identifier of the subscription it matched', async () => {
    const base = uid('sid');
    const sub = await connect(b.port, 5);
    await subscribe(sub, { topic: `${base}/with`, qos: 1 }, { subscriptionIdentifiers: [7] });
    await subscribe(sub, { topic: `${base}/max`, qos: 1 }, { subscriptionIdentifiers: [268_435_455] });
    await subscribe(sub, { topic: `${base}/without`, qos: 1 });
    const pub = await connect(b.port, 5);
    await publishAcked(pub, `${base}/with`, 'a', { qos: 1 });
    await publishAcked(pub, `${base}/max`, 'b', { qos: 1 });
    await publishAcked(pub, `${base}/without`, 'c', { qos: 0 });
    expect((await nextPublish(sub)).properties?.subscriptionIdentifiers).toEqual([7]);
    expect((await nextPublish(sub)).properties?.subscriptionIdentifiers).toEqual([268_435_455]);
    expect((await nextPublish(sub)).properties?.subscriptionIdentifiers).toBeUndefined();
    closeAll(sub, pub);
  });

  it('[MQTT-3.3.4-3] retained messages sent on subscribe carry the Subscription Identifier', async () => {
    const topic = uid('sidret');
    const pub = await connect(b.port, 5);
    await publishAcked(pub, topic, 'kept', { retain: true });
    const sub = await connect(b.port, 5);
    await subscribe(sub, topic, { subscriptionIdentifiers: [42] });
    const p = await nextPublish(sub);
    expect(p.retain).toBe(true);
    expect(p.properties?.subscriptionIdentifiers).toEqual([42]);
    closeAll(sub, pub);
  });

  it('[MQTT-3.8.4-3] re-subscribing replaces the Subscription Identifier, or removes it', async () => {
    const topic = uid('sidrep');
    const sub = await connect(b.port, 5);
    const pub = await connect(b.port, 5);
    await subscribe(sub, topic, { subscriptionIdentifiers: [1] });
    await subscribe(sub, topic, { subscriptionIdentifiers: [2] });
    await publishAcked(pub, topic, 'x');
    expect((await nextPublish(sub)).properties?.subscriptionIdentifiers).toEqual([2]);
    await subscribe(sub, topic);
    await publishAcked(pub, topic, 'y');
    expect((await nextPublish(sub)).properties?.subscriptionIdentifiers).toBeUndefined();
    closeAll(sub, pub);
  });

  it('[MQTT-3.3.4-3] a SUBSCRIBE Subscription Identifier applies to every filter of that packet', async () => {
    const base = uid('sidall');
    const sub = await connect(b.port, 5);
    await subscribe(sub, [`${base}/a`, `${base}/b`], { subscriptionIdentifiers: [9] });
    const pub = await connect(b.port, 5);
    await publishAcked(pub, `${base}/a`, 'a');
    await publishAcked(pub, `${base}/b`, 'b');
    expect((await nextPublish(sub)).properties?.subscriptionIdentifiers).toEqual([9]);
    expect((await nextPublish(sub)).properties?.subscriptionIdentifiers).toEqual([9]);
    closeAll(sub, pub);
  });
});

describe('overlapping subscriptions', () => {
  it('[MQTT-3.3.4-2] [MQTT-3.3.4-3] [MQTT-3.3.4-4] MQTT 5: one delivery at the highest QoS with every matching identifier', async () => {
    const base = uid('ovl');
    const sub = await connect(b.port, 5);
    await subscribe(sub, { topic: `${base}/+`, qos: 0 }, { subscriptionIdentifiers: [1] });
    await subscribe(sub, { topic: `${base}/b`, qos: 2 }, { subscriptionIdentifiers: [2] });
    await subscribe(sub, { topic: `${base}/#`, qos: 1 }); // no identifier
    await subscribe(sub, { topic: '#', qos: 0 }, { subscriptionIdentifiers: [4] });
    const pub = await connect(b.port, 5);
    await publishAcked(pub, `${base}/b`, 'b', { qos: 2 });
    await publishAcked(pub, `${base}/c`, 'c', { qos: 2 });
    await publishAcked(pub, `${base}/c/d`, 'd', { qos: 0 });
    await settle(pub, sub);
    const got = takePublishes(sub).filter((p) => p.topic.startsWith(base));
    expect(got.map((p) => [p.topic, p.qos, sorted(p.properties?.subscriptionIdentifiers)])).toEqual([
      [`${base}/b`, 2, [1, 2, 4]],
      [`${base}/c`, 1, [1, 4]],
      [`${base}/c/d`, 0, [4]],
    ]);
    closeAll(sub, pub);
  });

  it('[MQTT-3.3.4-2] the published QoS still caps the merged QoS', async () => {
    const base = uid('ovlcap');
    const sub = await connect(b.port, 5);
    await subscribe(sub, [
      { topic: `${base}/+`, qos: 2 },
      { topic: `${base}/#`, qos: 1 },
    ]);
    const pub = await connect(b.port, 5);
    await publishAcked(pub, `${base}/x`, 'x', { qos: 1 });
    await settle(pub, sub);
    expect(takePublishes(sub).map((p) => p.qos)).toEqual([1]);
    closeAll(sub, pub);
  });

  it('[MQTT-3.3.5-1] 3.1.1: overlapping subscriptions deliver at least once at the maximum granted QoS', async () => {
    const base = uid('ovl4');
    const sub = await connect(b.port, 4);
    await subscribe(sub, [
      { topic: `${base}/+`, qos: 0 },
      { topic: `${base}/#`, qos: 2 },
      { topic: `${base}/x`, qos: 1 },
    ]);
    const pub = await connect(b.port, 4);
    await publishAcked(pub, `${base}/x`, 'x', { qos: 2 });
    await settle(pub, sub);
    const got = takePublishes(sub);
    expect(got.length).toBeGreaterThanOrEqual(1);
    expect(Math.max(...got.map((p) => p.qos))).toBe(2);
    closeAll(sub, pub);
  });

  it('[MQTT-3.3.1-13] overlapping: Retain As Published on any matching subscription keeps RETAIN', async () => {
    const base = uid('ovlrap');
    const sub = await connect(b.port, 5);
    await subscribe(sub, [
      { topic: `${base}/+`, retainHandling: 2 },
      { topic: `${base}/#`, retainAsPublished: true, retainHandling: 2 },
    ]);
    const pub = await connect(b.port, 5);
    await publishAcked(pub, `${base}/x`, 'x', { retain: true });
    await settle(pub, sub);
    expect(takePublishes(sub).map((p) => p.retain)).toEqual([true]);
    closeAll(sub, pub);
  });

  it('[MQTT-3.8.3-3] overlapping: a No Local subscription skips own messages, another matching one still delivers', async () => {
    const base = uid('ovlnl');
    const self = await connect(b.port, 5);
    await subscribe(self, [
      { topic: `${base}/+`, noLocal: true, qos: 1 },
      { topic: `${base}/#`, qos: 0 },
    ]);
    await publishAcked(self, `${base}/x`, 'own', { qos: 1 });
    await settle(self);
    expect(takePublishes(self).map((p) => p.qos)).toEqual([0]);
    closeAll(self);
  });

  it('(MQTT 5 4.8.2) a shared and a non-shared subscription of one client each deliver', async () => {
    const topic = uid('ovlshare');
    const sub = await connect(b.port, 5);
    await subscribe(sub, { topic, qos: 0 }, { subscriptionIdentifiers: [1] });
    await subscribe(sub, { topic: `$share/g/${topic}`, qos: 1 }, { subscriptionIdentifiers: [2] });
    const pub = await connect(b.port, 5);
    await publishAcked(pub, topic, 'x', { qos: 1 });
    await settle(pub, sub);
    const got = takePublishes(sub).map((p) => [p.qos, p.properties?.subscriptionIdentifiers]);
    expect(got).toHaveLength(2);
    expect(got).toContainEqual([0, [1]]);
    expect(got).toContainEqual([1, [2]]);
    closeAll(sub, pub);
  });
});
