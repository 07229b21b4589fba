/**
 * The cluster under test: Redis in one of four shapes, the broker nodes, and HAProxy over one fault
 * proxy per node on the client side. Standalone Redis (with or without AOF) also gets a fault proxy
 * between each node and Redis (partitions); Sentinel (a master, two replicas, three sentinels) and
 * Redis Cluster (three masters, three replicas) are reached directly: their clients learn the data
 * nodes' addresses from Redis itself, which a proxy in front cannot rewrite.
 * Built from the test helpers (redis.ts, redis-topologies.ts, haproxy.ts, processes.ts).
 */
import { type Balancer, startHaproxy } from '../test/helpers/haproxy.js';
import { type ProcessRedisHandle, startRedisProcess } from '../test/helpers/redis.js';
import {
  type RedisClusterHandle,
  type SentinelHandle,
  startRedisCluster,
  startSentinel,
} from '../test/helpers/redis-topologies.js';
import { BrokerNode, type Target } from './launcher.js';
import { type FaultProxy, startProxy } from './proxy.js';

export type RedisShape = 'standalone-aof' | 'standalone-nopersist' | 'sentinel' | 'cluster';

export interface TopologyOptions {
  target: Target;
  nodes: number;
  redis: RedisShape;
  livenessTimeoutMs: number;
  heartbeatMs: number;
}

/** Redis as the nemesis sees it: one handle per shape (the others undefined). */
export interface RedisUnderTest {
  readonly url: string;
  readonly standalone?: ProcessRedisHandle;
  readonly sentinel?: SentinelHandle;
  readonly cluster?: RedisClusterHandle;
  stop(): Promise<void>;
}

export interface Topology {
  readonly opts: TopologyOptions;
  readonly redis: RedisUnderTest;
  readonly nodes: BrokerNode[];
  /** Node i ↔ Redis (standalone shapes only; empty otherwise). */
  readonly redisProxies: FaultProxy[];
  /** Clients → node i (HAProxy's servers are these). */
  readonly clientProxies: FaultProxy[];
  readonly balancer: Balancer;
  readonly nodeUrls: string[];
  stop(): Promise<void>;
}

async function startRedis(shape: RedisShape): Promise<RedisUnderTest> {
  switch (shape) {
    case 'standalone-aof':
    case 'standalone-nopersist': {
      const standalone = await startRedisProcess({ persistence: shape === 'standalone-aof' });
      return { url: standalone.url, standalone, stop: () => standalone.stop() };
    }
    case 'sentinel': {
      const sentinel = await startSentinel({ replicas: 2 });
      return { url: sentinel.url, sentinel, stop: () => sentinel.stop() };
    }
    case 'cluster': {
      const cluster = await startRedisCluster();
      return { url: cluster.url, cluster, stop: () => cluster.stop() };
    }
  }
}

export async function startTopology(opts: TopologyOptions): Promise<Topology> {
  const redis = await startRedis(opts.redis);
  const standalone = redis.standalone;
  const redisProxies =
    standalone === undefined
      ? []
      : await Promise.all(Array.from({ length: opts.nodes }, () => startProxy(standalone.port)));
  const config = {
    cluster: {
      heartbeatMs: opts.heartbeatMs,
      livenessTimeoutMs: opts.livenessTimeoutMs,
      // guarantees.md, Sentinel and Redis Cluster rows: replicaAcks as those rows advise. Sentinel
      // with every replica (2): between a SENTINEL FAILOVER's promotion and the former master's
      // demotion, the other replica still follows the former master and would confirm writes its
      // demotion then discards. Redis Cluster with 1 (one replica per master).
      ...(opts.redis === 'sentinel'
        ? { replicaAcks: 2 }
        : opts.redis === 'cluster'
          ? { replicaAcks: 1 }
          : {}),
    },
  };
  const nodes = Array.from(
    { length: opts.nodes },
    (_, i) =>
      new BrokerNode({
        target: opts.target,
        nodeId: String.fromCharCode(65 + i),
        redisUrl: redisProxies[i] === undefined ? redis.url : `redis://127.0.0.1:${redisProxies[i].port}`,
        config,
      }),
  );
  // One at a time: two cores, and tsx compiles the sources at each start.
  for (const n of nodes) await n.start();
  const clientProxies = await Promise.all(nodes.map((n) => startProxy(n.port)));
  const balancer = await startHaproxy(
    clientProxies.map((p, i) => ({ nodeId: nodes[i].nodeId, port: p.port })),
    { check: true },
  );
  return {
    opts,
    redis,
    nodes,
    redisProxies,
    clientProxies,
    balancer,
    nodeUrls: clientProxies.map((p) => `mqtt://127.0.0.1:${p.port}`),
    async stop() {
      await balancer.stop();
      await Promise.all(nodes.map((n) => n.stop()));
      await Promise.all([...redisProxies, ...clientProxies].map((p) => p.close()));
      await redis.stop();
    },
  };
}
