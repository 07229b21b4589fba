/**
 * Messages across reconnects, over real sockets: the offline queue (bound, expiry), re-sending of
 * in-flight PUBLISH / PUBREL with their packet ids, inbound QoS 2 state, and the Receive Maximum of
 * both directions.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { BrokerOptions } from '../../../src/broker/options.js';
import { type ProtocolVersion, ReasonCode } from '../../../src/protocol/index.js';
import { startTestBroker, type TestBroker } from '../../helpers/broker.js';
import { FakeClock } from '../../helpers/fake-clock.js';
import {
  type ConnectFields,
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

async function broker(options: Partial<BrokerOptions> = {}, clock?: FakeClock): Promise<TestBroker> {
  const t = await startTestBroker(options, { clock });
  brokers.push(t);
  return t;
}

function persistent(version: ProtocolVersion, clientId: string, extra: ConnectFields = {}): ConnectFields {
  const properties = version === 5 ? { sessionExpiryInterval: 300, ...extra.properties } : undefined;
  return { clientId, clean: false, ...extra, properties };
}

async function leave(client: RawClient): Promise<void> {
  client.send({ type: 'disconnect', reasonCode: 0 });
  await closedWithin(client);
}

/** Drops the socket without DISCONNECT and waits until the broker has seen it go. */
async function drop(t: TestBroker, client: RawClient): Promise<void> {
  const before = t.broker.stats.clientsConnected;
  client.destroy();
  await until(() => t.broker.stats.clientsConnected === before - 1, 'the broker saw the close');
}

const payloads = (c: RawClient) => receivedOf(c, 'publish').map((p) => p.payload.toString());

describe('offline queue', () => {
  it.each([4, 5] as const)(
    '[MQTT-3.1.2-23] [MQTT-4.5.0-1] QoS 1 and 2 messages published while offline arrive on reconnect, in order; QoS 0 does not (v%i)',
    async (version) => {
      const t = await broker();
      const sub = await peers.online(t.port, version, persistent(version, `offline-${version}`));
      await subscribeTo(sub, 'off/#', 2);
      await leave(sub);
      const pub = await peers.online(t.port, 5);
      await publishAwait(pub, 'off/a', 'q0', 0);
      await publishAwait(pub, 'off/a', 'q1', 1, 1);
      await publishAwait(pub, 'off/b', 'q2', 2, 2);
      await publishAwait(pub, 'off/a', 'q1 again', 1, 3);
      const back = await peers.online(t.port, version, persistent(version, `offline-${version}`));
      const got = [await back.next('publish'), await back.next('publish'), await back.next('publish')];
      expect(got.map((p) => [p.payload.toString(), p.qos, p.dup])).toEqual([
        ['q1', 1, false],
        ['q2', 2, false],
        ['q1 again', 1, false],
      ]);
      await sync(back);
      expect(receivedOf(back, 'publish')).toEqual([]);
      expect(t.broker.stats.dropped.offline_qos0).toBe(1);
    },
  );

  it('(4.1) the offline queue is bounded by maxQueuedMessages: the excess is dropped and counted', async () => {
    const t = await broker({ maxQueuedMessages: 3 });
    const sub = await peers.online(t.port, 5, persistent(5, 'bounded'));
    await subscribeTo(sub, 'bounded/t', 1);
    await leave(sub);
    const pub = await peers.online(t.port, 5);
    for (let i = 1; i <= 5; i++) await publishAwait(pub, 'bounded/t', `m${i}`, 1, i);
    expect(t.broker.stats.dropped.queue_full).toBe(2);
    const back = await peers.online(t.port, 5, persistent(5, 'bounded'));
    for (let i = 0; i < 3; i++) await back.next('publish');
    await sync(back);
    expect(payloads(back)).toEqual([]);
    expect(t.broker.stats.dropped.queue_full).toBe(2);
  });

  it('[MQTT-3.3.2-5] [MQTT-3.3.2-6] queued messages past their Message Expiry Interval are dropped; others carry the time left', async () => {
    const clock = new FakeClock();
    const t = await broker({}, clock);
    const sub = await peers.online(t.port, 5, persistent(5, 'expiring'));
    await subscribeTo(sub, 'exp/t', 1);
    await leave(sub);
    const pub = await peers.online(t.port, 5);
    await publishAwait(pub, 'exp/t', 'short', 1, 1, { properties: { messageExpiryInterval: 10 } });
    await publishAwait(pub, 'exp/t', 'long', 1, 2, { properties: { messageExpiryInterval: 30 } });
    await publishAwait(pub, 'exp/t', 'forever', 1, 3);
    clock.advance(15_000);
    const back = await peers.online(t.port, 5, persistent(5, 'expiring'));
    const long = await back.next('publish');
    const forever = await back.next('publish');
    expect(long.payload.toString()).toBe('long');
    expect(long.properties?.messageExpiryInterval).toBe(15);
    expect(forever.payload.toString()).toBe('forever');
    expect(forever.properties?.messageExpiryInterval).toBeUndefined();
    await sync(back);
    expect(payloads(back)).toEqual([]);
    expect(t.broker.stats.dropped.expired).toBe(1);
  });
});

describe('re-sending in-flight messages', () => {
  it.each([4, 5] as const)(
    '[MQTT-4.4.0-1] [MQTT-3.3.1-1] an unacknowledged QoS 1 PUBLISH is re-sent with DUP 1 and its packet id (v%i)',
    async (version) => {
      const t = await broker();
      const sub = await peers.online(t.port, version, persistent(version, `resend-${version}`));
      await subscribeTo(sub, 'resend/t', 1);
      const pub = await peers.online(t.port, 5);
      await publishAwait(pub, 'resend/t', 'again', 1);
      const first = await sub.next('publish');
      expect(first).toMatchObject({ qos: 1, dup: false });
      await drop(t, sub);
      const back = await peers.online(t.port, version, persistent(version, `resend-${version}`));
      const second = await back.next('publish');
      expect(second).toMatchObject({ topic: 'resend/t', qos: 1, dup: true, packetId: first.packetId });
      expect(second.payload.toString()).toBe('again');
      back.send({ type: 'puback', packetId: first.packetId! });
      await leave(back);
      // Acknowledged: not sent a third time [MQTT-4.4.0-1].
      const third = await peers.online(t.port, version, persistent(version, `resend-${version}`));
      await sync(third);
      expect(third.received).toEqual([]);
    },
  );

  it('[MQTT-4.4.0-1] [MQTT-4.3.3-6] QoS 2: an unacknowledged PUBLISH is re-sent with DUP; after PUBREC only the PUBREL is', async () => {
    const t = await broker();
    const sub = await peers.online(t.port, 5, persistent(5, 'resend2'));
    await subscribeTo(sub, 'resend2/#', 2);
    const pub = await peers.online(t.port, 5);
    await publishAwait(pub, 'resend2/a', 'A', 2, 1);
    await publishAwait(pub, 'resend2/b', 'B', 2, 2);
    const a = await sub.next('publish');
    const bp = await sub.next('publish');
    sub.send({ type: 'pubrec', packetId: a.packetId! }); // A moves to the PUBREL phase; B stays unacknowledged
    await sub.next('pubrel');
    await drop(t, sub);
    const back = await peers.online(t.port, 5, persistent(5, 'resend2'));
    const rel = await back.next('pubrel');
    expect(rel.packetId).toBe(a.packetId);
    const again = await back.next('publish');
    expect(again).toMatchObject({ topic: 'resend2/b', qos: 2, dup: true, packetId: bp.packetId });
    back.send({ type: 'pubcomp', packetId: a.packetId! });
    back.send({ type: 'pubrec', packetId: bp.packetId! });
    expect((await back.next('pubrel')).packetId).toBe(bp.packetId);
    back.send({ type: 'pubcomp', packetId: bp.packetId! });
    await sync(back);
    expect(receivedOf(back, 'publish')).toEqual([]);
  });

  it('(4.6) re-sent messages come before the ones queued while offline', async () => {
    const t = await broker();
    const sub = await peers.online(t.port, 5, persistent(5, 'order'));
    await subscribeTo(sub, 'order/t', 1);
    const pub = await peers.online(t.port, 5);
    await publishAwait(pub, 'order/t', 'in flight', 1, 1);
    await sub.next('publish');
    await drop(t, sub);
    await publishAwait(pub, 'order/t', 'queued', 1, 2);
    const back = await peers.online(t.port, 5, persistent(5, 'order'));
    const got = [await back.next('publish'), await back.next('publish')];
    expect(got.map((p) => [p.payload.toString(), p.dup])).toEqual([
      ['in flight', true],
      ['queued', false],
    ]);
    expect(got[0].packetId).not.toBe(got[1].packetId); // [MQTT-2.2.1-4]
  });

  it("[MQTT-3.1.4-3] [MQTT-4.4.0-1] on takeover the new connection gets the old one's unacknowledged PUBLISH", async () => {
    const t = await broker();
    const old = await peers.online(t.port, 5, persistent(5, 'takeover-inflight'));
    await subscribeTo(old, 'ti/t', 1);
    const pub = await peers.online(t.port, 5);
    await publishAwait(pub, 'ti/t', 'pending', 1);
    const first = await old.next('publish');
    const next = await peers.online(t.port, 5, persistent(5, 'takeover-inflight'));
    await disconnectedWith(old, ReasonCode.SessionTakenOver);
    const again = await next.next('publish');
    expect(again).toMatchObject({ dup: true, packetId: first.packetId });
  });
});

describe('inbound QoS 2 state', () => {
  it('[MQTT-4.3.3-10] [MQTT-4.3.3-11] PUBREL after a reconnect completes a QoS 2 PUBLISH received before it, delivered once', async () => {
    const t = await broker();
    const sub = await peers.online(t.port, 5);
    await subscribeTo(sub, 'in2/t', 2);
    const pub = await peers.online(t.port, 5, persistent(5, 'in2-pub'));
    await publishAwait(pub, 'in2/t', 'exactly once', 2, 9);
    expect((await sub.next('publish')).payload.toString()).toBe('exactly once');
    await drop(t, pub);
    const back = await peers.connect(t.port, 5, persistent(5, 'in2-pub'));
    expect(back.connack.sessionPresent).toBe(true);
    // The client re-sends the PUBLISH (it saw no PUBREC, say): PUBREC again, no second delivery.
    await publishAwait(back.client, 'in2/t', 'exactly once', 2, 9, { dup: true });
    back.client.send({ type: 'pubrel', packetId: 9 });
    const comp = await back.client.next('pubcomp');
    expect(comp.packetId).toBe(9);
    expect(comp.reasonCode ?? 0).toBe(0);
    await publishAwait(back.client, 'in2/t', 'marker', 1, 10);
    expect((await sub.next('publish')).payload.toString()).toBe('marker');
    await sync(sub);
    expect(sub.received).toEqual([]);
  });

  it('[MQTT-4.3.3-11] after a clean start the old QoS 2 state is gone: PUBREL gets PUBCOMP 0x92', async () => {
    const t = await broker();
    const pub = await peers.online(t.port, 5, persistent(5, 'in2-clean'));
    await publishAwait(pub, 'in2c/t', 'x', 2, 4);
    await drop(t, pub);
    const fresh = await peers.online(t.port, 5, { ...persistent(5, 'in2-clean'), clean: true });
    fresh.send({ type: 'pubrel', packetId: 4 });
    expect((await fresh.next('pubcomp')).reasonCode).toBe(ReasonCode.PacketIdentifierNotFound);
  });
});

describe('Receive Maximum', () => {
  it("[MQTT-3.3.4-9] [MQTT-4.9.0-2] the broker keeps at most the client's Receive Maximum QoS 1 PUBLISH unacknowledged", async () => {
    const t = await broker();
    const sub = await peers.online(t.port, 5, { clientId: 'rm2', properties: { receiveMaximum: 2 } });
    await subscribeTo(sub, 'rm/t', 1);
    const pub = await peers.online(t.port, 5);
    for (let i = 1; i <= 4; i++) await publishAwait(pub, 'rm/t', `m${i}`, 1, i);
    await sync(sub);
    const firstTwo = receivedOf(sub, 'publish');
    expect(firstTwo.map((p) => p.payload.toString())).toEqual(['m1', 'm2']);
    sub.received.length = 0;
    sub.send({ type: 'puback', packetId: firstTwo[0].packetId! });
    expect((await sub.next('publish')).payload.toString()).toBe('m3');
    await sync(sub); // [MQTT-4.9.0-3] other packets still flow while the window is full
    expect(receivedOf(sub, 'publish')).toEqual([]);
    sub.send({ type: 'puback', packetId: firstTwo[1].packetId! });
    expect((await sub.next('publish')).payload.toString()).toBe('m4');
  });

  it('[MQTT-3.3.4-9] [MQTT-4.4.0-1] on reconnect with a smaller Receive Maximum, re-sending stays within it', async () => {
    const t = await broker();
    const fields = (receiveMaximum: number) => persistent(5, 'rm-resume', { properties: { receiveMaximum } });
    const sub = await peers.online(t.port, 5, fields(10));
    await subscribeTo(sub, 'rmr/t', 1);
    const pub = await peers.online(t.port, 5);
    for (let i = 1; i <= 4; i++) await publishAwait(pub, 'rmr/t', `m${i}`, 1, i);
    await sync(sub);
    const first = receivedOf(sub, 'publish');
    expect(first).toHaveLength(4);
    await drop(t, sub);
    const back = await peers.online(t.port, 5, fields(2));
    await sync(back);
    const resent = receivedOf(back, 'publish');
    expect(resent.map((p) => [p.payload.toString(), p.dup, p.packetId])).toEqual([
      ['m1', true, first[0].packetId],
      ['m2', true, first[1].packetId],
    ]);
    back.received.length = 0;
    // Each PUBACK opens the window for the next re-send, still with its original packet id.
    back.send({ type: 'puback', packetId: first[0].packetId! });
    expect(await back.next('publish')).toMatchObject({ dup: true, packetId: first[2].packetId });
    back.send({ type: 'puback', packetId: first[1].packetId! });
    expect(await back.next('publish')).toMatchObject({ dup: true, packetId: first[3].packetId });
    await publishAwait(pub, 'rmr/t', 'm5', 1, 5);
    back.send({ type: 'puback', packetId: first[2].packetId! });
    expect(await back.next('publish')).toMatchObject({ dup: false });
    await sync(back);
    expect(receivedOf(back, 'publish')).toEqual([]);
  });

  it('(4.9) maxInflightMessages caps the window of a 3.1.1 client', async () => {
    const t = await broker({ maxInflightMessages: 2 });
    const sub = await peers.online(t.port, 4, { clientId: 'cap4' });
    await subscribeTo(sub, 'cap/t', 1);
    const pub = await peers.online(t.port, 5);
    for (let i = 1; i <= 3; i++) await publishAwait(pub, 'cap/t', `m${i}`, 1, i);
    await sync(sub);
    const window = receivedOf(sub, 'publish');
    expect(window).toHaveLength(2);
    sub.received.length = 0;
    sub.send({ type: 'puback', packetId: window[0].packetId! });
    expect((await sub.next('publish')).payload.toString()).toBe('m3');
  });

  it("[MQTT-3.3.4-7] a client exceeding the broker's Receive Maximum with QoS 2 gets DISCONNECT 0x93; QoS 1 and completed QoS 2 do not count", async () => {
    const t = await broker({ receiveMaximum: 2 });
    const pub = await peers.online(t.port, 5);
    for (let id = 1; id <= 5; id++) await publishAwait(pub, 'rmx/t', 'q1', 1, id); // acknowledged at once
    await publishAwait(pub, 'rmx/t', 'a', 2, 10);
    pub.send({ type: 'pubrel', packetId: 10 });
    await pub.next('pubcomp'); // completed: its slot is free again
    await publishAwait(pub, 'rmx/t', 'b', 2, 11);
    await publishAwait(pub, 'rmx/t', 'c', 2, 12);
    publishAwait(pub, 'rmx/t', 'd', 2, 13).catch(() => undefined);
    await disconnectedWith(pub, ReasonCode.ReceiveMaximumExceeded);
  });
});
