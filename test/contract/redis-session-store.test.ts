/**
 * The Redis SessionStore on a real Redis, through two cluster backends (nodes A and B): the
 * SessionStore contract (session-store.contract.ts, also run against the memory hub), and what only
 * Redis does — expiry by key TTL, keys deleted by Clean Start, a reaped session's expiry.
 */
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeDelivery } from '../../src/backend/record.js';
import { RedisClusterBackend } from '../../src/backend/redis/backend.js';
import { Keys } from '../../src/backend/redis/keys.js';
import { type SessionKeys, scripts } from '../../src/backend/redis/scripts.js';
import { systemClock } from '../../src/clock.js';
import type { Delivery, Message } from '../../src/message.js';
import { createLogger } from '../../src/observability/logger.js';
import { waitFor } from '../helpers/cluster.js';
import { idleHandlers } from '../helpers/cluster-handlers.js';
import { redisPerFile } from '../helpers/redis.js';
import { sessionStoreContract } from './session-store.contract.js';

const shared = redisPerFile();

interface Node {
  backend: RedisClusterBackend;
  dropped: string[];
  pokes: string[];
}

let prefix = '';
const started: RedisClusterBackend[] = [];

async function node(nodeId: string): Promise<Node> {
  const n: Node = {
    backend: new RedisClusterBackend({
      url: shared.redis.url,
      nodeId,
      clock: systemClock,
      logger: createLogger('silent'),
      prefix,
      heartbeatMs: 200,
      livenessTimeoutMs: 2000,
      maxQueued: 3,
    }),
    dropped: [],
    pokes: [],
  };
  const handlers = idleHandlers({
    poke: (ids) => n.pokes.push(...ids),
    dropped: (_reason, id) => n.dropped.push(id),
  });
  await n.backend.start(handlers);
  started.push(n.backend);
  return n;
}

afterEach(async () => {
  await Promise.all(started.splice(0).map((b) => b.stop()));
});

const delivery = (payload: string, qos: 0 | 1 | 2 = 1): Delivery => {
  const message: Message = { topic: 't', payload: Buffer.from(payload), qos, retain: false };
  return { message, qos, retain: false };
};

/** The keys the session scripts take for shared.client `id` (owner, session, queue, inflight, awaitingRelease). */
function sessionKeys(id: string): SessionKeys {
  const k = new Keys(prefix);
  return [k.owner(id), k.session(id), k.queue(id), k.inflight(id), k.awaitingRelease(id)];
}

/** The keys session-append.lua takes for shared.client `id` (session, queue, dedupe, applied batches, inflight). */
function appendKeys(id: string): [string, string, string, string, string] {
  const k = new Keys(prefix);
  return [k.session(id), k.queue(id), k.dedupe(id), k.appliedBatches(id), k.inflight(id)];
}

/** Appends and waits until Redis answered. */
function append(n: Node, id: string, d: Delivery): Promise<void> {
  return new Promise((resolve, reject) =>
    n.backend.sessions.append(id, d, (err) => (err ? reject(err) : resolve())),
  );
}

// One partition (a standalone Redis's layout) and four (#13.6: persistent sessions' routes spread
// over partitions by client id, each partition's log read by a reader of its own).
for (const partitions of [1, 4])
  sessionStoreContract(`redis, ${partitions} partition${partitions === 1 ? '' : 's'}`, async (handlers) => {
    prefix = `ss-${randomBytes(4).toString('hex')}`;
    const make = async (nodeId: 'A' | 'B') => {
      const backend = new RedisClusterBackend({
        url: shared.redis.url,
        nodeId,
        clock: systemClock,
        logger: createLogger('silent'),
        prefix,
        heartbeatMs: 200,
        livenessTimeoutMs: 2000,
        maxQueued: 3,
        partitions,
      });
      await backend.start(handlers(nodeId));
      return backend;
    };
    const [a, b] = [await make('A'), await make('B')];
    return {
      a,
      b,
      async reapA() {
        expect(await b.sessions.reap('A', '')).toBeGreaterThanOrEqual(1);
      },
      async stop() {
        await Promise.all([a.stop(), b.stop()]);
      },
    };
  });

describe('Redis session store: keys and expiry', () => {
  it('an offline session and its queue expire in Redis; Clean Start deletes them; a reaped session gets its expiry', async () => {
    prefix = `ss-${randomBytes(4).toString('hex')}`;
    const [a, b] = [await node('A'), await node('B')];
    const c = await a.backend.claim('c3', false, 60);
    await append(a, 'c3', delivery('q0'));
    expect(await shared.client.pttl(`${prefix}:q:{c3}`)).toBe(-1); // online: kept
    await a.backend.sessions.detach('c3', c.epoch, 60);
    expect(await shared.client.hget(`${prefix}:sess:{c3}`, 'on')).toBe('');
    expect(await shared.client.pttl(`${prefix}:q:{c3}`)).toBeGreaterThan(50_000);
    await append(a, 'c3', delivery('q1')); // appended while offline: the same expiry
    expect(await shared.client.pttl(`${prefix}:q:{c3}`)).toBeGreaterThan(50_000);
    await a.backend.claim('c3', true, 0);
    expect(await shared.client.exists(`${prefix}:q:{c3}`, `${prefix}:sess:{c3}`)).toBe(0);

    await a.backend.claim('c4', false, 30);
    expect(await b.backend.sessions.reap('A', '')).toBe(1);
    expect(await shared.client.hget(`${prefix}:sess:{c4}`, 'on')).toBe('');
    expect(await shared.client.pttl(`${prefix}:sess:{c4}`)).toBeGreaterThan(20_000);
  });

  it('an append batch re-sent after a reconnect (same node run and batch number) is queued once', async () => {
    prefix = `ss-${randomBytes(4).toString('hex')}`;
    const a = await node('A');
    await a.backend.claim('c7', false, 60);
    const keys = appendKeys('c7');
    const append = (run: string, batch: number) =>
      scripts.sessionAppend.run(shared.client, keys, 10, 'X', run, batch, 'record', '1', '0', '');
    await append('r1', 5);
    await append('r1', 5); // the re-send
    expect(await shared.client.xlen(keys[1])).toBe(1);
    await append('r1', 6);
    await append('r1', 5); // an older one, late
    expect(await shared.client.xlen(keys[1])).toBe(2);
    await append('r2', 1); // the node restarted: a new run counts from 1
    expect(await shared.client.xlen(keys[1])).toBe(3);
  });

  it('(guarantee 1) append batches that reach the session out of their sender’s order are all queued (Redis Cluster retries)', async () => {
    prefix = `ss-${randomBytes(4).toString('hex')}`;
    const a = await node('A');
    await a.backend.claim('c8', false, 60);
    const keys = appendKeys('c8');
    const append = (batch: number) =>
      scripts.sessionAppend.run(shared.client, keys, 10, 'X', 'r1', batch, 'record', '1', '0', '');
    // A shard failover: ioredis retries each failed script on its own schedule, so batch 8 can
    // land before batch 7. Neither has been seen: both are queued.
    await append(8);
    await append(7);
    expect(await shared.client.xlen(keys[1])).toBe(2);
    await append(7); // re-sent after its answer was lost
    await append(8);
    expect(await shared.client.xlen(keys[1])).toBe(2);
  });

  it('(#11.9) an append batch re-sent after a takeover claimed the session is still queued once', async () => {
    prefix = `ss-${randomBytes(4).toString('hex')}`;
    const a = await node('A');
    const b = await node('B');
    await a.backend.claim('c9', false, 60);
    const keys = appendKeys('c9');
    const append = (run: string, batch: number) =>
      scripts.sessionAppend.run(shared.client, keys, 10, 'X', run, batch, 'record', '1', '0', '');
    await append('r1', 5);
    // The shared.client moves to B while X's answer is lost; ioredis then re-sends X's batch.
    await b.backend.claim('c9', false, 60);
    await append('r1', 5);
    expect(await shared.client.xlen(keys[1])).toBe(1);
  });

  it('(#11.9) a QoS 2 delivery appended again under the same dedupe id (its publisher re-sent it) is queued once', async () => {
    prefix = `ss-${randomBytes(4).toString('hex')}`;
    const a = await node('A');
    await a.backend.claim('c10', false, 60);
    const keys = appendKeys('c10');
    const append = (batch: number, token: string) =>
      scripts.sessionAppend.run(shared.client, keys, 10, 'X', 'r1', batch, 'record', '2', '0', token);
    await append(1, 'p/1');
    await append(2, 'p/1'); // routed again after a partial failure, another batch
    await append(3, 'p/2');
    expect(await shared.client.xlen(keys[1])).toBe(2);
    expect(await shared.client.pttl(keys[2])).toBeGreaterThan(0);
  });

  it('a claim re-sent after a reconnect (same name) answers what the first run did and claims nothing more', async () => {
    prefix = `ss-${randomBytes(4).toString('hex')}`;
    const a = await node('A');
    const first = await a.backend.claim('c8', false, 60);
    await a.backend.storeWill('c8', first.epoch, {
      message: { topic: 'w', payload: Buffer.from('bye'), qos: 0, retain: false },
      delaySeconds: 0,
    });
    const keys = sessionKeys('c8');
    const claim = () => scripts.ownerClaim.run(shared.client, keys, 'B', '0', '60', 'B/run/1', 'run');
    const once = await claim();
    const twice = await claim(); // the re-send
    expect(String(once[0])).toBe('A');
    expect(String(twice[0])).toBe('A'); // not 'B': still the node the claim took over from
    expect(twice[1]).toBe(once[1]); // one epoch raised, not two
    expect(String(twice[2])).toBe(String(once[2])); // the will the first run took
    expect(Number(once[4])).toBe(1);
    expect(Number(twice[4])).toBe(1); // Session Present as the first run said it
    expect(await shared.client.hget(keys[0], 'epoch')).toBe(String(once[1])); // raised once
    expect(Number(once[1])).toBeGreaterThan(first.epoch);
  });

  it('(fencing) a route write of a connection older than the last claim that dropped the routes is refused', async () => {
    prefix = `ss-${randomBytes(4).toString('hex')}`;
    const [a, b] = [await node('A'), await node('B')];
    const options = { qos: 1 as const, noLocal: false, retainAsPublished: false, retainHandling: 0 as const };
    const old = await a.backend.claim('c9', false, 60);
    await a.backend.sessions.subscribe('c9', old.epoch, 'keep/+', options, true);
    // B takes over with Clean Start: the session and its routes are dropped, the floor raised.
    const fresh = await b.backend.claim('c9', true, 60);
    expect(await shared.client.hexists(`{${prefix}}:session-routes`, 'c9\0keep/+')).toBe(0);
    // A, paused until now, routes a subscription it had stored before: refused.
    const route = (a.backend.sessions as unknown as { route(...args: unknown[]): Promise<void> }).route.bind(
      a.backend.sessions,
    );
    await expect(route('c9', 'stale/+', JSON.stringify(options), old.epoch)).rejects.toThrow(/fenced/);
    expect(await shared.client.hexists(`{${prefix}}:session-routes`, 'c9\0stale/+')).toBe(0);
    // The new connection routes its own.
    await b.backend.sessions.subscribe('c9', fresh.epoch, 'new/+', options, true);
    expect(await shared.client.hexists(`{${prefix}}:session-routes`, 'c9\0new/+')).toBe(1);
    // A drop at the old epoch (a late sweep) leaves the new session's route alone.
    await a.backend.sessions.dropRoutes('c9', old.epoch);
    expect(await shared.client.hexists(`{${prefix}}:session-routes`, 'c9\0new/+')).toBe(1);
  });

  it('(fencing) a route write older than the epoch that last routed the filter is refused; a re-sent claim after a takeover fails', async () => {
    prefix = `ss-${randomBytes(4).toString('hex')}`;
    const [a, b] = [await node('A'), await node('B')];
    const options = { qos: 1 as const, noLocal: false, retainAsPublished: false, retainHandling: 0 as const };
    const route = (store: unknown) =>
      (store as { route(...args: unknown[]): Promise<void> }).route.bind(store) as (
        ...args: unknown[]
      ) => Promise<void>;
    const old = await a.backend.claim('c10', false, 60);
    const resumed = await b.backend.claim('c10', false, 60); // resumed elsewhere: no drop, no floor
    await b.backend.sessions.subscribe('c10', resumed.epoch, 'f/+', options, true);
    // The old connection, paused until now, unroutes the filter the new one routed: refused.
    await expect(route(a.backend.sessions)('c10', 'f/+', '', old.epoch)).rejects.toThrow(/fenced/);
    expect(await shared.client.hexists(`{${prefix}}:session-routes`, 'c10\0f/+')).toBe(1);
    // A's claim, re-sent by ioredis after B took the id: refused instead of answered.
    const keys = sessionKeys('c10');
    const name = (await shared.client.hget(keys[0], 'cn')) ?? '';
    await shared.client.hset(keys[0], 'cn', name.replace(/^B/, 'A'));
    await expect(
      scripts.ownerClaim.run(shared.client, keys, 'A', '0', '60', name.replace(/^B/, 'A'), 'run'),
    ).rejects.toThrow(/claim superseded/);
  });
});

describe('Redis session store: routes of sessions that expired while their node was dead', () => {
  it('(guarantee 9, #12) a session detached by a node that died before leaving the expiry hint: the reaper leaves one, the sweep drops its routes', async () => {
    prefix = `ss-${randomBytes(4).toString('hex')}`;
    const [a, b] = [await node('A'), await node('B')];
    const c = await a.backend.claim('c5', false, 1);
    await a.backend.sessions.subscribe(
      'c5',
      c.epoch,
      'late/t',
      { qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0 },
      true,
    );
    expect(await shared.client.hexists(`{${prefix}}:session-routes`, 'c5\0late/t')).toBe(1);
    // A's last command: the detach itself (1 s expiry); A dies before it writes the sweep's hint.
    const keys = sessionKeys('c5');
    await scripts.sessionDetach.run(shared.client, keys, c.epoch, 'A', 1);
    await b.backend.sessions.reap('A', '');
    await waitFor(
      async () => (await shared.client.exists(keys[1])) === 0,
      5_000,
      'the session to expire in Redis',
    );
    await waitFor(
      async () => {
        await b.backend.sessions.sweep();
        return (await shared.client.hexists(`{${prefix}}:session-routes`, 'c5\0late/t')) === 0;
      },
      5_000,
      "the expired session's route to be dropped",
    );
  });

  it('(#13.5) a fetch gives free packet ids past the wrap, skipping ids in flight, and a loop turn\u2019s acknowledgements leave the queue together', async () => {
    prefix = `ss-${randomBytes(4).toString('hex')}`;
    const a = await node('A');
    const c = await a.backend.claim('c12', false, 60);
    const keys = sessionKeys('c12');
    const records = (['m0', 'm1', 'm2', 'm3', 'm4'] as const).flatMap((p) => {
      const qos = p === 'm2' ? 0 : 1;
      return [encodeDelivery(delivery(p, qos)), String(qos), '0', ''];
    });
    await scripts.sessionAppend.run(shared.client, appendKeys('c12'), 100, 'X', 'r1', 1, ...records);
    // The id counter near its wrap, with 65535 and 1 still in flight (say from before a takeover).
    await shared.client.hset(keys[1], 'np', 65534);
    await shared.client.hset(keys[3], '65535', '0-1 p', '1', '0-2 p');
    const fetched = await a.backend.sessions.fetch('c12', c.epoch, 10, c.session!.position);
    expect(fetched.map((f) => f.delivery.message.payload.toString())).toEqual(['m0', 'm1', 'm2', 'm3', 'm4']);
    // [MQTT-2.2.1-3] a new id for each QoS > 0 PUBLISH: none of those in flight; QoS 0 gets none.
    expect(fetched.map((f) => f.packetId)).toEqual([65534, 2, 0, 3, 4]);
    expect(await shared.client.xlen(keys[2])).toBe(4); // the QoS 0 message left at fetch
    expect(await shared.client.hget(keys[1], 'np')).toBe('5');
    // One loop turn: three acknowledgements, then a PUBREC; one script, the acks in one run.
    for (const id of [65534, 2, 3]) a.backend.sessions.acknowledged('c12', c.epoch, id);
    await a.backend.sessions.releasing('c12', c.epoch, 4);
    expect((await shared.client.xrange(keys[2], '-', '+')).map(([id]) => id)).toEqual([fetched[4].position]);
    expect(await shared.client.hgetall(keys[3])).toEqual({
      '65535': '0-1 p',
      '1': '0-2 p',
      '4': `${fetched[4].position} r`,
    });
  });
});
