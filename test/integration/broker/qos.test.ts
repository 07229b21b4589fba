/**
 * Outbound QoS flows (broker to subscriber) over real sockets: packet ids, DUP, the QoS 2 release
 * phase, QoS downgrade, Maximum QoS, the client's Receive Maximum, and resending on session resume.
 */
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
  sync,
  takePublishes,
  uid,
} from '../../helpers/mqtt.js';
import { RawClient } from '../../helpers/raw-client.js';

let b: TestBroker;
beforeAll(async () => {
  b = await startTestBroker();
});
afterAll(async () => {
  await b.close();
});

describe.each([4, 5] as const)('outbound QoS, MQTT v%i', (version) => {
  it('[MQTT-4.3.2-1] [MQTT-4.3.2-2] QoS 1 goes out with a non-zero packet id and DUP 0, completed by PUBACK', async () => {
    const topic = uid('out1');
    const sub = await connect(b.port, version);
    await subscribe(sub, { topic, qos: 1 });
    const pub = await connect(b.port, version);
    await publishAcked(pub, topic, 'a', { qos: 1 });
    const p = await sub.next('publish');
    expect(p).toMatchObject({ qos: 1, dup: false, topic });
    expect(p.packetId).toBeGreaterThan(0);
    sub.send({ type: 'puback', packetId: p.packetId! });
    // Completed: the next message is not held back by a full window and gets a fresh id.
    await publishAcked(pub, topic, 'b', { qos: 1 });
    const q = await nextPublish(sub);
    expect(q.payload.toString()).toBe('b');
    expect(q.dup).toBe(false);
    closeAll(sub, pub);
  });

  it('[MQTT-4.3.3-1] [MQTT-4.3.3-2] [MQTT-4.3.3-4] QoS 2 goes out with DUP 0; PUBREC gets PUBREL, PUBCOMP ends it', async () => {
    const topic = uid('out2');
    const sub = await connect(b.port, version);
    await subscribe(sub, { topic, qos: 2 });
    const pub = await connect(b.port, version);
    await publishAcked(pub, topic, 'x', { qos: 2 });
    const p = await sub.next('publish');
    expect(p).toMatchObject({ qos: 2, dup: false });
    expect(p.packetId).toBeGreaterThan(0);
    sub.send({ type: 'pubrec', packetId: p.packetId! });
    const rel = await sub.next('pubrel');
    expect(rel.packetId).toBe(p.packetId);
    expect(rel.reasonCode ?? 0).toBe(0);
    sub.send({ type: 'pubcomp', packetId: p.packetId! });
    await sync(sub);
    expect(takePublishes(sub)).toEqual([]); // [MQTT-4.3.3-6] no resend after PUBREL
    closeAll(sub, pub);
  });

  it('[MQTT-2.2.1-4] packet ids towards a subscriber are non-zero and unique among those in flight', async () => {
    const topic = uid('ids');
    const sub = await connect(b.port, version);
    await subscribe(sub, { topic, qos: 2 });
    const pub = await connect(b.port, version);
    const n = 40;
    for (let i = 0; i < n; i++) publish(pub, topic, `m${i}`, { qos: i % 2 === 0 ? 1 : 2 });
    await settle(pub);
    const first = await receive(sub, n, false);
    const ids = first.map((p) => p.packetId!);
    expect(ids.every((id) => id > 0 && id <= 0xffff)).toBe(true);
    expect(new Set(ids).size).toBe(n);
    // Complete half of them; new messages must not reuse an id still in flight.
    const done = new Set<number>();
    for (const p of first.slice(0, n / 2)) {
      if (p.qos === 1) sub.send({ type: 'puback', packetId: p.packetId! });
      else {
        sub.send({ type: 'pubrec', packetId: p.packetId! });
        await sub.next('pubrel');
        sub.send({ type: 'pubcomp', packetId: p.packetId! });
      }
      done.add(p.packetId!);
    }
    for (let i = 0; i < n / 2; i++) publish(pub, topic, `n${i}`, { qos: 1 });
    const second = await receive(sub, n / 2, false);
    const stillInFlight = new Set(ids.filter((id) => !done.has(id)));
    for (const p of second) {
      expect(p.packetId).toBeGreaterThan(0);
      expect(stillInFlight.has(p.packetId!)).toBe(false);
      stillInFlight.add(p.packetId!);
    }
    closeAll(sub, pub);
  });

  it('[MQTT-3.8.4-8] a message goes out at the lower of its QoS and the granted QoS', async () => {
    const base = uid('down');
    const sub = await connect(b.port, version);
    await subscribe(sub, [
      { topic: `${base}/g0`, qos: 0 },
      { topic: `${base}/g1`, qos: 1 },
      { topic: `${base}/g2`, qos: 2 },
    ]);
    const pub = await connect(b.port, version);
    const seen: string[] = [];
    for (const g of [0, 1, 2]) {
      for (const q of [0, 1, 2] as const) {
        await publishAcked(pub, `${base}/g${g}`, `${g}${q}`, { qos: q });
        const p = await nextPublish(sub);
        seen.push(`${p.payload.toString()}:${p.qos}`);
      }
    }
    expect(seen).toEqual(['00:0', '01:0', '02:0', '10:0', '11:1', '12:1', '20:0', '21:1', '22:2']);
    closeAll(sub, pub);
  });

  it('[MQTT-4.4.0-1] [MQTT-3.3.1-1] on resume, unacknowledged PUBLISH is resent with DUP 1 and the same id; after PUBREC only PUBREL', async () => {
    const topic = uid('resume');
    const clientId = uid('persist');
    const persistent =
      version === 5 ? { clean: false, properties: { sessionExpiryInterval: 300 } } : { clean: false };
    let sub = await connect(b.port, version, { clientId, ...persistent });
    await subscribe(sub, [
      { topic: `${topic}/1`, qos: 1 },
      { topic: `${topic}/2`, qos: 2 },
    ]);
    const pub = await connect(b.port, version);
    await publishAcked(pub, `${topic}/1`, 'one', { qos: 1 });
    await publishAcked(pub, `${topic}/2`, 'two', { qos: 2 });
    await publishAcked(pub, `${topic}/2`, 'three', { qos: 2 });
    const [one, two, three] = await receive(sub, 3, false);
    sub.send({ type: 'pubrec', packetId: three.packetId! }); // 'three' moves to the release phase
    await sub.next('pubrel');
    sub.destroy();
    await sub.closed;

    sub = await RawClient.connect(b.port, version);
    const ack = await sub.handshake({ protocolVersion: version, clientId, ...persistent });
    expect(ack.sessionPresent).toBe(true);
    const again = await receive(sub, 2, false);
    expect(again.map((p) => [p.payload.toString(), p.packetId, p.dup])).toEqual([
      ['one', one.packetId, true],
      ['two', two.packetId, true],
    ]);
    const rel = await sub.next('pubrel'); // [MQTT-4.3.3-6] PUBREL, never the PUBLISH again
    expect(rel.packetId).toBe(three.packetId);
    sub.send({ type: 'puback', packetId: one.packetId! });
    sub.send({ type: 'pubrec', packetId: two.packetId! });
    expect((await sub.next('pubrel')).packetId).toBe(two.packetId);
    sub.send({ type: 'pubcomp', packetId: two.packetId! });
    sub.send({ type: 'pubcomp', packetId: three.packetId! });
    await sync(sub);
    expect(takePublishes(sub)).toEqual([]);
    // Clean up the persistent session.
    sub.destroy();
    await connect(b.port, version, { clientId, clean: true }).then((c) => c.destroy());
    closeAll(pub);
  });

  it('[MQTT-4.5.0-1] QoS 1 messages published while a persistent session is offline are queued and sent in order', async () => {
    const topic = uid('queued');
    const clientId = uid('offline');
    const persistent =
      version === 5 ? { clean: false, properties: { sessionExpiryInterval: 300 } } : { clean: false };
    const first = await connect(b.port, version, { clientId, ...persistent });
    await subscribe(first, { topic, qos: 1 });
    first.send({ type: 'disconnect' });
    await first.closed;
    const pub = await connect(b.port, version);
    for (let i = 0; i < 5; i++) await publishAcked(pub, topic, `m${i}`, { qos: 1 });
    await publishAcked(pub, topic, 'qos0 is not queued', { qos: 0 });
    const sub = await connect(b.port, version, { clientId, ...persistent });
    const got = await receive(sub, 5);
    expect(got.map((p) => p.payload.toString())).toEqual(['m0', 'm1', 'm2', 'm3', 'm4']);
    await sync(sub);
    expect(takePublishes(sub)).toEqual([]);
    sub.destroy();
    await connect(b.port, version, { clientId, clean: true }).then((c) => c.destroy());
    closeAll(pub);
  });

  it('[MQTT-4.3.3-4] a PUBREC of 0x80 or more ends the exchange: no PUBREL, the window slot is freed', async () => {
    if (version !== 5) return; // 3.1.1 PUBREC has no reason code
    const topic = uid('recfail');
    const sub = await connect(b.port, 5, { properties: { receiveMaximum: 1 } });
    await subscribe(sub, { topic, qos: 2 });
    const pub = await connect(b.port, 5);
    await publishAcked(pub, topic, 'refused', { qos: 2 });
    await publishAcked(pub, topic, 'next', { qos: 2 });
    const p = await sub.next('publish');
    sub.send({ type: 'pubrec', packetId: p.packetId!, reasonCode: ReasonCode.UnspecifiedError });
    const q = await nextPublish(sub); // only sent once the refused one left the window
    expect(q.payload.toString()).toBe('next');
    await sync(sub);
    expect(sub.received.filter((x) => x.type === 'pubrel' && x.packetId === p.packetId)).toEqual([]);
    closeAll(sub, pub);
  });
});

describe('acknowledgements for unknown packet ids', () => {
  it('[MQTT-3.6.2-1] MQTT 5: a PUBREC for an unknown packet id gets PUBREL 0x92', async () => {
    const c = await connect(b.port, 5);
    c.send({ type: 'pubrec', packetId: 321 });
    const rel = await c.next('pubrel');
    expect(rel.packetId).toBe(321);
    expect(rel.reasonCode).toBe(ReasonCode.PacketIdentifierNotFound);
    closeAll(c);
  });

  it('[MQTT-4.3.2-3] a PUBACK or PUBCOMP for an unknown packet id is ignored; the connection stays up', async () => {
    for (const version of [4, 5] as const) {
      const c = await connect(b.port, version);
      c.send({ type: 'puback', packetId: 11 });
      c.send({ type: 'pubcomp', packetId: 12 });
      await sync(c);
      expect(c.received).toEqual([]);
      expect(c.isOpen).toBe(true);
      closeAll(c);
    }
  });
});

describe('flow control and Maximum QoS', () => {
  it("[MQTT-3.3.4-9] [MQTT-4.9.0-2] no more QoS 1 and 2 PUBLISH in flight than the client's Receive Maximum", async () => {
    const topic = uid('window');
    const sub = await connect(b.port, 5, { properties: { receiveMaximum: 3 } });
    await subscribe(sub, { topic, qos: 1 });
    const pub = await connect(b.port, 5);
    for (let i = 0; i < 6; i++) await publishAcked(pub, topic, `m${i}`, { qos: 1 });
    const firstThree = await receive(sub, 3, false);
    await sync(sub);
    expect(takePublishes(sub)).toEqual([]); // [MQTT-4.9.0-3] PINGRESP still flows at a zero quota
    sub.send({ type: 'puback', packetId: firstThree[0].packetId! });
    const fourth = await sub.next('publish');
    expect(fourth.payload.toString()).toBe('m3');
    await sync(sub);
    expect(takePublishes(sub)).toEqual([]);
    for (const p of [...firstThree.slice(1), fourth]) sub.send({ type: 'puback', packetId: p.packetId! });
    const rest = await receive(sub, 2);
    expect(rest.map((p) => p.payload.toString())).toEqual(['m4', 'm5']);
    closeAll(sub, pub);
  });

  it('[MQTT-3.2.2-9] [MQTT-3.2.2-10] Maximum QoS 1: CONNACK says so and SUBACK grants at most 1', async () => {
    const q1 = await startTestBroker({ maximumQoS: 1 });
    try {
      const sub = await RawClient.connect(q1.port, 5);
      const ack = await sub.handshake({ protocolVersion: 5, clientId: uid('mq') });
      expect(ack.properties?.maximumQoS).toBe(1);
      const suback = await subscribe(sub, [
        { topic: 'a', qos: 0 },
        { topic: 'b', qos: 1 },
        { topic: 'c', qos: 2 },
      ]);
      expect(suback.reasonCodes).toEqual([0, 1, 1]);
      const v4 = await connect(q1.port, 4);
      expect((await subscribe(v4, { topic: 'c', qos: 2 })).reasonCodes).toEqual([1]);
      closeAll(sub, v4);
    } finally {
      await q1.close();
    }
  });

  it('[MQTT-3.2.2-11] Maximum QoS 1: a QoS 2 PUBLISH gets DISCONNECT 0x9B', async () => {
    const q1 = await startTestBroker({ maximumQoS: 1 });
    try {
      const pub = await connect(q1.port, 5);
      expect(await publishAcked(pub, 'ok', 'x', { qos: 1 })).toBe(ReasonCode.NoMatchingSubscribers);
      publish(pub, 'not-ok', 'x', { qos: 2 });
      await expectDisconnect(pub, ReasonCode.QoSNotSupported);
      expect(pub.received.filter((p) => p.type === 'pubrec')).toEqual([]);
    } finally {
      await q1.close();
    }
  });
});
