/**
 * A single node with a data dir (--data-dir) as a real process, killed with SIGKILL under load and
 * started again on the same dir: whatever it acknowledged is still there.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { MqttClient } from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { connectMqtt, endAll, type ShoalNode, startNode, uniq } from '../helpers/cluster.js';
import { freePort } from '../helpers/ports.js';
import { killAllTracked, spawnTracked } from '../helpers/processes.js';

const dirs: string[] = [];
const clients: MqttClient[] = [];

afterEach(async () => {
  await endAll(...clients.splice(0));
  await killAllTracked();
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function dataDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'shoal-data-'));
  dirs.push(dir);
  return dir;
}

/** The node on `dir`, on `port` (a restart keeps it, as clients reconnect to the same address). */
const node = (dir: string, port?: number) => startNode({ nodeId: 'single', dataDir: dir, port });

async function client(n: ShoalNode, id: string, extra: Parameters<typeof connectMqtt>[1] = {}) {
  const c = await connectMqtt(n.url, {
    clientId: id,
    protocolVersion: 5,
    clean: false,
    properties: { sessionExpiryInterval: 3600 },
    reconnectPeriod: 0,
    ...extra,
  });
  clients.push(c.client);
  return c;
}

describe('single node with persistence.dir', () => {
  it('[MQTT-4.3.3-1] kill -9 under QoS 1 load to a persistent session: after the restart every acknowledged message is delivered', async () => {
    const dir = await dataDir();
    const port = await freePort();
    const first = await node(dir, port);
    const subId = uniq('sub');
    const topic = uniq('load');
    const { client: sub, inbox: before } = await client(first, subId);
    await sub.subscribeAsync(topic, { qos: 1 });
    const { client: pub } = await client(first, uniq('pub'), { clean: true, properties: {} });

    // QoS 1 load while the subscriber reads: the node is killed in the middle of it.
    const acked = new Set<string>();
    const TOTAL = 2_000;
    let sent = 0;
    // Not awaited after the kill: mqtt.js keeps the unacknowledged publishes of a closed connection
    // pending (for a reconnect that never comes). No PUBACK can come from a dead node.
    void (async () => {
      while (sent < TOTAL) {
        const batch = Array.from({ length: 50 }, () => `m${sent++}`);
        const results = await Promise.allSettled(batch.map((p) => pub.publishAsync(topic, p, { qos: 1 })));
        results.forEach((r, i) => {
          if (r.status === 'fulfilled') acked.add(batch[i]);
        });
        if (results.some((r) => r.status === 'rejected')) return;
      }
    })();
    await expect.poll(() => acked.size, { timeout: 20_000 }).toBeGreaterThanOrEqual(500);
    first.kill('SIGKILL');
    await first.process.exited;
    await endAll(sub, pub);
    expect(acked.size).toBeLessThan(TOTAL);

    const second = await node(dir, port);
    const { inbox: after } = await client(second, subId);
    const received = () => new Set([...before.payloads, ...after.payloads]);
    await expect.poll(() => [...acked].filter((p) => !received().has(p)).length, { timeout: 30_000 }).toBe(0);
  });

  it('[MQTT-3.3.1-5] a retained message and a will survive kill -9: the will of the connection the crash ended is published after the restart', async () => {
    const dir = await dataDir();
    const port = await freePort();
    const first = await node(dir, port);
    const topic = uniq('retained');
    const { client: pub } = await client(first, uniq('pub'), { clean: true, properties: {} });
    await pub.publishAsync(topic, 'kept', { qos: 1, retain: true });
    // Every acknowledged change was committed: the commits are measured.
    expect(await first.metric('shoal_persistence_commit_duration_seconds_count')).toBeGreaterThan(0);
    expect(await first.metric('shoal_persistence_commit_errors_total')).toBe(0);
    await client(first, uniq('will'), {
      clean: true,
      properties: {},
      will: { topic: `${topic}/will`, payload: Buffer.from('gone'), qos: 1, retain: true },
    });
    // Killed right after the CONNACK: the will was stored before it.
    first.kill('SIGKILL');
    await first.process.exited;
    await endAll(...clients.splice(0));

    // The will goes out as the node starts (delay 0), before any subscriber: retained, it is seen.
    const second = await node(dir, port);
    const { client: watcher, inbox } = await client(second, uniq('watch'), { clean: true, properties: {} });
    await watcher.subscribeAsync(`${topic}/#`, { qos: 1 });
    await inbox.payload('kept');
    await inbox.payload('gone');
    expect(inbox.data.map((m) => [m.topic, m.payload, m.retain]).sort()).toEqual([
      [topic, 'kept', true],
      [`${topic}/will`, 'gone', true],
    ]);
  });

  it('a SIGTERM stop keeps sessions and sends no will; a restart finds the session present', async () => {
    const dir = await dataDir();
    const port = await freePort();
    const first = await node(dir, port);
    const id = uniq('planned');
    const topic = uniq('planned');
    const { client: c } = await client(first, id, {
      will: { topic, payload: Buffer.from('will'), qos: 1, retain: true },
    });
    await c.subscribeAsync(`${topic}/x`, { qos: 1 });
    await first.stop();
    await endAll(...clients.splice(0));

    const second = await node(dir, port);
    const { client: watcher, inbox } = await client(second, uniq('watch'), { clean: true, properties: {} });
    await watcher.subscribeAsync(topic, { qos: 1 });
    const { inbox: backInbox, connack } = await client(second, id);
    expect(connack.sessionPresent).toBe(true);
    await watcher.publishAsync(`${topic}/x`, 'to-session', { qos: 1 });
    await backInbox.payload('to-session');
    // No retained will on the topic: a subscriber that came after the restart got nothing.
    expect(inbox.data.filter((m) => m.topic === topic)).toEqual([]);
  });

  it('a corrupt data dir fails at start naming the file; shoal repair-data makes it usable again', async () => {
    const dir = await dataDir();
    const first = await node(dir);
    const topic = uniq('kept');
    const { client: pub } = await client(first, uniq('pub'), { clean: true, properties: {} });
    await pub.publishAsync(topic, 'before', { qos: 1, retain: true });
    await first.stop();
    // The store's descriptor overwritten (a disk error, a full disk truncating it).
    const manifest = (await readFile(path.join(dir, 'CURRENT'), 'utf8')).trim();
    await writeFile(path.join(dir, manifest), Buffer.alloc(200, 0xff));
    const failed = await shoal([
      'start',
      '--data-dir',
      dir,
      '--port',
      '0',
      '--ws-port',
      '0',
      '--http-port',
      '0',
    ]);
    expect((await failed.exited).code).toBe(1);
    expect(failed.output()).toContain(`persistence.dir: cannot use ${dir}/${manifest}: Corruption`);
    expect(failed.output()).toContain(`shoal repair-data ${dir}`);

    const repair = await shoal(['repair-data', dir]);
    expect((await repair.exited).code).toBe(0);
    const again = await node(dir);
    const { client: watcher, inbox } = await client(again, uniq('watch'), { clean: true, properties: {} });
    await watcher.subscribeAsync(topic, { qos: 1 });
    await inbox.payload('before');
  });
});

/** The CLI from the sources, as a tracked process (ended by PID after each test). */
function shoal(args: string[]) {
  return spawnTracked(process.execPath, ['--import', 'tsx', 'test/helpers/shoal-main.ts', ...args], {
    cwd: path.resolve(import.meta.dirname, '../..'),
    name: `shoal ${args[0]}`,
  });
}
