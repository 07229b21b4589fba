/**
 * Redis connections from a URL, for the three topologies ioredis supports:
 *   redis://[user:pass@]host:port[/db]  rediss://...            standalone (rediss: TLS)
 *   redis+sentinel://[:pass@]host:port[,host:port...]/masterName Sentinel
 *   redis+cluster://[:pass@]host:port[,host:port...]            Redis Cluster (seed nodes)
 * Commands wait for a reconnect instead of failing (a Redis blip must not lose QoS >= 1 traffic).
 */
import { type ChainableCommander, Cluster, Redis, type RedisOptions } from 'ioredis';
import { slotOf } from './keys.js';
import { SCRIPT_COMMANDS } from './scripts.js';

export type RedisClient = Redis | Cluster;
/** A client's pipeline or transaction (pipeline(), multi()). */
export type RedisPipeline = ChainableCommander;

export interface RedisTarget {
  kind: 'standalone' | 'sentinel' | 'cluster';
  create(): RedisClient;
  /** URL without credentials, for logs. */
  readonly display: string;
}

const common: RedisOptions = {
  // Never give up on a command because the connection dropped: it is re-sent after reconnect.
  maxRetriesPerRequest: null,
  enableAutoPipelining: true,
  retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 6), 2000),
  lazyConnect: true,
  // The Lua scripts, called by SHA, defined before the first command (scripts.ts).
  scripts: SCRIPT_COMMANDS,
};

function hosts(list: string): { host: string; port: number }[] {
  return list.split(',').map((hp) => {
    const i = hp.lastIndexOf(':');
    if (i < 0) return { host: hp, port: 6379 };
    const port = Number(hp.slice(i + 1));
    if (!Number.isInteger(port) || port < 1 || port > 65535)
      throw new Error(`bad port in redis address "${hp}"`);
    return { host: hp.slice(0, i), port };
  });
}

export function parseRedisUrl(url: string): RedisTarget {
  const m =
    /^(redis\+sentinel|redis\+cluster|rediss?):\/\/(?:([^:@/]*)(?::([^@/]*))?@)?([^/?]+)(?:\/([^?]*))?/.exec(
      url,
    );
  if (m === null)
    throw new Error('redis: expected redis://, rediss://, redis+sentinel:// or redis+cluster://');
  const [, scheme, user, pass, hostList, path] = m;
  const username = user ? decodeURIComponent(user) : undefined;
  const password = pass ? decodeURIComponent(pass) : undefined;
  const display = `${scheme}://${hostList}${path ? `/${path}` : ''}`;
  if (scheme === 'redis' || scheme === 'rediss') {
    return { kind: 'standalone', display, create: () => new Redis(url, common) };
  }
  const nodes = hosts(hostList);
  if (scheme === 'redis+sentinel') {
    const name = path;
    if (!name) throw new Error('redis: a redis+sentinel:// URL ends with /masterName');
    return {
      kind: 'sentinel',
      display,
      create: () =>
        new Redis({ ...common, sentinels: nodes, name, username, password, sentinelPassword: password }),
    };
  }
  return {
    kind: 'cluster',
    display,
    create: () =>
      new Cluster(nodes, {
        lazyConnect: true,
        enableAutoPipelining: true,
        // SSUBSCRIBE must reach the shard that owns the channel's slot; the single shared
        // subscriber connection (false) gets MOVED and the subscribe never completes.
        shardedSubscribers: true,
        clusterRetryStrategy: common.retryStrategy as (times: number) => number,
        scripts: SCRIPT_COMMANDS,
        // The scripts are called through the Cluster client, not its per-node connections.
        redisOptions: { ...common, scripts: undefined, username, password },
      }),
  };
}

/**
 * Connections subscribed to a pub/sub channel (sharded on Redis Cluster, asked of the shard that
 * owns the channel's slot). A process that died has none: Redis closed its connections at once.
 */
export async function subscribers(client: RedisClient, channel: string): Promise<number> {
  if (!(client instanceof Cluster)) {
    const reply = (await client.call('PUBSUB', 'NUMSUB', channel)) as [string, number];
    return Number(reply[1]);
  }
  const master = masterOf(client, channel);
  const node = client.nodes('master').find((n) => `${n.options.host}:${n.options.port}` === master);
  if (node === undefined) throw new Error(`no master known for ${channel}`);
  const reply = (await node.call('PUBSUB', 'SHARDNUMSUB', channel)) as [string, number];
  return Number(reply[1]);
}

/**
 * Calls `onClose` whenever a connection of `client` closes: the client's own on a single Redis; on
 * Redis Cluster also each node's, since the Cluster client emits `close` only once every node is
 * gone (a failover of one shard closes only that node's connection).
 */
export function onConnectionClose(client: RedisClient, onClose: () => void): void {
  client.on('close', onClose);
  if (client instanceof Cluster) {
    const watch = (node: Redis) => node.on('close', onClose);
    for (const n of client.nodes('all')) watch(n);
    client.on('+node', watch);
  }
}

/** On Redis Cluster, `host:port` of the master serving `key`'s slot as this client knows it. */
export function masterOf(client: RedisClient, key: string): string | undefined {
  if (!(client instanceof Cluster)) return undefined;
  return (client.slots[slotOf(key)] as string[] | undefined)?.[0];
}
