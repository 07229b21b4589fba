import { existsSync } from 'node:fs';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { canConnect } from '../../helpers/ports.js';
import { killAllTracked, pidExists } from '../../helpers/processes.js';
import {
  dockerAvailable,
  type RedisHandle,
  redisClient,
  startRedis,
  startRedisProcess,
} from '../../helpers/redis.js';

const handles: RedisHandle[] = [];
const clients: Redis[] = [];

function track<T extends RedisHandle>(handle: T): T {
  handles.push(handle);
  return handle;
}

function client(handle: RedisHandle): Redis {
  const c = redisClient(handle);
  clients.push(c);
  return c;
}

/** Runs `fn` with REDIS_URL set to `value` (or unset), restoring the previous value afterwards. */
async function withRedisUrl<T>(value: string | undefined, fn: () => Promise<T>): Promise<T> {
  const saved = process.env.REDIS_URL;
  if (value === undefined) delete process.env.REDIS_URL;
  else process.env.REDIS_URL = value;
  try {
    return await fn();
  } finally {
    if (saved === undefined) delete process.env.REDIS_URL;
    else process.env.REDIS_URL = saved;
  }
}

afterEach(async () => {
  for (const c of clients.splice(0)) c.disconnect();
  await Promise.all(handles.splice(0).map((h) => h.stop()));
});

afterAll(async () => {
  await killAllTracked();
});

describe('startRedis', () => {
  it('starts a Redis that answers PING with PONG', async () => {
    const redis = track(await startRedis());
    expect(['env', 'container', 'process']).toContain(redis.kind);
    expect(await client(redis).ping()).toBe('PONG');
  });

  it('round-trips SET/GET', async () => {
    const redis = track(await startRedis());
    const c = client(redis);
    const key = `shoal:test:${process.pid}:${Date.now()}`;
    expect(await c.set(key, 'value-1')).toBe('OK');
    expect(await c.get(key)).toBe('value-1');
    await c.del(key);
  });

  it('honours REDIS_URL (kind env, same URL, stop is a no-op)', async () => {
    const real = track(await startRedisProcess());
    const viaEnv = await withRedisUrl(real.url, () => startRedis());
    expect(viaEnv.kind).toBe('env');
    expect(viaEnv.url).toBe(real.url);
    expect(viaEnv.host).toBe('127.0.0.1');
    expect(viaEnv.port).toBe(real.port);
    expect(viaEnv.restart).toBeUndefined();
    await viaEnv.stop();
    expect(pidExists(real.pid)).toBe(true);
    expect(await client(viaEnv).ping()).toBe('PONG');
  });

  it('gives concurrent callers different ports', async () => {
    const [a, b] = await withRedisUrl(undefined, () => Promise.all([startRedis(), startRedis()]));
    track(a);
    track(b);
    expect(a.port).not.toBe(b.port);
    const [ca, cb] = [client(a), client(b)];
    await ca.set('which', 'a');
    await cb.set('which', 'b');
    expect(await ca.get('which')).toBe('a');
    expect(await cb.get('which')).toBe('b');
  });

  it('skips Docker quickly when no engine is configured', async () => {
    const t0 = Date.now();
    const available = await dockerAvailable();
    expect(typeof available).toBe('boolean');
    if (!process.env.DOCKER_HOST && !existsSync('/var/run/docker.sock') && !available) {
      expect(Date.now() - t0).toBeLessThan(1_000);
    }
  });
});

describe('startRedisProcess', () => {
  it('stop() ends the process, frees the port and removes the temp dir', async () => {
    const redis = track(await startRedisProcess());
    const { pid, port, dir } = redis;
    expect(redis.kind).toBe('process');
    expect(pidExists(pid)).toBe(true);
    expect(existsSync(dir)).toBe(true);
    expect(await canConnect(port)).toBe(true);

    await redis.stop();

    expect(redis.process.running).toBe(false);
    expect(pidExists(pid)).toBe(false);
    expect(await canConnect(port)).toBe(false);
    expect(existsSync(dir)).toBe(false);
    await redis.stop(); // idempotent
  });

  it('restart() keeps the port and serves again', async () => {
    const redis = track(await startRedisProcess());
    const { port, pid: firstPid } = redis;
    const c = client(redis);
    expect(await c.ping()).toBe('PONG');

    await redis.restart();

    expect(redis.port).toBe(port);
    expect(redis.pid).not.toBe(firstPid);
    expect(pidExists(firstPid)).toBe(false);
    const fresh = client(redis);
    expect(await fresh.ping()).toBe('PONG');
  });

  it('restart() with persistence keeps the data', async () => {
    const redis = track(await startRedisProcess({ persistence: true }));
    const c = client(redis);
    expect(await c.config('GET', 'appendonly')).toEqual(['appendonly', 'yes']);
    await c.set('kept', 'yes');
    c.disconnect();
    await redis.restart();
    expect(await client(redis).get('kept')).toBe('yes');
  });

  it('without persistence a restart starts empty', async () => {
    const redis = track(await startRedisProcess());
    const c = client(redis);
    expect(await c.config('GET', 'appendonly')).toEqual(['appendonly', 'no']);
    expect(await c.config('GET', 'save')).toEqual(['save', '']);
    await c.set('lost', 'yes');
    c.disconnect();
    await redis.restart();
    expect(await client(redis).get('lost')).toBeNull();
  });

  it('passes extra args to redis-server', async () => {
    const redis = track(await startRedisProcess({ args: ['--maxmemory', '7mb'] }));
    expect(await client(redis).config('GET', 'maxmemory')).toEqual(['maxmemory', String(7 * 1024 * 1024)]);
  });

  it('restart() after stop() is refused', async () => {
    const redis = track(await startRedisProcess());
    await redis.stop();
    await expect(redis.restart()).rejects.toThrow(/stopped/);
  });

  it('names the package to install when redis-server is missing', async () => {
    await expect(startRedisProcess({ bin: '/nonexistent/redis-server' })).rejects.toThrow(
      /install the 'redis-server' package/i,
    );
  });
});
