/**
 * Admission control for CONNECT (#13.7): a node runs a bounded number of claims at once, keeps a
 * bounded queue, and tells a CONNECT past it, or one that waited too long, to come back (CONNACK
 * 0x89 Server busy, 3.x return code 3 Server unavailable) instead of piling claims onto a slow Redis.
 * Redis is made slow for real: CLIENT PAUSE ... WRITE holds every script call (claims) meanwhile.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { connectMqtt, uniq, waitFor } from '../helpers/cluster.js';
import { clusterPerFile } from '../helpers/cluster-fixture.js';

const {
  admin,
  nodes: [A],
  clients,
} = clusterPerFile({
  nodes: 1,
  config: { limits: { maxConcurrentClaims: 1, maxQueuedClaims: 1, claimQueueTimeoutMs: 2500 } },
});
afterAll(async () => {
  await A.stop();
});

type Outcome = { at: number; code: number };

/** Connects and reports when it settled and how (0 = accepted, else the CONNACK code). */
async function attempt(clientId: string, protocolVersion: 4 | 5 = 5): Promise<Outcome> {
  try {
    const { client } = await connectMqtt(A.url, {
      clientId,
      protocolVersion,
      clean: false,
      connectTimeout: 15_000,
    });
    clients.push(client);
    return { at: Date.now(), code: 0 };
  } catch (err) {
    return { at: Date.now(), code: (err as { code?: number }).code ?? -1 };
  }
}

describe('CONNECT admission while claims are slow', () => {
  it('runs one claim, queues one, refuses the next at once; the queued one is refused when its wait runs out', async () => {
    const ids = [uniq('run'), uniq('queued'), uniq('over')];
    // Every script call (the claim is one) waits while Redis is paused for writes. Long enough for
    // the steps below: a /metrics scrape itself waits up to 1 s for Redis meanwhile (shoal_cluster_nodes).
    await admin.call('CLIENT', 'PAUSE', '6000', 'WRITE');
    const running = attempt(ids[0]);
    // In arrival order: the first holds the slot, the second the queue's one place.
    await waitFor(async () => (await A.metric('shoal_connect_claims_running')) === 1, 2000, 'claim running');
    const queued = attempt(ids[1]);
    await waitFor(async () => (await A.metric('shoal_connect_claims_queued')) === 1, 2000, 'claim queued');
    // [MQTT-3.2.2-6] a 3.1.1 client refused gets a non-zero return code: 3 Server unavailable.
    const over = await attempt(ids[2], 4);
    expect(over.code).toBe(3);

    const waited = await queued;
    // MQTT 5: 0x89 Server busy, sent when its 2.5 s wait ran out, before the claim it waited behind.
    expect(waited.code).toBe(0x89);
    const ran = await running;
    expect(ran.code).toBe(0);
    expect(over.at).toBeLessThan(waited.at);
    expect(waited.at).toBeLessThan(ran.at);
    expect(await A.metric('shoal_rate_limited_total{limit="claim_queue"}')).toBe(2);

    // Told to come back, each gets in on its next try.
    expect((await attempt(ids[1])).code).toBe(0);
    expect((await attempt(ids[2], 4)).code).toBe(0);
  });
});
