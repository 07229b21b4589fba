/**
 * Topic aliases (MQTT 5 3.3.2.3.4) over real sockets: inbound aliases set and used by a publisher,
 * invalid ones refused, and aliases the broker assigns towards a subscriber within its maximum.
 */
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ReasonCode } from '../../../src/protocol/index.js';
import { startTestBroker, type TestBroker } from '../../helpers/broker.js';
import {
  closeAll,
  connect,
  expectDisconnect,
  nextPublish,
  publish,
  publishAcked,
  receive,
  settle,
  subscribe,
  takePublishes,
  uid,
} from '../../helpers/mqtt.js';
import { RawClient } from '../../helpers/raw-client.js';

let b: TestBroker;
beforeAll(async () => {
  b = await startTestBroker({ topicAliasMaximum: 4 });
});
afterAll(async () => {
  await b.close();
});

describe('inbound topic aliases', () => {
  it('[MQTT-3.3.2-12] the broker announces its Topic Alias Maximum and accepts aliases 1..max, set and reused', async () => {
    const base = uid('in');
    const sub = await connect(b.port, 5);
    await subscribe(sub, `${base}/#`);
    const pub = await RawClient.connect(b.port, 5);
    const connack = await pub.handshake({ protocolVersion: 5, clientId: uid('alias') });
    expect(connack.properties?.topicAliasMaximum).toBe(4);
    await publishAcked(pub, `${base}/one`, 'set 1', { qos: 1, properties: { topicAlias: 1 } });
    await publishAcked(pub, `${base}/four`, 'set 4', { qos: 1, properties: { topicAlias: 4 } });
    await publishAcked(pub, '', 'use 1', { qos: 1, properties: { topicAlias: 1 } });
    await publishAcked(pub, '', 'use 4', { qos: 2, properties: { topicAlias: 4 } });
    await publishAcked(pub, `${base}/other`, 'remap 1', { properties: { topicAlias: 1 } });
    await publishAcked(pub, '', 'use 1 again', { properties: { topicAlias: 1 } });
    const got = await receive(sub, 6);
    expect(got.map((p) => [p.topic, p.payload.toString()])).toEqual([
      [`${base}/one`, 'set 1'],
      [`${base}/four`, 'set 4'],
      [`${base}/one`, 'use 1'],
      [`${base}/four`, 'use 4'],
      [`${base}/other`, 'remap 1'],
      [`${base}/other`, 'use 1 again'],
    ]);
    expect(got.every((p) => p.properties?.topicAlias === undefined)).toBe(true);
    closeAll(sub, pub);
  });

  it('(MQTT 5 3.3.2.3.4) an empty topic with an alias never set gets DISCONNECT 0x82', async () => {
    const pub = await connect(b.port, 5);
    publish(pub, '', 'x', { qos: 1, properties: { topicAlias: 2 } });
    await expectDisconnect(pub, ReasonCode.ProtocolError);
  });

  it('[MQTT-3.3.2-8] Topic Alias 0 gets DISCONNECT 0x94', async () => {
    const pub = await connect(b.port, 5);
    publish(pub, 'a', 'x', { properties: { topicAlias: 0 } });
    await expectDisconnect(pub, ReasonCode.TopicAliasInvalid);
  });

  it('[MQTT-3.3.2-9] a Topic Alias above the broker maximum gets DISCONNECT 0x94', async () => {
    const pub = await connect(b.port, 5);
    publish(pub, 'a', 'x', { qos: 1, properties: { topicAlias: 5 } });
    await expectDisconnect(pub, ReasonCode.TopicAliasInvalid);
  });

  it('[MQTT-3.2.2-18] with Topic Alias Maximum 0 any alias gets DISCONNECT 0x94', async () => {
    const none = await startTestBroker({ topicAliasMaximum: 0 });
    try {
      const pub = await RawClient.connect(none.port, 5);
      const connack = await pub.handshake({ protocolVersion: 5, clientId: uid('noalias') });
      expect(connack.properties?.topicAliasMaximum ?? 0).toBe(0);
      publish(pub, 'a', 'x', { properties: { topicAlias: 1 } });
      await expectDisconnect(pub, ReasonCode.TopicAliasInvalid);
    } finally {
      await none.close();
    }
  });

  it('[MQTT-3.3.2-7] aliases do not carry over to a new connection of the same session', async () => {
    const clientId = uid('carry');
    const persistent = { clientId, clean: false, properties: { sessionExpiryInterval: 60 } };
    const first = await connect(b.port, 5, persistent);
    await publishAcked(first, uid('carry'), 'x', { properties: { topicAlias: 1 } });
    first.send({ type: 'disconnect' });
    await first.closed;
    const second = await connect(b.port, 5, persistent);
    publish(second, '', 'x', { properties: { topicAlias: 1 } });
    await expectDisconnect(second, ReasonCode.ProtocolError);
    await connect(b.port, 5, { clientId, clean: true }).then((c) => c.destroy());
  });
});

describe('outbound topic aliases', () => {
  it('[MQTT-3.1.2-26] the broker assigns aliases up to the client maximum; a repeat topic goes out empty with its alias', async () => {
    const base = uid('out');
    const sub = await connect(b.port, 5, { properties: { topicAliasMaximum: 2 } });
    await subscribe(sub, { topic: `${base}/#`, qos: 1 });
    const pub = await connect(b.port, 5);
    const sequence = ['a', 'a', 'b', 'c', 'b', 'c', 'a'];
    for (const t of sequence) await publishAcked(pub, `${base}/${t}`, t, { qos: 1 });
    const got = await receive(sub, sequence.length);
    const aliasOf = new Map<number, string>();
    const resolved: string[] = [];
    for (const p of got) {
      const alias = p.properties?.topicAlias;
      if (alias !== undefined) {
        expect(alias).toBeGreaterThanOrEqual(1);
        expect(alias).toBeLessThanOrEqual(2);
        if (p.topic !== '') aliasOf.set(alias, p.topic);
      }
      const topic = p.topic !== '' ? p.topic : aliasOf.get(alias!);
      expect(topic).toBeDefined();
      resolved.push(topic!.slice(base.length + 1));
    }
    expect(resolved).toEqual(sequence);
    // The second 'a' reuses the alias set by the first.
    expect(got[1].topic).toBe('');
    expect(got[1].properties?.topicAlias).toBe(got[0].properties?.topicAlias);
    closeAll(sub, pub);
  });

  it('[MQTT-3.1.2-27] without a client Topic Alias Maximum the broker sends no alias', async () => {
    const topic = uid('noout');
    const sub = await connect(b.port, 5);
    await subscribe(sub, topic);
    const pub = await connect(b.port, 5);
    await publishAcked(pub, topic, '1');
    await publishAcked(pub, topic, '2');
    await settle(pub, sub);
    for (const p of takePublishes(sub)) {
      expect(p.topic).toBe(topic);
      expect(p.properties?.topicAlias).toBeUndefined();
    }
    closeAll(sub, pub);
  });

  it('[MQTT-3.1.2-25] a message dropped for the client Maximum Packet Size does not consume an alias the client never learnt', async () => {
    const topic = uid('aliasdrop');
    const sub = await connect(b.port, 5, { properties: { topicAliasMaximum: 5, maximumPacketSize: 128 } });
    await subscribe(sub, topic);
    const pub = await connect(b.port, 5);
    await publishAcked(pub, topic, Buffer.alloc(500)); // too large for the client: dropped
    await publishAcked(pub, topic, 'small');
    const p = await nextPublish(sub);
    expect(p.payload.toString()).toBe('small');
    expect(p.topic).toBe(topic); // an empty topic would name an alias the client never saw
    closeAll(sub, pub);
  });

  it('[MQTT-3.3.2-7] a message resent on a new connection carries its topic again', async () => {
    const topic = uid('aliasresend');
    const clientId = uid('resend');
    const fields = {
      clientId,
      clean: false,
      properties: { sessionExpiryInterval: 60, topicAliasMaximum: 5 },
    };
    const first = await connect(b.port, 5, fields);
    await subscribe(first, { topic, qos: 1 });
    const pub = await connect(b.port, 5);
    await publishAcked(pub, topic, 'one', { qos: 1 });
    await publishAcked(pub, topic, 'two', { qos: 1 });
    const [one, two] = await receive(first, 2, false); // never acknowledged
    expect(one.topic).toBe(topic);
    expect(two.topic).toBe('');
    first.destroy();
    await first.closed;
    const second = await connect(b.port, 5, fields);
    const again = await receive(second, 2);
    expect(again[0]).toMatchObject({ dup: true, topic });
    const resolvedSecond = again[1].topic === '' ? topic : again[1].topic;
    expect(resolvedSecond).toBe(topic);
    if (again[1].topic === '') expect(again[1].properties?.topicAlias).toBe(again[0].properties?.topicAlias);
    closeAll(second, pub);
    await connect(b.port, 5, { clientId, clean: true }).then((c) => c.destroy());
  });
});

describe('topic aliases with a black-box client', () => {
  it('[MQTT-3.3.2-10] [MQTT-3.3.2-12] mqtt.js publishes with auto-assigned aliases and resolves the broker-assigned ones', async () => {
    const base = uid('js');
    const sub = await mqtt.connectAsync(b.url, {
      protocolVersion: 5,
      clientId: uid('jsub'),
      properties: { topicAliasMaximum: 2 },
    });
    const pub = await mqtt.connectAsync(b.url, {
      protocolVersion: 5,
      clientId: uid('jpub'),
      autoAssignTopicAlias: true,
    });
    try {
      const topics = ['a', 'b', 'a', 'c', 'a', 'b', 'c', 'c'].map((t) => `${base}/${t}`);
      const got: string[] = [];
      const all = new Promise<void>((resolve) => {
        sub.on('message', (topic) => {
          got.push(topic);
          if (got.length === topics.length) resolve();
        });
      });
      await sub.subscribeAsync(`${base}/#`, { qos: 1 });
      for (const t of topics) await pub.publishAsync(t, 'x', { qos: 1 });
      await all;
      expect(got).toEqual(topics);
    } finally {
      await pub.endAsync();
      await sub.endAsync();
    }
  });
});
