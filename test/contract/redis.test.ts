/**
 * The RetainedStore contract against RedisRetainedStore on a real Redis (each test its own key
 * prefix), plus what only the Redis store promises: Redis holds the truth (a fresh store loads the
 * same messages from its snapshot) and the retained log replays every change to other replicas.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { decodeMessage, encodeMessage } from '../../src/backend/record.js';
import { RedisClusterBackend } from '../../src/backend/redis/backend.js';
import { Keys } from '../../src/backend/redis/keys.js';
import { RedisQuotaStore } from '../../src/backend/redis/quota-store.js';
import { RedisRetainedStore } from '../../src/backend/redis/retained-store.js';
import { scripts } from '../../src/backend/redis/scripts.js';
import { encodeWill, RedisWills } from '../../src/backend/redis/wills.js';
import { systemClock } from '../../src/clock.js';
import type { Message } from '../../src/message.js';
import { createLogger } from '../../src/observability/logger.js';
import { waitFor } from '../helpers/cluster.js';
import { idleHandlers } from '../helpers/cluster-handlers.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { redisPerFile } from '../helpers/redis.js';
import { clusterBackendContract } from './cluster-backend.contract.js';
import { nextWindow, quotaStoreContract } from './quota-store.contract.js';
import { retainedStoreContract } from './retained-store.contract.js';

const shared = redisPerFile();

const freshKeys = () => new Keys(`t-${randomBytes(5).toString('hex')}`);

retainedStoreContract('redis', (clock) => new RedisRetainedStore(shared.client, freshKeys(), clock, 1000));

const msg = (topic: string, payload: string, extra: Partial<Message> = {}): Message => ({
  topic,
  payload: Buffer.from(payload),
  qos: 1,
  retain: true,
  ...extra,
});

function collect(store: RedisRetainedStore, filter: string): string[] {
  const out: string[] = [];
  store.match(filter, (m) => out.push(`${m.topic}=${m.payload.toString()}`));
  return out.sort();
}

describe('RedisRetainedStore: Redis holds the truth', () => {
  it('a second store on the same keys loads what the first wrote (set, replace, delete), with properties and expiry', async () => {
    const keys = freshKeys();
    const clock = new FakeClock();
    const a = new RedisRetainedStore(shared.client, keys, clock, 1000);
    await a.set(msg('x/1', 'one'));
    await a.set(
      msg('x/2', 'two', { properties: { contentType: 'text/plain' }, expiresAt: clock.now() + 60_000 }),
    );
    await a.set(msg('x/1', 'uno'));
    await a.set(msg('x/3', 'three'));
    await a.set(msg('x/3', ''));
    expect(await shared.client.hlen(keys.retained(0))).toBe(2);

    const b = new RedisRetainedStore(shared.client, keys, clock, 1000);
    await b.loadSnapshot();
    expect(b.size).toBe(2);
    expect(collect(b, 'x/#')).toEqual(['x/1=uno', 'x/2=two']);
    const two = b.get('x/2');
    expect(two?.properties?.contentType).toBe('text/plain');
    expect(two?.expiresAt).toBe(clock.now() + 60_000);
    expect(two?.retain).toBe(true);
  });

  it('replaying the retained log onto an empty replica reproduces the store', async () => {
    const keys = freshKeys();
    const clock = new FakeClock();
    const a = new RedisRetainedStore(shared.client, keys, clock, 1000);
    await a.set(msg('r/a', '1'));
    await a.set(msg('r/b', '2'));
    await a.set(msg('r/a', ''));
    await a.set(msg('r/c', '3'));
    const replica = new RedisRetainedStore(shared.client, keys, clock, 1000);
    const entries = await shared.client.xrangeBuffer(keys.retainedLog(0), '-', '+');
    expect(entries.map(([, f]) => f[1].toString())).toEqual(['s', 's', 'd', 's']);
    for (const [, fields] of entries) {
      const f: Record<string, Buffer> = {};
      for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i].toString()] = fields[i + 1];
      replica.applyLog(f.op.toString(), f.t.toString(), f.m);
    }
    expect(collect(replica, '#')).toEqual(collect(a, '#'));
    expect(collect(replica, '#')).toEqual(['r/b=2', 'r/c=3']);
  });

  it('an expired message is removed from Redis too, unless it was replaced meanwhile', async () => {
    const keys = freshKeys();
    const clock = new FakeClock();
    const a = new RedisRetainedStore(shared.client, keys, clock, 1000);
    const stale = new RedisRetainedStore(shared.client, keys, clock, 1000);
    await a.set(msg('e/1', 'old', { expiresAt: clock.now() + 1000 }));
    await stale.loadSnapshot();
    await a.set(msg('e/1', 'new'));
    clock.advance(1000);
    // `stale` still holds the expired copy: expiring it must not delete the newer message in Redis.
    expect(stale.get('e/1')).toBeUndefined();
    // Same connection, so this reply comes after the expiry script's.
    expect((await shared.client.hgetBuffer(keys.retained(0), 'e/1')) === null).toBe(false);
    await a.set(msg('e/2', 'short', { expiresAt: clock.now() + 10 }));
    clock.advance(10);
    expect(collect(a, 'e/#')).toEqual(['e/1=new']);
    expect(await shared.client.hexists(keys.retained(0), 'e/2')).toBe(0);
  });
});

quotaStoreContract(
  'redis',
  (clock) => new RedisQuotaStore({ client: shared.client, keys: freshKeys(), clock }),
);

describe('Partitions (#13.6): one layout per data set, set by its first node', () => {
  const backend = (prefix: string, nodeId: string, partitions: number) =>
    new RedisClusterBackend({
      url: shared.redis.url,
      nodeId,
      clock: systemClock,
      logger: createLogger('silent'),
      prefix,
      partitions,
    });

  it('a node configured with another count refuses to start, naming cluster.partitions and leaving the others alone; 0 adopts the stored one', async () => {
    const prefix = `lay-${randomBytes(4).toString('hex')}`;
    const a = backend(prefix, 'A', 4);
    await a.start(idleHandlers());
    try {
      expect(await shared.client.get(`{${prefix}}:layout`)).toBe('4');
      const wrong = backend(prefix, 'A', 2); // even under A's own id
      await expect(wrong.start(idleHandlers())).rejects.toThrow(
        /cluster\.partitions is 2 but this Redis data set has 4 partitions/,
      );
      expect(await shared.client.hexists(`{${prefix}}:node-runs`, 'A')).toBe(1); // A still registered
      const b = backend(prefix, 'B', 0);
      await b.start(idleHandlers());
      try {
        // B writes retained messages where A reads them: the same 4 partitions.
        const topics = Array.from({ length: 20 }, (_, i) => `lay/${i}`);
        for (const t of topics) await b.retained.set(msg(t, t));
        const keys = new Keys(prefix, 4);
        const per = await Promise.all(keys.allPartitions().map((p) => shared.client.hlen(keys.retained(p))));
        expect(per.reduce((x, y) => x + y, 0)).toBe(20);
        expect(per.filter((n) => n > 0).length).toBeGreaterThan(1);
        await waitFor(() => a.retained.size === 20, 5000, "A's replica holding B's 20 retained messages");
        expect(collect(a.retained, 'lay/+')).toEqual(topics.map((t) => `${t}=${t}`).sort());
      } finally {
        await b.stop();
      }
    } finally {
      await a.stop();
    }
  });

  it('a data set from before partitions (node set, no layout) keeps its one partition', async () => {
    const prefix = `lay-${randomBytes(4).toString('hex')}`;
    await shared.client.hset(`{${prefix}}:node-runs`, 'OLD', 'run-old');
    await shared.client.hset(`{${prefix}}:retained`, 'old/t', encodeMessage(msg('old/t', 'kept')));
    await expect(backend(prefix, 'N', 4).start(idleHandlers())).rejects.toThrow(
      /cluster\.partitions is 4 but this Redis data set has 1 partitions/,
    );
    const n = backend(prefix, 'N', 0);
    await n.start(idleHandlers());
    try {
      expect(await shared.client.get(`{${prefix}}:layout`)).toBe('1');
      expect(n.retained.get('old/t')?.payload.toString()).toBe('kept');
    } finally {
      await n.stop();
    }
  });
});

describe('RedisQuotaStore: quotas shared by the nodes of a cluster', () => {
  /** Two nodes' stores on the same keys and clock (their flush timers run when the clock moves). */
  function twoNodes(ttlMs = 5000) {
    const keys = freshKeys();
    const clock = new FakeClock();
    const a = new RedisQuotaStore({ client: shared.client, keys, clock, connectionTtlMs: ttlMs });
    const b = new RedisQuotaStore({ client: shared.client, keys, clock, connectionTtlMs: ttlMs });
    return { clock, a, b };
  }

  it("counts a user's connections on every node against one max", async () => {
    const { a, b } = twoNodes();
    expect(await a.acquireConnection('alice', 'c1', 2)).toBe(true);
    expect(await b.acquireConnection('alice', 'c2', 2)).toBe(true);
    expect(await b.acquireConnection('alice', 'c3', 2)).toBe(false);
    expect(await a.acquireConnection('alice', 'c3', 2)).toBe(false);
    a.releaseConnection('alice', 'c1');
    expect(await b.acquireConnection('alice', 'c3', 2)).toBe(true);
    await Promise.all([a.stop(), b.stop()]);
  });

  it('lets the slots of a node that stopped renewing (died) lapse after the TTL; live ones are renewed', async () => {
    const { clock, a, b } = twoNodes(3000);
    b.start(); // only b renews: a is "dead"
    expect(await a.acquireConnection('alice', 'dead', 2)).toBe(true);
    expect(await b.acquireConnection('alice', 'live', 2)).toBe(true);
    expect(await b.acquireConnection('alice', 'c3', 2)).toBe(false);
    for (let i = 0; i < 4; i++) {
      clock.advance(1000);
      await b.flush(); // the renewal the interval started
    }
    expect(await b.acquireConnection('alice', 'c3', 2)).toBe(true); // a's slot lapsed
    expect(await b.acquireConnection('alice', 'c4', 2)).toBe(false); // b's own was renewed
    await Promise.all([a.stop(), b.stop()]);
  });

  it('enforces messages per minute across nodes once counts are flushed, with at most one interval of slack', async () => {
    const { clock, a, b } = twoNodes();
    nextWindow(clock);
    for (let i = 0; i < 6; i++) expect(a.takeMessage('alice', 10)).toBe(true);
    await a.flush(); // cluster total 6
    // b has not flushed yet: it admits on what it knows (the slack), then learns the total.
    for (let i = 0; i < 5; i++) expect(b.takeMessage('alice', 10)).toBe(true);
    await b.flush(); // cluster total 11 > 10
    expect(b.takeMessage('alice', 10)).toBe(false);
    expect(a.takeMessage('alice', 10)).toBe(true); // a knows 6: one more, flushed below
    await a.flush();
    expect(a.takeMessage('alice', 10)).toBe(false);
    expect(
      Number(await shared.client.get(new Keys(keysPrefix(a)).userMessages('alice', clock.now() / 60_000))),
    ).toBe(12);
    nextWindow(clock);
    expect(a.takeMessage('alice', 10)).toBe(true);
    expect(b.takeMessage('alice', 10)).toBe(true);
    await Promise.all([a.stop(), b.stop()]);
  });
});

function keysPrefix(store: RedisQuotaStore): string {
  return (store as unknown as { keys: Keys }).keys.prefix;
}

// Once on one partition (the layout a standalone Redis gets), once on four (#13.6: what a Redis
// Cluster gets, each partition's route and retained logs read by a reader of its own).
for (const partitions of [1, 4])
  clusterBackendContract(`redis, ${partitions} partition${partitions === 1 ? '' : 's'}`, async () => {
    const prefix = `cb-${randomBytes(4).toString('hex')}`;
    const logger = createLogger('silent');
    const make = (nodeId: string) =>
      new RedisClusterBackend({
        url: shared.redis.url,
        nodeId,
        clock: systemClock,
        logger,
        prefix,
        heartbeatMs: 200,
        livenessTimeoutMs: 2000,
        partitions,
      });
    const a = make('A');
    const b = make('B');
    return {
      a,
      b,
      async stop() {
        await a.stop();
        await b.stop();
      },
    };
  });

/** Two started backends, A and B, on one prefix; `delivered` collects B's (and A's) deliveries. */
async function busPair(prefix: string) {
  const logger = createLogger('silent');
  const delivered: string[] = [];
  const make = (nodeId: string) =>
    new RedisClusterBackend({ url: shared.redis.url, nodeId, clock: systemClock, logger, prefix });
  const a = make('A');
  const b = make('B');
  const handlers = idleHandlers({
    deliver: (e) => {
      delivered.push(e.message.payload.toString());
    },
  });
  await a.start(handlers);
  await b.start(handlers);
  return { a, b, delivered };
}

describe('RedisBus: a batch re-sent after a reconnect is delivered once', () => {
  it('the receiver skips an inbox entry whose sender and batch number it has seen', async () => {
    const prefix = `rb-${randomBytes(4).toString('hex')}`;
    const { a, b, delivered } = await busPair(prefix);
    try {
      await new Promise<void>((resolve, reject) =>
        a.bus.send('B', { message: msg('t', 'once', { qos: 1 }), direct: true }, (err) =>
          err ? reject(err) : resolve(),
        ),
      );
      // What ioredis does when a reconnect cut off the XADD's answer: the same entry again.
      const inbox = `${prefix}:inbox:{B}`;
      const [[, fields]] = (await shared.client.xrangeBuffer(inbox, '-', '+')) as [Buffer, Buffer[]][];
      await shared.client.xadd(inbox, '*', ...fields);
      await new Promise<void>((resolve, reject) =>
        a.bus.send('B', { message: msg('t', 'next', { qos: 1 }), direct: true }, (err) =>
          err ? reject(err) : resolve(),
        ),
      );
      await expect.poll(() => delivered, { timeout: 5_000 }).toEqual(['once', 'next']);
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  });

  it('(guarantee 2) batches that reach the inbox out of their sender’s order are all delivered (Redis Cluster retries)', async () => {
    const prefix = `ro-${randomBytes(4).toString('hex')}`;
    const { a, b, delivered } = await busPair(prefix);
    const inbox = `${prefix}:inbox:{B}`;
    // Each batch as it landed, read right after its send: the reader trims the inbox below the
    // last entry it read, so the newest entry is always still there (the whole stream is not).
    const entries: [Buffer, Buffer[]][] = [];
    try {
      for (const payload of ['first', 'second']) {
        await new Promise<void>((resolve, reject) =>
          a.bus.send('B', { message: msg('t', payload, { qos: 1 }), direct: true }, (err) =>
            err ? reject(err) : resolve(),
          ),
        );
        entries.push(
          ...((await shared.client.xrevrangeBuffer(inbox, '+', '-', 'COUNT', 1)) as [Buffer, Buffer[]][]),
        );
      }
      await expect.poll(() => delivered, { timeout: 5_000 }).toEqual(['first', 'second']);
      // A shard failover on Redis Cluster: ioredis retries each failed XADD on its own schedule,
      // so a sender's batch 2 can land before its batch 1. Replayed here as another sender's.
      const asSender = (fields: Buffer[]) =>
        fields.map((v, k) => (k > 0 && fields[k - 1].toString() === 'f' ? Buffer.from('X/retry') : v));
      expect(entries).toHaveLength(2);
      expect(entries[0][0].toString()).not.toBe(entries[1][0].toString());
      await shared.client.xadd(inbox, '*', ...asSender(entries[1][1]));
      await shared.client.xadd(inbox, '*', ...asSender(entries[0][1]));
      await expect.poll(() => delivered, { timeout: 5_000 }).toEqual(['first', 'second', 'second', 'first']);
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  });
});

describe('Route log: a node that missed trimmed entries resyncs (#11.2)', () => {
  it('(guarantee 8) route changes trimmed from the log before a node read them still reach its replica', async () => {
    const prefix = `rg-${randomBytes(4).toString('hex')}`;
    const keys = new Keys(prefix);
    // The cap is the cluster's (every node trims the logs to it): 10 here, as the burst below.
    const b = new RedisClusterBackend({
      url: shared.redis.url,
      nodeId: 'B',
      clock: systemClock,
      logger: createLogger('silent'),
      prefix,
      logMaxLen: 10,
    });
    await b.start(idleHandlers());
    try {
      // Node Z (registered, as a node is before it routes anything, and heartbeating for the
      // test's length) routes 3,000 filters in one burst, the log trimmed to about 10 entries as it
      // goes: B's reader, woken by the first, finds most of the rest gone when it reads again.
      await shared.client.hset(keys.nodeRuns, 'Z', 'run-z');
      await shared.client.zadd(keys.nodes, Date.now() + 3_600_000, 'Z');
      const burst = shared.client.pipeline();
      for (let i = 0; i < 3000; i++)
        scripts.routeAdd.queue(
          burst,
          [keys.nodeRoutes('Z', 0), keys.routeLog(0), keys.routeRuns(0)],
          'Z',
          `gap/${i}`,
          10,
          'z',
        );
      await burst.exec();
      expect(await shared.client.xlen(keys.routeLog(0))).toBeLessThan(3000);
      const routed = () => {
        let n = 0;
        for (let i = 0; i < 3000; i++) b.routes.matchNodes(`gap/${i}`, () => n++);
        return n;
      };
      await expect.poll(routed, { timeout: 5_000 }).toBe(3000);
    } finally {
      await b.stop();
    }
  });
});

describe('RedisBus: inboxes of nodes that are gone, and the inbox bound', () => {
  const logger = createLogger('silent');
  const handlers = idleHandlers();
  const sent = (b: RedisClusterBackend, node: string, payload: string) =>
    new Promise<void>((resolve, reject) =>
      b.bus.send(node, { message: msg('t', payload, { qos: 1, retain: false }), direct: true }, (err) =>
        err ? reject(err) : resolve(),
      ),
    );

  it('(guarantee 9) a batch for a stopped node does not make its inbox again (XADD NOMKSTREAM), and is accepted: nobody is left there to deliver to', async () => {
    const prefix = `ng-${randomBytes(4).toString('hex')}`;
    const a = new RedisClusterBackend({
      url: shared.redis.url,
      nodeId: 'A',
      clock: systemClock,
      logger,
      prefix,
    });
    const b = new RedisClusterBackend({
      url: shared.redis.url,
      nodeId: 'B',
      clock: systemClock,
      logger,
      prefix,
    });
    await a.start(handlers);
    await b.start(handlers);
    const inbox = `${prefix}:inbox:{B}`;
    try {
      expect(await shared.client.exists(inbox)).toBe(1);
      await b.stop();
      expect(await shared.client.exists(inbox)).toBe(0);
      await sent(a, 'B', 'late');
      expect(await shared.client.exists(inbox)).toBe(0);
      // A node that never existed (or was reaped): likewise.
      await sent(a, 'nobody', 'late');
      expect(await shared.client.exists(`${prefix}:inbox:{nobody}`)).toBe(0);
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  });

  it('(guarantee 10) past cluster.inboxMaxLength unread batches, a publisher is answered only once the reader trimmed below it; nothing is trimmed unread', async () => {
    const prefix = `nb-${randomBytes(4).toString('hex')}`;
    const a = new RedisClusterBackend({
      url: shared.redis.url,
      nodeId: 'A',
      clock: systemClock,
      logger,
      prefix,
      inboxMaxLen: 3,
    });
    await a.start(handlers);
    // B's inbox with no reader behind it (a stopped process): made as a node makes its own.
    const inbox = `${prefix}:inbox:{B}`;
    await shared.client.xadd(inbox, '*', 'o', 'test');
    try {
      for (let i = 0; i < 2; i++) await sent(a, 'B', `m${i}`);
      let answered = false;
      const held = sent(a, 'B', 'm2').then(() => {
        answered = true;
      });
      // The batch is in the inbox (4 entries, past 3), its publisher not answered.
      await expect.poll(() => shared.client.xlen(inbox), { timeout: 5_000 }).toBe(4);
      expect(answered).toBe(false);
      // What a reader does once it processed them: trims below the last one processed.
      const entries = await shared.client.xrange(inbox, '-', '+');
      await shared.client.xtrim(inbox, 'MINID', entries[3][0]);
      await held;
      expect(answered).toBe(true);
      expect((await shared.client.xrange(inbox, '-', '+')).length).toBe(1);
    } finally {
      await a.stop();
    }
  });
});

/**
 * What RedisRetainedStore.set sends: KEYS retained, retainedLog, retainedSeq (the writer's: node
 * run), retainedExpiry; ARGV topic, encoded, maxlen, the writer's sequence number, expiry.
 */
function retainedWrite(keys: Keys, writer: string, seq: number, topic: string, payload: string) {
  return scripts.retainedSet.run(
    shared.client,
    [keys.retained(0), keys.retainedLog(0), keys.retainedSeq(writer, 0), keys.retainedExpiry(0)],
    topic,
    encodeMessage(msg(topic, payload)),
    1000,
    seq,
    '',
  );
}

describe('retained-set.lua: a write ioredis re-sends after a reconnect', () => {
  it('(guarantee 5) last writer wins: W1, then W2 from another node, then W1 re-sent leaves W2', async () => {
    const keys = freshKeys();
    const write = (writer: string, seq: number, payload: string) =>
      retainedWrite(keys, writer, seq, 'a/t', payload);
    await write('A/run1', 1, 'W1');
    await write('B/run1', 1, 'W2');
    await write('A/run1', 1, 'W1'); // the answer to the first was lost with the connection
    const stored = await shared.client.hgetBuffer(keys.retained(0), 'a/t');
    expect(decodeMessage(stored!).payload.toString()).toBe('W2');
    // A later write of the same node is new, not a re-send: it wins.
    await write('A/run1', 2, 'W3');
    expect(decodeMessage((await shared.client.hgetBuffer(keys.retained(0), 'a/t'))!).payload.toString()).toBe(
      'W3',
    );
  });

  it('(guarantee 5) writes of one node that land out of order (Redis Cluster retries) are all applied; their re-sends are not', async () => {
    const keys = freshKeys();
    const write = (seq: number, topic: string, payload: string) =>
      retainedWrite(keys, 'A/run1', seq, topic, payload);
    // A shard failover: ioredis retries each failed script on its own schedule, so write 2 (topic
    // b) lands before write 1 (topic a). Neither was applied: both are.
    expect(await write(2, 'b/t', 'B1')).toBe(1);
    expect(await write(1, 'a/t', 'A1')).toBe(1);
    expect(decodeMessage((await shared.client.hgetBuffer(keys.retained(0), 'a/t'))!).payload.toString()).toBe(
      'A1',
    );
    await write(3, 'a/t', 'A2');
    expect(await write(1, 'a/t', 'A1')).toBe(0); // re-sent after its answer was lost
    expect(decodeMessage((await shared.client.hgetBuffer(keys.retained(0), 'a/t'))!).payload.toString()).toBe(
      'A2',
    );
  });
});

describe('Claims: a claim that timed out still hands over what it took (#11.6)', () => {
  it('(guarantee 4) the will a timed-out takeover claim took from Redis is published, not lost', async () => {
    const prefix = `lc-${randomBytes(4).toString('hex')}`;
    const logger = createLogger('silent');
    const wills: string[] = [];
    const make = (nodeId: string) =>
      new RedisClusterBackend({
        url: shared.redis.url,
        nodeId,
        clock: systemClock,
        logger,
        prefix,
        heartbeatMs: 100,
        livenessTimeoutMs: 400,
      });
    const a = make('A');
    const b = make('B');
    await a.start(idleHandlers());
    await b.start(idleHandlers({ publishWill: (w) => wills.push(w.message.payload.toString()) }));
    try {
      const id = `c-${randomBytes(4).toString('hex')}`;
      const { epoch } = await a.claim(id, true);
      await a.storeWill(id, epoch, { message: msg('will/c', 'gone', { retain: false }), delaySeconds: 0 });
      // Redis stalls longer than a claim waits (a slow script, a fork, a failover under way): the
      // claim gives up, but its script runs once Redis is back and takes the will with the session.
      await shared.client.call('CLIENT', 'PAUSE', 1_000, 'ALL');
      await expect(b.claim(id, true)).rejects.toThrow();
      await expect.poll(() => wills, { timeout: 5_000 }).toEqual(['gone']);
      expect(await a.takeWill(id, epoch)).toBe(false);
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  });
});

describe('Wills: a store Redis refused is made again', () => {
  it('(guarantee 4) a will whose store failed (e.g. MOVED during a Redis Cluster failover, ioredis#2075) is stored once Redis takes writes again', async () => {
    const keys = freshKeys();
    const owner = keys.owner('w1');
    await shared.client.hset(owner, 'node', 'A', 'epoch', '3');
    const wills = new RedisWills({
      cmd: shared.client,
      keys,
      nodeId: 'A',
      clock: systemClock,
      logger: createLogger('silent'),
      publish: () => undefined,
      release: () => undefined,
    });
    const will = { message: msg('w/gone', 'bye', { retain: false }), delaySeconds: 0 };
    // Writes refused (out of memory, no eviction) as a failing-over shard refuses them.
    const [, policy] = (await shared.client.config('GET', 'maxmemory-policy')) as string[];
    await shared.client.config('SET', 'maxmemory-policy', 'noeviction');
    await shared.client.config('SET', 'maxmemory', '1');
    let stored = false;
    try {
      const storing = wills.store('w1', 3, will).then(() => {
        stored = true;
      });
      await expect(shared.client.sadd(keys.nodeWills('A'), 'probe')).rejects.toThrow(/OOM/);
      await shared.client.config('SET', 'maxmemory', '0');
      await storing;
    } finally {
      await shared.client.config('SET', 'maxmemory', '0');
      await shared.client.config('SET', 'maxmemory-policy', policy);
    }
    expect(stored).toBe(true);
    expect(await shared.client.hgetBuffer(owner, 'will')).toEqual(encodeWill(will));
  });
});
