/**
 * Will messages over real sockets: when they are published (abnormal close, keep-alive timeout,
 * protocol error, DISCONNECT 0x04, takeover) and when not (normal DISCONNECT), their QoS, retain and
 * properties, and the Will Delay Interval against session expiry (with a FakeClock).
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { BrokerOptions } from '../../../src/broker/options.js';
import { type ProtocolVersion, ReasonCode, type Will } from '../../../src/protocol/index.js';
import { startTestBroker, type TestBroker } from '../../helpers/broker.js';
import { FakeClock } from '../../helpers/fake-clock.js';
import {
  closedWithin,
  disconnectedWith,
  Peers,
  publishAwait,
  subscribeTo,
  sync,
  until,
} from '../../helpers/mqtt.js';
import type { RawClient } from '../../helpers/raw-client.js';

const peers = new Peers();
const brokers: TestBroker[] = [];
afterEach(async () => {
  await peers.closeAll();
  for (const t of brokers.splice(0)) await t.close();
});

async function broker(options: Partial<BrokerOptions> = {}, clock?: FakeClock): Promise<TestBroker> {
  const t = await startTestBroker(options, { clock });
  brokers.push(t);
  return t;
}

const will = (fields: Partial<Will> = {}): Will => ({
  topic: 'will/last',
  payload: Buffer.from('gone'),
  qos: 1,
  retain: false,
  ...fields,
});

/** A v5 subscriber to will/# (and marker/#) at QoS 2. */
async function watcher(t: TestBroker, version: ProtocolVersion = 5): Promise<RawClient> {
  const w = await peers.online(t.port, version, { clientId: `watcher-${version}` });
  w.send({
    type: 'subscribe',
    packetId: 1,
    subscriptions: ['will/#', 'marker/#'].map((topic) => ({
      topic,
      qos: 2 as const,
      noLocal: false,
      retainAsPublished: false,
      retainHandling: 0 as const,
    })),
  });
  await w.next('suback');
  return w;
}

/**
 * Proves that no will reached the watcher so far: a marker published now must be the first message
 * it gets (the broker routes in order).
 */
async function expectNoWill(t: TestBroker, w: RawClient): Promise<void> {
  const pub = await peers.online(t.port, 5);
  await publishAwait(pub, 'marker/now', 'marker', 1, 999);
  const first = await w.next('publish');
  expect(first.payload.toString()).toBe('marker');
  pub.destroy();
}

async function gone(t: TestBroker, client: RawClient, connected: number): Promise<void> {
  client.destroy();
  await until(() => t.broker.stats.clientsConnected === connected, 'the broker saw the close');
}

describe('when the will is published', () => {
  it.each([3, 4, 5] as const)(
    '[MQTT-3.1.2-8] [MQTT-3.1.2-14] on an abnormal close, as a non-retained message (v%i)',
    async (version) => {
      const t = await broker();
      const w = await watcher(t);
      const c = await peers.online(t.port, version, {
        will: will({ payload: Buffer.from(`bye v${version}`) }),
      });
      c.destroy();
      const got = await w.next('publish');
      expect(got).toMatchObject({ topic: 'will/last', qos: 1, retain: false, dup: false });
      expect(got.payload.toString()).toBe(`bye v${version}`);
      expect(t.broker.stats.retained).toBe(0);
    },
  );

  it('[MQTT-3.1.2-8] [MQTT-3.1.2-22] on a keep-alive timeout; MQTT 5 gets DISCONNECT 0x8D first', async () => {
    const clock = new FakeClock();
    const t = await broker({}, clock);
    const w = await watcher(t);
    const c = await peers.online(t.port, 5, { keepalive: 10, will: will() });
    clock.advance(15_000);
    await disconnectedWith(c, ReasonCode.KeepAliveTimeout);
    expect((await w.next('publish')).payload.toString()).toBe('gone');
  });

  it('[MQTT-3.1.2-8] when the broker closes the connection for a protocol error', async () => {
    const t = await broker();
    const w = await watcher(t);
    const c = await peers.online(t.port, 5, { will: will() });
    c.send({ type: 'publish', topic: 'a/#', payload: Buffer.from('x'), qos: 0, retain: false, dup: false });
    await disconnectedWith(c, ReasonCode.TopicNameInvalid);
    expect((await w.next('publish')).payload.toString()).toBe('gone');
  });

  it('[MQTT-3.1.2-8] when a DISCONNECT is a protocol error (non-zero expiry after 0 at CONNECT)', async () => {
    const t = await broker();
    const w = await watcher(t);
    const c = await peers.online(t.port, 5, { will: will() });
    c.send({ type: 'disconnect', reasonCode: 0, properties: { sessionExpiryInterval: 10 } });
    await disconnectedWith(c, ReasonCode.ProtocolError);
    expect((await w.next('publish')).payload.toString()).toBe('gone');
  });

  it('[MQTT-3.14.4-3] (3.14.2.1) on DISCONNECT 0x04 Disconnect with Will Message, once', async () => {
    const t = await broker();
    const w = await watcher(t);
    const c = await peers.online(t.port, 5, { will: will() });
    c.send({ type: 'disconnect', reasonCode: ReasonCode.DisconnectWithWillMessage });
    await closedWithin(c);
    expect((await w.next('publish')).payload.toString()).toBe('gone');
    await expectNoWill(t, w);
  });

  it('(3.1.4) [MQTT-3.1.4-3] when another connection takes the client id over', async () => {
    const t = await broker();
    const w = await watcher(t);
    const old = await peers.online(t.port, 5, { clientId: 'will-twin', will: will() });
    await peers.online(t.port, 5, { clientId: 'will-twin' });
    await disconnectedWith(old, ReasonCode.SessionTakenOver);
    expect((await w.next('publish')).payload.toString()).toBe('gone');
  });

  it.each([4, 5] as const)(
    '[MQTT-3.1.2-10] [MQTT-3.14.4-3] not on a normal DISCONNECT (v%i)',
    async (version) => {
      const t = await broker();
      const w = await watcher(t);
      const c = await peers.online(t.port, version, { will: will() });
      c.send({ type: 'disconnect', reasonCode: 0 });
      await closedWithin(c);
      await expectNoWill(t, w);
    },
  );

  it('[MQTT-3.1.2-12] without the Will Flag nothing is published on an abnormal close', async () => {
    const t = await broker();
    const w = await watcher(t);
    const c = await peers.online(t.port, 5);
    await gone(t, c, 1);
    await expectNoWill(t, w);
  });
});

describe('will QoS, retain and properties', () => {
  it('[MQTT-3.1.2-15] a Will Retain will is stored as the retained message; subscribers get it at its QoS', async () => {
    const t = await broker();
    const w = await watcher(t);
    const c = await peers.online(t.port, 4, {
      will: will({ qos: 2, retain: true, payload: Buffer.from('kept') }),
    });
    c.destroy();
    const live = await w.next('publish');
    // [MQTT-3.3.1-12] forwarded live without Retain As Published: RETAIN 0.
    expect(live).toMatchObject({ topic: 'will/last', qos: 2, retain: false });
    w.send({ type: 'pubrec', packetId: live.packetId! });
    const late = await peers.online(t.port, 5);
    await subscribeTo(late, 'will/#', 2);
    const retained = await late.next('publish');
    expect(retained).toMatchObject({ topic: 'will/last', qos: 2, retain: true });
    expect(retained.payload.toString()).toBe('kept');
  });

  it('[MQTT-3.3.2-4] [MQTT-3.3.2-15] [MQTT-3.3.2-16] [MQTT-3.3.2-17] [MQTT-3.3.2-20] [MQTT-3.1.3-10] will properties are forwarded, Will Delay Interval is not', async () => {
    const t = await broker();
    const w = await watcher(t);
    const properties = {
      payloadFormatIndicator: 1 as const,
      contentType: 'text/plain',
      responseTopic: 'reply/here',
      correlationData: Buffer.from([1, 2, 3]),
      userProperties: [
        ['b', '1'],
        ['a', '2'],
        ['b', '3'],
      ] as [string, string][],
      messageExpiryInterval: 60,
      willDelayInterval: 0,
    };
    const c = await peers.online(t.port, 5, { will: will({ properties }) });
    c.destroy();
    const got = await w.next('publish');
    expect(got.properties).toEqual({
      payloadFormatIndicator: 1,
      contentType: 'text/plain',
      responseTopic: 'reply/here',
      correlationData: Buffer.from([1, 2, 3]),
      userProperties: [
        ['b', '1'],
        ['a', '2'],
        ['b', '3'],
      ],
      messageExpiryInterval: 60,
    });
  });

  it('a 3.1.1 subscriber gets an MQTT 5 will without properties', async () => {
    const t = await broker();
    const w = await watcher(t, 4);
    const c = await peers.online(t.port, 5, { will: will({ properties: { contentType: 'text/plain' } }) });
    c.destroy();
    const got = await w.next('publish');
    expect(got.properties).toBeUndefined();
    expect(got.payload.toString()).toBe('gone');
  });

  it.each([
    [
      '[MQTT-3.2.2-12] Will QoS above Maximum QoS',
      { maximumQoS: 1 as const },
      will({ qos: 2 }),
      ReasonCode.QoSNotSupported,
    ],
    [
      '[MQTT-3.2.2-13] Will Retain without retain support',
      { retainAvailable: false },
      will({ retain: true }),
      ReasonCode.RetainNotSupported,
    ],
    ['(3.1.3.3) a will topic with a wildcard', {}, will({ topic: 'will/#' }), ReasonCode.TopicNameInvalid],
    [
      '(3.1.3.2.3) a will payload not UTF-8 though marked so',
      {},
      will({ payload: Buffer.from([0xff, 0xfe]), properties: { payloadFormatIndicator: 1 } }),
      ReasonCode.PayloadFormatInvalid,
    ],
  ])('%s refuses the connection with CONNACK (MQTT 5)', async (_n, options, w, code) => {
    const t = await broker(options);
    const { client, connack } = await peers.connect(t.port, 5, { will: w });
    expect(connack).toMatchObject({ sessionPresent: false, reasonCode: code });
    await closedWithin(client);
  });
});

describe('Will Delay Interval (FakeClock)', () => {
  async function delayed(willDelayInterval: number, sessionExpiryInterval: number, clientId: string) {
    const clock = new FakeClock();
    const t = await broker({}, clock);
    const w = await watcher(t);
    const fields = {
      clientId,
      clean: false,
      properties: { sessionExpiryInterval },
      will: will({ properties: { willDelayInterval } }),
    };
    const c = await peers.online(t.port, 5, fields);
    return { clock, t, w, c, fields };
  }

  it('[MQTT-3.1.2-8] the will waits for its delay after the connection is lost', async () => {
    const { clock, t, w, c } = await delayed(30, 300, 'delay-wait');
    await gone(t, c, 1);
    clock.advance(29_999);
    await sync(w);
    expect(w.received).toEqual([]);
    clock.advance(1);
    expect((await w.next('publish')).payload.toString()).toBe('gone');
  });

  it('[MQTT-3.1.3-9] a reconnect to the session within the delay cancels the will', async () => {
    const { clock, t, w, c, fields } = await delayed(30, 300, 'delay-cancel');
    await gone(t, c, 1);
    clock.advance(10_000);
    const back = await peers.connect(t.port, 5, { ...fields, will: undefined });
    expect(back.connack.sessionPresent).toBe(true);
    clock.advance(100_000);
    await back.client.send({ type: 'disconnect', reasonCode: 0 });
    await closedWithin(back.client);
    clock.advance(1_000_000);
    await expectNoWill(t, w);
  });

  it('[MQTT-3.1.2-8] the will goes out when the session ends before the delay (expiry shorter than the delay)', async () => {
    const { clock, t, w, c } = await delayed(30, 5, 'delay-expiry');
    await gone(t, c, 1);
    clock.advance(4_999);
    await sync(w);
    expect(w.received).toEqual([]);
    clock.advance(1);
    expect((await w.next('publish')).payload.toString()).toBe('gone');
    expect(t.broker.stats.sessions).toBe(1); // the watcher's
  });

  it('[MQTT-3.1.2-8] with Session Expiry 0 the session ends at the close, and the will goes out at once', async () => {
    const { w, c } = await delayed(30, 0, 'delay-noexpiry');
    c.destroy();
    expect((await w.next('publish')).payload.toString()).toBe('gone');
  });

  it('(3.1.2.5) the delay also applies after DISCONNECT 0x04', async () => {
    const { clock, w, c } = await delayed(30, 300, 'delay-04');
    c.send({ type: 'disconnect', reasonCode: ReasonCode.DisconnectWithWillMessage });
    await closedWithin(c);
    clock.advance(29_999);
    await sync(w);
    expect(w.received).toEqual([]);
    clock.advance(1);
    expect((await w.next('publish')).payload.toString()).toBe('gone');
  });

  it('(3.1.2.4) a reconnect with Clean Start 1 within the delay ends the session: the will goes out at once', async () => {
    const { clock, t, w, c, fields } = await delayed(30, 300, 'delay-clean');
    await gone(t, c, 1);
    clock.advance(10_000);
    await peers.online(t.port, 5, { ...fields, clean: true, will: undefined });
    expect((await w.next('publish')).payload.toString()).toBe('gone');
  });

  it('(3.1.4) a takeover with Clean Start 0 keeps a delayed will from going out', async () => {
    const { clock, t, w, c, fields } = await delayed(30, 300, 'delay-twin');
    const next = await peers.online(t.port, 5, { ...fields, will: undefined });
    await disconnectedWith(c, ReasonCode.SessionTakenOver);
    clock.advance(100_000);
    await sync(next);
    await expectNoWill(t, w);
  });

  it('(3.1.4) a takeover with Clean Start 1 ends the session: the delayed will goes out at once', async () => {
    const { t, w, c, fields } = await delayed(30, 300, 'delay-twin-clean');
    await peers.online(t.port, 5, { ...fields, clean: true, will: undefined });
    await disconnectedWith(c, ReasonCode.SessionTakenOver);
    expect((await w.next('publish')).payload.toString()).toBe('gone');
  });
});
