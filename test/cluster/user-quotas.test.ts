import type { MqttClient } from 'mqtt';
import { afterAll, describe, expect, it } from 'vitest';
import { Keys } from '../../src/backend/redis/keys.js';
import { connectMqtt, type ShoalNode, uniq, waitFor } from '../helpers/cluster.js';
import { clusterPerFile } from '../helpers/cluster-fixture.js';

const {
  admin,
  nodes: [A, B],
  clients,
} = clusterPerFile({ nodes: 2, config: { limits: { user: { maxConnections: 2, messagesPerMinute: 10 } } } });
// Stopped gracefully first (registered after the fixture's hooks, so run before them).
afterAll(async () => {
  await Promise.all([A, B].map((n) => n.stop()));
});

async function conn(node: ShoalNode, username: string): Promise<MqttClient> {
  const { client } = await connectMqtt(node.url, { username });
  clients.push(client);
  return client;
}

/** The CONNACK reason code a connection attempt gets (0 = accepted). */
async function connackCode(node: ShoalNode, username: string): Promise<number> {
  try {
    await conn(node, username);
    return 0;
  } catch (err) {
    return (err as { code?: number }).code ?? -1;
  }
}

/** PUBACK reason code of a QoS 1 PUBLISH (mqtt.js rejects on an error code). */
async function pubackCode(client: MqttClient, topic: string): Promise<number> {
  try {
    await client.publishAsync(topic, 'x', { qos: 1 });
    return 0;
  } catch (err) {
    return (err as { code?: number }).code ?? -1;
  }
}

const keys = new Keys();

describe('per-username quotas across two nodes', () => {
  it("refuses a username's connection over its quota on the second node with CONNACK 0x97", async () => {
    const user = uniq('conn');
    await conn(A, user);
    await conn(B, user);
    expect(await connackCode(B, user)).toBe(0x97);
    expect(await connackCode(A, user)).toBe(0x97);
    expect(await B.metric('shoal_rate_limited_total{limit="user_connections"}')).toBe(1);
    expect(await connackCode(B, uniq('other'))).toBe(0); // another user is not affected
  });

  it('frees the slot when a connection ends, for the other node too', async () => {
    const user = uniq('free');
    const a = await conn(A, user);
    await conn(B, user);
    expect(await connackCode(B, user)).toBe(0x97);
    await a.endAsync();
    await waitFor(async () => (await admin.zcard(keys.userConnections(user))) === 1, 5_000, 'slot freed');
    expect(await connackCode(B, user)).toBe(0);
  });

  it('applies messages per minute across nodes once a flush told the other node (one interval of slack)', async () => {
    // The window is the wall-clock minute: start early in one, so the test does not straddle two.
    await waitFor(() => Date.now() % 60_000 < 40_000, 25_000, 'early in a minute');
    const window = Math.floor(Date.now() / 60_000);
    const user = uniq('msg');
    const counter = keys.userMessages(user, window);
    const onA = await conn(A, user);
    const onB = await conn(B, user);

    for (let i = 0; i < 10; i++) expect(await pubackCode(onA, 'q/a')).toBe(0);
    expect(await pubackCode(onA, 'q/a')).toBe(0x97); // A knows its own count exactly
    await waitFor(async () => Number(await admin.get(counter)) === 10, 5_000, 'A flushed');

    // B has not flushed for this user yet: it admits on what it knows (the slack) ...
    expect(await pubackCode(onB, 'q/b')).toBe(0);
    // ... and once its flush reads back the cluster total, it refuses too.
    await waitFor(async () => Number(await admin.get(counter)) === 11, 5_000, 'B flushed');
    expect(await pubackCode(onB, 'q/b')).toBe(0x97);
    expect(await pubackCode(onA, 'q/a')).toBe(0x97);
    expect(await B.metric('shoal_rate_limited_total{limit="user_messages"}')).toBe(1);
    expect(await A.metric('shoal_rate_limited_total{limit="user_messages"}')).toBe(2);
  }, 40_000);
});
