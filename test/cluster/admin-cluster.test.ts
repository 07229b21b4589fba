/**
 * The admin API across three nodes on Redis (#14): asked on any node (as behind a load-balanced
 * Service), a client's detail and its kick reach the node serving it (its owner in Redis, asked over
 * the control channel); "who subscribes to this topic" gathers the subscriptions of every node and
 * the persistent sessions'; the log level changes on every live node at once. Before, lookup and
 * kick answered only on the node holding the client.
 */
import { describe, expect, it } from 'vitest';
import { connectMqtt, type ShoalNode, uniq, waitFor } from '../helpers/cluster.js';
import { clusterPerFile } from '../helpers/cluster-fixture.js';
import { adminCall } from '../helpers/http-api.js';

const {
  nodes: [A, B, C],
  clients,
} = clusterPerFile({ nodes: 3, config: { cluster: { heartbeatMs: 200, livenessTimeoutMs: 1500 } } });

const api = (node: ShoalNode, method: string, path: string, body?: unknown) =>
  adminCall(node.httpPort, method, path, body);

async function conn(node: ShoalNode, opts: Parameters<typeof connectMqtt>[1] = {}) {
  const c = await connectMqtt(node.url, opts);
  clients.push(c.client);
  return c;
}

describe('the admin API of a cluster', () => {
  it('(#14) a client on B: its detail and its kick asked on A reach B', async () => {
    const id = uniq('adm');
    const b = await conn(B, { clientId: id, protocolVersion: 5 });
    await b.client.subscribeAsync('adm/x/#', { qos: 1 });
    const detail = await api(A, 'GET', `/clients/${encodeURIComponent(id)}`);
    expect(detail.status).toBe(200);
    expect(detail.json).toMatchObject({ clientId: id, connected: true, node: 'B', subscriptionCount: 1 });
    expect(detail.json.subscriptions.map((s: { topicFilter: string }) => s.topicFilter)).toEqual(['adm/x/#']);

    const gone = new Promise<number | undefined>((resolve) =>
      b.client.once('disconnect', (p) => resolve(p.reasonCode)),
    );
    const kick = await api(C, 'DELETE', `/clients/${encodeURIComponent(id)}`);
    expect(kick).toEqual({ status: 200, json: { kicked: id, node: 'B', sessionDiscarded: false } });
    expect(await gone).toBe(0x98); // Administrative action
    expect((await api(A, 'GET', `/clients/${encodeURIComponent(uniq('nobody'))}`)).status).toBe(404);
  });

  it('(#14) who subscribes to a topic: the subscriptions of every node and of the persistent sessions, asked on one', async () => {
    const base = uniq('who');
    const onB = uniq('b');
    const onC = uniq('c');
    const stored = uniq('p');
    await (await conn(B, { clientId: onB })).client.subscribeAsync(`${base}/+/t`, { qos: 1 });
    await (await conn(C, { clientId: onC })).client.subscribeAsync(`$share/g/${base}/#`, { qos: 0 });
    await (
      await conn(C, {
        clientId: stored,
        clean: false,
        protocolVersion: 5,
        properties: { sessionExpiryInterval: 60 },
      })
    ).client.subscribeAsync(`${base}/#`, { qos: 1 });
    const r = await api(A, 'GET', `/subscriptions?topic=${encodeURIComponent(`${base}/1/t`)}`);
    expect(r.status).toBe(200);
    expect(r.json.items).toEqual(
      expect.arrayContaining([
        { clientId: onB, topicFilter: `${base}/+/t`, qos: 1, node: 'B', persistent: false },
        { clientId: onC, topicFilter: `$share/g/${base}/#`, qos: 0, node: 'C', persistent: false },
        { clientId: stored, topicFilter: `${base}/#`, qos: 1, node: null, persistent: true },
      ]),
    );
    expect(r.json.items).toHaveLength(3);
  });

  it('(#14) the log level of every live node, set through one', async () => {
    const r = await api(B, 'PUT', '/log-level', { level: 'debug', scope: 'cluster' });
    expect(r.status).toBe(200);
    expect(
      [...r.json.nodes].sort((x: { nodeId: string }, y: { nodeId: string }) =>
        x.nodeId.localeCompare(y.nodeId),
      ),
    ).toEqual([
      { nodeId: 'A', level: 'debug' },
      { nodeId: 'B', level: 'debug' },
      { nodeId: 'C', level: 'debug' },
    ]);
    for (const n of [A, B, C]) expect((await api(n, 'GET', '/log-level')).json).toEqual({ level: 'debug' });
    await api(A, 'PUT', '/log-level', { level: 'info', scope: 'cluster' });
  });
});

describe('bans in a cluster (#15)', () => {
  it('a ban made through A disconnects the client on C and refuses it on B; lifted through C, it gets in on B', async () => {
    const id = uniq('banned');
    const onC = await conn(C, { clientId: id, protocolVersion: 5 });
    const kicked = new Promise<number | undefined>((r) =>
      onC.client.once('disconnect', (p) => r(p.reasonCode)),
    );
    expect((await api(A, 'POST', '/bans', { kind: 'clientId', value: id, reason: 'test' })).status).toBe(200);
    expect(await kicked).toBe(0x98);
    // B has it too (its copy is reloaded on the change's notice).
    await waitFor(async () => (await B.metric('shoal_bans')) >= 1, 5000, 'the ban on B');
    await expect(conn(B, { clientId: id, protocolVersion: 5 })).rejects.toThrow(/Banned|banned|0x8a|138/i);
    expect((await api(C, 'GET', '/bans')).json.items).toEqual([
      expect.objectContaining({ value: id, by: 'admin' }),
    ]);
    expect((await api(C, 'DELETE', `/bans/${encodeURIComponent(`clientId:${id}`)}`)).status).toBe(200);
    await waitFor(async () => (await B.metric('shoal_bans')) === 0, 5000, 'the ban lifted on B');
    const back = await conn(B, { clientId: id, protocolVersion: 5 });
    expect(back.client.connected).toBe(true);
  });
});
