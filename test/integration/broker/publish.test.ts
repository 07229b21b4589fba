/**
 * Inbound PUBLISH over real sockets: the acknowledgement of every QoS with its packet id and (MQTT 5)
 * reason code, QoS 2 duplicate suppression, topic name rules and the publish authorization hook.
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

describe.each([4, 5] as const)('inbound PUBLISH, MQTT v%i', (version) => {
  it('[MQTT-4.3.1-1] QoS 0 is routed without an acknowledgement and forwarded with QoS 0, DUP 0, no packet id', async () => {
    const topic = uid('q0');
    const sub = await connect(b.port, version);
    await subscribe(sub, { topic, qos: 2 });
    const pub = await connect(b.port, version);
    publish(pub, topic, 'zero');
    await sync(pub);
    expect(pub.received).toEqual([]); // nothing but the PINGRESP arrived
    const got = await nextPublish(sub);
    expect(got).toMatchObject({ topic, qos: 0, dup: false, retain: false });
    expect(got.packetId).toBeUndefined();
    expect(got.payload.toString()).toBe('zero');
    closeAll(sub, pub);
  });

  it('[MQTT-4.3.2-4] QoS 1 gets a PUBACK carrying the PUBLISH packet id', async () => {
    const topic = uid('q1');
    const sub = await connect(b.port, version);
    await subscribe(sub, { topic, qos: 1 });
    const pub = await connect(b.port, version);
    const ids = [1, 7, 0xffff];
    for (const packetId of ids) publish(pub, topic, `m${packetId}`, { qos: 1, packetId });
    for (const packetId of ids) {
      const ack = await pub.next('puback');
      expect(ack.packetId).toBe(packetId);
      expect(ack.reasonCode ?? 0).toBe(0);
    }
    const got = await Promise.all(ids.map(() => nextPublish(sub)));
    expect(got.map((p) => p.payload.toString())).toEqual(['m1', 'm7', 'm65535']);
    closeAll(sub, pub);
  });

  it('[MQTT-4.3.3-8] [MQTT-4.3.3-11] QoS 2 gets PUBREC, and PUBREL gets PUBCOMP, with the same packet id', async () => {
    const topic = uid('q2');
    const sub = await connect(b.port, version);
    await subscribe(sub, { topic, qos: 2 });
    const pub = await connect(b.port, version);
    publish(pub, topic, 'two', { qos: 2, packetId: 42 });
    const rec = await pub.next('pubrec');
    expect(rec.packetId).toBe(42);
    expect(rec.reasonCode ?? 0).toBe(0);
    pub.send({ type: 'pubrel', packetId: 42 });
    const comp = await pub.next('pubcomp');
    expect(comp.packetId).toBe(42);
    expect(comp.reasonCode ?? 0).toBe(0);
    const got = await nextPublish(sub);
    expect(got).toMatchObject({ topic, qos: 2, dup: false });
    closeAll(sub, pub);
  });

  it('[MQTT-4.3.3-10] a repeated QoS 2 PUBLISH before PUBREL gets PUBREC again and is delivered once', async () => {
    const topic = uid('dup2');
    const sub = await connect(b.port, version);
    await subscribe(sub, [topic, { topic: `${topic}/end`, qos: 0 }]);
    const pub = await connect(b.port, version);
    publish(pub, topic, 'once', { qos: 2, packetId: 9 });
    expect((await pub.next('pubrec')).packetId).toBe(9);
    publish(pub, topic, 'once', { qos: 2, packetId: 9, dup: true });
    expect((await pub.next('pubrec')).packetId).toBe(9);
    publish(pub, topic, 'once', { qos: 2, packetId: 9, dup: true });
    expect((await pub.next('pubrec')).packetId).toBe(9);
    pub.send({ type: 'pubrel', packetId: 9 });
    expect((await pub.next('pubcomp')).packetId).toBe(9);
    await publishAcked(pub, `${topic}/end`, 'end');
    await sync(sub);
    expect(takePublishes(sub).map((p) => p.payload.toString())).toEqual(['once', 'end']);
    closeAll(sub, pub);
  });

  it('[MQTT-4.3.3-10] [MQTT-4.4.0-1] an unreleased QoS 2 PUBLISH resent on a resumed session is not delivered twice', async () => {
    const topic = uid('resume2');
    const clientId = uid('pub2');
    const persistent =
      version === 5
        ? { clientId, clean: false, properties: { sessionExpiryInterval: 60 } }
        : { clientId, clean: false };
    const sub = await connect(b.port, version);
    await subscribe(sub, [topic, `${topic}/end`]);
    let pub = await connect(b.port, version, persistent);
    publish(pub, topic, 'once', { qos: 2, packetId: 4 });
    expect((await pub.next('pubrec')).packetId).toBe(4);
    pub.destroy();
    await pub.closed;
    pub = await connect(b.port, version, persistent);
    publish(pub, topic, 'once', { qos: 2, packetId: 4, dup: true });
    expect((await pub.next('pubrec')).packetId).toBe(4);
    pub.send({ type: 'pubrel', packetId: 4 });
    const comp = await pub.next('pubcomp');
    expect(comp.reasonCode ?? 0).toBe(0); // the session still held the id
    await publishAcked(pub, `${topic}/end`, 'end');
    await sync(sub);
    expect(takePublishes(sub).map((p) => p.payload.toString())).toEqual(['once', 'end']);
    closeAll(sub, pub);
    await connect(b.port, version, { clientId, clean: true }).then((c) => c.destroy());
  });

  it('[MQTT-3.1.2-4] Clean Start discards unreleased QoS 2 state: a later PUBREL finds no packet id', async () => {
    const clientId = uid('clean2');
    const persistent =
      version === 5
        ? { clientId, clean: false, properties: { sessionExpiryInterval: 60 } }
        : { clientId, clean: false };
    let pub = await connect(b.port, version, persistent);
    publish(pub, uid('clean2'), 'x', { qos: 2, packetId: 6 });
    await pub.next('pubrec');
    pub.destroy();
    await pub.closed;
    pub = await connect(b.port, version, { clientId, clean: true });
    pub.send({ type: 'pubrel', packetId: 6 });
    const comp = await pub.next('pubcomp');
    expect(comp.reasonCode ?? 0).toBe(version === 5 ? ReasonCode.PacketIdentifierNotFound : 0);
    closeAll(pub);
  });

  it('[MQTT-4.3.3-12] after PUBCOMP a PUBLISH with the same packet id is a new message', async () => {
    const topic = uid('again2');
    const sub = await connect(b.port, version);
    await subscribe(sub, topic);
    const pub = await connect(b.port, version);
    await publishAcked(pub, topic, 'first', { qos: 2, packetId: 5 });
    await publishAcked(pub, topic, 'second', { qos: 2, packetId: 5 });
    expect((await nextPublish(sub)).payload.toString()).toBe('first');
    expect((await nextPublish(sub)).payload.toString()).toBe('second');
    closeAll(sub, pub);
  });

  it('[MQTT-4.3.2-5] after PUBACK a QoS 1 PUBLISH with the same packet id is a new message, DUP or not', async () => {
    const topic = uid('again1');
    const sub = await connect(b.port, version);
    await subscribe(sub, topic);
    const pub = await connect(b.port, version);
    await publishAcked(pub, topic, 'first', { qos: 1, packetId: 3 });
    await publishAcked(pub, topic, 'second', { qos: 1, packetId: 3, dup: true });
    expect((await nextPublish(sub)).payload.toString()).toBe('first');
    expect((await nextPublish(sub)).payload.toString()).toBe('second');
    closeAll(sub, pub);
  });

  it('[MQTT-4.3.3-11] a PUBREL for an unknown packet id still gets a PUBCOMP with that id', async () => {
    const pub = await connect(b.port, version);
    pub.send({ type: 'pubrel', packetId: 77 });
    const comp = await pub.next('pubcomp');
    expect(comp.packetId).toBe(77);
    // MQTT 5: 0x92 Packet Identifier not found (table 3.7.2.1); 3.1.1 has no reason code.
    expect(comp.reasonCode ?? 0).toBe(version === 5 ? ReasonCode.PacketIdentifierNotFound : 0);
    closeAll(pub);
  });

  it('(MQTT 5 4.7.2) a client PUBLISH to a $ topic is not routed', async () => {
    const topic = `$${uid('dollar')}`;
    const sub = await connect(b.port, version);
    await subscribe(sub, [
      { topic, qos: 1 },
      { topic: '$SYS/#', qos: 1 },
    ]);
    const pub = await connect(b.port, version);
    // MQTT 5: 0x87 Not authorized; 3.1.1 has no negative acknowledgement.
    const expected = version === 5 ? ReasonCode.NotAuthorized : 0;
    expect(await publishAcked(pub, topic, 'x', { qos: 1 })).toBe(expected);
    expect(await publishAcked(pub, topic, 'x', { qos: 2 })).toBe(expected);
    expect(await publishAcked(pub, '$SYS/broker/version', 'fake', { qos: 1 })).toBe(expected);
    await publishAcked(pub, topic, 'x');
    await settle(pub, sub);
    expect(takePublishes(sub)).toEqual([]);
    closeAll(sub, pub);
  });

  it('[MQTT-3.3.2-2] a Topic Name with a wildcard closes the connection (MQTT 5: DISCONNECT 0x90)', async () => {
    for (const topic of ['a/+', 'a/#', '#']) {
      const pub = await connect(b.port, version);
      publish(pub, topic, 'x', { qos: 1 });
      await expectDisconnect(pub, version === 5 ? ReasonCode.TopicNameInvalid : undefined);
      expect(pub.received.filter((p) => p.type === 'puback')).toEqual([]);
    }
  });

  it('[MQTT-4.7.3-1] an empty Topic Name without a Topic Alias closes the connection', async () => {
    const pub = await connect(b.port, version);
    publish(pub, '', 'x');
    await expectDisconnect(pub, version === 5 ? ReasonCode.ProtocolError : undefined);
  });
});

describe('inbound PUBLISH reason codes, MQTT 5', () => {
  it('[MQTT-3.4.2-1] PUBACK carries 0x10 No matching subscribers when nobody subscribes', async () => {
    const pub = await connect(b.port, 5);
    expect(await publishAcked(pub, uid('nobody'), 'x', { qos: 1 })).toBe(ReasonCode.NoMatchingSubscribers);
    closeAll(pub);
  });

  it('[MQTT-3.5.2-1] PUBREC carries 0x10 No matching subscribers, and the exchange still completes', async () => {
    const pub = await connect(b.port, 5);
    // publishAcked sends PUBREL and waits for a PUBCOMP: a code below 0x80 keeps the exchange open.
    expect(await publishAcked(pub, uid('nobody'), 'x', { qos: 2 })).toBe(ReasonCode.NoMatchingSubscribers);
    closeAll(pub);
  });

  it('[MQTT-3.4.2-1] 3.1.1 gets a plain PUBACK when nobody subscribes', async () => {
    const pub = await connect(b.port, 4);
    publish(pub, uid('nobody'), 'x', { qos: 1, packetId: 11 });
    expect(await pub.next('puback')).toEqual({ type: 'puback', packetId: 11 });
    closeAll(pub);
  });

  it('(MQTT 5 3.3.2.3.2) Payload Format Indicator 1 with invalid UTF-8 gets PUBACK / PUBREC 0x99 and is not routed', async () => {
    const topic = uid('pfi');
    const sub = await connect(b.port, 5);
    await subscribe(sub, { topic, qos: 2 });
    const pub = await connect(b.port, 5);
    const bad = Buffer.from([0x61, 0xff, 0xfe]);
    const properties = { payloadFormatIndicator: 1 as const };
    expect(await publishAcked(pub, topic, bad, { qos: 1, properties })).toBe(ReasonCode.PayloadFormatInvalid);
    expect(await publishAcked(pub, topic, bad, { qos: 2, properties, packetId: 20 })).toBe(
      ReasonCode.PayloadFormatInvalid,
    );
    // [MQTT-4.3.3-9] after a PUBREC of 0x80 or more, the same packet id starts a new message.
    expect(await publishAcked(pub, topic, 'valid ü', { qos: 2, properties, packetId: 20 })).toBe(0);
    const got = await nextPublish(sub);
    expect(got.payload.toString()).toBe('valid ü');
    expect(got.properties?.payloadFormatIndicator).toBe(1);
    await settle(pub, sub);
    expect(takePublishes(sub)).toEqual([]);
    closeAll(sub, pub);
  });

  it('(MQTT 5 3.3.2.3.2) QoS 0 with an invalid UTF-8 payload marked as UTF-8 gets DISCONNECT 0x99', async () => {
    const pub = await connect(b.port, 5);
    publish(pub, uid('pfi0'), Buffer.from([0xc3, 0x28]), { properties: { payloadFormatIndicator: 1 } });
    await expectDisconnect(pub, ReasonCode.PayloadFormatInvalid);
  });

  it('[MQTT-3.3.4-7] more unacknowledged QoS 2 PUBLISH than Receive Maximum gets DISCONNECT 0x93', async () => {
    const small = await startTestBroker({ receiveMaximum: 2 });
    try {
      const pub = await connect(small.port, 5);
      const topic = uid('rm');
      for (const packetId of [1, 2]) {
        publish(pub, topic, 'x', { qos: 2, packetId });
        await pub.next('pubrec');
      }
      publish(pub, topic, 'x', { qos: 2, packetId: 3 });
      await expectDisconnect(pub, ReasonCode.ReceiveMaximumExceeded);
    } finally {
      await small.close();
    }
  });

  it('(MQTT 5 3.3.4) the authorizePublish hook denies with PUBACK / PUBREC 0x87 and nothing is routed', async () => {
    const guarded = await startTestBroker(
      {},
      { auth: { authorizePublish: (_client, _user, topic) => !topic.startsWith('secret/') } },
    );
    try {
      const sub = await connect(guarded.port, 5);
      await subscribe(sub, { topic: '#', qos: 1 });
      const pub = await connect(guarded.port, 5);
      expect(await publishAcked(pub, 'secret/a', 'x', { qos: 1 })).toBe(ReasonCode.NotAuthorized);
      expect(await publishAcked(pub, 'secret/a', 'x', { qos: 2 })).toBe(ReasonCode.NotAuthorized);
      expect(await publishAcked(pub, 'open/a', 'ok', { qos: 1 })).toBe(0);
      const got = await nextPublish(sub);
      expect(got.topic).toBe('open/a');
      await settle(pub, sub);
      expect(takePublishes(sub)).toEqual([]);
      closeAll(sub, pub);
    } finally {
      await guarded.close();
    }
  });
});

describe.each([4, 5] as const)('mqtt.js peers, MQTT v%i', (protocolVersion) => {
  it('[MQTT-3.3.4-1] QoS 0, 1 and 2 complete in both directions with a black-box client', async () => {
    const topic = uid('js');
    const sub = await mqtt.connectAsync(b.url, { protocolVersion, clientId: uid('jsub') });
    const pub = await mqtt.connectAsync(b.url, { protocolVersion, clientId: uid('jpub') });
    try {
      const got: { qos: number; payload: string }[] = [];
      const all = new Promise<void>((resolve) => {
        sub.on('message', (_t, payload, packet) => {
          got.push({ qos: packet.qos, payload: payload.toString() });
          if (got.length === 3) resolve();
        });
      });
      await sub.subscribeAsync(topic, { qos: 2 });
      for (const qos of [0, 1, 2] as const) await pub.publishAsync(topic, `q${qos}`, { qos });
      await all;
      expect(got).toEqual([
        { qos: 0, payload: 'q0' },
        { qos: 1, payload: 'q1' },
        { qos: 2, payload: 'q2' },
      ]);
    } finally {
      await pub.endAsync();
      await sub.endAsync();
    }
  });
});
