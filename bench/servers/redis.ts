/**
 * A fresh redis-server for one cluster-benchmark trial: its own process on a free loopback port,
 * no persistence (`--save ''`, `--appendonly no`), a temp working directory, stopped by PID. Plus
 * a small monitoring client: INFO sections parsed, `INFO commandstats` summed, stream lengths.
 * Started like test/helpers/redis.ts starts one for the cluster tests.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import {
  type BrokerExit,
  freePort,
  type RunningServer,
  type SpawnPrefix,
  startServerProcess,
} from './index.js';

export const REDIS_BIN = process.env.REDIS_SERVER_BIN ?? 'redis-server';

/** `redis-server --version`, e.g. "Redis server v=7.0.15 ...", or 'not found'. */
export function redisVersion(bin = REDIS_BIN): string {
  const r = spawnSync(bin, ['--version'], { encoding: 'utf8', timeout: 3000 });
  if (r.error !== undefined || r.status !== 0) return 'not found';
  const m = /v=(\S+)/.exec(r.stdout);
  return m === null ? r.stdout.trim() : `redis-server ${m[1]}`;
}

/** INFO output as key -> value, every section asked for. */
export type Info = Record<string, string>;

export interface RunningRedis {
  server: RunningServer;
  url: string;
  port: number;
  /** INFO for the given sections in one call (Redis 7 takes several). */
  info(...sections: string[]): Promise<Info>;
  /** XLEN of each key (0 for a missing key). */
  xlens(keys: string[]): Promise<number[]>;
  /** A plain command through the monitoring connection. */
  call(command: string, ...args: (string | number)[]): Promise<unknown>;
  stop(): Promise<BrokerExit>;
}

export interface StartRedisOptions {
  /** A directory of the run; the server gets a subdirectory, removed on stop. */
  workDir: string;
  prefix: SpawnPrefix;
  startTimeoutMs: number;
  bin?: string;
}

export async function startRedis(o: StartRedisOptions): Promise<RunningRedis> {
  const port = await freePort();
  const dir = join(o.workDir, `redis-${port}`);
  mkdirSync(dir, { recursive: true });
  const server = await startServerProcess({
    name: 'redis-server',
    command: o.bin ?? REDIS_BIN,
    args: [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--dir',
      dir,
      '--save',
      '',
      '--appendonly',
      'no',
      '--daemonize',
      'no',
      '--loglevel',
      'warning',
    ],
    port,
    prefix: o.prefix,
    startTimeoutMs: o.startTimeoutMs,
    cwd: dir,
  });
  const url = `redis://127.0.0.1:${port}`;
  const client = new Redis(url, { maxRetriesPerRequest: 1, connectTimeout: 3000, lazyConnect: true });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.ping();
  } catch (err) {
    client.disconnect();
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`redis-server on ${port} does not answer PING: ${(err as Error).message}`);
  }

  const info = (...sections: string[]) => readInfo(client, ...sections);

  return {
    server,
    url,
    port,
    info,
    xlens: async (keys) => Promise.all(keys.map(async (k) => Number(await client.xlen(k)))),
    call: (command, ...args) => client.call(command, ...args.map(String)),
    stop: async () => {
      client.disconnect();
      const exit = await server.stop();
      rmSync(dir, { recursive: true, force: true });
      return exit;
    },
  };
}

/** INFO for the given sections in one call, as field -> value. */
export async function readInfo(client: Redis, ...sections: string[]): Promise<Info> {
  const text = (await client.call('INFO', ...sections)) as string;
  const out: Info = {};
  for (const line of text.split('\r\n')) {
    const i = line.indexOf(':');
    if (i > 0 && !line.startsWith('#')) out[line.slice(0, i)] = line.slice(i + 1);
  }
  return out;
}

/**
 * `calls` per command from `INFO commandstats` (cmdstat_<name>:calls=N,usec=...). Commands run
 * inside Lua scripts (redis.call) are counted too, under their own names, besides the EVAL.
 */
export function commandCalls(info: Info): Map<string, number> {
  const out = new Map<string, number>();
  for (const [k, v] of Object.entries(info)) {
    if (!k.startsWith('cmdstat_')) continue;
    const m = /(?:^|,)calls=(\d+)/.exec(v);
    if (m !== null) out.set(k.slice('cmdstat_'.length), Number(m[1]));
  }
  return out;
}

/** after - before, per command, without the monitoring client's own INFO calls. */
export function commandDelta(before: Map<string, number>, after: Map<string, number>): Map<string, number> {
  const out = new Map<string, number>();
  for (const [name, n] of after) {
    if (name === 'info') continue;
    const d = n - (before.get(name) ?? 0);
    if (d > 0) out.set(name, d);
  }
  return out;
}

/** Commands Redis ran between two commandCalls readings, every name together (INFO excluded). */
export function commandsBetween(before: Map<string, number>, after: Map<string, number>): number {
  let n = 0;
  for (const d of commandDelta(before, after).values()) n += d;
  return n;
}
