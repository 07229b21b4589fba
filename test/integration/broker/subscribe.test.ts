/**
 * SUBSCRIBE and UNSUBSCRIBE over real sockets: per-filter reason codes in order, capabilities and the
 * subscribe authorization hook, replacing a subscription, UNSUBACK codes, No Local and `$` topics.
 * Overlapping subscriptions and subscription identifiers: overlap.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ReasonCode, SubackFailure } from '../../../src/protocol/index.js';
import { startTestBroker, type TestBroker } from '../../helpers/broker.js';
import {
  closeAll,
  connect,
  expectDisconnect,
  nextPublish,
  publishAcked,
  settle,
  subscribe,
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

describe('SUBACK reason codes', () => {
  it('[MQTT-3.8.4-5] [MQTT-3.8.4-6] [MQTT-3.9.3-1] MQTT 5: one code per filter, in order, 0x8F for an invalid filter', async () => {
    const c = await connect(b.port, 5);
    const base = uid('codes');
    const ack = await subscribe(c, [
      { topic: `${base}/q0`, qos: 0 },
      { topic: 'a/#/b', qos: 1 },
      { topic: `${base}/q1`, qos: 1 },
      { topic: 'a+', qos: 0 },
      { topic: `${base}/q2`, qos: 2 },
      { topic: '$share/g+/x', qos: 1 },
      { topic: '$share/g', qos: 1 },
    ]);
    const invalid = ReasonCode.TopicFilterInvalid;
    expect(ack.reasonCodes).toEqual([0, invalid, 1, invalid, 2, invalid, invalid]);
    closeAll(c);
  });

  it('[MQTT-3.9.3-2] 3.1.1: one return code per filter, in order, 0x80 for an invalid filter', async () => {
    const c = await connect(b.port, 4);
    const base = uid('codes4');
    const ack = await subscribe(c, [
      { topic: `${base}/q2`, qos: 2 },
      { topic: 'a/#/b', qos: 1 },
      { topic: `${base}/q0`, qos: 0 },
      { topic: '', qos: 0 },
      { topic: `${base}/q1`, qos: 1 },
    ]);
    expect(ack.reasonCodes).toEqual([2, SubackFailure, 0, SubackFailure, 1]);
    closeAll(c);
  });

  it('[MQTT-3.8.4-7] the authorizeSubscribe hook denies single filters: 0x87 (MQTT 5), 0x80 (3.1.1)', async () => {
    const guarded = await startTestBroker(
      {},
      { auth: { authorizeSubscribe: (_client, _user, filter) => !filter.includes('secret') } },
    );
    try {
      const v5 = await connect(guarded.port, 5);
      expect(
        (await subscribe(v5, [{ topic: 'open', qos: 1 }, 'secret/#', '$share/g/secret'])).reasonCodes,
      ).toEqual([1, ReasonCode.NotAuthorized, ReasonCode.NotAuthorized]);
      const v4 = await connect(guarded.port, 4);
      expect((await subscribe(v4, ['secret/x', { topic: 'open', qos: 2 }])).reasonCodes).toEqual([
        SubackFailure,
        2,
      ]);
      // A denied filter is not subscribed.
      expect(guarded.broker.stats.subscriptions).toBe(2);
      closeAll(v5, v4);
    } finally {
      await guarded.close();
    }
  });

  it('[MQTT-3.8.4-7] shared subscriptions disabled: CONNACK says so, SUBACK 0x9E (MQTT 5) / 0x80 (3.1.1)', async () => {
    const t = await startTestBroker({ sharedSubscriptionAvailable: false });
    try {
      const v5 = await RawClient.connect(t.port, 5);
      const connack = await v5.handshake({ protocolVersion: 5, clientId: uid('ns') });
      expect(connack.properties?.sharedSubscriptionAvailable).toBe(0);
      expect((await subscribe(v5, ['$share/g/t', { topic: 't', qos: 1 }])).reasonCodes).toEqual([
        ReasonCode.SharedSubscriptionsNotSupported,
        1,
      ]);
      const v4 = await connect(t.port, 4);
      expect((await subscribe(v4, ['$share/g/t'])).reasonCodes).toEqual([SubackFailure]);
      closeAll(v5, v4);
    } finally {
      await t.close();
    }
  });

  it('[MQTT-3.8.4-7] wildcard subscriptions disabled: CONNACK says so, SUBACK 0xA2 (MQTT 5) / 0x80 (3.1.1)', async () => {
    const t = await startTestBroker({ wildcardSubscriptionAvailable: false });
    try {
      const v5 = await RawClient.connect(t.port, 5);
      const connack = await v5.handshake({ protocolVersion: 5, clientId: uid('nw') });
      expect(connack.properties?.wildcardSubscriptionAvailable).toBe(0);
      const wild = ReasonCode.WildcardSubscriptionsNotSupported;
      expect(
        (await subscribe(v5, ['a/+', 'plain', '#', '$share/g/a/#', '$share/g/plain'])).reasonCodes,
      ).toEqual([wild, 0, wild, wild, 0]);
      const v4 = await connect(t.port, 4);
      expect((await subscribe(v4, ['a/#', 'plain'])).reasonCodes).toEqual([SubackFailure, 0]);
      closeAll(v5, v4);
    } finally {
      await t.close();
    }
  });

  it('(MQTT 5 3.2.2.3.13) subscription identifiers disabled: a SUBSCRIBE with one gets DISCONNECT 0xA1', async () => {
    const t = await startTestBroker({ subscriptionIdentifiersAvailable: false });
    try {
      const c = await RawClient.connect(t.port, 5);
      const connack = await c.handshake({ protocolVersion: 5, clientId: uid('nsi') });
      expect(connack.properties?.subscriptionIdentifiersAvailable).toBe(0);
      c.send({
        type: 'subscribe',
        packetId: 1,
        properties: { subscriptionIdentifiers: [5] },
        subscriptions: [{ topic: 'a', qos: 0, noLocal: false, retainAsPublished: false, retainHandling: 0 }],
      });
      await expectDisconnect(c, ReasonCode.SubscriptionIdentifiersNotSupported);
    } finally {
      await t.close();
    }
  });
});

describe.each([4, 5] as const)('subscription lifecycle, MQTT v%i', (version) => {
  it('[MQTT-3.8.4-3] a SUBSCRIBE to an existing filter replaces its options, one subscription remains', async () => {
    const topic = uid('replace');
    const sub = await connect(b.port, version);
    const before = b.broker.stats.subscriptions;
    expect((await subscribe(sub, { topic, qos: 2 })).reasonCodes).toEqual([2]);
    expect((await subscribe(sub, { topic, qos: 0 })).reasonCodes).toEqual([0]);
    expect(b.broker.stats.subscriptions).toBe(before + 1);
    const pub = await connect(b.port, version);
    await publishAcked(pub, topic, 'x', { qos: 2 });
    await settle(pub, sub);
    const got = takePublishes(sub);
    expect(got.map((p) => p.qos)).toEqual([0]);
    closeAll(sub, pub);
  });

  it('[MQTT-3.10.4-1] [MQTT-3.10.4-2] [MQTT-3.10.4-5] UNSUBSCRIBE removes the subscription and messages stop', async () => {
    const topic = uid('unsub');
    const sub = await connect(b.port, version);
    await subscribe(sub, [topic, `${topic}/keep`]);
    const pub = await connect(b.port, version);
    await publishAcked(pub, topic, 'before');
    expect((await nextPublish(sub)).payload.toString()).toBe('before');
    const ack = await unsubscribe(sub, topic);
    // MQTT 5: 0x00 Success; 3.1.1 UNSUBACK has no payload.
    expect(ack.reasonCodes).toEqual(version === 5 ? [ReasonCode.Success] : undefined);
    await publishAcked(pub, topic, 'after');
    await publishAcked(pub, `${topic}/keep`, 'kept');
    await settle(pub, sub);
    expect(takePublishes(sub).map((p) => p.payload.toString())).toEqual(['kept']);
    closeAll(sub, pub);
  });

  it('[MQTT-3.10.4-4] [MQTT-3.10.4-6] [MQTT-3.11.3-1] UNSUBACK for several filters, including ones never subscribed', async () => {
    const topic = uid('unsub2');
    const sub = await connect(b.port, version);
    await subscribe(sub, [topic, `$share/g/${topic}`]);
    const ack = await unsubscribe(sub, [`${topic}/never`, topic, `$share/g/${topic}`, topic, 'a/#/b']);
    if (version === 5) {
      const { Success: ok, NoSubscriptionExisted: none, TopicFilterInvalid: bad } = ReasonCode;
      expect(ack.reasonCodes).toEqual([none, ok, ok, none, bad]);
    } else {
      expect(ack.reasonCodes).toBeUndefined();
    }
    const pub = await connect(b.port, version);
    await publishAcked(pub, topic, 'x');
    await settle(pub, sub);
    expect(takePublishes(sub)).toEqual([]);
    closeAll(sub, pub);
  });

  it('[MQTT-4.7.2-1] filters starting with a wildcard do not match topics starting with $', async () => {
    const sub = await connect(b.port, version);
    const name = uid('internal');
    await subscribe(sub, ['#', '+/x', `+/${name}`, `$int/${name}`, `$int/+`]);
    const plain = uid('plain');
    // Only the broker itself publishes to $ topics.
    b.broker.publish({ topic: `$int/${name}`, payload: Buffer.from('dollar'), qos: 0, retain: false });
    b.broker.publish({ topic: `$int/x`, payload: Buffer.from('dollar-x'), qos: 0, retain: false });
    const pub = await connect(b.port, version);
    await publishAcked(pub, `${plain}/x`, 'plain');
    await settle(pub, sub);
    const got = takePublishes(sub).map((p) => `${p.topic}=${p.payload.toString()}`);
    // `$int/x` matches only `$int/+`; `$int/<name>` matches `$int/<name>` and `$int/+` (one delivery).
    expect(got.filter((g) => g.startsWith('$')).sort()).toEqual([`$int/${name}=dollar`, '$int/x=dollar-x']);
    expect(got).toContain(`${plain}/x=plain`);
    closeAll(sub, pub);
  });
});

describe('No Local (MQTT 5)', () => {
  it('[MQTT-3.8.3-3] No Local: messages are not forwarded to a connection with the publisher’s client id', async () => {
    const topic = uid('nolocal');
    const clientId = uid('self');
    const self = await connect(b.port, 5, { clientId });
    await subscribe(self, [{ topic, noLocal: true, qos: 1 }]);
    const other = await connect(b.port, 5);
    await subscribe(other, { topic, noLocal: true });
    await publishAcked(self, topic, 'own', { qos: 1 });
    await publishAcked(other, topic, 'other', { qos: 1 });
    await settle(other, self, other);
    expect(takePublishes(self).map((p) => p.payload.toString())).toEqual(['other']);
    expect(takePublishes(other).map((p) => p.payload.toString())).toEqual(['own']);
    closeAll(self, other);
  });

  it('[MQTT-3.8.3-3] without No Local a client receives its own messages', async () => {
    const topic = uid('local');
    const self = await connect(b.port, 5);
    await subscribe(self, topic);
    await publishAcked(self, topic, 'echo', { qos: 1 });
    expect((await nextPublish(self)).payload.toString()).toBe('echo');
    closeAll(self);
  });

  it('[MQTT-3.8.3-4] No Local on a shared subscription gets DISCONNECT 0x82', async () => {
    const c = await connect(b.port, 5);
    c.send({
      type: 'subscribe',
      packetId: 1,
      subscriptions: [
        { topic: '$share/g/nl', qos: 0, noLocal: true, retainAsPublished: false, retainHandling: 0 },
      ],
    });
    await expectDisconnect(c, ReasonCode.ProtocolError);
    expect(c.received.filter((p) => p.type === 'suback')).toEqual([]);
  });
});
