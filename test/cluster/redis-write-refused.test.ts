import { describe, expect, it } from 'vitest';
import { connectMqtt, endAll, uniq, waitFor } from '../helpers/cluster.js';
import { clusterPerFile } from '../helpers/cluster-fixture.js';

const {
  admin,
  nodes: [A],
} = clusterPerFile({ nodes: 1 });

/** How many commands Redis refused for lack of memory so far. */
async function oomErrors(): Promise<number> {
  const info = String(await admin.info('errorstats'));
  return Number(/errorstat_OOM:count=(\d+)/.exec(info)?.[1] ?? 0);
}

describe('A write Redis refuses', () => {
  it('a QoS 0 retained publish whose Redis write fails leaves the node running', async () => {
    const { client: pub } = await connectMqtt(A.url);
    const [, policy] = (await admin.config('GET', 'maxmemory-policy')) as string[];
    try {
      const before = await oomErrors();
      await admin.config('SET', 'maxmemory-policy', 'noeviction');
      await admin.config('SET', 'maxmemory', '1');
      await pub.publishAsync(uniq('r/t'), 'kept?', { qos: 0, retain: true });
      await waitFor(async () => (await oomErrors()) > before, 5_000, 'the retained write refused');
    } finally {
      await admin.config('SET', 'maxmemory', '0');
      await admin.config('SET', 'maxmemory-policy', policy);
      await endAll(pub);
    }
    // Still serving: a round trip through it.
    const topic = uniq('alive');
    const sub = await connectMqtt(A.url);
    try {
      await sub.client.subscribeAsync(topic, { qos: 1 });
      await sub.client.publishAsync(topic, 'yes', { qos: 1 });
      await sub.inbox.payload('yes', 5_000);
    } finally {
      await endAll(sub.client);
    }
    expect(A.process.running).toBe(true);
  }, 30_000);
});
