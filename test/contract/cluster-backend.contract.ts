/**
 * The contract every ClusterBackend passes: the in-memory hub (src/backend/memory/cluster-hub.ts) and
 * the Redis backend. Two backends of one cluster, A and B: routes announced on one node are matched on
 * the other, the bus carries envelopes with their acknowledgement, claims raise the fencing epoch and
 * name the previous owner, a will is taken once per epoch, retained messages are cluster-wide.
 * Route and retained changes travel through Redis asynchronously, so those checks poll (waitFor).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ClusterBackend, ClusterHandlers, Envelope, StoredWill } from '../../src/backend/types.js';
import type { Message } from '../../src/message.js';
import { waitFor } from '../helpers/cluster.js';

export interface ClusterPair {
  a: ClusterBackend;
  b: ClusterBackend;
  stop(): Promise<void>;
}

interface Recorder extends ClusterHandlers {
  delivered: Envelope[];
  released: [string, number][];
  wills: StoredWill[];
}

function recorder(): Recorder {
  const r: Recorder = {
    delivered: [],
    released: [],
    wills: [],
    deliver: (e) => {
      r.delivered.push(e);
    },
    release: (c, e) => {
      r.released.push([c, e]);
    },
    publishWill: (w) => {
      r.wills.push(w);
    },
    readinessChanged: () => undefined,
    poke: () => undefined,
    refetch: () => undefined,
    dropped: () => undefined,
    stateLost: () => undefined,
    serves: () => true, // the test drives claims itself: none is abandoned
  };
  return r;
}

const message = (topic: string, payload: string, qos: 0 | 1 | 2 = 1): Message => ({
  topic,
  payload: Buffer.from(payload),
  qos,
  retain: false,
});

export function clusterBackendContract(name: string, make: () => Promise<ClusterPair>): void {
  describe(`ClusterBackend contract: ${name}`, () => {
    let pair: ClusterPair;
    let ra: Recorder;
    let rb: Recorder;
    beforeEach(async () => {
      pair = await make();
      ra = recorder();
      rb = recorder();
      await pair.a.start(ra);
      await pair.b.start(rb);
    });
    afterEach(async () => {
      await pair.stop();
    });

    it('a route a node announces is matched on the other node, and gone once removed', async () => {
      const nodes = (topic: string) => {
        const out: string[] = [];
        pair.b.routes.matchNodes(topic, (n) => out.push(n));
        return out;
      };
      pair.a.routes.add('sensors/+/temp', null);
      await waitFor(() => nodes('sensors/1/temp').includes(pair.a.nodeId), 5000, 'the route on B');
      expect(nodes('sensors/1/hum')).toEqual([]);
      pair.a.routes.remove('sensors/+/temp', null);
      await waitFor(() => nodes('sensors/1/temp').length === 0, 5000, 'the route gone on B');
    });

    it('shared subscription routes name the group and the nodes with members', async () => {
      pair.a.routes.add('jobs/#', 'workers');
      const seen = () => {
        const out: string[] = [];
        pair.b.routes.matchShared('jobs/1', (key, nodes) => out.push(`${key}@${[...nodes].join(',')}`));
        return out;
      };
      await waitFor(() => seen().length === 1, 5000, 'the shared route on B');
      expect(seen()).toEqual([`workers\njobs/#@${pair.a.nodeId}`]);
    });

    it('the bus delivers an envelope to the target node and acknowledges a QoS 1 send', async () => {
      let accepted: Error | undefined | 'pending' = 'pending';
      pair.b.bus.send(
        pair.a.nodeId,
        { message: message('t/1', 'hello'), direct: true, shared: ['g\nt/#'] },
        (err) => {
          accepted = err;
        },
      );
      await waitFor(
        () => ra.delivered.length === 1 && accepted !== 'pending',
        5000,
        'delivery and acknowledgement',
      );
      expect(accepted).toBeUndefined();
      const e = ra.delivered[0];
      expect(e.message.topic).toBe('t/1');
      expect(e.message.payload.toString()).toBe('hello');
      expect(e.message.qos).toBe(1);
      expect(e.direct).toBe(true);
      expect(e.shared).toEqual(['g\nt/#']);
      expect(rb.delivered).toEqual([]);
    });

    it('[MQTT-3.1.4-2] claims raise the fencing epoch and name the previous owner', async () => {
      const id = `c-${Math.random().toString(36).slice(2)}`;
      const first = await pair.a.claim(id, true);
      expect(first.previous).toBeNull();
      const second = await pair.b.claim(id, true);
      expect(second.previous).toBe(pair.a.nodeId);
      expect(second.epoch).toBeGreaterThan(first.epoch);
      await pair.b.requestRelease(pair.a.nodeId, id, second.epoch);
      await waitFor(() => ra.released.length === 1, 5000, 'the release request on A');
      expect(ra.released[0]).toEqual([id, second.epoch]);
    });

    it('a will is taken once, and only under the epoch that stored it', async () => {
      const id = `w-${Math.random().toString(36).slice(2)}`;
      const { epoch } = await pair.a.claim(id, true);
      await pair.a.storeWill(id, epoch, { message: message('will/x', 'gone'), delaySeconds: 0 });
      expect(await pair.a.takeWill(id, epoch + 1)).toBe(false);
      expect(await pair.a.takeWill(id, epoch)).toBe(true);
      expect(await pair.a.takeWill(id, epoch)).toBe(false);
    });

    it('[MQTT-3.1.3-9] a resume within the will delay drops the pending will; a Clean Start claim returns it', async () => {
      const id = `r-${Math.random().toString(36).slice(2)}`;
      const first = await pair.a.claim(id, false);
      await pair.a.storeWill(id, first.epoch, { message: message('will/r', 'w1'), delaySeconds: 30 });
      const resumed = await pair.b.claim(id, false);
      expect(resumed.will).toBeNull(); // resumed within the delay: cancelled
      expect(await pair.a.takeWill(id, first.epoch)).toBe(false);
      await pair.b.storeWill(id, resumed.epoch, { message: message('will/r', 'w2'), delaySeconds: 30 });
      const fresh = await pair.a.claim(id, true);
      expect(fresh.will?.message.payload.toString()).toBe('w2'); // the old session ended: send it now
    });

    it('a will with no delay is handed to the next claim even when it resumes the session', async () => {
      const id = `z-${Math.random().toString(36).slice(2)}`;
      const first = await pair.a.claim(id, false);
      await pair.a.storeWill(id, first.epoch, { message: message('will/z', 'now'), delaySeconds: 0 });
      const next = await pair.b.claim(id, false);
      expect(next.will?.message.payload.toString()).toBe('now');
    });

    it('[MQTT-3.3.1-5] a retained message stored through one node is seen through the other', async () => {
      const topic = `ret/${Math.random().toString(36).slice(2)}`;
      await pair.a.retained.set({ ...message(topic, 'kept'), retain: true });
      const seen = () => {
        const out: string[] = [];
        pair.b.retained.match(topic, (m) => out.push(m.payload.toString()));
        return out;
      };
      await waitFor(() => seen().length === 1, 5000, 'the retained message on B');
      expect(seen()).toEqual(['kept']);
    });

    it('both nodes are live', async () => {
      const live = (await pair.a.liveNodes()).map((n) => n.nodeId).sort();
      expect(live).toEqual([pair.a.nodeId, pair.b.nodeId].sort());
    });
  });
}
