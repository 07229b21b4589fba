import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll } from 'vitest';
import { freePort } from './ports.js';
import { spawnTracked, type TrackedProcess } from './processes.js';

export interface RedisHandle {
  url: string;
  host: string;
  port: number;
  kind: 'env' | 'container' | 'process';
  stop(): Promise<void>;
  restart?(): Promise<void>;
}

export interface StartRedisOptions {
  /** Extra redis-server arguments, appended after the defaults (ignored for kind 'env'). */
  args?: string[];
  /** Enable AOF persistence (appendonly yes) in the server's data directory. Default false. */
  persistence?: boolean;
}

export interface StartRedisProcessOptions extends StartRedisOptions {
  /** Port to listen on; default: a free loopback port (with retry if it is taken meanwhile). */
  port?: number;
  /** redis-server binary; default $REDIS_SERVER_BIN or 'redis-server' from PATH. */
  bin?: string;
  /** Bound on start-up (log line + PING). Default 15 s. */
  readyTimeoutMs?: number;
}

export interface ProcessRedisHandle extends RedisHandle {
  kind: 'process';
  /** Temp working/data directory (removed by stop()). */
  readonly dir: string;
  /** PID of the current redis-server process (changes on restart()). */
  readonly pid: number;
  /** The current redis-server process. */
  readonly process: TrackedProcess;
  restart(): Promise<void>;
}

const LOOPBACK = '127.0.0.1';
const READY_LOG = /Ready to accept connections/;
const ADDR_IN_USE = /Address already in use|Failed listening on port/i;
const STOP_TIMEOUT_MS = 5_000;
const DOCKER_PROBE_TIMEOUT_MS = 3_000;
const REDIS_IMAGE = 'redis:7-alpine';

function redisArgs(opts: StartRedisOptions): string[] {
  return [
    '--save',
    '',
    '--appendonly',
    opts.persistence ? 'yes' : 'no',
    '--daemonize',
    'no',
    ...(opts.args ?? []),
  ];
}

/**
 * Starts (or finds) a Redis for a test, in this order:
 *  (a) REDIS_URL is set → use it (kind 'env'; stop() is a no-op, no restart()).
 *  (b) a Docker engine answers → Testcontainers redis:7-alpine (kind 'container'; no restart(),
 *      since a restarted container may be mapped to another host port).
 *  (c) otherwise a local redis-server process on a free loopback port (kind 'process').
 * Set SHOAL_TEST_NO_DOCKER=1 to skip (b). Tests that must kill/restart Redis use startRedisProcess().
 */
export async function startRedis(opts: StartRedisOptions = {}): Promise<RedisHandle> {
  const envUrl = process.env.REDIS_URL;
  if (envUrl) return envHandle(envUrl);
  if (await dockerAvailable()) return startRedisContainer(opts);
  return startRedisProcess(opts);
}

/** An ioredis client for the handle (connects immediately; one retry per request). */
export function redisClient(handle: Pick<RedisHandle, 'url'>): Redis {
  return new Redis(handle.url, { lazyConnect: false, maxRetriesPerRequest: 1 });
}

// ---------------------------------------------------------------------------------------------
// (a) REDIS_URL

function envHandle(url: string): RedisHandle {
  const parsed = new URL(url);
  return {
    url,
    host: parsed.hostname || LOOPBACK,
    port: parsed.port ? Number(parsed.port) : 6379,
    kind: 'env',
    stop: async () => {},
  };
}

// ---------------------------------------------------------------------------------------------
// (b) Docker / Testcontainers

let dockerProbe: Promise<boolean> | undefined;

/** Cheap, file-system-only check for a configured Docker endpoint (the places Testcontainers looks). */
function dockerEndpointConfigured(): boolean {
  if (process.env.DOCKER_HOST || process.env.TESTCONTAINERS_DOCKER_SOCKET_OVERRIDE) return true;
  const home = os.homedir();
  try {
    const props = readFileSync(path.join(home, '.testcontainers.properties'), 'utf8');
    if (/^\s*(docker\.host|tc\.host)\s*=/m.test(props)) return true;
  } catch {
    // No properties file.
  }
  const sockets = ['/var/run/docker.sock', path.join(home, '.docker', 'run', 'docker.sock')];
  sockets.push(path.join(home, '.docker', 'desktop', 'docker.sock'));
  if (process.env.XDG_RUNTIME_DIR) sockets.push(path.join(process.env.XDG_RUNTIME_DIR, 'docker.sock'));
  if (typeof process.getuid === 'function') sockets.push(`/run/user/${process.getuid()}/docker.sock`);
  return sockets.some((s) => existsSync(s));
}

/**
 * Whether a Docker engine answers. With no endpoint configured this returns false after a few
 * existsSync calls, without loading Testcontainers. Otherwise Testcontainers'
 * getContainerRuntimeClient() is raced against a short timeout. The result is cached per process.
 */
export function dockerAvailable(): Promise<boolean> {
  dockerProbe ??= (async () => {
    if (process.env.SHOAL_TEST_NO_DOCKER === '1') return false;
    if (!dockerEndpointConfigured()) return false;
    let timer: NodeJS.Timeout | undefined;
    try {
      const { getContainerRuntimeClient } = await import('testcontainers');
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error('docker probe timed out')), DOCKER_PROBE_TIMEOUT_MS);
        timer.unref();
      });
      await Promise.race([getContainerRuntimeClient(), timeout]);
      return true;
    } catch {
      return false;
    } finally {
      clearTimeout(timer);
    }
  })();
  return dockerProbe;
}

async function startRedisContainer(opts: StartRedisOptions): Promise<RedisHandle> {
  const { GenericContainer, Wait } = await import('testcontainers');
  const container = await new GenericContainer(REDIS_IMAGE)
    .withExposedPorts(6379)
    .withCommand(['redis-server', ...redisArgs(opts)])
    .withWaitStrategy(Wait.forLogMessage(READY_LOG))
    .withStartupTimeout(120_000)
    .start();
  const host = container.getHost();
  const port = container.getMappedPort(6379);
  try {
    await waitForPing(host, port, 15_000);
  } catch (err) {
    await container.stop().catch(() => {});
    throw err;
  }
  let stopping: Promise<void> | undefined;
  return {
    url: `redis://${host}:${port}`,
    host,
    port,
    kind: 'container',
    stop: () => {
      stopping ??= container.stop().then(() => undefined);
      return stopping;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// (c) local redis-server process

class PortInUseError extends Error {}

/** Always a local redis-server process (for tests that kill or restart Redis). */
export async function startRedisProcess(opts: StartRedisProcessOptions = {}): Promise<ProcessRedisHandle> {
  const bin = opts.bin ?? process.env.REDIS_SERVER_BIN ?? 'redis-server';
  const readyTimeoutMs = opts.readyTimeoutMs ?? 15_000;
  const dir = await mkdtemp(path.join(os.tmpdir(), 'shoal-redis-'));

  const launch = async (port: number): Promise<TrackedProcess> => {
    const args = ['--port', String(port), '--bind', LOOPBACK, '--dir', dir, ...redisArgs(opts)];
    let child: TrackedProcess;
    try {
      child = await spawnTracked(bin, args, { cwd: dir, name: `redis-server:${port}` });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new Error(
          `redis-server not found (tried '${bin}'). Install the 'redis-server' package ` +
            `(apt-get install -y redis-server redis-tools; macOS: brew install redis), ` +
            'or set REDIS_URL to a running Redis, or set REDIS_SERVER_BIN.',
          { cause: err },
        );
      }
      throw err;
    }
    try {
      await child.waitForOutput(READY_LOG, readyTimeoutMs);
      await waitForPing(LOOPBACK, port, readyTimeoutMs);
      return child;
    } catch (err) {
      await child.terminate(STOP_TIMEOUT_MS);
      if (ADDR_IN_USE.test(child.output()))
        throw new PortInUseError(`port ${port} is in use`, { cause: err });
      throw err;
    }
  };

  const launchOnSomePort = async (): Promise<[number, TrackedProcess]> => {
    for (let attempt = 1; ; attempt++) {
      const candidate = opts.port ?? (await freePort(LOOPBACK));
      try {
        return [candidate, await launch(candidate)];
      } catch (err) {
        // Lost the race for a freshly picked port: pick another one (a few times).
        if (!(err instanceof PortInUseError) || opts.port !== undefined || attempt >= 5) throw err;
      }
    }
  };

  let port: number;
  let proc: TrackedProcess;
  try {
    [port, proc] = await launchOnSomePort();
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }

  let stopping: Promise<void> | undefined;
  let restarting: Promise<void> | undefined;

  const handle: ProcessRedisHandle = {
    url: `redis://${LOOPBACK}:${port}`,
    host: LOOPBACK,
    port,
    kind: 'process',
    dir,
    get pid() {
      return proc.pid;
    },
    get process() {
      return proc;
    },
    stop() {
      stopping ??= (async () => {
        await restarting?.catch(() => {});
        await proc.terminate(STOP_TIMEOUT_MS);
        await rm(dir, { recursive: true, force: true });
      })();
      return stopping;
    },
    restart() {
      if (stopping) return Promise.reject(new Error(`redis on port ${port} was stopped; cannot restart`));
      const previous = restarting?.catch(() => {});
      restarting = (async () => {
        await previous;
        await proc.terminate(STOP_TIMEOUT_MS);
        try {
          proc = await launch(port);
        } catch (err) {
          if (err instanceof PortInUseError) {
            throw new Error(`restart: port ${port} was taken by another process while Redis was down`, {
              cause: err,
            });
          }
          throw err;
        }
      })();
      return restarting;
    },
  };
  return handle;
}

/** Retries PING (fresh connection each time, short backoff) until PONG or the deadline. */
async function waitForPing(host: string, port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let delay = 25;
  let lastError: unknown;
  while (Date.now() < deadline) {
    const client = new Redis({
      host,
      port,
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
      connectTimeout: Math.max(100, Math.min(2_000, deadline - Date.now())),
    });
    client.on('error', (err) => {
      lastError = err;
    });
    try {
      await client.connect();
      const reply = await client.ping();
      if (reply === 'PONG') return;
      lastError = new Error(`unexpected PING reply ${reply}`);
    } catch (err) {
      lastError = err;
    } finally {
      client.disconnect();
    }
    await new Promise((r) => setTimeout(r, Math.min(delay, Math.max(0, deadline - Date.now()))));
    delay = Math.min(delay * 2, 250);
  }
  throw new Error(`Redis at ${host}:${port} did not answer PING within ${timeoutMs} ms`, {
    cause: lastError,
  });
}

/**
 * One Redis (and a client on it) for a whole test file: started before its tests, stopped after.
 * Read `redis` and `client` inside tests (they are set once beforeAll has run).
 */
export function redisPerFile(): { readonly redis: RedisHandle; readonly client: Redis } {
  const shared = {} as { redis: RedisHandle; client: Redis };
  beforeAll(async () => {
    shared.redis = await startRedis();
    shared.client = redisClient(shared.redis);
  });
  afterAll(async () => {
    shared.client?.disconnect();
    await shared.redis?.stop();
  });
  return shared;
}
