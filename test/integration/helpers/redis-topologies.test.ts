import { Cluster, Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { killAllTracked, pidExists } from '../../helpers/processes.js';
import {
  type RedisClusterHandle,
  type SentinelHandle,
  startRedisCluster,
  startSentinel,
} from '../../helpers/redis-topologies.js';

afterAll(async () => {
  await killAllTracked();
});

describe('startRedisCluster', { timeout: 60_000 }, () => {
  let cluster: RedisClusterHandle | undefined;
  afterAll(async () => {
    await cluster?.stop();
  });

  it('forms a 6-node cluster with cluster_state:ok that ioredis Cluster can use', async () => {
    cluster = await startRedisCluster();
    expect(cluster.nodes).toHaveLength(6);
    expect(cluster.url).toMatch(/^redis\+cluster:\/\/127\.0\.0\.1:\d+(,127\.0\.0\.1:\d+){5}$/);
    for (const n of cluster.nodes) {
      expect(String(await n.call('CLUSTER', 'INFO'))).toContain('cluster_state:ok');
    }
    const roles = await Promise.all(cluster.nodes.map((n) => n.call('ROLE') as Promise<unknown[]>));
    expect(roles.filter((r) => r[0] === 'master')).toHaveLength(3);
    expect(roles.filter((r) => r[0] === 'slave')).toHaveLength(3);

    const client = new Cluster(
      cluster.nodes.slice(0, 2).map((n) => ({ host: n.host, port: n.port })),
      { redisOptions: { maxRetriesPerRequest: 1 } },
    );
    try {
      // Keys in different slots, so more than one master is used.
      for (const key of ['a', 'b', 'c', 'shoal:inbox:{n1}', '{shoal}:routes']) {
        await client.set(key, `v-${key}`);
        expect(await client.get(key)).toBe(`v-${key}`);
      }
      expect(await client.spublish('shoal:inbox0:{n1}', 'x')).toBe(0);
    } finally {
      client.disconnect();
    }

    // kill() and start(): kill -9 and the same node again (port, nodes.conf): it rejoins the cluster.
    const victim = cluster.nodes[5];
    const before = victim.pid;
    const id = String(await victim.call('CLUSTER', 'MYID'));
    await victim.kill();
    expect(pidExists(before)).toBe(false);
    await victim.start();
    expect(victim.pid).not.toBe(before);
    expect(String(await victim.call('CLUSTER', 'MYID'))).toBe(id);

    const pids = cluster.nodes.map((n) => n.pid);
    await cluster.stop();
    for (const pid of pids) expect(pidExists(pid)).toBe(false);
  });
});

describe('startSentinel', { timeout: 60_000 }, () => {
  let sentinel: SentinelHandle | undefined;
  afterAll(async () => {
    await sentinel?.stop();
  });

  it('reports the master, and failover() promotes the replica', async () => {
    sentinel = await startSentinel();
    const s = sentinel;
    expect(s.url).toMatch(
      /^redis\+sentinel:\/\/127\.0\.0\.1:\d+,127\.0\.0\.1:\d+,127\.0\.0\.1:\d+\/mymaster$/,
    );
    const firstMaster = s.master;
    const firstReplica = s.replica;
    for (const sn of s.sentinels) {
      expect(await sn.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', 'mymaster')).toEqual([
        '127.0.0.1',
        String(firstMaster.port),
      ]);
    }

    const hosts = s.sentinels.map((x) => ({ host: x.host, port: x.port }));
    const client = new Redis({ sentinels: hosts, name: 'mymaster', maxRetriesPerRequest: null });
    client.on('error', () => undefined);
    try {
      await client.set('k', 'before');
      await client.call('WAIT', 1, 2000);
      await s.failover();
      expect(s.master).toBe(firstReplica);
      expect(s.replica).toBe(firstMaster);
      for (const sn of s.sentinels) {
        expect(await sn.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', 'mymaster')).toEqual([
          '127.0.0.1',
          String(firstReplica.port),
        ]);
      }
      expect(((await firstReplica.call('ROLE')) as unknown[])[0]).toBe('master');
      expect(((await firstMaster.call('ROLE')) as unknown[])[0]).toBe('slave');
      // The client was moved to the new master (Sentinel disconnected it from the old one).
      expect(await client.get('k')).toBe('before');
      await client.set('k', 'after');
      expect(await firstReplica.call('GET', 'k')).toBe('after');
    } finally {
      client.disconnect();
    }

    const pids = [s.master, s.replica, ...s.sentinels].map((x) => x.pid);
    await s.stop();
    for (const pid of pids) expect(pidExists(pid)).toBe(false);
  });

  it('with two replicas: failover() promotes one and repoints the other and the former master', async () => {
    const s = await startSentinel({ replicas: 2 });
    try {
      expect(s.replicas).toHaveLength(2);
      const firstMaster = s.master;
      const firstReplicas = [...s.replicas];
      await firstMaster.call('SET', 'k', 'v');
      await firstMaster.call('WAIT', 2, 2000);
      await s.failover();
      expect(firstReplicas).toContain(s.master);
      expect(s.replicas).toContain(firstMaster);
      expect(s.replicas).toHaveLength(2);
      for (const r of s.replicas) {
        expect(((await r.call('ROLE')) as unknown[])[0]).toBe('slave');
      }
      expect(await s.master.call('GET', 'k')).toBe('v');
    } finally {
      await s.stop();
    }
  });
});
