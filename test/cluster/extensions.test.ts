/**
 * Auto-subscribe and topic rewrite (#15) across three nodes on Redis: a subscription given on
 * connect on B is routed cluster-wide like a client's own (a publish on A reaches it); a PUBLISH
 * rewritten on A reaches a subscriber of the new topic on C; a rewritten SUBSCRIBE on C receives
 * what B publishes to the new topic.
 */
import { describe, expect, it } from 'vitest';
import { connectMqtt, type ShoalNode, uniq, untilRouted, waitFor } from '../helpers/cluster.js';
import { clusterPerFile } from '../helpers/cluster-fixture.js';

const {
  nodes: [A, B, C],
  clients,
} = clusterPerFile({
  nodes: 3,
  config: {
    cluster: { heartbeatMs: 200, livenessTimeoutMs: 1500 },
    autoSubscribe: [{ topic: 'auto/%c/cmd', qos: 1 }],
    flapping: { enabled: true, maxConnects: 3, windowSeconds: 600, banSeconds: 600 },
    topicRewrite: [
      { action: 'publish', sourceTopic: 'old/#', regex: '^old/(.+)$', destTopic: 'new/$1' },
      { action: 'subscribe', sourceTopic: 'legacy/#', regex: '^legacy/(.+)$', destTopic: 'v2/$1' },
    ],
  },
});

async function conn(node: ShoalNode, opts: Parameters<typeof connectMqtt>[1] = {}) {
  const c = await connectMqtt(node.url, opts);
  clients.push(c.client);
  return c;
}

describe('extensions in a cluster', () => {
  it('(#15) a subscription given on connect on B gets what A publishes', async () => {
    const id = uniq('auto');
    const dev = await conn(B, { clientId: id });
    const { client: pub } = await conn(A);
    await untilRouted(pub, `auto/${id}/cmd`, [dev.inbox]);
    await pub.publishAsync(`auto/${id}/cmd`, 'reboot', { qos: 1 });
    await dev.inbox.payload('reboot');
    expect(dev.inbox.data.find((m) => m.payload === 'reboot')?.qos).toBe(1);
  });

  it("(#15) a PUBLISH rewritten on A reaches the new topic's subscriber on C; a SUBSCRIBE rewritten on C gets B's publishes", async () => {
    const base = uniq('rw');
    const sub = await conn(C);
    await sub.client.subscribeAsync(`new/${base}/#`, { qos: 1 });
    const { client: pubA } = await conn(A);
    await untilRouted(pubA, `new/${base}/probe`, [sub.inbox]);
    await pubA.publishAsync(`old/${base}/t`, 'moved', { qos: 1 });
    await sub.inbox.payload('moved');
    expect(sub.inbox.data.find((m) => m.payload === 'moved')?.topic).toBe(`new/${base}/t`);

    const legacy = await conn(C);
    await legacy.client.subscribeAsync(`legacy/${base}`, { qos: 1 });
    const { client: pubB } = await conn(B);
    await untilRouted(pubB, `v2/${base}`, [legacy.inbox]);
    await pubB.publishAsync(`v2/${base}`, 'to-v2', { qos: 1 });
    await legacy.inbox.payload('to-v2');
  });

  it('(#15) flapping is counted cluster-wide: a client id connecting to A, B and C in turn is banned on its fourth, everywhere', async () => {
    const id = uniq('flap');
    for (const node of [A, B, C]) {
      const c = await connectMqtt(node.url, { clientId: id });
      await c.client.endAsync();
    }
    const fourth = await connectMqtt(A.url, { clientId: id });
    clients.push(fourth.client);
    await waitFor(async () => (await C.metric('shoal_bans')) >= 1, 5000, 'the flapping ban on C');
    await expect(connectMqtt(C.url, { clientId: id })).rejects.toThrow(/Banned|138/i);
    expect(await A.metric('shoal_flapping_bans_total')).toBe(1);
  });

  // Last: it kills A.
  it('(#15) a delayed message stored through A is published when due by a survivor after A is killed -9', async () => {
    const t = uniq('dl');
    const sub = await conn(C);
    await sub.client.subscribeAsync(`${t}/#`, { qos: 1 });
    const { client: pubB } = await conn(B);
    await untilRouted(pubB, `${t}/probe`, [sub.inbox]);
    const { client: pubA } = await conn(A);
    await pubA.publishAsync(`$delayed/2/${t}/x`, 'survives', { qos: 1 }); // PUBACK: in Redis
    expect(A.kill('SIGKILL')).toBe(true);
    await A.process.exited;
    await sub.inbox.payload('survives', 10_000);
    // Once: one node took it.
    await pubB.publishAsync(`${t}/sync`, 'sync', { qos: 1 });
    await sub.inbox.payload('sync');
    expect(sub.inbox.data.filter((m) => m.payload === 'survives')).toHaveLength(1);
  });
});
