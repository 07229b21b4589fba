/**
 * The SessionStore contract (persistent sessions kept by the cluster), run against the memory hub
 * and Redis: a claim creates, discards or loads a session; publishers on any node append; the
 * serving node fetches with packet ids recorded before sending; acknowledgements and the QoS 2
 * phase are kept; the queue limit drops (reported), an offline session takes no QoS 0, an ended one
 * nothing; and the fence: after a takeover or a reap, the former owner's writes are refused.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { ClusterBackend, ClusterHandlers, SessionStore } from '../../src/backend/types.js';
import type { Delivery, Message } from '../../src/message.js';

export interface SessionPair {
  a: ClusterBackend & { readonly sessions: SessionStore };
  b: ClusterBackend & { readonly sessions: SessionStore };
  /** Reaps node A as a survivor would after its death (or a pause past the liveness timeout). */
  reapA(): Promise<void>;
  stop(): Promise<void>;
}

/** Two started nodes, A and B, of one cluster, with a queue limit of 3; `handlers(node)` are theirs. */
export type SessionPairFactory = (handlers: (node: 'A' | 'B') => ClusterHandlers) => Promise<SessionPair>;

const delivery = (payload: string, qos: 0 | 1 | 2 = 1): Delivery => {
  const message: Message = { topic: 't', payload: Buffer.from(payload), qos, retain: false };
  return { message, qos, retain: false };
};

const payloads = (fetched: { delivery: Delivery }[]) =>
  fetched.map((f) => f.delivery.message.payload.toString());

export function sessionStoreContract(name: string, make: SessionPairFactory): void {
  describe(`SessionStore contract: ${name}`, () => {
    let pair: SessionPair | undefined;
    const dropped: Record<string, string[]> = { A: [], B: [] };
    const handlers = (node: 'A' | 'B'): ClusterHandlers => ({
      deliver: () => undefined,
      release: () => undefined,
      publishWill: () => undefined,
      readinessChanged: () => undefined,
      poke: () => undefined,
      refetch: () => undefined,
      dropped: (reason, clientId) => dropped[node].push(`${reason} ${clientId}`),
      stateLost: () => undefined,
      serves: () => true, // the test drives claims itself: none is abandoned
    });
    const start = async () => {
      dropped.A = [];
      dropped.B = [];
      pair = await make(handlers);
      return pair;
    };
    afterEach(async () => {
      await pair?.stop();
      pair = undefined;
    });

    /** Appends and waits for the store's answer (what a publisher's PUBACK waits for). */
    const append = (store: SessionStore, clientId: string, d: Delivery) =>
      new Promise<void>((resolve, reject) =>
        store.append(clientId, d, (err) => (err ? reject(err) : resolve())),
      );

    it('[MQTT-4.4.0-1] packet ids are given at fetch and kept: a new owner loads the in-flight messages in order, with their phase', async () => {
      const { a, b } = await start();
      const first = await a.claim('c1', false, 60);
      expect(first.session?.present).toBe(false);
      for (const p of ['m0', 'm1', 'm2']) await append(b.sessions, 'c1', delivery(p, p === 'm1' ? 2 : 1));
      const fetched = await a.sessions.fetch('c1', first.epoch, 10, first.session!.position);
      expect(payloads(fetched)).toEqual(['m0', 'm1', 'm2']);
      expect(fetched.map((f) => f.packetId)).toEqual([1, 2, 3]);
      expect(fetched[1].delivery.qos).toBe(2);
      a.sessions.acknowledged('c1', first.epoch, 1);
      await a.sessions.releasing('c1', first.epoch, 2);
      await a.sessions.awaitRelease('c1', first.epoch, 42, true);
      const second = await b.claim('c1', false, 60);
      expect(second.previous).toBe('A');
      expect(second.session?.present).toBe(true);
      expect(second.session?.inflight.map((e) => [e.packetId, e.phase])).toEqual([
        [2, 'pubrel'],
        [3, 'publish'],
      ]);
      expect(second.session?.awaitingRelease).toEqual([42]);
      // Everything was taken already: nothing more to fetch.
      expect(await b.sessions.fetch('c1', second.epoch, 10, second.session!.position)).toEqual([]);
    });

    it('(#11.9) a delivery appended again under the same dedupe id is queued once; the ids of inbound QoS 2 messages are loaded with the session', async () => {
      const { a, b } = await start();
      const first = await a.claim('c11', false, 60);
      const twice = delivery('x', 2);
      twice.message.dedupe = 'run.1';
      await append(b.sessions, 'c11', twice);
      await append(a.sessions, 'c11', { ...twice }); // routed again from another node
      await append(b.sessions, 'c11', delivery('y', 2));
      const fetched = await a.sessions.fetch('c11', first.epoch, 10, first.session!.position);
      expect(payloads(fetched)).toEqual(['x', 'y']);
      await a.sessions.awaitRelease('c11', first.epoch, 5, true, 'run.7');
      await a.sessions.awaitRelease('c11', first.epoch, 6, true);
      const second = await b.claim('c11', false, 60);
      expect(second.session?.awaitingRelease.sort()).toEqual([5, 6]);
      expect([...(second.session?.dedupeIds ?? [])]).toEqual([[5, 'run.7']]);
      await b.sessions.awaitRelease('c11', second.epoch, 5, false);
      const third = await a.claim('c11', false, 60);
      expect(third.session?.dedupeIds.size).toBe(0);
    });

    it('[MQTT-3.1.2-4] Clean Start discards the stored session; expiry 0 and nothing stored makes none', async () => {
      const { a, b } = await start();
      const c = await a.claim('c5', false, 60);
      await a.sessions.subscribe(
        'c5',
        c.epoch,
        'x/+',
        { qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0 },
        true,
      );
      const seen: string[] = [];
      await expect
        .poll(() => {
          seen.length = 0;
          b.sessions.matchSessions('x/y', (id) => seen.push(id));
          return seen;
        })
        .toEqual(['c5']);
      const clean = await b.claim('c5', true, 0);
      expect(clean.session).toBeUndefined();
      await expect
        .poll(() => {
          seen.length = 0;
          b.sessions.matchSessions('x/y', (id) => seen.push(id));
          return seen.length;
        })
        .toBe(0);
      const again = await a.claim('c5', false, 0);
      expect(again.session).toBeUndefined();
    });

    it('a fetch whose answer was lost is handed over again, with the same packet ids, before anything new', async () => {
      const { a, b } = await start();
      const c = await a.claim('c6', false, 60);
      for (const p of ['m0', 'm1']) await append(b.sessions, 'c6', delivery(p));
      const start0 = c.session!.position;
      const first = await a.sessions.fetch('c6', c.epoch, 10, start0);
      await append(b.sessions, 'c6', delivery('m2'));
      // As if the answer to `first` never arrived: asked again from the old position.
      const again = await a.sessions.fetch('c6', c.epoch, 10, start0);
      expect(payloads(again)).toEqual(['m0', 'm1', 'm2']);
      expect(again.slice(0, 2).map((f) => f.packetId)).toEqual(first.map((f) => f.packetId));
      expect(await a.sessions.fetch('c6', c.epoch, 10, again[2].position)).toEqual([]);
    });

    it('(fencing) after a takeover the former owner can neither fetch nor change the session', async () => {
      const { a, b } = await start();
      const old = await a.claim('c2', false, 60);
      await append(a.sessions, 'c2', delivery('x'));
      const taken = await b.claim('c2', false, 60);
      expect(taken.epoch).toBeGreaterThan(old.epoch);
      expect(await a.sessions.fetch('c2', old.epoch, 10, old.session!.position)).toEqual([]);
      await expect(a.sessions.awaitRelease('c2', old.epoch, 9, true)).rejects.toThrow(/fenced/);
      await a.sessions.detach('c2', old.epoch, 0);
      // Still B's, still holding its message.
      expect(payloads(await b.sessions.fetch('c2', taken.epoch, 10, taken.session!.position))).toEqual(['x']);
    });

    it('a full queue drops (reported by the appending node), an offline session takes no QoS 0, an ended one nothing', async () => {
      const { a, b } = await start();
      const c = await a.claim('c3', false, 60);
      await a.sessions.detach('c3', c.epoch, 60);
      await append(b.sessions, 'c3', delivery('zero', 0));
      for (const p of ['q0', 'q1', 'q2', 'q3']) await append(b.sessions, 'c3', delivery(p));
      expect(dropped.B).toEqual(['offline_qos0 c3', 'queue_full c3']);
      const back = await a.claim('c3', false, 60);
      expect(back.session?.present).toBe(true);
      expect(payloads(await a.sessions.fetch('c3', back.epoch, 10, back.session!.position))).toEqual([
        'q0',
        'q1',
        'q2',
      ]);
      const ended = await b.claim('c3', true, 0);
      expect(ended.session).toBeUndefined();
      await append(a.sessions, 'c3', delivery('late'));
      const fresh = await a.claim('c3', false, 60);
      expect(fresh.session?.present).toBe(false);
      expect(await a.sessions.fetch('c3', fresh.epoch, 10, fresh.session!.position)).toEqual([]);
    });

    it('(#13.5) flow control counts the backlog, not what is in flight: a window wider than half the limit holds no publisher', async () => {
      const { a, b } = await start();
      const c = await a.claim('c13', false, 60);
      // Queue limit 3: flow-controlled appends are congested from a backlog of 8 (the floor).
      for (let i = 0; i < 7; i++) await append(b.sessions, 'c13', delivery(`m${i}`));
      const fetched = await a.sessions.fetch('c13', c.epoch, 10, c.session!.position);
      expect(fetched).toHaveLength(7);
      // 7 in the client's window, none acknowledged, nothing waiting to be taken: the next appends
      // (8 and 9 in the queue) are not held. Counting what is in flight held them until acks came.
      await append(b.sessions, 'c13', delivery('m7'));
      await append(b.sessions, 'c13', delivery('m8'));
      const next = await a.sessions.fetch('c13', c.epoch, 10, fetched[6].position);
      expect(payloads(next)).toEqual(['m7', 'm8']);
      expect(dropped.B).toEqual([]);
    });

    it('a reaped node: its sessions go offline and keep their queue; its writes are refused afterwards', async () => {
      const pair = await start();
      const { a, b } = pair;
      const c = await a.claim('c4', false, 30);
      await append(b.sessions, 'c4', delivery('kept'));
      await pair.reapA();
      // A was only paused: back, it can no longer take from the queue.
      expect(await a.sessions.fetch('c4', c.epoch, 10, c.session!.position)).toEqual([]);
      const resumed = await b.claim('c4', false, 30);
      expect(resumed.previous).toBeNull();
      expect(resumed.session?.present).toBe(true);
      expect(payloads(await b.sessions.fetch('c4', resumed.epoch, 10, resumed.session!.position))).toEqual([
        'kept',
      ]);
    });
  });
}
