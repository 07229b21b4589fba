import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  connectMqtt,
  type Inbox,
  type ShoalNode,
  startCluster,
  uniq,
  untilRouted,
  waitFor,
} from '../helpers/cluster.js';
import { clusterPerFile } from '../helpers/cluster-fixture.js';

// The tests start their own nodes.
const { redis, admin, clients } = clusterPerFile({ nodes: 0 });

async function conn(
  node: ShoalNode,
  opts: Parameters<typeof connectMqtt>[1] = {},
): Promise<{ client: MqttClient; inbox: Inbox }> {
  const c = await connectMqtt(node.url, opts);
  clients.push(c.client);
  return c;
}

const sorted = (xs: string[]) => [...xs].sort();

describe('three nodes, one Redis', () => {
  let A: ShoalNode;
  let B: ShoalNode;
  let C: ShoalNode;

  beforeAll(async () => {
    [A, B, C] = await startCluster(3, redis.url);
  }, 30_000);

  afterAll(async () => {
    await Promise.all([A, B, C].map((n) => n?.stop()));
  });

  it('QoS 0, 1 and 2 from A reach subscribers on B (v5) and C (v3.1.1), with v5 properties, exactly once', async () => {
    const t = uniq('qos');
    const subB = await conn(B, { protocolVersion: 5 });
    const subC = await conn(C, { protocolVersion: 4 });
    await subB.client.subscribeAsync(t, { qos: 2 });
    await subC.client.subscribeAsync(t, { qos: 2 });
    const pub5 = await conn(A, { protocolVersion: 5 });
    const pub4 = await conn(A, { protocolVersion: 4 });
    await untilRouted(pub5.client, t, [subB.inbox, subC.inbox]);

    const expected: string[] = [];
    for (const [name, pub] of [
      ['v5', pub5],
      ['v4', pub4],
    ] as const) {
      for (const qos of [0, 1, 2] as const) {
        await pub.client.publishAsync(t, `${name}-q${qos}`, { qos });
        expected.push(`${name}-q${qos}@${qos}`);
      }
    }
    await pub5.client.publishAsync(t, 'with-props', {
      qos: 1,
      properties: {
        contentType: 'text/plain',
        responseTopic: `${t}/reply`,
        correlationData: Buffer.from('corr-1'),
        userProperties: { k: 'v' },
        payloadFormatIndicator: true,
      },
    });
    // End markers: each publisher's later messages come after its earlier ones (guarantee 6), so
    // once both markers are in, any duplicate of an earlier message would be in too.
    await pub5.client.publishAsync(t, 'end-v5', { qos: 1 });
    await pub4.client.publishAsync(t, 'end-v4', { qos: 1 });
    for (const sub of [subB, subC]) {
      await sub.inbox.payload('end-v5');
      await sub.inbox.payload('end-v4');
      const got = sub.inbox.data.filter((m) => !m.payload.startsWith('end-') && m.payload !== 'with-props');
      expect(sorted(got.map((m) => `${m.payload}@${m.qos}`))).toEqual(sorted(expected));
    }
    const withProps = subB.inbox.data.find((m) => m.payload === 'with-props');
    expect(withProps?.properties).toMatchObject({
      contentType: 'text/plain',
      responseTopic: `${t}/reply`,
      correlationData: Buffer.from('corr-1'),
      userProperties: { k: 'v' },
      payloadFormatIndicator: true,
    });
    expect(subC.inbox.data.filter((m) => m.payload === 'with-props')).toHaveLength(1);
  });

  it('wildcards: + on B and # on C each get exactly the matching topics published on A', async () => {
    const base = uniq('wild');
    const subB = await conn(B);
    const subC = await conn(C);
    await subB.client.subscribeAsync(`${base}/+/temp`, { qos: 1 });
    await subC.client.subscribeAsync(`${base}/#`, { qos: 1 });
    const pub = await conn(A);
    await untilRouted(pub.client, `${base}/probe/temp`, [subB.inbox, subC.inbox]);

    const topics = [`${base}/k1/temp`, `${base}/k2/hum`, `${base}/k3/temp/x`, base, `${base}/k4/temp`];
    for (const topic of topics) await pub.client.publishAsync(topic, topic, { qos: 1 });
    await pub.client.publishAsync(`${base}/end/temp`, 'end', { qos: 1 });
    await subB.inbox.payload('end');
    await subC.inbox.payload('end');
    expect(subB.inbox.data.map((m) => m.topic)).toEqual([
      `${base}/k1/temp`,
      `${base}/k4/temp`,
      `${base}/end/temp`,
    ]);
    // `base/#` also matches the parent level `base` [MQTT-4.7.1-2].
    expect(subC.inbox.data.map((m) => m.topic)).toEqual([...topics, `${base}/end/temp`]);
  });

  it('(guarantee 5) a retained message set on A reaches a new subscriber on B, also by wildcard; an empty payload deletes it', async () => {
    const base = uniq('ret');
    const pub = await conn(A);
    await pub.client.publishAsync(`${base}/r/1`, 'one', { qos: 1, retain: true });
    await pub.client.publishAsync(`${base}/r/2`, 'two', { qos: 1, retain: true });

    const exact = await conn(B);
    await exact.client.subscribeAsync(`${base}/r/1`, { qos: 1 });
    await exact.inbox.count(1);
    expect(exact.inbox.messages[0]).toMatchObject({ topic: `${base}/r/1`, payload: 'one', retain: true });

    const wild = await conn(B);
    await wild.client.subscribeAsync(`${base}/r/+`, { qos: 1 });
    await wild.inbox.count(2);
    expect(sorted(wild.inbox.messages.map((m) => `${m.topic}=${m.payload}:${m.retain}`))).toEqual([
      `${base}/r/1=one:true`,
      `${base}/r/2=two:true`,
    ]);

    // Last writer wins: replaced on C, seen on B.
    const pubC = await conn(C);
    await pubC.client.publishAsync(`${base}/r/2`, 'two-bis', { qos: 1, retain: true });
    // Deleted on A by an empty payload [MQTT-3.3.1-6].
    await pub.client.publishAsync(`${base}/r/1`, '', { qos: 1, retain: true });
    expect(await admin.hexists('{shoal}:retained', `${base}/r/1`)).toBe(0);

    const after = await conn(B);
    await after.client.subscribeAsync(`${base}/r/#`, { qos: 1 });
    // Retained messages for a SUBSCRIBE are sent before anything published after it: a message the
    // client publishes to itself marks the end of them.
    await after.client.publishAsync(`${base}/r/sync`, 'sync', { qos: 1 });
    await after.inbox.payload('sync');
    expect(after.inbox.messages.map((m) => `${m.topic}=${m.payload}`)).toEqual([
      `${base}/r/2=two-bis`,
      `${base}/r/sync=sync`,
    ]);
  });

  it('$share/g/t/# with members on A, B and C: each message exactly once in the group, spread over all three nodes', async () => {
    const base = uniq('share');
    const members = [await conn(A), await conn(B), await conn(C)];
    for (const m of members) await m.client.subscribeAsync(`$share/g/${base}/#`, { qos: 1 });
    const pub = await conn(A);
    await untilRouted(
      pub.client,
      `${base}/probe`,
      members.map((m) => m.inbox),
      { shared: true },
    );

    const n = 60;
    await Promise.all(
      Array.from({ length: n }, (_, i) => pub.client.publishAsync(`${base}/x/${i}`, `m${i}`, { qos: 1 })),
    );
    const total = () => members.reduce((k, m) => k + m.inbox.data.length, 0);
    await waitFor(() => total() >= n, 10_000, `${n} shared deliveries`);
    // Markers until every member got one: anything sent before a marker reached its member first.
    await waitFor(
      async () => {
        if (members.every((m) => m.inbox.data.some((x) => x.payload.startsWith('end')))) return true;
        await pub.client.publishAsync(`${base}/end`, `end${Math.random()}`, { qos: 1 });
        return false;
      },
      10_000,
      'an end marker at every member',
    );
    const got = members.map((m) =>
      m.inbox.data.filter((x) => !x.payload.startsWith('end')).map((x) => x.payload),
    );
    expect(sorted(got.flat())).toEqual(sorted(Array.from({ length: n }, (_, i) => `m${i}`)));
    for (const g of got) expect(g.length).toBeGreaterThan(0);
  });

  it('No Local: a client does not get its own message on its node, while a subscriber on another node (also No Local) does', async () => {
    const t = uniq('nl');
    const self = await conn(A, { protocolVersion: 5 });
    const other = await conn(B, { protocolVersion: 5 });
    await self.client.subscribeAsync(t, { qos: 1, nl: true });
    await other.client.subscribeAsync(t, { qos: 1, nl: true });
    const prober = await conn(C);
    await untilRouted(prober.client, t, [self.inbox, other.inbox]);

    // Delivery to a local subscriber happens while the PUBLISH is processed, before its PUBACK.
    await self.client.publishAsync(t, 'mine', { qos: 1 });
    await other.inbox.payload('mine');
    expect(self.inbox.data).toEqual([]);

    // A message from another client (on another node) still reaches the No Local subscriber.
    await prober.client.publishAsync(t, 'theirs', { qos: 1 });
    await self.inbox.payload('theirs');
    await other.inbox.payload('theirs');
    expect(self.inbox.data.map((m) => m.payload)).toEqual(['theirs']);
    expect(other.inbox.data.map((m) => m.payload)).toEqual(['mine', 'theirs']);
  });

  it('message expiry across nodes: forwarded with the remaining time, dropped once expired in an offline session', async () => {
    const t = uniq('exp');
    const online = await conn(B, { protocolVersion: 5 });
    await online.client.subscribeAsync(t, { qos: 1 });
    const offlineId = uniq('persist');
    const persistent = await connectMqtt(B.url, {
      protocolVersion: 5,
      clientId: offlineId,
      clean: false,
      properties: { sessionExpiryInterval: 300 },
    });
    await persistent.client.subscribeAsync(t, { qos: 1 });
    const pub = await conn(A, { protocolVersion: 5 });
    await untilRouted(pub.client, t, [online.inbox, persistent.inbox]);
    await persistent.client.endAsync();

    const receivedBefore = await B.metric('shoal_cluster_messages_received_total');
    await pub.client.publishAsync(t, 'short', { qos: 1, properties: { messageExpiryInterval: 1 } });
    // Taken after 'short' was acknowledged (so after A stamped its expiry), before 'long' is sent.
    const longSentAt = Date.now();
    await pub.client.publishAsync(t, 'long', { qos: 1, properties: { messageExpiryInterval: 60 } });
    await pub.client.publishAsync(t, 'none', { qos: 1 });
    await online.inbox.payload('none');
    const byPayload = Object.fromEntries(online.inbox.data.map((m) => [m.payload, m.properties]));
    expect(byPayload.long?.messageExpiryInterval).toBeGreaterThan(0);
    expect(byPayload.long?.messageExpiryInterval).toBeLessThanOrEqual(60);
    expect(byPayload.short?.messageExpiryInterval).toBeLessThanOrEqual(1);
    expect(byPayload.none?.messageExpiryInterval).toBeUndefined();

    // The offline session on B holds all three (B received one envelope per message).
    await waitFor(
      async () => (await B.metric('shoal_cluster_messages_received_total')) >= receivedBefore + 3,
      5_000,
      'B to receive the three messages',
    );
    // Expiry is about elapsed time: wait for the clock to pass the short message's expiry.
    // More than a second after both: 'short' has expired and 'long' has at most 59 s left.
    await waitFor(() => Date.now() > longSentAt + 1_100, 5_000, 'the short message to expire');
    const back = await connectMqtt(B.url, {
      protocolVersion: 5,
      clientId: offlineId,
      clean: false,
      properties: { sessionExpiryInterval: 0 },
    });
    clients.push(back.client);
    await back.inbox.payload('none');
    // Queued messages come in order: 'short' would precede 'long'.
    expect(back.inbox.data.map((m) => m.payload)).toEqual(['long', 'none']);
    const remaining = back.inbox.data[0].properties?.messageExpiryInterval as number;
    expect(remaining).toBeGreaterThan(0);
    expect(remaining).toBeLessThanOrEqual(59);
  });

  it('(guarantee 6) 1,000 QoS 1 messages from one publisher on A arrive at B in order', async () => {
    const t = uniq('order');
    const sub = await conn(B, { protocolVersion: 5 });
    await sub.client.subscribeAsync(t, { qos: 1 });
    const sub4 = await conn(C, { protocolVersion: 4 });
    await sub4.client.subscribeAsync(t, { qos: 2 });
    const pub = await conn(A, { protocolVersion: 5 });
    await untilRouted(pub.client, t, [sub.inbox, sub4.inbox]);
    const n = 1000;
    await Promise.all(Array.from({ length: n }, (_, i) => pub.client.publishAsync(t, String(i), { qos: 1 })));
    await sub.inbox.dataCount(n, 20_000);
    await sub4.inbox.dataCount(n, 20_000);
    const want = Array.from({ length: n }, (_, i) => String(i));
    expect(sub.inbox.data.map((m) => m.payload)).toEqual(want);
    expect(sub4.inbox.data.map((m) => m.payload)).toEqual(want);
  }, 40_000);

  it('(guarantee 7) a node with no matching subscriber receives nothing while A→B traffic flows', async () => {
    const base = uniq('quiet');
    const subB = await conn(B);
    await subB.client.subscribeAsync(`${base}/b`, { qos: 1 });
    const subC = await conn(C);
    await subC.client.subscribeAsync(`${base}/c-only`, { qos: 1 });
    const pub = await conn(A);
    await untilRouted(pub.client, `${base}/b`, [subB.inbox]);
    await untilRouted(pub.client, `${base}/c-only`, [subC.inbox]);

    const [sentBefore, bBefore, cBefore] = await Promise.all([
      A.metric('shoal_cluster_messages_sent_total'),
      B.metric('shoal_cluster_messages_received_total'),
      C.metric('shoal_cluster_messages_received_total'),
    ]);
    const n = 200;
    for (let i = 0; i < n; i++) {
      pub.client.publish(`${base}/b`, `b${i}`, { qos: (i % 2) as 0 | 1 });
    }
    await subB.inbox.dataCount(n, 10_000);
    // One message C does want, after the others from the same publisher: it arrives at C after
    // anything wrongly sent there before it.
    await pub.client.publishAsync(`${base}/c-only`, 'for-c', { qos: 1 });
    await subC.inbox.payload('for-c');
    const [sentAfter, bAfter, cAfter] = await Promise.all([
      A.metric('shoal_cluster_messages_sent_total'),
      B.metric('shoal_cluster_messages_received_total'),
      C.metric('shoal_cluster_messages_received_total'),
    ]);
    expect(cAfter - cBefore).toBe(1);
    expect(bAfter - bBefore).toBe(n);
    expect(sentAfter - sentBefore).toBe(n + 1);
  });
});

describe('a node killed with SIGKILL', () => {
  let A: ShoalNode;
  let B: ShoalNode;
  let C: ShoalNode;

  beforeAll(async () => {
    [A, B, C] = await startCluster(3, redis.url, { cluster: { livenessTimeoutMs: 1000, heartbeatMs: 200 } });
  }, 30_000);

  afterAll(async () => {
    await Promise.all([A, B, C].map((n) => n?.stop()));
  });

  it('survivors remove its routes after the liveness timeout (one reaper), and A→B keeps working', async () => {
    const t = uniq('kill');
    const subB = await conn(B);
    await subB.client.subscribeAsync(t, { qos: 1 });
    const subC = await conn(C);
    await subC.client.subscribeAsync(`${t}/#`, { qos: 1 });
    const pub = await conn(A);
    await untilRouted(pub.client, t, [subB.inbox, subC.inbox]);

    const routeFieldsOf = async (node: string) =>
      (await admin.smembers(`{shoal}:node-routes:${node}`)).map((f) => `${node}\n${f}`);
    expect(await routeFieldsOf('C')).toEqual([`C\n${t}/#`]);

    expect(C.kill('SIGKILL')).toBe(true);
    expect((await C.process.exited).signal).toBe('SIGKILL');
    await waitFor(async () => (await routeFieldsOf('C')).length === 0, 10_000, "C's routes to be removed");
    expect(await admin.zscore('{shoal}:nodes', 'C')).toBeNull();
    expect(await routeFieldsOf('B')).toEqual([`B\n${t}`]);
    expect(await admin.exists('{shoal}:node-routes:C')).toBe(0);

    // Exactly one survivor reaped it.
    const reapers = [A, B].filter((n) =>
      /"event":"cluster\.node_reaped","node":"C"/.test(n.process.output()),
    );
    expect(reapers).toHaveLength(1);

    for (let i = 0; i < 20; i++) await pub.client.publishAsync(t, `after${i}`, { qos: 1 });
    await subB.inbox.dataCount(20);
    expect(subB.inbox.data.map((m) => m.payload)).toEqual(Array.from({ length: 20 }, (_, i) => `after${i}`));
    expect(await A.readyz()).toBe(200);
    expect(await B.readyz()).toBe(200);
    expect(await C.readyz()).toBe(0);
  });
});
