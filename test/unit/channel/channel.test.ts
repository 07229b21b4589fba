/**
 * The channel (the per-connection MQTT state machine) through its seam, without sockets: packets in,
 * packets and actions out, time from a FakeClock (test/helpers/channel-harness.ts). The same
 * behaviour over real sockets: test/integration/broker/*.test.ts.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { BrokerOptions } from '../../../src/broker/options.js';
import { type PublishPacket, ReasonCode } from '../../../src/protocol/index.js';
import { type ChannelWorld, channelWorld, type TestPeer } from '../../helpers/channel-harness.js';

let world: ChannelWorld | undefined;

async function start(options: Partial<BrokerOptions> = {}): Promise<ChannelWorld> {
  world = await channelWorld(options);
  return world;
}

afterEach(async () => {
  await world?.close();
  world = undefined;
});

/** A connected peer (MQTT 5 unless said) with these CONNECT fields. */
async function online(w: ChannelWorld, clientId: string, o: Parameters<TestPeer['connect']>[0] = {}) {
  const peer = w.peer(o.protocolVersion ?? 5);
  const connack = await peer.connect({ clientId, ...o });
  expect(connack.reasonCode).toBe(0);
  return peer;
}

const text = (p: { payload: Buffer }) => p.payload.toString();

/** A subscriber to `filter` at `qos` and a publisher, both connected (MQTT 5). */
async function pair(w: ChannelWorld, subId: string, pubId: string, filter: string, qos: 0 | 1 | 2) {
  const sub = await online(w, subId);
  await sub.subscribe(filter, qos);
  return { sub, pub: await online(w, pubId) };
}

describe('channel: CONNECT', () => {
  it('[MQTT-3.1.0-1] a first packet other than CONNECT closes the channel without a CONNACK', async () => {
    const w = await start();
    const peer = w.peer(4);
    peer.send({ type: 'pingreq' });
    await peer.whenClosed();
    expect(peer.received).toEqual([]);
  });

  it('[MQTT-3.1.0-2] [MQTT-3.2.0-2] a second CONNECT gets DISCONNECT 0x82 and the close, no second CONNACK', async () => {
    const w = await start();
    const peer = await online(w, 'twice');
    peer.send({
      type: 'connect',
      protocolName: 'MQTT',
      protocolVersion: 5,
      clean: true,
      keepalive: 0,
      clientId: 'twice',
    });
    const d = await peer.next('disconnect');
    expect(d.reasonCode).toBe(ReasonCode.ProtocolError);
    expect(peer.closed).toBe(true);
    expect(peer.received.filter((p) => p.type === 'connack')).toHaveLength(1);
  });

  it('[MQTT-3.1.3-7] [MQTT-3.2.2-16] an empty client id (MQTT 5) gets an Assigned Client Identifier', async () => {
    const w = await start();
    const peer = w.peer(5);
    const connack = await peer.connect({ clientId: '' });
    const assigned = connack.properties?.assignedClientIdentifier;
    expect(assigned).toMatch(/^shoal-/);
    expect(peer.channel.clientId).toBe(assigned);
  });

  it('[MQTT-3.1.3-8] (3.1.1) an empty client id with Clean Session 0 gets CONNACK 0x02 and the close', async () => {
    const w = await start();
    const peer = w.peer(4);
    const connack = await peer.connect({ clientId: '', clean: false });
    expect(connack.reasonCode).toBe(0x02);
    expect(peer.closed).toBe(true);
  });

  it('[MQTT-3.1.2-4] [MQTT-3.2.2-2] [MQTT-3.2.2-3] Session Present: 0 on Clean Start, 1 when a stored session resumes', async () => {
    const w = await start();
    const persistent = { clean: false, properties: { sessionExpiryInterval: 60 } };
    const first = w.peer(5);
    expect((await first.connect({ clientId: 'resume', ...persistent })).sessionPresent).toBe(false);
    first.send({ type: 'disconnect' });
    await first.whenClosed();
    expect((await w.peer(5).connect({ clientId: 'resume', ...persistent })).sessionPresent).toBe(true);
    expect((await w.peer(5).connect({ clientId: 'resume', clean: true })).sessionPresent).toBe(false);
  });

  it('[MQTT-3.1.4-3] a second connection with the id takes over: the first gets DISCONNECT 0x8E', async () => {
    const w = await start();
    const first = await online(w, 'taken');
    await online(w, 'taken');
    expect((await first.next('disconnect')).reasonCode).toBe(ReasonCode.SessionTakenOver);
    expect(first.closed).toBe(true);
  });

  it('the channel holds its input while the claim runs and releases it with the CONNACK', async () => {
    const w = await start();
    const peer = w.peer(5);
    peer.send({
      type: 'connect',
      protocolName: 'MQTT',
      protocolVersion: 5,
      clean: true,
      keepalive: 0,
      clientId: 'held',
    });
    // Sent before the CONNACK: handled after it, in order.
    peer.send({ type: 'pingreq' });
    expect(peer.actions).toContainEqual({ type: 'hold', hold: true });
    expect((await peer.next()).type).toBe('connack');
    expect((await peer.next()).type).toBe('pingresp');
    expect(peer.actions.filter((a) => a.type === 'hold')).toEqual([
      { type: 'hold', hold: true },
      { type: 'hold', hold: false },
    ]);
  });
});

describe('channel: keep-alive', () => {
  it('[MQTT-3.1.2-22] the deadline asked of the connection is 1.5 times the keep alive; 0 asks for none', async () => {
    const w = await start();
    const kept = w.peer(4);
    await kept.connect({ clientId: 'ka', keepalive: 10 });
    expect(kept.actions).toContainEqual({ type: 'keepAlive', ms: 15_000 });
    const none = w.peer(4);
    await none.connect({ clientId: 'ka0', keepalive: 0 });
    expect(none.actions).toContainEqual({ type: 'keepAlive', ms: 0 });
  });

  it('[MQTT-3.2.2-21] [MQTT-3.2.2-22] a broker maximum overrides a longer or absent keep alive: Server Keep Alive in the CONNACK', async () => {
    const w = await start({ maxKeepAliveSeconds: 30 });
    const long = w.peer(5);
    const connack = await long.connect({ clientId: 'long', keepalive: 600 });
    expect(connack.properties?.serverKeepAlive).toBe(30);
    expect(long.actions).toContainEqual({ type: 'keepAlive', ms: 45_000 });
    const short = w.peer(5);
    expect(
      (await short.connect({ clientId: 'short', keepalive: 20 })).properties?.serverKeepAlive,
    ).toBeUndefined();
    expect(short.actions).toContainEqual({ type: 'keepAlive', ms: 30_000 });
  });

  it('[MQTT-3.1.2-8] [MQTT-3.1.2-22] at the deadline MQTT 5 gets DISCONNECT 0x8D, the close, and the will goes out', async () => {
    const w = await start();
    const watcher = await online(w, 'watcher');
    await watcher.subscribe('wills/#', 0);
    const peer = await online(w, 'sleepy', {
      keepalive: 1,
      will: { topic: 'wills/sleepy', payload: Buffer.from('gone'), qos: 0, retain: false },
    });
    peer.channel.keepAliveExpired();
    expect((await peer.next('disconnect')).reasonCode).toBe(ReasonCode.KeepAliveTimeout);
    expect(peer.closed).toBe(true);
    expect(text(await watcher.next('publish'))).toBe('gone');
  });

  it('[MQTT-3.12.4-1] PINGREQ gets PINGRESP', async () => {
    const w = await start();
    const peer = await online(w, 'ping', { protocolVersion: 4 });
    peer.send({ type: 'pingreq' });
    expect((await peer.next()).type).toBe('pingresp');
  });
});

describe('channel: PUBLISH and its acknowledgements', () => {
  it('[MQTT-4.3.1-1] QoS 0 is routed without an acknowledgement, forwarded with no packet id', async () => {
    const w = await start();
    const { sub, pub } = await pair(w, 'sub0', 'pub0', 't/#', 2);
    pub.publish('t/a', 'zero', 0);
    const got = await sub.next('publish');
    expect([got.topic, text(got), got.qos, got.packetId, got.dup]).toEqual([
      't/a',
      'zero',
      0,
      undefined,
      false,
    ]);
    expect(await pub.unread()).toEqual([]);
  });

  it('[MQTT-4.3.2-4] [MQTT-4.3.2-1] QoS 1 gets a PUBACK with its packet id and goes out with a non-zero id', async () => {
    const w = await start();
    const { sub, pub } = await pair(w, 'sub1', 'pub1', 't/#', 1);
    const sent = pub.publish('t/b', 'one', 1);
    const ack = await pub.next('puback');
    expect(ack.packetId).toBe(sent.packetId);
    expect(ack.reasonCode ?? 0).toBe(0);
    const got = await sub.next('publish');
    expect(got.qos).toBe(1);
    expect(got.packetId).toBeGreaterThan(0);
  });

  it('[MQTT-3.4.2-1] a PUBACK carries 0x10 No matching subscribers when nobody subscribes', async () => {
    const w = await start();
    const pub = await online(w, 'lonely');
    pub.publish('nobody/here', 'x', 1);
    expect((await pub.next('puback')).reasonCode).toBe(ReasonCode.NoMatchingSubscribers);
  });

  it('[MQTT-4.3.3-8] [MQTT-4.3.3-10] [MQTT-4.3.3-11] QoS 2: PUBREC, a repeat before PUBREL is not delivered twice, PUBREL gets PUBCOMP', async () => {
    const w = await start();
    const { sub, pub } = await pair(w, 'sub2', 'pub2', 'q2/#', 2);
    const sent = pub.publish('q2/x', 'two', 2);
    expect((await pub.next('pubrec')).packetId).toBe(sent.packetId);
    pub.send({ ...sent, dup: true });
    expect((await pub.next('pubrec')).packetId).toBe(sent.packetId);
    pub.send({ type: 'pubrel', packetId: sent.packetId as number });
    expect((await pub.next('pubcomp')).packetId).toBe(sent.packetId);
    const got = await sub.next('publish');
    expect([text(got), got.qos]).toEqual(['two', 2]);
    expect((await sub.unread()).filter((p) => p.type === 'publish')).toEqual([]);
  });

  it('[MQTT-4.3.3-1] [MQTT-4.3.3-4] outbound QoS 2: PUBREC gets PUBREL, PUBCOMP ends it', async () => {
    const w = await start();
    const { sub, pub } = await pair(w, 'sub2out', 'pub2out', 'out/#', 2);
    pub.publish('out/1', 'x', 2);
    const got = await sub.next('publish');
    sub.send({ type: 'pubrec', packetId: got.packetId as number });
    expect((await sub.next('pubrel')).packetId).toBe(got.packetId);
    sub.send({ type: 'pubcomp', packetId: got.packetId as number });
    await sub.unread();
    expect(sub.channel.session?.inflight.size).toBe(0);
  });

  it('[MQTT-3.3.2-2] a Topic Name with a wildcard gets DISCONNECT 0x90 and the close', async () => {
    const w = await start();
    const pub = await online(w, 'wild');
    pub.publish('a/+', 'x', 0);
    expect((await pub.next('disconnect')).reasonCode).toBe(ReasonCode.TopicNameInvalid);
    expect(pub.closed).toBe(true);
  });

  it('[MQTT-3.3.1-5] [MQTT-3.3.1-9] a retained message is kept and sent to a later subscriber with RETAIN 1', async () => {
    const w = await start();
    const pub = await online(w, 'keeper');
    pub.publish('kept/t', 'state', 1, { retain: true });
    await pub.next('puback');
    const late = await online(w, 'late');
    await late.subscribe('kept/#', 1);
    const got = await late.next('publish');
    expect([got.topic, text(got), got.retain]).toEqual(['kept/t', 'state', true]);
  });
});

describe('channel: SUBSCRIBE and UNSUBSCRIBE', () => {
  it('[MQTT-3.8.4-5] [MQTT-3.8.4-6] [MQTT-3.9.3-1] one code per filter, in order, 0x8F for an invalid filter', async () => {
    const w = await start();
    const peer = await online(w, 'subs');
    expect(await peer.subscribe(['ok/+', 'bad/#/x', 'fine'], 1)).toEqual([
      1,
      ReasonCode.TopicFilterInvalid,
      1,
    ]);
  });

  it('[MQTT-3.8.4-8] a message goes out at the lower of its QoS and the granted QoS', async () => {
    const w = await start();
    const { sub, pub } = await pair(w, 'low', 'high', 'low/#', 0);
    pub.publish('low/1', 'x', 1);
    expect((await sub.next('publish')).qos).toBe(0);
  });

  it('[MQTT-3.10.4-1] [MQTT-3.10.4-4] UNSUBSCRIBE gets UNSUBACK (0x11 for a filter never subscribed) and messages stop', async () => {
    const w = await start();
    const sub = await online(w, 'unsub');
    await sub.subscribe('u/#', 0);
    sub.send({ type: 'unsubscribe', packetId: 77, topics: ['u/#', 'never'] });
    const ack = await sub.next('unsuback');
    expect([ack.packetId, ack.reasonCodes]).toEqual([77, [0, ReasonCode.NoSubscriptionExisted]]);
    const pub = await online(w, 'upub');
    pub.publish('u/1', 'x', 0);
    expect((await sub.unread()).filter((p) => p.type === 'publish')).toEqual([]);
  });
});

describe('channel: topic aliases', () => {
  it('[MQTT-3.3.2-12] an inbound alias set with a topic is used by a later PUBLISH with an empty topic', async () => {
    const w = await start({ topicAliasMaximum: 10 });
    const { sub, pub } = await pair(w, 'asub', 'apub', 'alias/#', 0);
    pub.publish('alias/long/topic', 'first', 0, { properties: { topicAlias: 3 } });
    pub.publish('', 'second', 0, { properties: { topicAlias: 3 } });
    const got = [await sub.next('publish'), await sub.next('publish')];
    expect(got.map((p) => [p.topic, text(p)])).toEqual([
      ['alias/long/topic', 'first'],
      ['alias/long/topic', 'second'],
    ]);
  });

  it('[MQTT-3.3.2-9] an alias above the broker maximum gets DISCONNECT 0x94', async () => {
    const w = await start({ topicAliasMaximum: 2 });
    const pub = await online(w, 'over');
    pub.publish('t', 'x', 0, { properties: { topicAlias: 3 } });
    expect((await pub.next('disconnect')).reasonCode).toBe(ReasonCode.TopicAliasInvalid);
  });

  it('[MQTT-3.1.2-26] [MQTT-3.1.2-27] outbound aliases only up to the client maximum; a repeat topic goes out empty with its alias', async () => {
    const w = await start();
    const sub = await online(w, 'aout', { properties: { topicAliasMaximum: 1 } });
    await sub.subscribe('ao/#', 0);
    const plain = await online(w, 'noalias');
    await plain.subscribe('ao/#', 0);
    const pub = await online(w, 'aopub');
    for (const [topic, body] of [
      ['ao/one', '1'],
      ['ao/one', '2'],
      ['ao/two', '3'],
    ])
      pub.publish(topic, body, 0);
    const got: PublishPacket[] = [];
    for (let i = 0; i < 3; i++) got.push(await sub.next('publish'));
    expect(got.map((p) => [p.topic, p.properties?.topicAlias])).toEqual([
      ['ao/one', 1],
      ['', 1],
      ['ao/two', undefined],
    ]);
    for (let i = 0; i < 3; i++) expect((await plain.next('publish')).properties?.topicAlias).toBeUndefined();
  });
});

describe('channel: flow control', () => {
  it('[MQTT-3.3.4-9] no more unacknowledged QoS 1 PUBLISH than the client Receive Maximum; a PUBACK frees a place', async () => {
    const w = await start();
    const sub = await online(w, 'rm', { properties: { receiveMaximum: 2 } });
    await sub.subscribe('rm/#', 1);
    const pub = await online(w, 'rmpub');
    for (let i = 0; i < 5; i++) pub.publish('rm/t', `m${i}`, 1);
    const first = (await sub.unread()).filter((p): p is PublishPacket => p.type === 'publish');
    expect(first.map(text)).toEqual(['m0', 'm1']);
    sub.send({ type: 'puback', packetId: first[0].packetId as number });
    const next = (await sub.unread()).filter((p): p is PublishPacket => p.type === 'publish');
    expect(next.map(text)).toEqual(['m2']);
  });

  it('[MQTT-3.3.4-7] more unacknowledged inbound QoS 2 PUBLISH than the broker Receive Maximum gets DISCONNECT 0x93', async () => {
    const w = await start({ receiveMaximum: 2 });
    const pub = await online(w, 'flood');
    for (let i = 0; i < 3; i++) pub.publish('flood/t', `m${i}`, 2);
    expect((await pub.next('disconnect')).reasonCode).toBe(ReasonCode.ReceiveMaximumExceeded);
    expect(pub.closed).toBe(true);
  });
});

describe('channel: time (FakeClock)', () => {
  it('[MQTT-3.3.2-5] [MQTT-3.3.2-6] a queued message past its expiry is dropped; one still live carries the time left', async () => {
    const w = await start();
    const persistent = { clean: false, properties: { sessionExpiryInterval: 600 } };
    const sub = w.peer(5);
    await sub.connect({ clientId: 'away', ...persistent });
    await sub.subscribe('exp/#', 1);
    sub.send({ type: 'disconnect' });
    await sub.whenClosed();
    const pub = await online(w, 'exppub');
    pub.publish('exp/short', 'short', 1, { properties: { messageExpiryInterval: 5 } });
    pub.publish('exp/long', 'long', 1, { properties: { messageExpiryInterval: 60 } });
    await pub.unread();
    w.clock.advance(10_000);
    const back = w.peer(5);
    await back.connect({ clientId: 'away', ...persistent });
    const got = await back.next('publish');
    expect([text(got), got.properties?.messageExpiryInterval]).toEqual(['long', 50]);
    expect((await back.unread()).filter((p) => p.type === 'publish')).toEqual([]);
  });

  it('[MQTT-3.1.2-23] an offline session ends after its Session Expiry Interval', async () => {
    const w = await start();
    const persistent = { clean: false, properties: { sessionExpiryInterval: 30 } };
    const first = w.peer(5);
    await first.connect({ clientId: 'expiring', ...persistent });
    first.send({ type: 'disconnect' });
    await first.whenClosed();
    w.clock.advance(29_000);
    const back = w.peer(5);
    expect((await back.connect({ clientId: 'expiring', ...persistent })).sessionPresent).toBe(true);
    back.send({ type: 'disconnect' });
    await back.whenClosed();
    w.clock.advance(30_000);
    expect((await w.peer(5).connect({ clientId: 'expiring', ...persistent })).sessionPresent).toBe(false);
  });

  it('(MQTT 5 3.1.3.2.2) a will with a delay waits for it (DISCONNECT 0x04 asks for the will)', async () => {
    const w = await start();
    const watcher = await online(w, 'willwatch');
    await watcher.subscribe('late/#', 0);
    const peer = await online(w, 'delayed', {
      properties: { sessionExpiryInterval: 120 },
      will: {
        topic: 'late/w',
        payload: Buffer.from('bye'),
        qos: 0,
        retain: false,
        properties: { willDelayInterval: 10 },
      },
    });
    peer.send({ type: 'disconnect', reasonCode: ReasonCode.DisconnectWithWillMessage });
    await peer.whenClosed();
    w.clock.advance(9_000);
    expect((await watcher.unread()).filter((p) => p.type === 'publish')).toEqual([]);
    w.clock.advance(1_000);
    expect(text(await watcher.next('publish'))).toBe('bye');
  });
});

describe('channel: the seam', () => {
  it('sets no timers and does no I/O of its own: no timer calls or transport imports in src/channel', () => {
    const dir = join(__dirname, '../../../src/channel');
    for (const file of readdirSync(dir)) {
      const source = readFileSync(join(dir, file), 'utf8');
      expect(source, file).not.toMatch(/\b(setTimeout|setInterval|setImmediate)\s*\(/);
      expect(source, file).not.toMatch(
        /^import (?!type )[^;]*from '(node:net|node:tls|node:dgram|ws|\.\.\/transport\/[^']*|\.\.\/connection\/[^']*)'/m,
      );
    }
  });
});
