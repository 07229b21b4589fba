/**
 * The one start-up of a cluster test file: a Redis (any: Testcontainers or a local redis-server; or a
 * redis-server process of its own for files that restart or kill it), a client on it, `nodes` Shoal
 * node processes (ids A, B, C, ...), and the MQTT clients the tests open, ended after each test. Every
 * process is killed after the file.
 *
 *   const { redis, admin, nodes: [A, B], clients } = clusterPerFile({ nodes: 2, config: CONFIG });
 *
 * What it returns is usable at module level: each value stands for the one made in beforeAll (read it
 * inside tests and hooks only).
 */
import type { Redis } from 'ioredis';
import type { MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { endAll, type ShoalNode, startCluster } from './cluster.js';
import { killAllTracked } from './processes.js';
import type { RawClient } from './raw-client.js';
import {
  type ProcessRedisHandle,
  type RedisHandle,
  redisClient,
  startRedis,
  startRedisProcess,
} from './redis.js';

export interface ClusterFixtureOptions<P extends boolean> {
  /** Nodes started before the file's tests (0: the tests start their own). */
  nodes: number;
  /** Config every node gets (the config file's shape). */
  config?: Record<string, unknown>;
  /** A redis-server process of the file's own (it can be killed and restarted), with or without persistence. */
  processRedis?: P extends true ? { persistence: boolean } : undefined;
}

export interface ClusterFixture<R extends RedisHandle> {
  readonly redis: R;
  /** A client on the Redis, for assertions on what the cluster keeps. */
  readonly admin: Redis;
  /** The nodes started for the file, in id order. */
  readonly nodes: readonly ShoalNode[];
  /** mqtt.js clients the tests opened: ended after each test. */
  readonly clients: MqttClient[];
  /** Raw clients the tests opened: destroyed after each test. */
  readonly raws: RawClient[];
}

export function clusterPerFile(o: ClusterFixtureOptions<false>): ClusterFixture<RedisHandle>;
export function clusterPerFile(o: ClusterFixtureOptions<true>): ClusterFixture<ProcessRedisHandle>;
export function clusterPerFile(o: ClusterFixtureOptions<boolean>): ClusterFixture<RedisHandle> {
  const made: { redis?: RedisHandle; admin?: Redis; nodes: ShoalNode[] } = { nodes: [] };
  const clients: MqttClient[] = [];
  const raws: RawClient[] = [];
  beforeAll(async () => {
    made.redis = o.processRedis === undefined ? await startRedis() : await startRedisProcess(o.processRedis);
    made.admin = redisClient(made.redis);
    if (o.nodes > 0) made.nodes.push(...(await startCluster(o.nodes, made.redis.url, o.config)));
  }, 60_000);
  afterEach(async () => {
    await endAll(...clients.splice(0));
    for (const r of raws.splice(0)) r.destroy();
  });
  afterAll(async () => {
    made.admin?.disconnect();
    await killAllTracked();
    await made.redis?.stop();
  });
  const nodes = Array.from({ length: o.nodes }, (_, i) => late(() => made.nodes[i], `node ${i}`));
  return {
    redis: late(() => made.redis, 'the Redis'),
    admin: late(() => made.admin, 'the Redis client'),
    nodes,
    clients,
    raws,
  };
}

/**
 * A stand-in for a value made later (in beforeAll): every property read goes to the real value, its
 * methods bound to it. Reading it before the value exists throws, naming it.
 */
function late<T extends object>(get: () => T | undefined, what: string): T {
  const real = (): T => {
    const v = get();
    if (v === undefined) throw new Error(`${what} is made in beforeAll: read it inside tests and hooks`);
    return v;
  };
  return new Proxy({} as T, {
    get(_target, key) {
      const target = real();
      const value = Reflect.get(target, key, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
    set(_target, key, value) {
      return Reflect.set(real(), key, value);
    },
    has(_target, key) {
      return Reflect.has(real(), key);
    },
    ownKeys() {
      return Reflect.ownKeys(real());
    },
    getOwnPropertyDescriptor(_target, key) {
      const d = Reflect.getOwnPropertyDescriptor(real(), key);
      return d === undefined ? undefined : { ...d, configurable: true };
    },
  });
}
