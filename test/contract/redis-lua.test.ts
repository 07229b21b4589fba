/**
 * The Lua wrapper (src/backend/redis/scripts.ts) on a real Redis: every script compiles and Redis
 * names it by the SHA the wrapper computed; calls go by EVALSHA once a connection has the script,
 * and a call Redis answers NOSCRIPT (after SCRIPT FLUSH) is made again as EVAL and answered; Buffer
 * replies stay binary; calls queued in a pipeline or a transaction work on a shared.client that ran none;
 * a shared.client connect.ts makes (auto-pipelining) has every script before its first command.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { parseRedisUrl } from '../../src/backend/redis/connect.js';
import { Keys } from '../../src/backend/redis/keys.js';
import { scripts } from '../../src/backend/redis/scripts.js';
import { redisClient, redisPerFile } from '../helpers/redis.js';

const shared = redisPerFile();

const freshKeys = () => new Keys(`lua-${randomBytes(5).toString('hex')}`);

/** `calls` of every command since the last CONFIG RESETSTAT (INFO commandstats), Lua's included. */
async function allCalls(): Promise<Record<string, number>> {
  const info = await shared.client.info('commandstats');
  return Object.fromEntries(
    [...info.matchAll(/^cmdstat_(\S+?):calls=(\d+)/gm)].map((m) => [m[1], Number(m[2])]),
  );
}

/** `calls` of EVAL and EVALSHA since the last CONFIG RESETSTAT (INFO commandstats). */
async function scriptCalls(): Promise<{ eval: number; evalsha: number }> {
  const info = await shared.client.info('commandstats');
  const calls = (name: string) =>
    Number(new RegExp(`^cmdstat_${name}:calls=(\\d+)`, 'm').exec(info)?.[1] ?? 0);
  return { eval: calls('eval'), evalsha: calls('evalsha') };
}

describe('Lua scripts through the wrapper', () => {
  it('every script compiles, and Redis names it by the SHA the wrapper computed', async () => {
    for (const s of Object.values(scripts)) {
      expect(await shared.client.script('LOAD', s.lua), s.file).toBe(s.sha);
    }
  });

  it('repeated calls are EVALSHA: the script text goes once per connection', async () => {
    const k = freshKeys();
    const own = redisClient(shared.redis);
    try {
      await shared.client.hset(k.owner('e'), 'epoch', '41');
      await shared.client.config('RESETSTAT');
      for (let i = 0; i < 5; i++) expect(await scripts.ownerEpoch.run(own, [k.owner('e')])).toBe(41);
      // The first call on the connection is EVAL (Redis may not have the script), the others EVALSHA.
      expect(await scriptCalls()).toEqual({ eval: 1, evalsha: 4 });
      expect(await shared.client.script('EXISTS', scripts.ownerEpoch.sha)).toEqual([1]);
    } finally {
      own.disconnect();
    }
  });

  it('after SCRIPT FLUSH (NOSCRIPT) a call is made again as EVAL and answered; EVALSHA after that', async () => {
    const k = freshKeys();
    const keys: [string, string, string] = [k.nodeRoutes('A', 0), k.routeLog(0), k.routeRuns(0)];
    const first = await scripts.routeAdd.run(shared.client, keys, 'A', 'a/+', 100, 'run-a');
    expect(first).toMatch(/^\d+-\d+$/);
    await shared.client.script('FLUSH');
    expect(await shared.client.script('EXISTS', scripts.routeAdd.sha)).toEqual([0]);
    await shared.client.config('RESETSTAT');
    // The route is there: the log's last entry, which is the one added.
    expect(await scripts.routeAdd.run(shared.client, keys, 'A', 'a/+', 100, 'run-a')).toBe(first);
    expect(await scriptCalls()).toEqual({ eval: 1, evalsha: 1 }); // the EVALSHA answered NOSCRIPT
    expect(await shared.client.script('EXISTS', scripts.routeAdd.sha)).toEqual([1]);
    const delKeys: [string, string] = [keys[0], keys[1]];
    expect(await scripts.routeDel.run(shared.client, delKeys, 'A', 'a/+', 100)).toBe(1);
    expect(await scriptCalls()).toEqual({ eval: 2, evalsha: 1 }); // route-del.lua: new on this connection
    expect(await scripts.routeDel.run(shared.client, delKeys, 'A', 'a/+', 100)).toBe(0);
    expect(await scriptCalls()).toEqual({ eval: 2, evalsha: 2 });
  });

  it('a script with Buffer replies answers binary data as it was stored', async () => {
    const k = freshKeys();
    const will = Buffer.from([0, 0xff, 0x80, 0x0a, 0x7f]);
    await shared.client.hset(k.owner('w'), 'epoch', '7');
    expect(await scripts.willSet.run(shared.client, [k.owner('w')], '7', will, '0')).toBe(1);
    const taken = await scripts.willTake.run(shared.client, [k.owner('w')], '7');
    expect(Buffer.isBuffer(taken) && taken.equals(will)).toBe(true);
    expect(await scripts.willTake.run(shared.client, [k.owner('w')], '7')).toBeNull(); // taken once
  });

  it('calls queued in a pipeline and in a transaction, on a shared.client that ran no script yet', async () => {
    const k = freshKeys();
    const keys: [string, string] = [k.nodeRoutes('P', 0), k.routeLog(0)];
    const fresh = redisClient(shared.redis);
    try {
      const pipeline = fresh.pipeline();
      for (const f of ['p/1', 'p/2', 'p/3'])
        scripts.routeAdd.queue(pipeline, [...keys, k.routeRuns(0)], 'P', f, 100, 'run-p');
      const added = (await pipeline.exec()) ?? [];
      expect(added.map(([err]) => err)).toEqual([null, null, null]);
      expect(await shared.client.scard(k.nodeRoutes('P', 0))).toBe(3);

      const multi = fresh.multi();
      scripts.routeDel.queue(multi, keys, 'P', 'p/1', 100);
      scripts.routeDel.queue(multi, keys, 'P', 'p/1', 100);
      expect(await multi.exec()).toEqual([
        [null, 1],
        [null, 0],
      ]);
      expect(await shared.client.scard(k.nodeRoutes('P', 0))).toBe(2);
    } finally {
      fresh.disconnect();
    }
  });

  it('a shared.client connect.ts makes has the scripts from the start: one auto-pipelined with other commands works', async () => {
    const k = freshKeys();
    const made = parseRedisUrl(shared.redis.url).create();
    try {
      await made.connect();
      // The first command of the tick makes the auto-pipeline; the script call joins it.
      const [, added, routes] = await Promise.all([
        made.set(k.inboxRun('N'), 'run'),
        scripts.routeAdd.run(
          made,
          [k.nodeRoutes('N', 0), k.routeLog(0), k.routeRuns(0)],
          'N',
          'n/+',
          100,
          'r',
        ),
        made.scard(k.nodeRoutes('N', 0)),
      ]);
      expect(added).toMatch(/^\d+-\d+$/);
      expect(routes).toBe(1);
    } finally {
      made.disconnect();
    }
  });

  it('(#13.7) a reaper removes a node with 50,000 routes in one short step: its set is unlinked, not emptied a field at a time', async () => {
    const k = freshKeys();
    const set = k.nodeRoutes('R', 0);
    for (let i = 0; i < 50; i++)
      await shared.client.sadd(set, ...Array.from({ length: 1000 }, (_, j) => `r/${i}/${j}`));
    await shared.client.hset(k.routeRuns(0), 'R', 'run-r');
    await shared.client.hset(k.nodeRuns, 'R', 'run-r');
    await shared.client.zadd(k.nodes, 0, 'R'); // its last heartbeat long ago
    await shared.client.config('RESETSTAT');
    expect(
      await scripts.nodeRemove.run(shared.client, [k.nodes, k.nodeRuns, k.reaping], 'R', 'run-r', 1_000),
    ).toBe(1);
    expect(
      await scripts.routeNodeDrop.run(shared.client, [set, k.routeLog(0), k.routeRuns(0)], 'R', 100, 'run-r'),
    ).toBe(50_000);
    const calls = await allCalls();
    // Two scripts and a handful of calls inside them, whatever the node's number of routes (before:
    // one HDEL per route, 50,000 calls in one script while Redis served nobody else).
    expect(Object.values(calls).reduce((a, b) => a + b, 0)).toBeLessThan(20);
    expect(calls.unlink).toBe(1);
    expect(await shared.client.exists(set)).toBe(0);
    expect(await shared.client.hget(k.nodeRuns, 'R')).toBeNull();
    expect(await shared.client.hget(k.routeRuns(0), 'R')).toBeNull();
    expect(await shared.client.hget(k.reaping, 'R')).toBe('run-r');
    const [[, fields]] = await shared.client.xrevrange(k.routeLog(0), '+', '-', 'COUNT', 1);
    expect(fields).toEqual(['op', 'n', 'n', 'R', 'f', '']); // replicas drop the node's routes
  });

  it('[guarantee 9] a reaper of an earlier run leaves the routes a later run of the node wrote in a partition since', async () => {
    const k = freshKeys();
    const keys: [string, string, string] = [k.nodeRoutes('R', 0), k.routeLog(0), k.routeRuns(0)];
    await scripts.routeAdd.run(shared.client, keys, 'R', 'old/+', 100, 'run-1');
    // The node was paused past the liveness timeout, came back as run-2 and routed again before the
    // reaper of run-1 got to this partition.
    await scripts.routeAdd.run(shared.client, keys, 'R', 'new/+', 100, 'run-2');
    const tail = await shared.client.xlen(k.routeLog(0));
    expect(await scripts.routeNodeDrop.run(shared.client, keys, 'R', 100, 'run-1')).toBe(-1);
    expect((await shared.client.smembers(k.nodeRoutes('R', 0))).sort()).toEqual(['new/+', 'old/+']);
    expect(await shared.client.xlen(k.routeLog(0))).toBe(tail); // no op n for the replicas
    // The run it judged dead: gone. The node itself ('') drops whatever is there.
    expect(await scripts.routeNodeDrop.run(shared.client, keys, 'R', 100, 'run-2')).toBe(2);
    await scripts.routeAdd.run(shared.client, keys, 'R', 'again/+', 100, 'run-3');
    expect(await scripts.routeNodeDrop.run(shared.client, keys, 'R', 100, '')).toBe(1);
    expect(await shared.client.exists(k.nodeRoutes('R', 0))).toBe(0);
  });
});
