/**
 * Slow consumers across nodes (guarantee 10, guarantee 2): a subscriber on node B that stops taking
 * messages holds back only what is addressed to it — B's inbox keeps flowing for B's other
 * subscribers, and no acknowledged batch is trimmed from B's inbox before B processed it (publishers
 * wait on the inbox bound instead).
 */
import type { MqttClient } from 'mqtt';
import { expect, it } from 'vitest';
import type { Packet } from '../../src/protocol/index.js';
import { connectMqtt, type ShoalNode, uniq, untilRouted, waitFor } from '../helpers/cluster.js';
import { clusterPerFile } from '../helpers/cluster-fixture.js';
import { RawClient } from '../helpers/raw-client.js';

/** Inbox entries (batches) a node's inbox may hold unread: tiny, so it would be passed at once. */
const INBOX_BOUND = 5;

const {
  nodes: [A, B],
  clients,
  raws,
} = clusterPerFile({
  nodes: 2,
  // A small queue makes a subscriber congested quickly.
  config: { mqtt: { maxQueuedMessages: 100 }, cluster: { inboxMaxLength: INBOX_BOUND } },
});

/**
 * A subscriber on `node` that takes one message and never acknowledges it (Receive Maximum 1): every
 * further message for it waits in its session queue on the node, which is soon congested.
 */
async function stuckSubscriber(node: ShoalNode, topic: string): Promise<RawClient> {
  const raw = await RawClient.connect(node.port, 5);
  raws.push(raw);
  const connack = await raw.handshake({ protocolVersion: 5, properties: { receiveMaximum: 1 } });
  expect(connack.reasonCode).toBe(0);
  raw.send({
    type: 'subscribe',
    packetId: 1,
    subscriptions: [{ topic, qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0 }],
  });
  await raw.next('suback');
  return raw;
}

const publishes = (raw: RawClient) =>
  raw.received.filter((p): p is Extract<Packet, { type: 'publish' }> => p.type === 'publish');

/** Congests `stuck` (subscribed to `topic` on B) with QoS 1 messages published on A. */
async function congest(pub: MqttClient, stuck: RawClient, topic: string): Promise<void> {
  // Its route reaches A through Redis: wait until the first message arrives (it takes the window).
  await waitFor(
    async () => {
      await pub.publishAsync(topic, 'first', { qos: 1 });
      return publishes(stuck).length > 0;
    },
    10_000,
    'the stuck subscriber to get its first message',
  );
  // Past half its queue (100): congested.
  await Promise.all(Array.from({ length: 80 }, (_, i) => pub.publishAsync(topic, `c${i}`, { qos: 1 })));
}

it('(guarantee 10) a subscriber on B that stops reading does not stall B: 200 QoS 1 from A to a healthy subscriber on B all arrive within 5 s', async () => {
  const t1 = uniq('stuck');
  const t2 = uniq('healthy');
  const stuck = await stuckSubscriber(B, t1);
  const healthy = await connectMqtt(B.url);
  clients.push(healthy.client);
  await healthy.client.subscribeAsync(t2, { qos: 1 });
  const { client: pub } = await connectMqtt(A.url);
  clients.push(pub);
  await untilRouted(pub, t2, [healthy.inbox]);
  await congest(pub, stuck, t1);

  const n = 200;
  await Promise.all(Array.from({ length: n }, (_, i) => pub.publishAsync(t2, `m${i}`, { qos: 1 })));
  await healthy.inbox.dataCount(n, 5_000);
  expect(healthy.inbox.data.map((m) => m.payload)).toEqual(Array.from({ length: n }, (_, i) => `m${i}`));
  expect(stuck.isOpen).toBe(true);
}, 60_000);

it('(guarantee 10) with a tiny inbox bound, no acknowledged message to a healthy subscriber on B is lost while another subscriber there is congested', async () => {
  const t1 = uniq('stuck');
  const t2 = uniq('healthy');
  const stuck = await stuckSubscriber(B, t1);
  const healthy = await connectMqtt(B.url);
  clients.push(healthy.client);
  await healthy.client.subscribeAsync(t2, { qos: 1 });
  const { client: pub } = await connectMqtt(A.url);
  clients.push(pub);
  await untilRouted(pub, t2, [healthy.inbox]);
  await congest(pub, stuck, t1);

  // One at a time: one inbox entry each, far more entries than the bound.
  const n = 300;
  for (let i = 0; i < n; i++) await pub.publishAsync(t2, `m${i}`, { qos: 1 });
  // Whatever B held back for the stuck subscriber is let go when it leaves.
  stuck.destroy();
  await healthy.inbox.dataCount(n, 10_000);
  expect(healthy.inbox.data.map((m) => m.payload)).toEqual(Array.from({ length: n }, (_, i) => `m${i}`));
}, 60_000);
