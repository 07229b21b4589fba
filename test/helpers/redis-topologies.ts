/**
 * Multi-process Redis topologies for cluster tests, all local `redis-server` processes on loopback:
 *   startRedisCluster() — a 6-node Redis Cluster (3 masters, 3 replicas).
 *   startSentinel()     — one master, one or more replicas and three sentinels monitoring `mymaster`.
 * Every process is started through spawnTracked (so killAllTracked() and the exit hook end it by
 * PID) and gets its own temporary directory, removed by stop(). Readiness is awaited by polling
 * what Redis itself reports (CLUSTER INFO, INFO replication, SENTINEL ...), never by fixed sleeps.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from './ports.js';
import { spawnTracked, type TrackedProcess } from './processes.js';

const LOOPBACK = '127.0.0.1';
const READY_LOG = /Ready to accept connections/;
const ADDR_IN_USE = /Address already in use|Failed listening on port/i;
const STOP_TIMEOUT_MS = 5_000;
const START_TIMEOUT_MS = 15_000;
export const SENTINEL_MASTER_NAME = 'mymaster';

/** One redis-server process (a data node or a sentinel). */
export interface RedisInstance {
  readonly host: string;
  readonly port: number;
  /** `host:port`. */
  readonly address: string;
  /** Its own temporary directory (removed by stop()). */
  readonly dir: string;
  /** The current process (a new one after crash()). */
  readonly pid: number;
  readonly process: TrackedProcess;
  /** Sends one command on a short-lived connection and returns the reply. */
  call(command: string, ...args: (string | number)[]): Promise<unknown>;
  /** kill -9; resolves once the process is gone (start() brings it back). */
  kill(): Promise<void>;
  /** After kill(): the same redis-server again, with its port, directory and arguments (nodes.conf kept). */
  start(): Promise<void>;
  /** SIGTERM, then SIGKILL after a bound; removes the directory. Idempotent. */
  stop(): Promise<void>;
}

export interface RedisClusterHandle {
  /** `redis+cluster://127.0.0.1:p1,127.0.0.1:p2,...` with every node as a seed. */
  readonly url: string;
  readonly nodes: readonly RedisInstance[];
  stop(): Promise<void>;
}

export interface FailoverOptions {
  /** Bound on each of the two waits (promotion, then demotion of the former master). Default 30 s. */
  timeoutMs?: number;
  /** Called once every sentinel reports the new master (before the former master is demoted). */
  onPromoted?: () => void;
}

export interface SentinelHandle {
  /** `redis+sentinel://127.0.0.1:s1,127.0.0.1:s2,127.0.0.1:s3/mymaster`. */
  readonly url: string;
  readonly masterName: string;
  /** The data node that is master now (one of the replicas after failover()). */
  readonly master: RedisInstance;
  /** The first data node that is a replica now. */
  readonly replica: RedisInstance;
  /** The data nodes that are replicas now. */
  readonly replicas: readonly RedisInstance[];
  readonly sentinels: readonly RedisInstance[];
  /**
   * SENTINEL FAILOVER, then waits until every sentinel reports the former replica as master, the
   * former replica says it is master, and the former master has been turned into a replica of it
   * (that is when Sentinel disconnects the clients of the former master, so they move over).
   */
  failover(options?: FailoverOptions): Promise<void>;
  stop(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// Processes

interface LaunchOptions {
  /** Name prefix for the process and its temp dir. */
  name: string;
  /** Needs `n` free ports; returns the redis-server arguments (may write a config file into `dir`). */
  ports?: number;
  /** Output line that says it listens; default "Ready to accept connections". */
  ready?: RegExp;
  args(dir: string, ports: number[]): Promise<string[]>;
}

/** Starts redis-server on freshly picked free ports, retrying a few times if one was taken meanwhile. */
async function launch(opts: LaunchOptions): Promise<RedisInstance> {
  const bin = process.env.REDIS_SERVER_BIN ?? 'redis-server';
  const dir = await mkdtemp(path.join(os.tmpdir(), `shoal-${opts.name}-`));
  try {
    for (let attempt = 1; ; attempt++) {
      const ports: number[] = [];
      for (let i = 0; i < (opts.ports ?? 1); i++) {
        let p = await freePort(LOOPBACK);
        while (ports.includes(p)) p = await freePort(LOOPBACK);
        ports.push(p);
      }
      const args = await opts.args(dir, ports);
      const spawnIt = async () => {
        const p = await spawnTracked(bin, args, { cwd: dir, name: `${opts.name}:${ports[0]}` });
        await p.waitForOutput(opts.ready ?? READY_LOG, START_TIMEOUT_MS).catch(async (err) => {
          await p.terminate(STOP_TIMEOUT_MS);
          throw err;
        });
        return p;
      };
      const proc = await spawnTracked(bin, args, { cwd: dir, name: `${opts.name}:${ports[0]}` });
      try {
        await proc.waitForOutput(opts.ready ?? READY_LOG, START_TIMEOUT_MS);
        return instance(ports[0], dir, proc, spawnIt);
      } catch (err) {
        await proc.terminate(STOP_TIMEOUT_MS);
        // Lost the race for a freshly picked port: pick others (a few times).
        if (ADDR_IN_USE.test(proc.output()) && attempt < 5) continue;
        throw err;
      }
    }
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

function instance(
  port: number,
  dir: string,
  first: TrackedProcess,
  relaunch: () => Promise<TrackedProcess>,
): RedisInstance {
  let stopping: Promise<void> | undefined;
  let proc = first;
  return {
    host: LOOPBACK,
    port,
    address: `${LOOPBACK}:${port}`,
    dir,
    get pid() {
      return proc.pid;
    },
    get process() {
      return proc;
    },
    call: (command, ...args) => callOnce(port, command, args),
    async kill() {
      proc.kill('SIGKILL');
      await proc.exited;
    },
    async start() {
      if (stopping !== undefined) throw new Error(`redis ${port} is stopped`);
      if (proc.running) throw new Error(`redis ${port} is running`);
      proc = await relaunch();
    },
    stop() {
      stopping ??= (async () => {
        await proc.terminate(STOP_TIMEOUT_MS);
        await rm(dir, { recursive: true, force: true });
      })();
      return stopping;
    },
  };
}

/** One command on a fresh connection that neither retries nor queues. */
async function callOnce(port: number, command: string, args: (string | number)[]): Promise<unknown> {
  const client = new Redis({
    host: LOOPBACK,
    port,
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    connectTimeout: 2_000,
    commandTimeout: 5_000,
  });
  client.on('error', () => undefined);
  try {
    await client.connect();
    return await client.call(command, ...args);
  } finally {
    client.disconnect();
  }
}

/** Polls `check` (spaced 50 → 250 ms) until it returns true; the error names what was awaited. */
async function until(what: string, timeoutMs: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let delay = 50;
  let last: unknown;
  for (;;) {
    try {
      if (await check()) return;
      last = undefined;
    } catch (err) {
      last = err;
    }
    if (Date.now() >= deadline) {
      const why = last === undefined ? '' : ` (last error: ${(last as Error).message ?? String(last)})`;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${why}`);
    }
    await new Promise((r) => setTimeout(r, Math.min(delay, Math.max(0, deadline - Date.now()))));
    delay = Math.min(delay * 2, 250);
  }
}

/** `key:value` lines of INFO / CLUSTER INFO as a record. */
function infoFields(text: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of String(text).split(/\r?\n/)) {
    const i = line.indexOf(':');
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1).trim();
  }
  return out;
}

/** A flat [k1, v1, k2, v2, ...] reply (SENTINEL MASTER / REPLICAS entries) as a record. */
function pairs(reply: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  const a = reply as unknown[];
  for (let i = 0; i + 1 < a.length; i += 2) out[String(a[i])] = String(a[i + 1]);
  return out;
}

async function stopAll(instances: readonly RedisInstance[]): Promise<void> {
  await Promise.all(instances.map((i) => i.stop()));
}

const COMMON_ARGS = [
  '--bind',
  LOOPBACK,
  '--save',
  '',
  '--appendonly',
  'no',
  '--daemonize',
  'no',
  // A (full) sync to a new replica starts at once instead of after the default 5 s delay.
  '--repl-diskless-sync-delay',
  '0',
];

// ---------------------------------------------------------------------------------------------
// Redis Cluster

export interface StartRedisClusterOptions {
  /** Bound on the whole start (processes, cluster create, cluster_state:ok). Default 45 s. */
  timeoutMs?: number;
}

/** Six cluster-enabled redis-servers joined into 3 masters + 3 replicas; resolves once every node says cluster_state:ok. */
export async function startRedisCluster(opts: StartRedisClusterOptions = {}): Promise<RedisClusterHandle> {
  const timeoutMs = opts.timeoutMs ?? 45_000;
  const started = Date.now();
  const left = () => Math.max(1_000, timeoutMs - (Date.now() - started));
  const nodes: RedisInstance[] = [];
  try {
    const launched = await Promise.allSettled(
      Array.from({ length: 6 }, () =>
        launch({
          name: 'redis-cluster',
          // The bus port is chosen explicitly: port + 10000 may be taken or beyond 65535.
          ports: 2,
          args: async (_dir, [port, busPort]) => [
            '--port',
            String(port),
            '--cluster-port',
            String(busPort),
            ...COMMON_ARGS,
            '--cluster-enabled',
            'yes',
            '--cluster-config-file',
            'nodes.conf',
            '--cluster-node-timeout',
            '2000',
          ],
        }),
      ),
    );
    for (const r of launched) if (r.status === 'fulfilled') nodes.push(r.value);
    const failed = launched.find((r) => r.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;

    const cli = await spawnTracked(
      process.env.REDIS_CLI_BIN ?? 'redis-cli',
      ['--cluster', 'create', ...nodes.map((n) => n.address), '--cluster-replicas', '1', '--cluster-yes'],
      { name: 'redis-cli --cluster create' },
    );
    const timer = setTimeout(() => cli.kill('SIGKILL'), left());
    const status = await cli.exited;
    clearTimeout(timer);
    if (status.code !== 0) {
      throw new Error(
        `redis-cli --cluster create failed (code ${status.code}, signal ${status.signal}):\n${cli.output()}`,
      );
    }
    await until('cluster_state:ok on every node', left(), async () => {
      const infos = await Promise.all(nodes.map((n) => n.call('CLUSTER', 'INFO').then(infoFields)));
      return infos.every(
        (f) => f.cluster_state === 'ok' && f.cluster_slots_ok === '16384' && f.cluster_known_nodes === '6',
      );
    });
    await until('every replica linked to its master', left(), async () => {
      const infos = await Promise.all(nodes.map((n) => n.call('INFO', 'replication').then(infoFields)));
      const replicas = infos.filter((f) => f.role === 'slave');
      return replicas.length === 3 && replicas.every((f) => f.master_link_status === 'up');
    });
  } catch (err) {
    await stopAll(nodes);
    throw err;
  }
  let stopping: Promise<void> | undefined;
  return {
    url: `redis+cluster://${nodes.map((n) => n.address).join(',')}`,
    nodes,
    stop() {
      stopping ??= stopAll(nodes);
      return stopping;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Sentinel

export interface StartSentinelOptions {
  /** Bound on the whole start. Default 30 s. */
  timeoutMs?: number;
  /** Replicas of the master. Default 1. */
  replicas?: number;
}

/** A master, its replicas and three sentinels (quorum 2); resolves once the sentinels see them all and each other. */
export async function startSentinel(opts: StartSentinelOptions = {}): Promise<SentinelHandle> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const replicaCount = opts.replicas ?? 1;
  const started = Date.now();
  const left = () => Math.max(1_000, timeoutMs - (Date.now() - started));
  const name = SENTINEL_MASTER_NAME;
  const all: RedisInstance[] = [];
  let master: RedisInstance;
  let replicas: RedisInstance[] = [];
  const sentinels: RedisInstance[] = [];
  try {
    master = await launch({
      name: 'redis-master',
      args: async (_d, [port]) => ['--port', String(port), ...COMMON_ARGS],
    });
    all.push(master);
    const masterPort = master.port;
    for (let i = 0; i < replicaCount; i++) {
      const replica = await launch({
        name: 'redis-replica',
        args: async (_d, [port]) => [
          '--port',
          String(port),
          ...COMMON_ARGS,
          '--replicaof',
          LOOPBACK,
          String(masterPort),
        ],
      });
      replicas.push(replica);
      all.push(replica);
    }
    // Start the sentinels only once the replicas are online: their first INFO to the master then
    // lists them (otherwise discovery waits for the next INFO, 10 s later).
    await until('the replicas online at the master', left(), async () => {
      const f = infoFields(await master.call('INFO', 'replication'));
      const online = Object.entries(f).filter(([k, v]) => /^slave\d+$/.test(k) && /state=online/.test(v));
      return f.connected_slaves === String(replicaCount) && online.length === replicaCount;
    });
    const launchedSentinels = await Promise.allSettled(
      [0, 1, 2].map(() =>
        launch({
          name: 'redis-sentinel',
          // A sentinel never prints "Ready to accept connections"; it monitors once it listens.
          ready: /\+monitor master/,
          args: async (dir, [port]) => {
            const conf = path.join(dir, 'sentinel.conf');
            await writeFile(
              conf,
              [
                `port ${port}`,
                `bind ${LOOPBACK}`,
                'daemonize no',
                `dir ${dir}`,
                `sentinel monitor ${name} ${LOOPBACK} ${masterPort} 2`,
                `sentinel down-after-milliseconds ${name} 1000`,
                `sentinel failover-timeout ${name} 3000`,
                '',
              ].join('\n'),
            );
            return [conf, '--sentinel'];
          },
        }),
      ),
    );
    for (const r of launchedSentinels) if (r.status === 'fulfilled') sentinels.push(r.value);
    all.push(...sentinels);
    const failed = launchedSentinels.find((r) => r.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;

    await until('the sentinels to see the master, the replicas and each other', left(), async () => {
      for (const s of sentinels) {
        const m = pairs(await s.call('SENTINEL', 'MASTER', name));
        if (m.port !== String(masterPort) || !/^master$/.test(m.flags ?? '')) return false;
        if (m['num-slaves'] !== String(replicaCount) || m['num-other-sentinels'] !== '2') return false;
        const seen = ((await s.call('SENTINEL', 'REPLICAS', name)) as unknown[]).map(pairs);
        for (const replica of replicas) {
          const r = seen.find((x) => x.port === String(replica.port));
          if (r === undefined || r.flags !== 'slave' || r['master-link-status'] !== 'ok') return false;
        }
      }
      return true;
    });
  } catch (err) {
    await stopAll(all);
    throw err;
  }

  let stopping: Promise<void> | undefined;
  const handle: SentinelHandle = {
    url: `redis+sentinel://${sentinels.map((s) => s.address).join(',')}/${name}`,
    masterName: name,
    get master() {
      return master;
    },
    get replica() {
      return replicas[0];
    },
    get replicas() {
      return replicas;
    },
    sentinels,
    async failover(options: FailoverOptions = {}) {
      const failoverTimeoutMs = options.timeoutMs ?? 30_000;
      const from = master;
      const reply = await sentinels[0].call('SENTINEL', 'FAILOVER', name);
      if (reply !== 'OK') throw new Error(`SENTINEL FAILOVER replied ${String(reply)}`);
      let to: RedisInstance | undefined;
      await until('every sentinel to report the same new master', failoverTimeoutMs, async () => {
        const ports = new Set<number>();
        for (const s of sentinels) {
          const addr = (await s.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', name)) as string[] | null;
          if (addr === null) return false;
          ports.add(Number(addr[1]));
        }
        if (ports.size !== 1) return false;
        to = replicas.find((r) => ports.has(r.port));
        if (to === undefined) return false;
        const role = (await to.call('ROLE')) as unknown[];
        return role[0] === 'master';
      });
      const promoted = to as RedisInstance;
      options.onPromoted?.();
      // Sentinel turns the former master into a replica some seconds later (it waits for four
      // hello periods); only then are its clients disconnected and sent to the new master. The
      // other replicas are pointed at the new master too.
      const rest = [from, ...replicas.filter((r) => r !== promoted)];
      await until(
        `${rest.map((r) => r.address).join(', ')} to replicate ${promoted.address}`,
        failoverTimeoutMs,
        async () => {
          for (const r of rest) {
            const f = infoFields(await r.call('INFO', 'replication'));
            if (
              f.role !== 'slave' ||
              f.master_port !== String(promoted.port) ||
              f.master_link_status !== 'up'
            ) {
              return false;
            }
          }
          return true;
        },
      );
      master = promoted;
      replicas = rest;
    },
    stop() {
      stopping ??= stopAll(all);
      return stopping;
    },
  };
  return handle;
}
