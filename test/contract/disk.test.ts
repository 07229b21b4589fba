/**
 * The embedded disk store (persistence.dir): the memory hub with a DiskJournal under it passes the
 * same contracts as the memory hub and Redis, and what it held comes back after the store is
 * closed (or the process dies) and opened again.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ClassicLevel } from 'classic-level';
import { afterEach, describe, expect, it } from 'vitest';
import { DataDirError, DiskJournal, type SyncPolicy } from '../../src/backend/disk/disk-journal.js';
import { MemoryHub } from '../../src/backend/memory/cluster-hub.js';
import type { StoredWill } from '../../src/backend/types.js';
import { systemClock } from '../../src/clock.js';
import type { Delivery, Message } from '../../src/message.js';
import { idleHandlers } from '../helpers/cluster-handlers.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { hubClusterPair, hubSessionPair } from '../helpers/hub-pairs.js';
import { clusterBackendContract } from './cluster-backend.contract.js';
import { retainedStoreContract } from './retained-store.contract.js';
import { sessionStoreContract } from './session-store.contract.js';

const dirs: string[] = [];
const journals: DiskJournal[] = [];

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'shoal-disk-'));
  dirs.push(dir);
  return dir;
}

/** A hub on a fresh (or the given) data dir. */
async function diskHub(clock = systemClock, dir?: string, sync: SyncPolicy = 'batch') {
  const where = dir ?? (await tempDir());
  const { journal, state } = await DiskJournal.open(where, sync);
  journals.push(journal);
  return { hub: new MemoryHub(clock, journal, state), journal, dir: where };
}

afterEach(async () => {
  for (const j of journals.splice(0)) await j.close().catch(() => undefined);
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

retainedStoreContract('disk', async (clock) => (await diskHub(clock)).hub.retained);

clusterBackendContract('disk hub', async () => hubClusterPair((await diskHub()).hub));

for (const sync of ['batch', 'always'] as const) {
  sessionStoreContract(`disk hub (sync ${sync})`, async (handlers) =>
    hubSessionPair((await diskHub(systemClock, undefined, sync)).hub, handlers),
  );
}

const message = (payload: string, extra: Partial<Message> = {}): Message => ({
  topic: 't/1',
  payload: Buffer.from(payload),
  qos: 1,
  retain: false,
  ...extra,
});
const delivery = (payload: string, qos: 0 | 1 | 2 = 1): Delivery => ({
  message: message(payload, { qos }),
  qos,
  retain: false,
});
const append = (hub: MemoryHub, node: string, clientId: string, d: Delivery) =>
  new Promise<void>((resolve, reject) =>
    hub.node(`${node}-appender`).sessions.append(clientId, d, (err) => (err ? reject(err) : resolve())),
  );

describe('disk store: what comes back after a restart', () => {
  const subOptions = {
    qos: 1 as const,
    noLocal: false,
    retainAsPublished: false,
    retainHandling: 0 as const,
  };

  it('[MQTT-4.1.0-1] a persistent session: subscriptions, queue, in-flight ids with their phase, inbound QoS 2 ids', async () => {
    const first = await diskHub();
    const node = first.hub.node('local', 100);
    await node.start(idleHandlers());
    const claim = await node.claim('c1', false, 3600);
    await node.sessions.subscribe('c1', claim.epoch, 't/#', { ...subOptions, subscriptionId: 7 }, true);
    await node.sessions.subscribe('c1', claim.epoch, '$share/g/t/#', subOptions, false);
    for (const p of ['m1', 'm2', 'm3', 'm4']) await append(first.hub, 'local', 'c1', delivery(p, 2));
    const fetched = await node.sessions.fetch('c1', claim.epoch, 2, '0');
    expect(fetched.map((f) => f.delivery.message.payload.toString())).toEqual(['m1', 'm2']);
    await node.sessions.releasing('c1', claim.epoch, fetched[0].packetId);
    await node.sessions.awaitRelease('c1', claim.epoch, 9, true, 'dd-9');
    // What is not waited for (an acknowledgement) is written by the next commit: closing writes it.
    await first.journal.close();

    const second = await diskHub(systemClock, first.dir);
    const again = second.hub.node('local', 100);
    await again.start(idleHandlers());
    const resumed = await again.claim('c1', false, 3600);
    expect(resumed.epoch).toBeGreaterThan(claim.epoch);
    const s = resumed.session!;
    expect(s.present).toBe(true);
    expect([...s.subscriptions.keys()].sort()).toEqual(['$share/g/t/#', 't/#']);
    expect(s.subscriptions.get('t/#')?.subscriptionId).toBe(7);
    expect(s.inflight.map((e) => [e.packetId, e.phase, e.delivery.message.payload.toString()])).toEqual([
      [fetched[0].packetId, 'pubrel', 'm1'],
      [fetched[1].packetId, 'publish', 'm2'],
    ]);
    expect(s.awaitingRelease).toEqual([9]);
    expect(s.dedupeIds.get(9)).toBe('dd-9');
    const rest = await again.sessions.fetch('c1', resumed.epoch, 10, s.position);
    expect(rest.map((f) => f.delivery.message.payload.toString())).toEqual(['m3', 'm4']);
    // The persistent-session route came back too: a publisher's match finds the session.
    const matched: string[] = [];
    again.sessions.matchSessions('t/x', (id) => matched.push(id));
    expect(matched).toEqual(['c1']);
  });

  it('an acknowledged entry is gone after the restart; a session that expired while the broker was down is gone', async () => {
    const clock = new FakeClock(1_000_000);
    const first = await diskHub(clock);
    const node = first.hub.node('local', 100);
    await node.start(idleHandlers());
    const c = await node.claim('acked', false, 3600);
    await append(first.hub, 'local', 'acked', delivery('a1'));
    await append(first.hub, 'local', 'acked', delivery('a2'));
    const [one] = await node.sessions.fetch('acked', c.epoch, 1, '0');
    node.sessions.acknowledged('acked', c.epoch, one.packetId);
    const short = await node.claim('short', false, 10);
    await node.sessions.detach('short', short.epoch, 10);
    await first.journal.close();

    clock.advance(11_000);
    const second = await diskHub(clock, first.dir);
    const again = second.hub.node('local', 100);
    await again.start(idleHandlers());
    const resumed = await again.claim('acked', false, 3600);
    expect(resumed.session?.inflight).toEqual([]);
    const rest = await again.sessions.fetch('acked', resumed.epoch, 10, resumed.session!.position);
    expect(rest.map((f) => f.delivery.message.payload.toString())).toEqual(['a2']);
    const gone = await again.claim('short', false, 0);
    expect(gone.session).toBeUndefined();
  });

  it('[MQTT-3.3.1-5] retained messages come back; a deleted one stays deleted, an expired one is not served', async () => {
    const clock = new FakeClock(5_000);
    const first = await diskHub(clock);
    await first.hub.retained.set(
      message('kept', { topic: 'r/1', retain: true, properties: { contentType: 'x' } }),
    );
    await first.hub.retained.set(message('gone', { topic: 'r/2', retain: true }));
    await first.hub.retained.set(message('', { topic: 'r/2', retain: true }));
    await first.hub.retained.set(message('old', { topic: 'r/3', retain: true, expiresAt: 6_000 }));
    await first.journal.close();
    clock.advance(2_000);
    const second = await diskHub(clock, first.dir);
    const seen: Message[] = [];
    second.hub.retained.match('r/#', (m) => seen.push(m));
    expect(seen.map((m) => [m.topic, m.payload.toString(), m.properties?.contentType])).toEqual([
      ['r/1', 'kept', 'x'],
    ]);
  });

  it('[MQTT-3.1.2-8] a will of a connection the crash ended is published after the restart, after its delay; a drained one is not', async () => {
    const clock = new FakeClock(0);
    const first = await diskHub(clock);
    const node = first.hub.node('local');
    await node.start(idleHandlers());
    const will = (p: string, delaySeconds: number): StoredWill => ({
      message: message(p, { topic: 'wills' }),
      delaySeconds,
    });
    const crashed = await node.claim('crashed', true, 0);
    await node.storeWill('crashed', crashed.epoch, will('w-crashed', 5));
    // The process dies: what was committed is all there is (nothing else is pending to write).
    await first.journal.close();
    const second = await diskHub(clock, first.dir);
    const published: string[] = [];
    const again = second.hub.node('local');
    await again.start(idleHandlers({ publishWill: (w) => published.push(w.message.payload.toString()) }));
    clock.advance(4_000);
    await new Promise((r) => setImmediate(r));
    expect(published).toEqual([]);
    clock.advance(1_000);
    await expect.poll(() => published).toEqual(['w-crashed']);

    // A planned stop drops the wills it holds: none is published after the next start.
    const drained = await again.claim('drained', true, 0);
    await again.storeWill('drained', drained.epoch, will('w-drained', 0));
    second.hub.dropWills();
    await second.journal.close();
    const third = await diskHub(clock, first.dir);
    const after: string[] = [];
    await third.hub
      .node('local')
      .start(idleHandlers({ publishWill: (w) => after.push(w.message.payload.toString()) }));
    clock.advance(10_000);
    await new Promise((r) => setImmediate(r));
    expect(after).toEqual([]);
    // A will is taken once: the crash's will was taken on disk and does not come back either.
  });

  it('epochs never go back across restarts, even for an id whose ownership was released', async () => {
    const first = await diskHub();
    const node = first.hub.node('local');
    const one = await node.claim('x', true, 0);
    await node.releaseOwnership('x', one.epoch);
    await first.journal.close();
    const second = await diskHub(systemClock, first.dir);
    const two = await second.hub.node('local').claim('x', true, 0);
    expect(two.epoch).toBeGreaterThan(one.epoch);
  });

  it('commits in groups: batch shares one fsync among the changes of a turn, always gives each its own', async () => {
    const counts: Record<string, number> = {};
    for (const sync of ['batch', 'always'] as const) {
      const { hub, journal } = await diskHub(systemClock, undefined, sync);
      const node = hub.node('local', 1000);
      await node.start(idleHandlers());
      const c = await node.claim('g', false, 3600);
      const before = journal.stats.commits;
      await Promise.all(
        Array.from({ length: 20 }, (_, i) => node.sessions.awaitRelease('g', c.epoch, i + 1, true)),
      );
      counts[sync] = journal.stats.commits - before;
    }
    expect(counts.batch).toBe(1);
    expect(counts.always).toBe(20);
  });
});

describe('disk store: a data dir that cannot be used fails at open, naming the file', () => {
  it('in use by another process: the LOCK file', async () => {
    const { dir } = await diskHub();
    const attempt = DiskJournal.open(dir, 'batch');
    await expect(attempt).rejects.toThrow(DataDirError);
    await expect(attempt).rejects.toThrow(`${dir}/LOCK`);
    await expect(attempt).rejects.toThrow('in use by another process');
  });

  it('an unreadable record: names the dir and the key, and the recovery command', async () => {
    const dir = await tempDir();
    const db = new ClassicLevel<string, Buffer>(dir, { keyEncoding: 'utf8', valueEncoding: 'buffer' });
    await db.put('v', Buffer.from('1'));
    await db.put('s\u0000c1', Buffer.from('{not json'));
    await db.close();
    const attempt = DiskJournal.open(dir, 'batch');
    await expect(attempt).rejects.toThrow(/persistence\.dir: cannot use .*: unreadable record "s\\u0000c1"/);
    await expect(attempt).rejects.toThrow(`shoal repair-data ${dir}`);
  });

  it('a store of another format', async () => {
    const dir = await tempDir();
    const db = new ClassicLevel<string, Buffer>(dir, { keyEncoding: 'utf8', valueEncoding: 'buffer' });
    await db.put('v', Buffer.from('99'));
    await db.close();
    await expect(DiskJournal.open(dir, 'batch')).rejects.toThrow('unknown format "99" (this Shoal writes 1)');
  });
});
