/**
 * Claims, wills and fetches with `cluster.replicaAcks` (guarantees 1, 2 and 4; guarantees.md,
 * failover rows): a claim gets its CONNACK, and storing a will or taking it counts, once a Redis
 * replica holds the change; a fetch is handed over only once a replica holds the packet ids it gave. Found by the verifier's
 * `cluster-master-kill` and `sentinel-failover` classes: a will stored on a master that died before
 * replicating it was missing after the failover (will-missing), and a will a DISCONNECT took came
 * back with the promoted replica and was fired (will-unexpected).
 *
 * What a failover does to an unreplicated write is replayed on a real master and replica: the
 * replica is stopped (SIGSTOP) so WAIT cannot confirm, and the write is undone on the master as
 * the promoted replica would not have it. The write must then be made again, not trusted. And a
 * will whose publish was refused (its append not confirmed: the demoted master discards it) is
 * published again, since nobody else holds it any more (the verifier's `sentinel-failover`
 * will-missing).
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisClusterBackend } from '../../src/backend/redis/backend.js';
import { RedisBus } from '../../src/backend/redis/bus.js';
import { Keys } from '../../src/backend/redis/keys.js';
import { encodeWill, RedisWills } from '../../src/backend/redis/wills.js';
import type { StoredWill } from '../../src/backend/types.js';
import { systemClock } from '../../src/clock.js';
import { createLogger } from '../../src/observability/logger.js';
import { connectMqtt, endAll, startNode, uniq, waitFor } from '../helpers/cluster.js';
import { idleHandlers } from '../helpers/cluster-handlers.js';
import { killAllTracked } from '../helpers/processes.js';
import { type SentinelHandle, startSentinel } from '../helpers/redis-topologies.js';

let redis: SentinelHandle;
let client: Redis;

beforeAll(async () => {
  redis = await startSentinel({ replicas: 1 });
  client = new Redis({ host: redis.master.host, port: redis.master.port, maxRetriesPerRequest: 1 });
}, 60_000);

afterAll(async () => {
  client?.disconnect();
  await redis?.stop();
  await killAllTracked();
}, 30_000);

const will: StoredWill = {
  message: { topic: 'w/gone', payload: Buffer.from('bye'), qos: 1, retain: false },
  delaySeconds: 0,
};

function wills(keys: Keys): RedisWills {
  const bus = new RedisBus(client, keys, false, 10_000, { replicas: 1, timeoutMs: 300 }, 'A');
  return new RedisWills({
    cmd: client,
    keys,
    nodeId: 'A',
    clock: systemClock,
    logger: createLogger('silent'),
    replicated: (key) =>
      new Promise((resolve, reject) => bus.awaitReplicas(key, [(err) => (err ? reject(err) : resolve())])),
    publish: () => undefined,
    release: () => undefined,
  });
}

/** Whether a connection of this master is blocked in WAIT now. */
async function waiting(): Promise<boolean> {
  return /cmd=wait\b/.test(String(await client.call('CLIENT', 'LIST')));
}

/** Stops the replica until the returned function is called: WAIT 1 cannot be answered meanwhile. */
function stopReplica(): () => void {
  const pid = redis.replica.pid;
  process.kill(pid, 'SIGSTOP');
  return () => process.kill(pid, 'SIGCONT');
}

/** A cluster backend on the master with replicaAcks 1 (WAIT bounded at 300 ms), its own key prefix. */
async function replicaAckedBackend(): Promise<{ prefix: string; backend: RedisClusterBackend }> {
  const prefix = `fr-${randomBytes(4).toString('hex')}`;
  const backend = new RedisClusterBackend({
    url: `redis://${redis.master.address}`,
    nodeId: 'A',
    clock: systemClock,
    logger: createLogger('silent'),
    prefix,
    replicaAcks: { replicas: 1, timeoutMs: 300 },
  });
  await backend.start(idleHandlers());
  return { prefix, backend };
}

/** Queues one QoS 2 message for `clientId`; resolves once Redis (and a replica) took it. */
function appendQos2(backend: RedisClusterBackend, clientId: string): Promise<void> {
  const message = { topic: 't', payload: Buffer.from('m'), qos: 2 as const, retain: false };
  return new Promise((resolve, reject) =>
    backend.sessions.append(clientId, { message, qos: 2, retain: false }, (err) =>
      err ? reject(err) : resolve(),
    ),
  );
}

describe('Wills with replicaAcks: a failover neither loses a stored will nor brings back a taken one', () => {
  it('(guarantee 4) a will whose store no replica confirmed is stored again: it is there once the store resolves', async () => {
    const keys = new Keys(`wr-${randomBytes(4).toString('hex')}`);
    const owner = keys.owner('c1');
    await client.hset(owner, 'node', 'A', 'epoch', '7');
    const w = wills(keys);
    const resume = stopReplica();
    let stored = false;
    try {
      const storing = w.store('c1', 7, will).then(() => {
        stored = true;
      });
      await waitFor(async () => (await client.hget(owner, 'will')) !== null, 5_000, 'the will on the master');
      // The master that took it fails over to a replica that never got it.
      await client.hdel(owner, 'will', 'wdelay');
      resume();
      await storing;
    } finally {
      resume();
    }
    expect(stored).toBe(true);
    expect(await client.hgetBuffer(owner, 'will')).toEqual(encodeWill(will));
  }, 30_000);

  it('(guarantee 4) a will taken (a DISCONNECT) while no replica confirmed it is taken again: it does not come back to be fired', async () => {
    const keys = new Keys(`wr-${randomBytes(4).toString('hex')}`);
    const owner = keys.owner('c2');
    await client.hset(owner, 'node', 'A', 'epoch', '9', 'will', encodeWill(will), 'wdelay', '0');
    await client.wait(1, 5_000);
    const w = wills(keys);
    const resume = stopReplica();
    try {
      expect(await w.take('c2', 9)).toBe(true);
      // The promoted replica still holds the will the master took.
      await client.hset(owner, 'will', encodeWill(will), 'wdelay', '0');
      resume();
      await waitFor(async () => (await client.hget(owner, 'will')) === null, 10_000, 'the will taken again');
    } finally {
      resume();
    }
  }, 30_000);

  it('(guarantee 4) a will whose publish no replica confirmed is published again: an offline session that lost the append still gets it', async () => {
    const node = await startNode({
      redisUrl: `redis://${redis.master.address}`,
      nodeId: uniq('wr'),
      config: {
        cluster: { heartbeatMs: 200, livenessTimeoutMs: 1500, replicaAcks: 1, replicaAckTimeoutMs: 300 },
      },
    });
    const topic = uniq('w');
    const watcherId = uniq('ww');
    const persistent = { clientId: watcherId, clean: false, properties: { sessionExpiryInterval: 300 } };
    const first = await connectMqtt(node.url, persistent);
    await first.client.subscribeAsync(`${topic}/#`, { qos: 1 });
    await endAll(first.client); // offline: nothing fetches the queue meanwhile
    const willer = await connectMqtt(node.url, {
      will: { topic: `${topic}/gone`, payload: Buffer.from('bye'), qos: 1, retain: false },
    });
    let resume: () => void = () => undefined;
    try {
      const owner = `shoal:owner:{${willer.client.options.clientId}}`;
      await waitFor(
        async () => (await redis.replica.call('HGET', owner, 'will')) !== null,
        5_000,
        'the will replicated',
      );
      resume = stopReplica();
      willer.client.stream.destroy();
      const queue = `shoal:q:{${watcherId}}`;
      await waitFor(
        async () => (await client.xlen(queue)) > 0,
        5_000,
        'the will appended to the offline session',
      );
      await waitFor(waiting, 5_000, 'a WAIT for the append');
      await waitFor(async () => !(await waiting()), 5_000, 'its WAIT timed out (refused)');
      // The master that took the append is demoted: its data goes.
      await client.del(queue, `shoal:dd:{${watcherId}}`, `shoal:ab:{${watcherId}}`);
      resume();
      const again = await connectMqtt(node.url, persistent);
      try {
        await again.inbox.payload('bye', 10_000);
      } finally {
        await endAll(again.client);
      }
    } finally {
      resume();
      await endAll(willer.client);
      await node.stop();
    }
  }, 60_000);

  it('(guarantee 1) a claim no replica confirmed gets no CONNACK: the failover could hand its epoch out again', async () => {
    const node = await startNode({
      redisUrl: `redis://${redis.master.address}`,
      nodeId: uniq('cr'),
      config: {
        cluster: { heartbeatMs: 200, livenessTimeoutMs: 1500, replicaAcks: 1, replicaAckTimeoutMs: 300 },
      },
    });
    const resume = stopReplica();
    try {
      await expect(connectMqtt(node.url, { clientId: uniq('cr') })).rejects.toThrow(
        /Server unavailable|0x88|136/i,
      );
      resume();
      const ok = await connectMqtt(node.url, { clientId: uniq('cr') });
      await endAll(ok.client);
    } finally {
      resume();
      await node.stop();
    }
  }, 60_000);

  it('(guarantee 2) a fetch no replica confirmed hands nothing over; made again once one does, the message goes out once, under the id it was given', async () => {
    const { prefix, backend } = await replicaAckedBackend();
    try {
      const { epoch } = await backend.claim('f1', false, 60);
      await appendQos2(backend, 'f1');
      const resume = stopReplica();
      try {
        // Sent now, a failover that loses this fetch would have the entry taken and sent again
        // under another packet id: a QoS 2 message delivered twice.
        await expect(backend.sessions.fetch('f1', epoch, 10, '0-0')).rejects.toThrow(/replicas confirmed/);
      } finally {
        resume();
      }
      const given = await client.hgetall(`${prefix}:inf:{f1}`);
      const again = await backend.sessions.fetch('f1', epoch, 10, '0-0');
      expect(again).toHaveLength(1);
      expect(Object.keys(given)).toEqual([String(again[0].packetId)]);
      expect(await backend.sessions.fetch('f1', epoch, 10, again[0].position)).toHaveLength(0);
    } finally {
      await backend.stop();
    }
  }, 30_000);

  it('(guarantee 2, [MQTT-4.3.3-*]) the QoS 2 phase (PUBREC received) no replica confirmed is recorded again before PUBREL may go', async () => {
    const { prefix, backend } = await replicaAckedBackend();
    try {
      const { epoch } = await backend.claim('f2', false, 60);
      await appendQos2(backend, 'f2');
      const [sent] = await backend.sessions.fetch('f2', epoch, 10, '0-0');
      const inflight = `${prefix}:inf:{f2}`;
      const pid = String(sent.packetId);
      const resume = stopReplica();
      let released = false;
      try {
        const releasing = backend.sessions.releasing('f2', epoch, sent.packetId).then(() => {
          released = true;
        });
        await waitFor(
          async () => (await client.hget(inflight, pid))?.endsWith(' r') === true,
          5_000,
          'the phase on the master',
        );
        // While its WAIT hangs (no replica answers, as on a master that is failing over), the
        // failover happens: the promoted replica still has the message waiting for PUBREC. Done
        // during the WAIT, so it lands before the store's next attempt, whatever the timing.
        await waitFor(waiting, 5_000, 'a WAIT for the phase');
        await client.hset(inflight, pid, `${sent.position} p`);
        expect(released).toBe(false);
        // The WAIT times out unconfirmed: the phase is recorded again.
        await waitFor(
          async () => (await client.hget(inflight, pid))?.endsWith(' r') === true,
          5_000,
          'the phase recorded again',
        );
        resume();
        await releasing;
      } finally {
        resume();
      }
      expect(released).toBe(true);
      expect(await client.hget(inflight, pid)).toBe(`${sent.position} r`);
    } finally {
      await backend.stop();
    }
  }, 30_000);
});
