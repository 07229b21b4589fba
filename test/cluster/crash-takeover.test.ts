/**
 * Guarantees 1 and 2 of CLUSTER.md when a node crashes: a persistent subscriber whose node was killed
 * with SIGKILL reconnects through another node and is taken over at once — Redis sees the crash (the
 * dead process's connections closed), so the takeover does not wait out the liveness timeout — and
 * every message acknowledged to the publisher meanwhile reaches it, with the default queue limit.
 * The survivors reap the crashed node early too (#11 of issue #11).
 */
import { describe, expect, it } from 'vitest';
import { connectMqtt, endAll, uniq, untilRouted, waitFor } from '../helpers/cluster.js';
import { clusterPerFile } from '../helpers/cluster-fixture.js';

// Default liveness (heartbeat 1 s, timeout 5 s) and queue limit (1,000): what a user runs.
const {
  nodes: [A, B, C],
} = clusterPerFile({ nodes: 3 });

const RATE_PER_TICK = 20; // every 10 ms: 2,000 msg/s
const TICKS = 300; // 3 s of publishing

describe('takeover from a crashed node', () => {
  it('(guarantees 1, 2) kill -9 of a persistent QoS 1 subscriber’s node during 2 k msg/s: CONNACK through a third node within 1 s, every acknowledged message delivered', async () => {
    const id = uniq('crash');
    const topic = uniq('crash-t');
    const session = { clientId: id, clean: false, properties: { sessionExpiryInterval: 300 } };
    const first = await connectMqtt(A.url, session);
    await first.client.subscribeAsync(topic, { qos: 1 });
    const pub = await connectMqtt(B.url);
    await untilRouted(pub.client, topic, [first.inbox]);

    const acked: string[] = [];
    const publishing = (async () => {
      for (let tick = 0; tick < TICKS; tick++) {
        const started = Date.now();
        const batch: Promise<unknown>[] = [];
        for (let i = 0; i < RATE_PER_TICK; i++) {
          const payload = `m${tick * RATE_PER_TICK + i}`;
          batch.push(pub.client.publishAsync(topic, payload, { qos: 1 }).then(() => acked.push(payload)));
        }
        await Promise.all(batch);
        await new Promise((r) => setTimeout(r, Math.max(0, 10 - (Date.now() - started))));
      }
    })();

    // Crash A after a second of traffic, and reconnect at once through C.
    await first.inbox.dataCount(1000, 15_000);
    expect(A.kill('SIGKILL')).toBe(true);
    expect((await A.process.exited).signal).toBe('SIGKILL');
    const started = Date.now();
    const second = await connectMqtt(C.url, { ...session, connectTimeout: 15_000 });
    const resumedMs = Date.now() - started;
    console.log(`crash takeover: CONNACK ${resumedMs} ms after the reconnect started`);
    expect(resumedMs).toBeLessThan(1000);

    await publishing;
    const got = new Set([...first.inbox.data, ...second.inbox.data].map((m) => m.payload));
    await second.inbox.until(
      () => {
        for (const m of second.inbox.data) got.add(m.payload);
        return acked.every((p) => got.has(p));
      },
      20_000,
      'every acknowledged message',
    );
    expect(acked.length).toBe(TICKS * RATE_PER_TICK);
    expect(await C.metric('shoal_messages_dropped_total{reason="queue_full"}')).toBe(0);
    expect(await B.metric('shoal_messages_dropped_total{reason="queue_full"}')).toBe(0);
    // And the survivors reaped A as crashed (no control subscriber, heartbeats missed), not after
    // waiting out the liveness timeout.
    await waitFor(
      async () =>
        [B, C].some((n) =>
          /"event":"cluster\.node_reaped","node":"A"[^}]*"crashed":true/.test(n.process.output()),
        ),
      10_000,
      'A reaped as crashed',
    );
    await endAll(first.client, second.client, pub.client);
  }, 60_000);
});
