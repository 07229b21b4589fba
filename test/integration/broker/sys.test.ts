/**
 * The $SYS/broker topics over real sockets: retained values on subscribe, refreshed on the interval
 * (driven by a FakeClock), out of reach of `#`, and closed to client publishers.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PublishPacket } from '../../../src/protocol/index.js';
import { startTestBroker, type TestBroker } from '../../helpers/broker.js';
import { FakeClock } from '../../helpers/fake-clock.js';
import {
  closeAll,
  connect,
  publishAcked,
  receive,
  settle,
  subscribe,
  sync,
  takePublishes,
  uid,
} from '../../helpers/mqtt.js';

const TOPICS = [
  'version',
  'uptime',
  'clients/connected',
  'clients/total',
  'messages/received',
  'messages/sent',
  'bytes/received',
  'bytes/sent',
  'subscriptions/count',
  'retained messages/count',
];

const byName = (ps: PublishPacket[]) =>
  new Map(ps.map((p) => [p.topic.slice('$SYS/broker/'.length), p.payload.toString()]));

describe('$SYS topics', () => {
  const clock = new FakeClock();
  let t: TestBroker;
  beforeAll(async () => {
    t = await startTestBroker({ sysIntervalSeconds: 10 }, { clock });
  });
  afterAll(async () => {
    await t.close();
  });

  it('(MQTT 5 4.7.2) $SYS/broker values are retained: a new subscriber gets them at once, with RETAIN 1', async () => {
    for (const version of [4, 5] as const) {
      const sub = await connect(t.port, version);
      await subscribe(sub, '$SYS/#');
      await sync(sub);
      const got = takePublishes(sub);
      expect(got.every((p) => p.retain)).toBe(true);
      const values = byName(got);
      expect([...values.keys()].sort()).toEqual([...TOPICS].sort());
      expect(values.get('version')).toBe('shoal test');
      expect(values.get('uptime')).toBe('0 seconds');
      closeAll(sub);
    }
  });

  it('(MQTT 5 4.7.2) each interval publishes fresh values to subscribers', async () => {
    const sub = await connect(t.port, 5);
    await subscribe(sub, { topic: '$SYS/broker/#', qos: 1 });
    await subscribe(sub, uid('plain'));
    await sync(sub);
    takePublishes(sub); // the retained values of the last interval
    const pub = await connect(t.port, 5);
    await publishAcked(pub, uid('retained'), 'r', { qos: 1, retain: true });
    const stats = t.broker.stats;
    clock.advance(10_000);
    const fresh = byName(await receive(sub, TOPICS.length));
    expect(fresh.get('uptime')).toBe('10 seconds');
    expect(Number(fresh.get('clients/connected'))).toBe(stats.clientsConnected);
    expect(Number(fresh.get('subscriptions/count'))).toBe(stats.subscriptions);
    expect(Number(fresh.get('retained messages/count'))).toBe(stats.retained);
    expect(Number(fresh.get('messages/received'))).toBe(stats.messagesReceived);
    expect(Number(fresh.get('messages/sent'))).toBeGreaterThanOrEqual(TOPICS.length);
    expect(Number(fresh.get('bytes/received'))).toBeGreaterThan(0);
    expect(Number(fresh.get('bytes/sent'))).toBeGreaterThan(0);
    clock.advance(10_000);
    const again = byName(await receive(sub, TOPICS.length));
    expect(again.get('uptime')).toBe('20 seconds');
    closeAll(sub, pub);
  });

  it('[MQTT-4.7.2-1] # and +/… subscribers do not receive $SYS topics', async () => {
    const sub = await connect(t.port, 5);
    await subscribe(sub, ['#', '+/broker/#', '+/+/uptime']);
    clock.advance(10_000);
    const pub = await connect(t.port, 5);
    const marker = uid('marker');
    await publishAcked(pub, marker, 'm');
    await settle(pub, sub);
    const topics = takePublishes(sub).map((p) => p.topic);
    expect(topics.filter((x) => x.startsWith('$'))).toEqual([]);
    expect(topics).toContain(marker);
    closeAll(sub, pub);
  });

  it('(MQTT 5 4.7.2) a client cannot overwrite a $SYS value', async () => {
    const pub = await connect(t.port, 5);
    expect(await publishAcked(pub, '$SYS/broker/version', 'fake', { qos: 1, retain: true })).toBe(0x87);
    const sub = await connect(t.port, 5);
    await subscribe(sub, '$SYS/broker/version');
    const [v] = await receive(sub, 1);
    expect(v.payload.toString()).toBe('shoal test');
    closeAll(sub, pub);
  });
});

describe('$SYS disabled', () => {
  it('(MQTT 5 4.7.2) with sysIntervalSeconds 0 nothing is published under $SYS', async () => {
    const t = await startTestBroker({ sysIntervalSeconds: 0 });
    try {
      const sub = await connect(t.port, 5);
      await subscribe(sub, '$SYS/#');
      await sync(sub);
      expect(takePublishes(sub)).toEqual([]);
      expect(t.broker.stats.retained).toBe(0);
      closeAll(sub);
    } finally {
      await t.close();
    }
  });
});
