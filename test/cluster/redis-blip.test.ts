/**
 * Guarantee 3 (CLUSTER.md): no QoS >= 1 loss on a Redis blip. Two nodes, publisher on A, subscriber
 * on B; while QoS 1 traffic flows, (a) Redis cuts every node connection (CLIENT KILL from a separate
 * admin connection), (b) Redis stops and restarts. Every message whose PUBACK the publisher got
 * (mqtt.js resolved the publish) must reach B; QoS 1 allows duplicates. During the outage /readyz
 * says 503 and local pub/sub on a node keeps working; afterwards the nodes are ready again without
 * a restart.
 *
 * Redis runs with persistence (AOF) here: a message acknowledged to its publisher but not yet read
 * by the receiving node lives only in that node's inbox stream in Redis, so a Redis restarted without
 * persistence starts empty and those messages are gone. That is a property of the deployment, not of
 * Shoal (docs/cluster.md states it): guarantee 3 across a Redis restart needs a persistent Redis.
 */
import type { Redis } from 'ioredis';
import type { MqttClient } from 'mqtt';
import { describe, expect, it } from 'vitest';
import {
  connectMqtt,
  endAll,
  type Inbox,
  type ShoalNode,
  uniq,
  untilRouted,
  waitFor,
} from '../helpers/cluster.js';
import { clusterPerFile } from '../helpers/cluster-fixture.js';
import { redisClient } from '../helpers/redis.js';

const {
  redis,
  nodes: [A, B],
  clients,
} = clusterPerFile({ nodes: 2, processRedis: { persistence: true } });

async function conn(node: ShoalNode, opts: Parameters<typeof connectMqtt>[1] = {}) {
  const c = await connectMqtt(node.url, opts);
  clients.push(c.client);
  return c;
}

/**
 * Publishes QoS 1 messages `0, 1, 2, ...` to `topic`, up to `window` unacknowledged at a time, until
 * stop() or halt(); `acked` holds the payloads whose PUBACK came back, `failed` those that were
 * refused (the first refusal ends the loop).
 */
function publishLoop(client: MqttClient, topic: string, window = 20) {
  const acked = new Set<string>();
  const failed: string[] = [];
  /** Acknowledged with 0x10 No matching subscribers: the publisher's node saw no route to B. */
  const noMatch: string[] = [];
  let next = 0;
  let running = true;
  const ackWaiters = new Set<() => void>();
  const worker = async () => {
    while (running) {
      const payload = String(next++);
      try {
        const ack = (await client.publishAsync(topic, payload, { qos: 1 })) as
          | { reasonCode?: number }
          | undefined;
        if (ack?.reasonCode === 0x10) noMatch.push(payload);
        acked.add(payload);
        for (const w of [...ackWaiters]) w();
      } catch {
        failed.push(payload);
        running = false;
      }
    }
  };
  // mqtt.js resolves a publish without its PUBACK: read the reason codes off the wire.
  const payloadOf = new Map<number, string>();
  const onSend = (p: { cmd: string; messageId?: number; topic?: string; payload?: Buffer | string }) => {
    if (p.cmd === 'publish' && p.topic === topic && p.messageId !== undefined)
      payloadOf.set(p.messageId, String(p.payload));
  };
  const onReceive = (p: { cmd: string; messageId?: number; reasonCode?: number }) => {
    if (p.cmd === 'puback' && p.reasonCode === 0x10 && p.messageId !== undefined)
      noMatch.push(payloadOf.get(p.messageId) ?? `id ${p.messageId}`);
  };
  client.on('packetsend', onSend);
  client.on('packetreceive', onReceive);
  const workers = Array.from({ length: window }, worker);
  return {
    acked,
    failed,
    noMatch,
    get sent() {
      return next;
    },
    /** Resolves once `n` more acknowledgements came back than when called. */
    moreAcks(n: number, timeoutMs = 20_000): Promise<void> {
      const target = acked.size + n;
      return new Promise((resolve, reject) => {
        const check = () => {
          if (acked.size < target) return;
          ackWaiters.delete(check);
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(() => {
          ackWaiters.delete(check);
          reject(new Error(`only ${acked.size} of ${target} acknowledgements within ${timeoutMs} ms`));
        }, timeoutMs);
        ackWaiters.add(check);
        check();
      });
    },
    /** Ends the loop and waits for the publishes in flight. */
    async stop(): Promise<void> {
      running = false;
      await Promise.all(workers);
    },
    /** Ends the loop without waiting (cleanup after a failure). */
    halt(): void {
      running = false;
    },
  };
}

/** Waits until every acknowledged payload is in `inbox` (duplicates allowed for QoS 1). */
async function allArrived(acked: Set<string>, inbox: Inbox, timeoutMs = 20_000): Promise<void> {
  const missing = () => {
    const got = new Set(inbox.data.map((m) => m.payload));
    return [...acked].filter((p) => !got.has(p));
  };
  try {
    await inbox.until(() => missing().length === 0, timeoutMs, 'every acknowledged message');
  } catch (err) {
    const lost = missing();
    throw new Error(
      `${lost.length} of ${acked.size} acknowledged messages never arrived (first: ${lost.slice(0, 10).join(', ')})`,
      { cause: err },
    );
  }
}

const readiness = () => Promise.all([A.readyz(), B.readyz()]);

/** Connections of a type Redis holds now (CLIENT LIST TYPE normal|pubsub), this one included. */
async function clientCount(admin: Redis, type: 'normal' | 'pubsub'): Promise<number> {
  const list = (await admin.call('CLIENT', 'LIST', 'TYPE', type)) as string;
  return list.split('\n').filter((l) => l.trim().length > 0).length;
}

describe('Redis blips (guarantee 3)', () => {
  it('(a) every node connection cut (CLIENT KILL normal + pubsub): no acknowledged QoS 1 message lost', async () => {
    const t = uniq('kill');
    const sub = await conn(B, { protocolVersion: 5 });
    await sub.client.subscribeAsync(t, { qos: 1 });
    const pub = await conn(A, { protocolVersion: 5 });
    await untilRouted(pub.client, t, [sub.inbox]);

    const admin = redisClient(redis);
    const loop = publishLoop(pub.client, t);
    try {
      for (let round = 0; round < 3; round++) {
        await loop.moreAcks(200);
        // Every connection of both nodes is back (each node has at least three normal ones: commands,
        // log reader, inbox reader; and a subscriber), so each round cuts all of them.
        await waitFor(
          async () =>
            (await clientCount(admin, 'normal')) >= 6 + 1 && (await clientCount(admin, 'pubsub')) >= 2,
          10_000,
          'the nodes to reconnect every Redis connection',
        );
        // SKIPME defaults to yes: the admin connection itself survives.
        const normal = (await admin.client('KILL', 'TYPE', 'normal')) as number;
        const pubsub = (await admin.client('KILL', 'TYPE', 'pubsub')) as number;
        expect(normal).toBeGreaterThanOrEqual(6);
        expect(pubsub).toBeGreaterThanOrEqual(2);
      }
      // Traffic resumes after the last cut.
      await loop.moreAcks(300);
      await loop.stop();
      expect(loop.failed).toEqual([]);
      expect(loop.noMatch).toEqual([]);
      await allArrived(loop.acked, sub.inbox);
      await waitFor(async () => (await readiness()).every((s) => s === 200), 10_000, 'both nodes ready');
      const log = A.process.output() + B.process.output();
      expect(log).toMatch(/"event":"cluster\.redis_lost"/);
      expect(log).toMatch(/"event":"cluster\.redis_back"/);
    } finally {
      loop.halt();
      admin.disconnect();
    }
  }, 60_000);

  it('(b) Redis stopped and restarted (AOF): acknowledged messages arrive, /readyz 503 then 200, local pub/sub works meanwhile', async () => {
    const t = uniq('restart');
    const sub = await conn(B, { protocolVersion: 5 });
    await sub.client.subscribeAsync(t, { qos: 1 });
    const pub = await conn(A, { protocolVersion: 5 });
    await untilRouted(pub.client, t, [sub.inbox]);
    expect(await readiness()).toEqual([200, 200]);

    // Clients for local pub/sub during the outage connect now: a CONNECT in cluster mode claims the
    // client id in Redis (guarantee 1), so new connections wait for Redis; existing ones keep working.
    const local = uniq('local');
    const lsub = await conn(B, { protocolVersion: 5 });
    const lpub = await conn(B, { protocolVersion: 4 });

    // A persistent session, offline with 50 queued messages across the restart (guarantee 2).
    const offline = uniq('offline');
    const session = {
      protocolVersion: 5,
      clientId: uniq('ps'),
      clean: false,
      properties: { sessionExpiryInterval: 300 },
    } as const;
    const ps = await conn(B, session);
    await ps.client.subscribeAsync(offline, { qos: 1 });
    await untilRouted(pub.client, offline, [ps.inbox]);
    await endAll(ps.client);
    for (let i = 0; i < 50; i++) await pub.client.publishAsync(offline, `queued-${i}`, { qos: 1 });

    const loop = publishLoop(pub.client, t);
    try {
      await loop.moreAcks(300);

      // Redis goes away (SIGTERM: it writes its AOF out before exiting).
      await redis.process.terminate(5_000);
      await waitFor(async () => (await readiness()).every((s) => s === 503), 10_000, '/readyz 503 on both');

      // Local pub/sub on one node keeps working without Redis: subscribe, QoS 0 and 1.
      await lsub.client.subscribeAsync(local, { qos: 1 });
      await lpub.client.publishAsync(local, 'local-q0', { qos: 0 });
      await lpub.client.publishAsync(local, 'local-q1', { qos: 1 });
      await lsub.inbox.payload('local-q1');
      expect(lsub.inbox.data.map((m) => m.payload)).toEqual(['local-q0', 'local-q1']);
      // Still not ready: nothing changed while Redis is down.
      expect(await readiness()).toEqual([503, 503]);
      const ackedDuringOutage = loop.acked.size;

      await redis.restart();
      await waitFor(async () => (await readiness()).every((s) => s === 200), 20_000, '/readyz 200 on both');
      await loop.moreAcks(300);
      expect(loop.acked.size).toBeGreaterThan(ackedDuringOutage);
      await loop.stop();
      expect(loop.failed).toEqual([]);
      expect(loop.noMatch).toEqual([]);
      await allArrived(loop.acked, sub.inbox);
    } finally {
      loop.halt();
    }

    // The offline session kept its queue through the restart, resumed through the other node.
    const back = await conn(A, session);
    await back.inbox.dataCount(50);
    expect(back.inbox.data.map((m) => m.payload)).toEqual(
      Array.from({ length: 50 }, (_, i) => `queued-${i}`),
    );

    // And the cluster works as before: a fresh subscription on A, publisher on B.
    const t2 = uniq('after');
    const sub2 = await conn(A);
    await sub2.client.subscribeAsync(t2, { qos: 1 });
    const pub2 = await conn(B);
    await untilRouted(pub2.client, t2, [sub2.inbox]);
    await pub2.client.publishAsync(t2, 'after-restart', { qos: 1 });
    await sub2.inbox.payload('after-restart');
  }, 60_000);
});
