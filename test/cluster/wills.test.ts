import { describe, expect, it } from 'vitest';
import { connectMqtt, type ShoalNode, startNode, uniq, untilRouted, waitFor } from '../helpers/cluster.js';
import { clusterPerFile } from '../helpers/cluster-fixture.js';
import { RawClient } from '../helpers/raw-client.js';

const CONFIG = { cluster: { heartbeatMs: 200, livenessTimeoutMs: 1500 } };

const {
  redis,
  admin,
  nodes: [A, B],
  clients,
  raws,
} = clusterPerFile({ nodes: 2, config: CONFIG });

const extra = (name: string) => startNode({ redisUrl: redis.url, nodeId: uniq(name), config: CONFIG });

/** A watcher on A of `<topic>/#`, a publisher on B that reaches it, and a count of `payload` seen. */
async function watch() {
  const topic = uniq('will');
  const watcher = await connectMqtt(A.url);
  const { client: pub } = await connectMqtt(B.url);
  clients.push(watcher.client, pub);
  await watcher.client.subscribeAsync(`${topic}/#`, { qos: 1 });
  await untilRouted(pub, `${topic}/probe`, [watcher.inbox]);
  /** How many `payload` arrived, counted once a marker published afterwards arrived. */
  const seen = async (payload: string) => {
    const marker = uniq('marker');
    await pub.publishAsync(`${topic}/m`, marker, { qos: 1 });
    await watcher.inbox.payload(marker);
    return watcher.inbox.data.filter((m) => m.payload === payload).length;
  };
  return { topic, watcher, seen };
}

/** A raw MQTT 5 CONNECT with a will on `node`, and `then` sent in the same write (no wait for CONNACK). */
async function connectWithWill(
  node: ShoalNode,
  topic: string,
  payload: string,
  delay = 0,
  clientId = uniq('w'),
) {
  const raw = await RawClient.connect(node.port, 5);
  raws.push(raw);
  raw.send({
    type: 'connect',
    protocolName: 'MQTT',
    protocolVersion: 5,
    clean: true,
    keepalive: 0,
    clientId,
    will: {
      topic,
      payload: Buffer.from(payload),
      qos: 1,
      retain: false,
      properties: delay > 0 ? { willDelayInterval: delay } : undefined,
    },
  } as never);
  return raw;
}

/** Waits until no node set entry is left for `node` (a survivor reaped it). */
const reaped = (node: ShoalNode) =>
  waitFor(
    async () => (await admin.zscore('{shoal}:nodes', node.nodeId)) === null,
    15_000,
    `${node.nodeId} reaped`,
  );

describe('wills whose store and take race (#11.6)', () => {
  it('(guarantee 4) [MQTT-3.1.2-10] DISCONNECT right after CONNACK: the will is never published, not by the reaper of its node either', async () => {
    const D = await extra('d');
    const { topic, seen } = await watch();
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) {
      const id = uniq('n');
      ids.push(id);
      const raw = await connectWithWill(D, `${topic}/s`, 'normal', 0, id);
      await raw.next('connack');
      raw.send({ type: 'disconnect', reasonCode: 0 } as never);
      await raw.closed;
    }
    // Every will is dropped from Redis (taken once stored), so no reaper finds one.
    const left = async () => {
      let n = 0;
      for (const id of ids) n += await admin.hexists(`shoal:owner:{${id}}`, 'will');
      return n;
    };
    await waitFor(async () => (await left()) === 0, 5_000, 'the wills dropped');
    D.kill('SIGKILL');
    await reaped(D);
    expect(await seen('normal')).toBe(0);
  }, 40_000);

  it('(guarantee 4) [MQTT-3.1.2-8] an abnormal close right after CONNACK: the will is published exactly once', async () => {
    const { topic, watcher, seen } = await watch();
    for (let i = 0; i < 20; i++) {
      const raw = await connectWithWill(B, `${topic}/s`, `gone-${i}`);
      await raw.next('connack');
      raw.destroy();
    }
    await watcher.inbox.until((ms) => ms.filter((m) => m.payload.startsWith('gone-')).length >= 20, 10_000);
    for (let i = 0; i < 20; i++) expect(await seen(`gone-${i}`)).toBe(1);
  }, 40_000);

  it('(guarantee 4) a delayed will of a killed node is published once after its delay, though the survivor that reaped the node died too', async () => {
    const D = await extra('d');
    const E = await extra('e');
    const F = await extra('f');
    const { topic, watcher, seen } = await watch();
    const willId = uniq('w');
    const raw = await connectWithWill(D, `${topic}/s`, 'late', 4, willId);
    await raw.next('connack');
    // The will itself in Redis, not just its index entry (written first): it is stored right after
    // CONNACK, and a node killed before that loses it (docs/guarantees.md, limits).
    await waitFor(
      async () => (await admin.hexists(`shoal:owner:{${willId}}`, 'will')) === 1,
      5000,
      'the will stored',
    );
    D.kill('SIGKILL');
    const killedAt = Date.now();
    await reaped(D);
    // Survivors die before the delay is over, the one that reaped D among them unless A or B did
    // (A and B stay: they watch); with the will in Redis' due set any node left fires it.
    for (const n of [E, F]) n.kill('SIGKILL');
    await watcher.inbox.payload('late', 15_000);
    expect(Date.now() - killedAt).toBeGreaterThanOrEqual(4000);
    expect(await seen('late')).toBe(1);
  }, 40_000);
});

describe('a connection that lost its client id closes (#11.5)', () => {
  it('(guarantee 1) [MQTT-3.1.4-3] a session write refused by the fence closes the connection with 0x8E', async () => {
    const id = uniq('f');
    const raw = await RawClient.connect(A.port, 5);
    raws.push(raw);
    await raw.handshake({
      protocolVersion: 5,
      clientId: id,
      clean: false,
      properties: { sessionExpiryInterval: 60 },
    });
    // A takeover elsewhere whose kick never arrived: the epoch moved on.
    await admin.hincrby(`shoal:owner:{${id}}`, 'epoch', 1);
    raw.send({
      type: 'subscribe',
      packetId: 1,
      subscriptions: [
        { topic: uniq('t'), qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0 },
      ],
    });
    const d = await raw.next('disconnect');
    expect(d.reasonCode).toBe(0x8e);
  });

  it('(guarantee 1) a takeover kick left in the node’s kick list (pub/sub lost it) closes the older connection within a tick', async () => {
    const id = uniq('k');
    const old = await connectMqtt(A.url, { clientId: id });
    clients.push(old.client);
    const epoch = Number(await admin.hget(`shoal:owner:{${id}}`, 'epoch'));
    const closed = new Promise<number>((resolve) =>
      old.client.once('disconnect', (p) => resolve(p.reasonCode ?? 0)),
    );
    await admin.rpush(`shoal:kicks:{${A.nodeId}}`, `${id}\n${epoch + 1}`);
    expect(await closed).toBe(0x8e);
  });
});
