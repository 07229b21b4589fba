/**
 * Guarantee 9 of CLUSTER.md (reaping never hurts the living) against a real Redis: every reaping
 * step is fenced by the incarnation (run) the reaper judged dead, so a node that restarted with its
 * id in the middle of the reaping keeps its clients' sessions, wills and its inbox; and liveness is
 * judged on Redis' clock, so nodes whose clocks are skewed by 10 s neither reap nor get reaped.
 * Each test its own key prefix; time the nodes see is injected (FakeClock), so their timers run only
 * when the test advances them.
 */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RedisClusterBackend } from '../../src/backend/redis/backend.js';
import { Keys } from '../../src/backend/redis/keys.js';
import { RedisMembership } from '../../src/backend/redis/membership.js';
import type { ClusterHandlers, StoredWill } from '../../src/backend/types.js';
import { systemClock } from '../../src/clock.js';
import { createLogger } from '../../src/observability/logger.js';
import { waitFor } from '../helpers/cluster.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { type RedisHandle, redisClient, startRedis } from '../helpers/redis.js';

let redis: RedisHandle;
let client: Redis;
const started: RedisClusterBackend[] = [];

beforeAll(async () => {
  redis = await startRedis();
  client = redisClient(redis);
});

afterEach(async () => {
  await Promise.all(started.splice(0).map((b) => b.stop()));
});

afterAll(async () => {
  client?.disconnect();
  await redis?.stop();
});

interface Node {
  backend: RedisClusterBackend;
  clock: FakeClock;
  wills: StoredWill[];
  stateLost: number;
}

const HEARTBEAT_MS = 100;
const LIVENESS_MS = 400;

async function node(prefix: string, nodeId: string, clock = new FakeClock()): Promise<Node> {
  const n: Node = {
    backend: new RedisClusterBackend({
      url: redis.url,
      nodeId,
      clock,
      logger: createLogger('silent'),
      prefix,
      heartbeatMs: HEARTBEAT_MS,
      livenessTimeoutMs: LIVENESS_MS,
    }),
    clock,
    wills: [],
    stateLost: 0,
  };
  const handlers: ClusterHandlers = {
    deliver: () => undefined,
    release: () => undefined,
    publishWill: (w) => n.wills.push(w),
    readinessChanged: () => undefined,
    poke: () => undefined,
    refetch: () => undefined,
    dropped: () => undefined,
    stateLost: () => {
      n.stateLost++;
    },
    serves: () => true,
  };
  await n.backend.start(handlers);
  started.push(n.backend);
  return n;
}

const will = (payload: string): StoredWill => ({
  message: { topic: 'will', payload: Buffer.from(payload), qos: 1, retain: false },
  delaySeconds: 0,
});

describe('reaping is fenced by the incarnation', () => {
  it('(guarantee 9) a node restarted with its id while a reaper of its earlier run is at work keeps its sessions, wills and inbox', async () => {
    const prefix = `mb-${randomBytes(4).toString('hex')}`;
    const keys = new Keys(prefix);
    // Run 1 of node A: a client with a session and a will, then silent (its clock never advances).
    const a1 = await node(prefix, 'A', new FakeClock(Date.now() - 60_000));
    const c1 = await a1.backend.claim('c1', false, 60);
    await a1.backend.storeWill('c1', c1.epoch, will('w1'));
    const b = await node(prefix, 'B', new FakeClock(Date.now()));
    await waitFor(
      async () => !(await b.backend.liveNodes()).some((n) => n.nodeId === 'A'),
      5_000,
      'A silent past the liveness timeout',
    );

    // The reaper judged run 1 dead and removed the node; run 2 starts and takes clients before the
    // reaper's remaining steps (wills, sessions, inbox) run.
    let a2: Node | undefined;
    let c2Epoch = 0;
    const reaper = new RedisMembership({
      cmd: client,
      keys,
      nodeId: 'R',
      clock: systemClock,
      logger: createLogger('silent'),
      heartbeatMs: HEARTBEAT_MS,
      livenessMs: LIVENESS_MS,
      logMaxLen: 1000,
      connected: () => true,
      reapWills: async (node, fence) => {
        if (node === 'A') a2 = await startRun2();
        return b.backend.reapWills(node, fence);
      },
      reapSessions: (node, fence) => b.backend.sessions.reap(node, fence),
      handOver: async () => undefined,
    });
    const startRun2 = async (): Promise<Node> => {
      const n = await node(prefix, 'A');
      const c2 = await n.backend.claim('c2', false, 60);
      c2Epoch = c2.epoch;
      await n.backend.storeWill('c2', c2.epoch, will('w2'));
      await client.xadd(keys.inbox('A'), '*', 'marker', 'run2');
      return n;
    };
    await reaper.reapDead();
    expect(a2).toBeDefined();
    // The wills scheduled (delay 0) are due: run 1's is published once (by the reaper or by run 2,
    // which reaps what its earlier runs left), run 2's is not touched.
    for (const n of [b, a2]) n?.clock.advance(1_000);
    const published = () => [...b.wills, ...(a2?.wills ?? [])].map((w) => w.message.payload.toString());
    await waitFor(async () => published().includes('w1'), 5_000, "run 1's will");
    expect(await client.hget(keys.session('c1'), 'on')).toBe('');

    // Run 2's client: still served by A, its will stored and indexed, A's inbox kept.
    expect(await client.hget(keys.session('c2'), 'on')).toBe('A');
    expect(await client.hmget(keys.owner('c2'), 'node', 'epoch')).toEqual(['A', String(c2Epoch)]);
    expect(await client.hexists(keys.owner('c2'), 'will')).toBe(1);
    expect(await client.sismember(keys.nodeWills('A'), `c2\n${c2Epoch}`)).toBe(1);
    expect(await client.sismember(keys.nodeSessions('A'), 'c2')).toBe(1);
    expect(await client.xlen(keys.inbox('A'))).toBeGreaterThanOrEqual(1);
    expect(published().filter((p) => p === 'w1')).toHaveLength(1);
    expect(published()).not.toContain('w2');
  });
});

describe('liveness on Redis time', () => {
  /** A FakeClock `skewMs` away from the real time. */
  const skewed = (skewMs: number): FakeClock => new FakeClock(Date.now() + skewMs);

  it('(guarantee 9) nodes whose clocks are 10 s ahead and 10 s behind neither reap each other nor get reaped', async () => {
    const prefix = `mb-${randomBytes(4).toString('hex')}`;
    const keys = new Keys(prefix);
    const ahead = await node(prefix, 'A', skewed(10_000));
    const behind = await node(prefix, 'B', skewed(-10_000));
    const score = async (id: string) => Number(await client.zscore(keys.nodes, id));
    // Ten heartbeat rounds on both (each tick: heartbeat, then reaping), each waited for in Redis.
    for (let round = 0; round < 10; round++) {
      const before = [await score('A'), await score('B')];
      for (const n of [ahead, behind]) n.clock.advance(HEARTBEAT_MS);
      await waitFor(
        async () => (await score('A')) !== before[0] && (await score('B')) !== before[1],
        5_000,
        'both heartbeats',
      );
    }
    expect(await client.zscore(keys.nodes, 'A')).not.toBeNull();
    expect(await client.zscore(keys.nodes, 'B')).not.toBeNull();
    expect([ahead.stateLost, behind.stateLost]).toEqual([0, 0]);
    const live = (n: Node) => n.backend.liveNodes().then((l) => l.map((e) => e.nodeId).sort());
    expect(await live(ahead)).toEqual(['A', 'B']);
    expect(await live(behind)).toEqual(['A', 'B']);
  });
});
