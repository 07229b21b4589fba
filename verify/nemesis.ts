/**
 * The nemesis: applies one fault class on a seeded schedule for a segment, recording each fault's
 * start and end in the history. Every fault is healed before it returns (nodes restarted or
 * resumed, proxies back to pass), so the segment ends on a whole cluster.
 */
import type { History } from './history.js';
import type { FaultClass } from './promises.js';
import type { Rng } from './rng.js';
import type { RedisShape, Topology } from './topology.js';
import type { Workload } from './workload.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export interface NemesisContext {
  topo: Topology;
  workload: Workload;
  history: History;
  rng: Rng;
}

type Fault = (ctx: NemesisContext, fault: FaultClass) => Promise<void>;

const between = (rng: Rng, lo: number, hi: number) => lo + rng.int(hi - lo + 1);

async function recorded(ctx: NemesisContext, fault: FaultClass, detail: string, body: () => Promise<void>) {
  ctx.history.add({ type: 'fault', fault, phase: 'start', detail });
  try {
    await body();
  } finally {
    ctx.history.add({ type: 'fault', fault, phase: 'end', detail });
  }
}

const pickNode = (ctx: NemesisContext) => ctx.rng.int(ctx.topo.nodes.length);

/** Blackhole a proxy for `ms`, then cut its connections (bytes were dropped) and pass again. */
async function partition(proxy: Topology['redisProxies'][number], ms: number): Promise<void> {
  proxy.mode = { kind: 'blackhole' };
  await sleep(ms);
  proxy.reset();
  proxy.mode = { kind: 'pass' };
}

const FAULTS: Partial<Record<FaultClass, Fault>> = {
  none: async () => sleep(3_000),
  kill: async (ctx, f) => {
    const i = pickNode(ctx);
    const down = between(ctx.rng, 500, 2_000);
    await recorded(ctx, f, `kill -9 node ${i}, restart after ${down} ms`, async () => {
      await ctx.topo.nodes[i].kill();
      await sleep(down);
      await ctx.topo.nodes[i].start();
    });
  },
  'pause-short': async (ctx, f) => pause(ctx, f, Math.round(ctx.topo.opts.livenessTimeoutMs * 0.5)),
  'pause-long': async (ctx, f) => pause(ctx, f, ctx.topo.opts.livenessTimeoutMs * 2 + 500),
  'partition-short': async (ctx, f) => {
    const i = pickNode(ctx);
    const ms = Math.round(ctx.topo.opts.livenessTimeoutMs * 0.5);
    await recorded(ctx, f, `node ${i} cut from Redis for ${ms} ms`, () =>
      partition(ctx.topo.redisProxies[i], ms),
    );
  },
  'partition-long': async (ctx, f) => {
    const i = pickNode(ctx);
    const ms = ctx.topo.opts.livenessTimeoutMs * 2 + 500;
    await recorded(ctx, f, `node ${i} cut from Redis for ${ms} ms`, () =>
      partition(ctx.topo.redisProxies[i], ms),
    );
  },
  'partition-client': async (ctx, f) => {
    const i = pickNode(ctx);
    const ms = between(ctx.rng, 2_000, 8_000);
    await recorded(ctx, f, `clients cut from node ${i} for ${ms} ms`, () =>
      partition(ctx.topo.clientProxies[i], ms),
    );
  },
  'redis-restart-aof': async (ctx, f) => redisRestart(ctx, f),
  'redis-restart-nopersist': async (ctx, f) => redisRestart(ctx, f),
  'clock-skew': async (ctx, f) => {
    const i = pickNode(ctx);
    const skew = (ctx.rng.int(2) === 0 ? -1 : 1) * between(ctx.rng, 2_000, 30_000);
    // A graceful restart (the skew can only be set at start): the class tests skew, not a crash
    // (kill covers that).
    await recorded(ctx, f, `restart node ${i} (SIGTERM) with its clock ${skew} ms off`, () =>
      ctx.topo.nodes[i].restartGracefully(skew),
    );
  },
  'slow-consumer': async (ctx, f) => {
    const ms = between(ctx.rng, 4_000, 8_000);
    await recorded(ctx, f, `slow consumer stops reading for ${ms} ms`, async () => {
      ctx.workload.slow?.stall(ms);
      await sleep(ms);
    });
  },
  'sentinel-failover': async (ctx, f) => {
    const sentinel = ctx.topo.redis.sentinel;
    if (sentinel === undefined) throw new Error('sentinel-failover needs the Sentinel topology');
    await recorded(ctx, f, `SENTINEL FAILOVER of ${sentinel.master.address}`, () => sentinel.failover());
  },
  'cluster-master-kill': async (ctx, f) => {
    const cluster = ctx.topo.redis.cluster;
    if (cluster === undefined) throw new Error('cluster-master-kill needs the Redis Cluster topology');
    const masters = await rolesOf(cluster.nodes, 'master');
    const victim = masters[ctx.rng.int(masters.length)];
    await recorded(
      ctx,
      f,
      `kill -9 Redis Cluster master ${victim.address} until its replica took over`,
      async () => {
        await victim.kill();
        // Its replica is promoted after cluster-node-timeout (2 s); only then does the killed node
        // come back, as a replica (it has no persistence: back as a master it would empty its shard).
        const others = cluster.nodes.filter((n) => n !== victim);
        await until('a replica promoted for the killed master', 30_000, async () => {
          return (await rolesOf(others, 'master')).length === 3 && (await clusterOk(others));
        });
        await victim.start();
        await until('the killed master back as a replica and the cluster ok', 30_000, async () => {
          const f = fields(await victim.call('INFO', 'replication'));
          return f.role === 'slave' && f.master_link_status === 'up' && (await clusterOk(cluster.nodes));
        });
      },
    );
  },
  takeover: async (ctx, f) => {
    // Persistent subscribers reconnect through the balancer while their old connection is open
    // (a takeover); clean subscribers' sockets are all destroyed at once (a reconnect storm).
    const n = 1 + ctx.rng.int(ctx.workload.persistent.length);
    await recorded(ctx, f, `${n} takeovers + reconnect storm`, async () => {
      for (const a of ctx.workload.persistent.slice(0, n)) a.open();
      for (const a of ctx.workload.clean) a.current?.stream.destroy();
      await sleep(1_000);
    });
  },
};

type RedisNode = NonNullable<Topology['redis']['cluster']>['nodes'][number];

function fields(text: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of String(text).split(/\r?\n/)) {
    const i = line.indexOf(':');
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1).trim();
  }
  return out;
}

async function rolesOf(nodes: readonly RedisNode[], role: 'master' | 'slave'): Promise<RedisNode[]> {
  const roles = await Promise.all(
    nodes.map((n) => (n.call('ROLE') as Promise<unknown[]>).then((r) => r[0]).catch(() => undefined)),
  );
  return nodes.filter((_, i) => roles[i] === role);
}

async function clusterOk(nodes: readonly RedisNode[]): Promise<boolean> {
  const infos = await Promise.all(nodes.map((n) => n.call('CLUSTER', 'INFO').then(fields)));
  return infos.every((f) => f.cluster_state === 'ok');
}

/** Polls `check` every 100 ms until true; throws naming `what` after `ms`. */
async function until(what: string, ms: number, check: () => Promise<boolean>): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > end) throw new Error(`verify: timed out after ${ms} ms waiting for ${what}`);
    await sleep(100);
  }
}

async function pause(ctx: NemesisContext, f: FaultClass, ms: number): Promise<void> {
  const i = pickNode(ctx);
  await recorded(ctx, f, `SIGSTOP node ${i} for ${ms} ms`, async () => {
    ctx.topo.nodes[i].pause();
    await sleep(ms);
    ctx.topo.nodes[i].resume();
  });
}

async function redisRestart(ctx: NemesisContext, f: FaultClass): Promise<void> {
  const standalone = ctx.topo.redis.standalone;
  if (standalone === undefined) throw new Error(`${f} needs a standalone Redis`);
  await recorded(ctx, f, `Redis restart (${ctx.topo.opts.redis})`, () => standalone.restart());
}

/** Whether the nemesis can apply this class at all. */
export function supported(fault: FaultClass): boolean {
  return FAULTS[fault] !== undefined;
}

/** The Redis shape a fault class runs on: its own for the Redis faults, standalone with AOF else. */
export function shapeFor(fault: FaultClass): RedisShape {
  switch (fault) {
    case 'redis-restart-nopersist':
      return 'standalone-nopersist';
    case 'sentinel-failover':
      return 'sentinel';
    case 'cluster-master-kill':
      return 'cluster';
    default:
      return 'standalone-aof';
  }
}

/** Applies `fault` again and again, with seeded gaps, until `durationMs` has passed. */
export async function runNemesis(
  ctx: NemesisContext,
  fault: FaultClass,
  durationMs: number,
): Promise<number> {
  const apply = FAULTS[fault];
  if (apply === undefined) throw new Error(`fault class ${fault} is not supported by this nemesis`);
  const end = Date.now() + durationMs;
  let applied = 0;
  for (let i = 0; i < 100 && Date.now() < end; i++) {
    await sleep(between(ctx.rng, 1_000, 2_500));
    await apply(ctx, fault);
    applied++;
  }
  return applied;
}
