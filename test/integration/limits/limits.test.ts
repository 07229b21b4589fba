/**
 * Overload protection over real sockets: each limit (limits.*) refused with its reason code, counted
 * under its name in the broker's stats (shoal_rate_limited_total{limit}), and harmless to other
 * clients. Time is a FakeClock wherever a rate or a timeout is involved; nothing sleeps.
 */
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import type { BrokerOptions } from '../../../src/broker/options.js';
import type { LimitOptions } from '../../../src/limits/options.js';
import { registerBrokerMetrics } from '../../../src/observability/metrics.js';
import { encode, type Packet, ReasonCode, SubackFailure } from '../../../src/protocol/index.js';
import { startTestBroker, type TestBroker } from '../../helpers/broker.js';
import { FakeClock } from '../../helpers/fake-clock.js';
import {
  closedWithin,
  disconnectedWith,
  Peers,
  publishAwait,
  receivedOf,
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

async function broker(
  limits: Partial<LimitOptions>,
  options: Partial<BrokerOptions> = {},
  clock?: FakeClock,
): Promise<TestBroker> {
  const t = await startTestBroker(options, { limits, clock });
  brokers.push(t);
  return t;
}

const hits = (t: TestBroker) => t.broker.stats.rateLimited;

/** SUBSCRIBE several filters in one packet; the SUBACK codes. */
async function subscribeAll(c: RawClient, topics: string[], packetId = 1): Promise<number[]> {
  c.send({
    type: 'subscribe',
    packetId,
    subscriptions: topics.map((topic) => ({
      topic,
      qos: 1,
      noLocal: false,
      retainAsPublished: false,
      retainHandling: 0,
    })),
  });
  return (await c.next('suback')).reasonCodes;
}

async function unsubscribe(c: RawClient, topic: string, packetId = 9): Promise<void> {
  c.send({ type: 'unsubscribe', packetId, topics: [topic] });
  await c.next('unsuback');
}

const pub = (topic: string, payload: string, qos: 0 | 1, packetId = 1, retain = false): Packet => ({
  type: 'publish',
  topic,
  payload: Buffer.from(payload),
  qos,
  retain,
  dup: false,
  packetId: qos > 0 ? packetId : undefined,
});

describe('limits.maxConnections', () => {
  it('closes a connection over the limit before reading from it; a freed slot is reused', async () => {
    const t = await broker({ maxConnections: 2 });
    const a = await peers.raw(t.port, 5);
    const b = await peers.raw(t.port, 5);
    await until(() => t.broker.stats.connectionsOpen === 2, 'two connections open');
    const over = await peers.raw(t.port, 5);
    await closedWithin(over);
    expect(over.received).toEqual([]);
    expect(hits(t).max_connections).toBe(1);
    // The two within the limit are unharmed, CONNECT or not.
    expect((await a.handshake({ protocolVersion: 5 })).reasonCode).toBe(0);
    b.destroy();
    await until(() => t.broker.stats.connectionsOpen === 1, 'the slot freed');
    const c = await peers.online(t.port, 5);
    await sync(c);
  });
});

describe('limits.connectRatePerSecond', () => {
  it('answers CONNACK 0x9F (MQTT 5) or 3 (3.1.1) over the rate, and admits again once it allows', async () => {
    const clock = new FakeClock();
    const t = await broker({ connectRatePerSecond: 1, connectBurst: 2 }, {}, clock);
    await peers.online(t.port, 5);
    await peers.online(t.port, 4);
    const v5 = await peers.connect(t.port, 5);
    expect(v5.connack.reasonCode).toBe(ReasonCode.ConnectionRateExceeded);
    await closedWithin(v5.client);
    const v4 = await peers.connect(t.port, 4);
    expect(v4.connack.reasonCode).toBe(3); // Server unavailable
    await closedWithin(v4.client);
    expect(hits(t).connect_rate).toBe(2);
    clock.advance(1000);
    await peers.online(t.port, 5);
  });
});

describe.each(['disconnect', 'pause'] as const)('client message rate, action %s', (action) => {
  it(
    action === 'disconnect'
      ? 'a PUBLISH over the rate gets DISCONNECT 0x96 (3.1.1: the connection closes)'
      : 'over the rate, reading pauses until the rate allows; nothing is lost',
    async () => {
      const clock = new FakeClock();
      const t = await broker(
        { clientMessagesPerSecond: 10, clientMessageBurst: 3, rateLimitAction: action },
        {},
        clock,
      );
      const sub = await peers.online(t.port, 5, { clientId: 'sub' });
      await subscribeTo(sub, 'rate/#', 0);
      const v5 = await peers.online(t.port, 5);
      const v4 = await peers.online(t.port, 4);
      for (const c of [v5, v4]) {
        for (let i = 1; i <= 3; i++) await publishAwait(c, 'rate/a', `m${i}`, 1, i);
        c.send(pub('rate/a', 'over', 1, 4));
      }
      if (action === 'disconnect') {
        await disconnectedWith(v5, ReasonCode.MessageRateTooHigh);
        await closedWithin(v4);
        expect(receivedOf(v4, 'puback')).toEqual([]);
        expect(hits(t).message_rate).toBe(2);
      } else {
        // Both PUBLISH packets were read (that put the clients in debt); their next packets wait.
        await v5.next('puback');
        await v4.next('puback');
        v5.send({ type: 'pingreq' });
        await sync(sub);
        expect(receivedOf(v5, 'pingresp')).toEqual([]);
        clock.advance(100);
        await v5.next('pingresp');
        await sync(v4);
        expect(hits(t).message_rate).toBe(2);
      }
      await sync(sub);
      const got = receivedOf(sub, 'publish').map((p) => p.payload.toString());
      const expected = ['m1', 'm2', 'm3', ...(action === 'pause' ? ['over'] : [])];
      expect(got).toEqual([...expected, ...expected]);
    },
  );
});

describe('client byte rate', () => {
  it('one message may overdraw; the next one while in debt gets 0x96', async () => {
    const t = await broker({ clientBytesPerSecond: 100, rateLimitAction: 'disconnect' }, {}, new FakeClock());
    const c = await peers.online(t.port, 5);
    await publishAwait(c, 'bytes/a', 'x'.repeat(150), 1, 1);
    c.send(pub('bytes/a', 'y', 1, 2));
    await disconnectedWith(c, ReasonCode.MessageRateTooHigh);
    expect(hits(t).byte_rate).toBe(1);
  });
});

describe('limits.maxSubscriptionsPerClient', () => {
  it.each([5, 4] as const)('level %i: SUBACK refuses filters over the limit', async (version) => {
    const t = await broker({ maxSubscriptionsPerClient: 2 });
    const c = await peers.online(t.port, version);
    const refused = version === 5 ? ReasonCode.QuotaExceeded : SubackFailure;
    expect(await subscribeAll(c, ['s/1', 's/2', 's/3'])).toEqual([1, 1, refused]);
    // Replacing a held subscription is not a new one; a freed slot is reusable.
    expect(await subscribeAll(c, ['s/1'], 2)).toEqual([1]);
    await unsubscribe(c, 's/2');
    expect(await subscribeAll(c, ['s/3'], 3)).toEqual([1]);
    expect(hits(t).subscriptions).toBe(1);
  });
});

describe('limits.maxWildcardSubscriptionsPerClient', () => {
  it('counts + and # filters, including those of a resumed session', async () => {
    const t = await broker({ maxWildcardSubscriptionsPerClient: 1 });
    const fields = { clientId: 'wild', clean: false, properties: { sessionExpiryInterval: 60 } };
    const c = await peers.online(t.port, 5, fields);
    expect(await subscribeAll(c, ['w/+', 'w/#', 'w/plain'])).toEqual([1, ReasonCode.QuotaExceeded, 1]);
    c.destroy();
    await until(() => t.broker.stats.clientsConnected === 0, 'the client gone');
    const again = await peers.online(t.port, 5, { ...fields, clean: false });
    expect(await subscribeAll(again, ['z/#'])).toEqual([ReasonCode.QuotaExceeded]);
    await unsubscribe(again, 'w/+');
    expect(await subscribeAll(again, ['z/#'], 2)).toEqual([1]);
    expect(hits(t).wildcard_subscriptions).toBe(2);
  });
});

describe('limits.maxTopicLevels and maxTopicLengthBytes', () => {
  it('refuse deep or long topics: PUBACK 0x90 (v5), SUBACK 0x8F / 0x80, never delivered', async () => {
    const t = await broker({ maxTopicLevels: 3, maxTopicLengthBytes: 16 });
    const sub = await peers.online(t.port, 5);
    await subscribeTo(sub, '#', 1);
    const v5 = await peers.online(t.port, 5);
    const v4 = await peers.online(t.port, 4);

    const deep = (await publishAwait(v5, 'a/b/c/d', 'deep', 1, 1)) as Extract<Packet, { type: 'puback' }>;
    expect(deep.reasonCode).toBe(ReasonCode.TopicNameInvalid);
    const long = (await publishAwait(v5, 'x'.repeat(17), 'long', 1, 2)) as Extract<
      Packet,
      { type: 'puback' }
    >;
    expect(long.reasonCode).toBe(ReasonCode.TopicNameInvalid);
    await publishAwait(v5, 'a/b/c/d', 'deep qos 0', 0);
    await publishAwait(v4, 'a/b/c/d', 'deep v4', 1, 3); // acknowledged as usual, dropped
    await publishAwait(v5, 'a/b/c', 'fits', 1, 4);

    expect(await subscribeAll(v5, ['a/b/c/+', 'a/+/c'])).toEqual([ReasonCode.TopicFilterInvalid, 1]);
    expect(await subscribeAll(v4, ['x'.repeat(17)])).toEqual([SubackFailure]);

    const got = await sub.next('publish');
    expect(got.payload.toString()).toBe('fits');
    await sync(sub);
    expect(receivedOf(sub, 'publish')).toEqual([]);
    expect(hits(t)).toMatchObject({ topic_levels: 4, topic_length: 2 });
  });
});

describe('limits.maxRetainedMessages and maxRetainedPayloadBytes', () => {
  it('refuse new retained topics over the count and retained payloads over the size (0x97)', async () => {
    const t = await broker({ maxRetainedMessages: 2, maxRetainedPayloadBytes: 8 });
    const c = await peers.online(t.port, 5);
    const code = async (topic: string, payload: string, id: number, retain = true) =>
      ((await publishAwait(c, topic, payload, 1, id, { retain })) as Extract<Packet, { type: 'puback' }>)
        .reasonCode ?? 0;

    expect(await code('r/1', 'one', 1)).toBeLessThan(0x80);
    expect(await code('r/2', 'two', 2)).toBeLessThan(0x80);
    expect(await code('r/3', 'three', 3)).toBe(ReasonCode.QuotaExceeded);
    expect(await code('r/1', 'one again', 4)).toBe(ReasonCode.QuotaExceeded); // 9 bytes: too large
    expect(await code('r/1', 'uno', 5)).toBeLessThan(0x80); // replacing is not a new topic
    expect(await code('r/2', '', 6)).toBeLessThan(0x80); // deleting is always allowed
    expect(await code('r/3', 'three', 7)).toBeLessThan(0x80);
    expect(await code('big', 'not retained', 8, false)).toBeLessThan(0x80);
    // 3.1.1 and QoS 0 cannot be told: the message is dropped.
    const v4 = await peers.online(t.port, 4);
    await publishAwait(v4, 'r/4', 'four', 1, 1, { retain: true });
    await publishAwait(c, 'r/5', 'five', 0, 0, { retain: true });
    expect(t.broker.retained.size).toBe(2);

    const sub = await peers.online(t.port, 5);
    await subscribeTo(sub, 'r/#', 1);
    await sync(sub);
    const retained = receivedOf(sub, 'publish').map((p) => `${p.topic}=${p.payload}`);
    expect(retained.sort()).toEqual(['r/1=uno', 'r/3=three']);
    expect(hits(t)).toMatchObject({ retained_messages: 3, retained_payload: 1 });
  });
});

describe('idle and slow connections', () => {
  it('a CONNECT dribbled byte by byte past the connect timeout is closed (slowloris)', async () => {
    const clock = new FakeClock();
    const t = await broker({}, { connectTimeoutMs: 10_000 }, clock);
    const c = await peers.raw(t.port, 4);
    await until(() => t.broker.stats.connectionsOpen === 1, 'the connection accepted');
    const connect = encode(
      {
        type: 'connect',
        protocolName: 'MQTT',
        protocolVersion: 4,
        clean: true,
        keepalive: 0,
        clientId: 'slow',
      },
      4,
    );
    for (let i = 0; i < 10; i++) {
      c.sendBytes([connect[i]]);
      clock.advance(999);
    }
    expect(c.isOpen).toBe(true);
    clock.advance(10);
    await closedWithin(c);
    expect(c.received).toEqual([]);
    expect(hits(t).connect_timeout).toBe(1);
  });

  it('the same CONNECT completed in time is accepted, and the timer ends with it', async () => {
    const clock = new FakeClock();
    const t = await broker({}, { connectTimeoutMs: 10_000 }, clock);
    const c = await peers.raw(t.port, 4);
    await until(() => t.broker.stats.connectionsOpen === 1, 'the connection accepted');
    const connect = encode(
      {
        type: 'connect',
        protocolName: 'MQTT',
        protocolVersion: 4,
        clean: true,
        keepalive: 0,
        clientId: 'ok',
      },
      4,
    );
    for (const byte of connect) {
      c.sendBytes([byte]);
      clock.advance(500);
    }
    expect((await c.next('connack')).reasonCode).toBe(0);
    clock.advance(60_000);
    await sync(c);
    expect(hits(t).connect_timeout).toBe(0);
  });

  it('a connection that sends nothing is closed at the connect timeout', async () => {
    const clock = new FakeClock();
    const t = await broker({}, { connectTimeoutMs: 5_000 }, clock);
    const c = await peers.raw(t.port, 4);
    await until(() => t.broker.stats.connectionsOpen === 1, 'the connection accepted');
    clock.advance(5_000);
    await closedWithin(c);
    expect(hits(t).connect_timeout).toBe(1);
  });
});

describe('huge declared lengths', () => {
  it('a remaining length over the maximum packet size is refused from the fixed header (0x95)', async () => {
    const t = await broker({}, { maxPacketSizeBytes: 1024 });
    const c = await peers.online(t.port, 5);
    // 268,435,455 bytes declared, 5 sent: the broker answers without waiting for (or allocating) the body.
    c.sendBytes([0x30, 0xff, 0xff, 0xff, 0x7f]);
    await disconnectedWith(c, ReasonCode.PacketTooLarge);
    const early = await peers.raw(t.port, 5);
    early.sendBytes([0x10, 0xff, 0xff, 0xff, 0x7f]);
    await closedWithin(early);
    expect(early.received).toEqual([]);
    const big = await peers.online(t.port, 4);
    big.send(pub('big', 'x'.repeat(2000), 0));
    await closedWithin(big);
    expect(hits(t).packet_size).toBe(3);
  });
});

describe('the limit metric', () => {
  it('exports every limit name, hit or not, as shoal_rate_limited_total{limit}', async () => {
    const t = await broker({ maxSubscriptionsPerClient: 1 });
    const c = await peers.online(t.port, 5);
    await subscribeAll(c, ['m/1', 'm/2']);
    const registry = new Registry();
    registerBrokerMetrics(registry, () => t.broker.stats);
    const text = await registry.metrics();
    expect(text).toContain('shoal_rate_limited_total{limit="subscriptions"} 1');
    expect(text).toContain('shoal_rate_limited_total{limit="max_connections"} 0');
    expect(text).toContain('shoal_rate_limited_total{limit="proxy_untrusted"} 0');
  });
});
