/**
 * The cluster under test: Redis (standalone, with or without AOF), one fault proxy between each node
 * and Redis and one between clients and each node, the broker nodes, and HAProxy over the client
 * proxies. Built from the test helpers (redis.ts, haproxy.ts, processes.ts).
 */
import { type Balancer, startHaproxy } from '../test/helpers/haproxy.js';
import { type ProcessRedisHandle, startRedisProcess } from '../test/helpers/redis.js';
import { BrokerNode, type Target } from './launcher.js';
import { type FaultProxy, startProxy } from './proxy.js';

export interface TopologyOptions {
  target: Target;
  nodes: number;
  /** AOF persistence (appendonly yes); false: a restart loses everything. */
  aof: boolean;
  livenessTimeoutMs: number;
  heartbeatMs: number;
}

export interface Topology {
  readonly opts: TopologyOptions;
  readonly redis: ProcessRedisHandle;
  readonly nodes: BrokerNode[];
  /** Node i ↔ Redis. */
  readonly redisProxies: FaultProxy[];
  /** Clients → node i (HAProxy's servers are these). */
  readonly clientProxies: FaultProxy[];
  readonly balancer: Balancer;
  readonly nodeUrls: string[];
  stop(): Promise<void>;
}

export async function startTopology(opts: TopologyOptions): Promise<Topology> {
  const redis = await startRedisProcess({ persistence: opts.aof });
  const redisProxies = await Promise.all(Array.from({ length: opts.nodes }, () => startProxy(redis.port)));
  const config = { cluster: { heartbeatMs: opts.heartbeatMs, livenessTimeoutMs: opts.livenessTimeoutMs } };
  const nodes = redisProxies.map(
    (p, i) =>
      new BrokerNode({
        target: opts.target,
        nodeId: String.fromCharCode(65 + i),
        redisUrl: `redis://127.0.0.1:${p.port}`,
        config,
      }),
  );
  // One at a time: two cores, and tsx compiles the sources at each start.
  for (const n of nodes) await n.start();
  const clientProxies = await Promise.all(nodes.map((n) => startProxy(n.port)));
  const balancer = await startHaproxy(
    clientProxies.map((p, i) => ({ nodeId: nodes[i].nodeId, port: p.port })),
    {
      check: true,
    },
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
