import type { MqttClient } from 'mqtt';
import { describe, expect, it } from 'vitest';
import type { PublishPacket } from '../../src/protocol/index.js';
import {
  connectMqtt,
  endAll,
  type Inbox,
  type ShoalNode,
  uniq,
  untilRouted,
  waitFor,
} from '../helpers/cluster.js';
import { clusterPerFile } from '../helpers/cluster-fixture.js';
import { RawClient } from '../helpers/raw-client.js';

// A small queue limit (the queue-limit test), and publishers held to 100 unacknowledged messages (flow control).
const CONFIG = {
  cluster: { heartbeatMs: 200, livenessTimeoutMs: 1500 },
  mqtt: { maxQueuedMessages: 200, receiveMaximum: 100 },
};

const {
  admin,
  nodes: [A, B, C],
  clients,
  raws,
} = clusterPerFile({ nodes: 3, config: CONFIG });

/** A persistent MQTT 5 session (expiry 300 s) on `node`, tracked for cleanup. */
async function persistent(node: ShoalNode, clientId: string, expiry = 300) {
  const c = await connectMqtt(node.url, {
    clientId,
    clean: false,
    properties: { sessionExpiryInterval: expiry },
  });
  clients.push(c.client);
  return c;
}

async function publisher(node: ShoalNode) {
  const c = await connectMqtt(node.url);
  clients.push(c.client);
  return c;
}

/** Subscribes and waits until a publisher on `from` reaches the subscription (session routes are eventual). */
async function subscribeRouted(
  sub: { client: MqttClient; inbox: Inbox },
  pub: MqttClient,
  topic: string,
  qos: 0 | 1 | 2,
): Promise<void> {
  await sub.client.subscribeAsync(topic, { qos });
  await untilRouted(pub, topic, [sub.inbox]);
}

/** A byte-level MQTT 5 peer with a persistent session (expiry 300 s, more CONNECT properties given). */
async function rawSession(
  node: ShoalNode,
  clientId: string,
  properties: { receiveMaximum?: number; maximumPacketSize?: number } = {},
): Promise<RawClient> {
  const raw = await RawClient.connect(node.port, 5);
  raws.push(raw);
  const connack = await raw.handshake({
    protocolVersion: 5,
    clientId,
    clean: false,
    properties: { sessionExpiryInterval: 300, ...properties },
  });
  expect(connack.reasonCode).toBe(0);
  return raw;
}

/** Subscribes a raw peer at QoS 1 and waits until probes (QoS `probeQos`) from `pub` reach it. */
async function rawSubscribeRouted(
  raw: RawClient,
  pub: MqttClient,
  topic: string,
  probeQos: 0 | 1,
): Promise<void> {
  raw.send({
    type: 'subscribe',
    packetId: 1,
    subscriptions: [{ topic, qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0 }],
  });
  await raw.next('suback');
  await waitFor(
    async () => {
      await pub.publishAsync(topic, 'probe', { qos: probeQos });
      return raw.received.some((p) => p.type === 'publish');
    },
    10_000,
    'the session routed',
  );
}

/** A QoS 2 PUBLISH from a raw peer. */
function publishQos2(raw: RawClient, topic: string, payload: string, packetId: number, dup = false): void {
  raw.send({ type: 'publish', topic, payload: Buffer.from(payload), qos: 2, packetId, retain: false, dup });
}

const data = (inbox: Inbox) => inbox.data.map((m) => m.payload);

describe('persistent sessions across nodes', () => {
  it('[MQTT-3.2.2-2] [MQTT-3.1.2-5] a session resumes through another node: Session Present, subscriptions kept, queued messages in order', async () => {
    const id = uniq('p');
    const topic = uniq('t');
    const pub = await publisher(B);
    const sub = await persistent(A, id);
    await subscribeRouted(sub, pub.client, topic, 1);
    await endAll(sub.client);
    for (let i = 0; i < 20; i++) await pub.client.publishAsync(topic, `m${i}`, { qos: 1 });

    const again = await connectMqtt(C.url, {
      clientId: id,
      clean: false,
      properties: { sessionExpiryInterval: 300 },
    });
    clients.push(again.client);
    await again.inbox.dataCount(20);
    expect(data(again.inbox)).toEqual(Array.from({ length: 20 }, (_, i) => `m${i}`));
    // Its subscription is still there: live messages keep coming on the new node.
    await pub.client.publishAsync(topic, 'live', { qos: 1 });
    await again.inbox.payload('live');
  });

  it('[MQTT-4.4.0-1] unacknowledged messages are re-sent by the next node with their packet ids and DUP', async () => {
    const id = uniq('p');
    const topic = uniq('t');
    const pub = await publisher(B);
    const sub = await persistent(A, id);
    await subscribeRouted(sub, pub.client, topic, 1);
    await endAll(sub.client);

    // A raw client that never acknowledges: three PUBLISH arrive and stay in flight.
    const raw = await rawSession(A, id);
    for (let i = 0; i < 3; i++) await pub.client.publishAsync(topic, `u${i}`, { qos: 1 });
    const first: PublishPacket[] = [];
    for (let i = 0; i < 3; i++) first.push(await raw.next('publish'));
    expect(first.map((p) => p.payload.toString())).toEqual(['u0', 'u1', 'u2']);
    raw.destroy();
    await raw.closed;

    const resumed = await RawClient.connect(C.port, 5);
    raws.push(resumed);
    const connack = await resumed.handshake({
      protocolVersion: 5,
      clientId: id,
      clean: false,
      properties: { sessionExpiryInterval: 300 },
    });
    expect(connack.sessionPresent).toBe(true);
    for (const p of first) {
      const again = await resumed.next('publish');
      expect(again.packetId).toBe(p.packetId);
      expect(again.dup).toBe(true);
      expect(again.payload.toString()).toBe(p.payload.toString());
      resumed.send({ type: 'puback', packetId: p.packetId!, reasonCode: 0 });
    }
    // Acknowledged on C: a third node resumes with nothing in flight.
    resumed.send({ type: 'disconnect', reasonCode: 0 });
    await resumed.closed;
    const last = await rawSession(B, id);
    last.send({ type: 'pingreq' });
    await last.next('pingresp');
    expect(last.received.filter((p) => p.type === 'publish')).toEqual([]);
  });

  it('[MQTT-4.4.0-1] a QoS 2 exchange started on one node completes on another: PUBREL re-sent with the same packet id', async () => {
    const id = uniq('p');
    const topic = uniq('t');
    const pub = await publisher(B);
    const sub = await persistent(A, id);
    await subscribeRouted(sub, pub.client, topic, 2);
    await endAll(sub.client);

    const raw = await rawSession(A, id);
    await pub.client.publishAsync(topic, 'q2', { qos: 2 });
    const p = await raw.next('publish');
    expect(p.qos).toBe(2);
    raw.send({ type: 'pubrec', packetId: p.packetId!, reasonCode: 0 });
    const rel = await raw.next('pubrel');
    expect(rel.packetId).toBe(p.packetId);
    raw.destroy(); // before PUBCOMP
    await raw.closed;

    const resumed = await rawSession(C, id);
    const again = await resumed.next('pubrel');
    expect(again.packetId).toBe(p.packetId);
    resumed.send({ type: 'pubcomp', packetId: p.packetId!, reasonCode: 0 });
    resumed.send({ type: 'pingreq' });
    await resumed.next('pingresp');
    // The message is not sent again: it was received once (exactly once).
    expect(resumed.received.filter((x) => x.type === 'publish')).toEqual([]);
  });

  it('[MQTT-4.3.3-9] an inbound QoS 2 id received on one node is known on the next: a re-sent PUBLISH is not delivered twice', async () => {
    const id = uniq('p');
    const topic = uniq('t');
    const watcher = await connectMqtt(C.url);
    clients.push(watcher.client);
    const pub = await publisher(A);
    await subscribeRouted(watcher, pub.client, topic, 2);

    const raw = await rawSession(A, id);
    publishQos2(raw, topic, 'once', 7);
    expect((await raw.next('pubrec')).packetId).toBe(7);
    raw.destroy(); // no PUBREL sent
    await raw.closed;
    const resumed = await rawSession(B, id);
    publishQos2(resumed, topic, 'once', 7, true);
    expect((await resumed.next('pubrec')).packetId).toBe(7);
    resumed.send({ type: 'pubrel', packetId: 7, reasonCode: 0 });
    const comp = await resumed.next('pubcomp');
    expect(comp.reasonCode ?? 0).toBe(0);
    await pub.client.publishAsync(topic, 'after', { qos: 2 });
    await watcher.inbox.payload('after');
    expect(data(watcher.inbox).filter((p) => p === 'once')).toHaveLength(1);
  });

  it('(#11.9) [MQTT-4.3.3-9] a QoS 2 PUBLISH whose packet id could not be stored (taken over in the gap) is delivered once when re-sent through another node', async () => {
    const id = uniq('p');
    const topic = uniq('t');
    const durableId = uniq('s');
    const durable = await persistent(B, durableId);
    await durable.client.subscribeAsync(topic, { qos: 2 });
    const watcher = await connectMqtt(C.url);
    clients.push(watcher.client);
    await watcher.client.subscribeAsync(topic, { qos: 2 });
    const pub = await publisher(A);
    await untilRouted(pub.client, topic, [durable.inbox, watcher.inbox]);

    const raw = await RawClient.connect(A.port, 4);
    raws.push(raw);
    expect((await raw.handshake({ protocolVersion: 4, clientId: id, clean: false })).reasonCode).toBe(0);
    // A claim elsewhere raises the epoch between the PUBLISH and the store of its packet id: the
    // store is fenced out. (Routing the message beside that store delivered it here already.)
    await admin.hincrby(`shoal:owner:{${id}}`, 'epoch', 1);
    publishQos2(raw, topic, 'once', 7);
    await raw.closed; // 3.x: not stored, so closed without PUBREC; the client re-sends
    const resumed = await RawClient.connect(B.port, 4);
    raws.push(resumed);
    expect((await resumed.handshake({ protocolVersion: 4, clientId: id, clean: false })).reasonCode).toBe(0);
    publishQos2(resumed, topic, 'once', 7, true);
    expect((await resumed.next('pubrec')).packetId).toBe(7);
    resumed.send({ type: 'pubrel', packetId: 7 });
    await resumed.next('pubcomp');
    publishQos2(resumed, topic, 'after', 8);
    await resumed.next('pubrec');
    resumed.send({ type: 'pubrel', packetId: 8 });
    await Promise.all([durable.inbox.payload('after'), watcher.inbox.payload('after')]);
    expect(data(durable.inbox)).toEqual(['once', 'after']);
    expect(data(watcher.inbox)).toEqual(['once', 'after']);
  });

  it('(#11.9) [MQTT-4.3.3-9] a re-sent QoS 2 PUBLISH of a persistent session is routed again under its dedupe id: every target has it once', async () => {
    const id = uniq('p');
    const topic = uniq('t');
    const durableId = uniq('s');
    const durable = await persistent(B, durableId);
    await durable.client.subscribeAsync(topic, { qos: 2 });
    const remote = await connectMqtt(C.url);
    const local = await connectMqtt(A.url);
    clients.push(remote.client, local.client);
    await remote.client.subscribeAsync(topic, { qos: 1 });
    await local.client.subscribeAsync(topic, { qos: 2 });
    const pub = await publisher(A);
    await untilRouted(pub.client, topic, [durable.inbox, remote.inbox, local.inbox]);

    const raw = await rawSession(A, id);
    publishQos2(raw, topic, 'once', 9);
    await raw.next('pubrec');
    publishQos2(raw, topic, 'once', 9, true); // the PUBREC was "lost": re-sent on the same node
    await raw.next('pubrec');
    raw.destroy();
    await raw.closed;
    const resumed = await rawSession(C, id); // and once more through another node
    publishQos2(resumed, topic, 'once', 9, true);
    await resumed.next('pubrec');
    resumed.send({ type: 'pubrel', packetId: 9, reasonCode: 0 });
    await resumed.next('pubcomp');
    await pub.client.publishAsync(topic, 'after', { qos: 2 });
    const all = [durable.inbox, remote.inbox, local.inbox];
    await Promise.all(all.map((inbox) => inbox.payload('after')));
    for (const inbox of all) expect(data(inbox).filter((p) => p === 'once')).toHaveLength(1);
  });

  it('[MQTT-4.3.3-11] after PUBCOMP the packet id is free on every node: the next QoS 2 PUBLISH with it is routed', async () => {
    const id = uniq('p');
    const topic = uniq('t');
    const watcher = await connectMqtt(C.url);
    clients.push(watcher.client);
    const pub = await publisher(A);
    await subscribeRouted(watcher, pub.client, topic, 2);
    const raw = await rawSession(A, id);
    publishQos2(raw, topic, 'first', 9);
    expect((await raw.next('pubrec')).packetId).toBe(9);
    raw.send({ type: 'pubrel', packetId: 9, reasonCode: 0 });
    expect((await raw.next('pubcomp')).packetId).toBe(9);
    raw.destroy();
    await raw.closed;
    const next = await rawSession(B, id);
    publishQos2(next, topic, 'second', 9);
    expect((await next.next('pubrec')).packetId).toBe(9);
    next.send({ type: 'pubrel', packetId: 9, reasonCode: 0 });
    await next.next('pubcomp');
    await watcher.inbox.payload('second');
    expect(data(watcher.inbox).filter((p) => p === 'first' || p === 'second')).toEqual(['first', 'second']);
  });

  it("[MQTT-3.1.2-25] a message over the client's Maximum Packet Size is discarded from the stored queue too", async () => {
    const id = uniq('p');
    const topic = uniq('t');
    const pub = await publisher(B);
    const raw = await rawSession(A, id, { maximumPacketSize: 200 });
    await rawSubscribeRouted(raw, pub.client, topic, 0);
    await pub.client.publishAsync(topic, 'x'.repeat(500), { qos: 1 }); // too large for this client
    await pub.client.publishAsync(topic, 'small', { qos: 1 });
    for (;;) {
      const p = await raw.next('publish');
      if (p.qos === 1) raw.send({ type: 'puback', packetId: p.packetId!, reasonCode: 0 });
      if (p.payload.toString() === 'small') break;
    }
    // Nothing stays queued or in flight for it: the large one went with it.
    await waitFor(async () => (await admin.xlen(`shoal:q:{${id}}`)) === 0, 5_000, 'an empty queue');
    expect(await admin.hlen(`shoal:inf:{${id}}`)).toBe(0);
  });

  it('a session marked as served by a node with no connection for it there goes offline (the node checks its index)', async () => {
    const id = uniq('p');
    const sub = await persistent(A, id);
    await endAll(sub.client);
    await waitFor(async () => (await admin.hget(`shoal:sess:{${id}}`, 'on')) === '', 5_000, 'offline');
    // As if a claim had run for a client that left before CONNACK (or a detach had failed).
    await admin.hset(`shoal:sess:{${id}}`, 'on', 'A');
    await admin.persist(`shoal:sess:{${id}}`);
    await admin.sadd('{shoal}:node-sessions:A', id);
    await waitFor(async () => (await admin.hget(`shoal:sess:{${id}}`, 'on')) === '', 10_000, 'offline again');
    expect(await admin.pttl(`shoal:sess:{${id}}`)).toBeGreaterThan(0);
    expect(await admin.sismember('{shoal}:node-sessions:A', id)).toBe(0);
  });

  it('[MQTT-3.1.2-4] Clean Start on any node discards the stored session and its queue', async () => {
    const id = uniq('p');
    const topic = uniq('t');
    const pub = await publisher(B);
    const sub = await persistent(A, id);
    await subscribeRouted(sub, pub.client, topic, 1);
    await endAll(sub.client);
    await pub.client.publishAsync(topic, 'old', { qos: 1 });

    const fresh = await connectMqtt(C.url, {
      clientId: id,
      clean: true,
      properties: { sessionExpiryInterval: 300 },
    });
    clients.push(fresh.client);
    await waitFor(async () => (await admin.exists(`shoal:q:{${id}}`)) === 0, 5_000, 'queue deleted');
    expect(await admin.hlen('{shoal}:session-routes')).toBeGreaterThanOrEqual(0);
    expect(await admin.hexists('{shoal}:session-routes', `${id}\0${topic}`)).toBe(0);
    await pub.client.publishAsync(topic, 'new', { qos: 1 });
    await endAll(fresh.client);
    const back = await connectMqtt(A.url, {
      clientId: id,
      clean: false,
      properties: { sessionExpiryInterval: 300 },
    });
    clients.push(back.client);
    expect(back.inbox.messages).toEqual([]);
  });

  it('[MQTT-3.1.2-23] an offline session expires cluster-wide: its queue and routes are gone, the next CONNECT finds no session', async () => {
    const id = uniq('p');
    const topic = uniq('t');
    const pub = await publisher(B);
    const sub = await persistent(A, id, 1);
    await subscribeRouted(sub, pub.client, topic, 1);
    await endAll(sub.client);
    await pub.client.publishAsync(topic, 'lost', { qos: 1 });
    await waitFor(
      async () =>
        (await admin.exists(`shoal:sess:{${id}}`, `shoal:q:{${id}}`)) === 0 &&
        (await admin.hexists('{shoal}:session-routes', `${id}\0${topic}`)) === 0,
      10_000,
      'session keys and routes removed',
    );
    const again = await connectMqtt(C.url, {
      clientId: id,
      clean: false,
      properties: { sessionExpiryInterval: 300 },
    });
    clients.push(again.client);
    await again.client.subscribeAsync(uniq('other'), { qos: 1 });
    expect(again.inbox.messages).toEqual([]);
  });

  it('(flow control) publishers faster than an online persistent subscriber are held back, not dropped', async () => {
    const id = uniq('p');
    const topic = uniq('t');
    const pub = await publisher(B);
    // A subscriber that takes 10 messages at a time and acknowledges only when told to.
    const raw = await rawSession(A, id, { receiveMaximum: 10 });
    await rawSubscribeRouted(raw, pub.client, topic, 1);
    // Acknowledge the probes that arrived, so only the test's messages are in flight.
    for (const p of raw.received.splice(0))
      if (p.type === 'publish') raw.send({ type: 'puback', packetId: p.packetId!, reasonCode: 0 });
    const before = await B.metric('shoal_messages_dropped_total{reason="queue_full"}');

    // 2,000 at once (MQTT.js does not wait for acknowledgements): ten times the queue limit.
    let acked = 0;
    const sent = Array.from({ length: 2000 }, (_, i) =>
      pub.client.publishAsync(topic, `w${i}`, { qos: 1 }).then(() => acked++),
    );
    // The subscriber's window is full and its queue past half the limit: publishers wait.
    await waitFor(async () => (await admin.xlen(`shoal:q:{${id}}`)) >= 150, 10_000, 'a congested queue');
    expect(acked).toBeLessThan(1000);

    // Now the subscriber takes everything, acknowledging as it goes.
    const got: string[] = [];
    while (got.length < 2000) {
      const p = await raw.next('publish', 20_000);
      if (p.payload.toString() !== 'probe') got.push(p.payload.toString());
      raw.send({ type: 'puback', packetId: p.packetId!, reasonCode: 0 });
    }
    await Promise.all(sent);
    expect(got).toEqual(Array.from({ length: 2000 }, (_, i) => `w${i}`));
    expect(await B.metric('shoal_messages_dropped_total{reason="queue_full"}')).toBe(before);
  }, 60_000);

  it('a full queue drops further messages for that session, counted (queue_full) and logged', async () => {
    const id = uniq('p');
    const topic = uniq('t');
    const pub = await publisher(B);
    const sub = await persistent(A, id);
    await subscribeRouted(sub, pub.client, topic, 1);
    await endAll(sub.client);
    const before = await B.metric('shoal_messages_dropped_total{reason="queue_full"}');
    for (let i = 0; i < 210; i++) await pub.client.publishAsync(topic, `f${i}`, { qos: 1 });
    expect(await B.metric('shoal_messages_dropped_total{reason="queue_full"}')).toBe(before + 10);
    const again = await persistent(C, id);
    await again.inbox.dataCount(200);
    expect(data(again.inbox)).toEqual(Array.from({ length: 200 }, (_, i) => `f${i}`));
  });
});
