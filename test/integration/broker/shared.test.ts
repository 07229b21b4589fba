/**
 * Shared subscriptions (MQTT 5 4.8.2) over real sockets: every message to exactly one member of each
 * group, members sharing the load, groups independent of each other, each member at its own QoS, and
 * persistent members that are offline.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PublishPacket } from '../../../src/protocol/index.js';
import { startTestBroker, type TestBroker } from '../../helpers/broker.js';
import {
  acknowledge,
  closeAll,
  connect,
  publishAcked,
  receive,
  settle,
  subscribe,
  sync,
  takePublishes,
  uid,
  unsubscribe,
} from '../../helpers/mqtt.js';
import type { RawClient } from '../../helpers/raw-client.js';

let b: TestBroker;
beforeAll(async () => {
  b = await startTestBroker();
});
afterAll(async () => {
  await b.close();
});

/** Everything each client has received so far (after a sync point), acknowledged. */
function collect(clients: RawClient[]): PublishPacket[][] {
  return clients.map((c) => {
    const got = takePublishes(c);
    for (const p of got) acknowledge(c, p);
    return got;
  });
}

const payloads = (ps: PublishPacket[]) => ps.map((p) => p.payload.toString());

describe('shared subscriptions', () => {
  it('(MQTT 5 4.8.2) three members of $share/g/t/#: each gets a share, every message goes to exactly one', async () => {
    const base = uid('sh');
    const members = [await connect(b.port, 5), await connect(b.port, 4), await connect(b.port, 5)];
    for (const m of members)
      expect((await subscribe(m, { topic: `$share/g/${base}/#`, qos: 1 })).reasonCodes).toEqual([1]);
    const pub = await connect(b.port, 5);
    const n = 30;
    for (let i = 0; i < n; i++)
      expect(await publishAcked(pub, `${base}/x/${i}`, `m${i}`, { qos: 1 })).toBe(0);
    await settle(pub, ...members);
    const got = collect(members);
    for (const g of got) expect(g.length).toBeGreaterThan(0);
    const all = got.flatMap(payloads).sort();
    expect(all).toEqual(Array.from({ length: n }, (_, i) => `m${i}`).sort());
    closeAll(pub, ...members);
  });

  it('(MQTT 5 4.8.2) two groups on the same filter each get every message', async () => {
    const topic = uid('groups');
    const g1 = [await connect(b.port, 5), await connect(b.port, 5)];
    const g2 = [await connect(b.port, 5)];
    for (const m of g1) await subscribe(m, { topic: `$share/one/${topic}`, qos: 1 });
    for (const m of g2) await subscribe(m, { topic: `$share/two/${topic}`, qos: 1 });
    const pub = await connect(b.port, 5);
    const n = 10;
    for (let i = 0; i < n; i++) await publishAcked(pub, topic, `m${i}`, { qos: 1 });
    await settle(pub, ...g1, ...g2);
    const expected = Array.from({ length: n }, (_, i) => `m${i}`);
    expect(collect(g1).flatMap(payloads).sort()).toEqual([...expected].sort());
    expect(collect(g2).flatMap(payloads)).toEqual(expected);
    closeAll(pub, ...g1, ...g2);
  });

  it('(MQTT 5 4.8.2) a client in two groups gets one copy per group it is picked in', async () => {
    const topic = uid('twogroups');
    const a = await connect(b.port, 5);
    const c = await connect(b.port, 5);
    await subscribe(a, [
      { topic: `$share/one/${topic}`, qos: 1 },
      { topic: `$share/two/${topic}`, qos: 1 },
    ]);
    await subscribe(c, { topic: `$share/one/${topic}`, qos: 1 });
    const pub = await connect(b.port, 5);
    const n = 8;
    for (let i = 0; i < n; i++) await publishAcked(pub, topic, `m${i}`, { qos: 1 });
    await settle(pub, a, c);
    const [ga, gc] = collect([a, c]);
    // Group two has only `a`: all n. Group one splits n between `a` and `c`.
    expect(ga.length + gc.length).toBe(2 * n);
    expect(gc.length).toBeGreaterThan(0);
    const countA = new Map<string, number>();
    for (const p of payloads(ga)) countA.set(p, (countA.get(p) ?? 0) + 1);
    for (let i = 0; i < n; i++) expect(countA.get(`m${i}`) ?? 0).toBeGreaterThanOrEqual(1);
    closeAll(pub, a, c);
  });

  it('[MQTT-4.8.2-3] each member receives at its own granted QoS', async () => {
    const topic = uid('shqos');
    const low = await connect(b.port, 5);
    const high = await connect(b.port, 5);
    await subscribe(low, { topic: `$share/q/${topic}`, qos: 0 });
    await subscribe(high, { topic: `$share/q/${topic}`, qos: 2 });
    const pub = await connect(b.port, 5);
    for (let i = 0; i < 6; i++) await publishAcked(pub, topic, `m${i}`, { qos: 2 });
    await settle(pub, low, high);
    const [gl, gh] = collect([low, high]);
    expect(gl.length).toBeGreaterThan(0);
    expect(gh.length).toBeGreaterThan(0);
    expect(gl.length + gh.length).toBe(6);
    expect(gl.every((p) => p.qos === 0)).toBe(true);
    expect(gh.every((p) => p.qos === 2)).toBe(true);
    closeAll(pub, low, high);
  });

  it('(MQTT 5 4.8.2) a member that unsubscribes or disconnects leaves the group; the rest get every message', async () => {
    const topic = uid('leave');
    const stay = await connect(b.port, 5);
    const leave = await connect(b.port, 5);
    const gone = await connect(b.port, 4);
    for (const m of [stay, leave, gone]) await subscribe(m, { topic: `$share/g/${topic}`, qos: 1 });
    expect((await unsubscribe(leave, `$share/g/${topic}`)).reasonCodes).toEqual([0]);
    gone.send({ type: 'disconnect' });
    await gone.closed;
    const pub = await connect(b.port, 5);
    for (let i = 0; i < 5; i++) await publishAcked(pub, topic, `m${i}`, { qos: 1 });
    await settle(pub, stay, leave);
    const [gs, gl] = collect([stay, leave]);
    expect(payloads(gs)).toEqual(['m0', 'm1', 'm2', 'm3', 'm4']);
    expect(gl).toEqual([]);
    closeAll(pub, stay, leave);
  });

  it('(MQTT 5 4.8.2) an offline persistent member of a group queues its messages until it reconnects', async () => {
    const topic = uid('offline');
    const clientId = uid('member');
    const persistent = { clean: false, properties: { sessionExpiryInterval: 300 } };
    const member = await connect(b.port, 5, { clientId, ...persistent });
    await subscribe(member, { topic: `$share/g/${topic}`, qos: 1 });
    member.send({ type: 'disconnect' });
    await member.closed;
    const pub = await connect(b.port, 5);
    // The group's only member is offline: the message is queued for it, so it did reach a subscriber.
    for (let i = 0; i < 3; i++) expect(await publishAcked(pub, topic, `m${i}`, { qos: 1 })).toBe(0);
    const back = await connect(b.port, 5, { clientId, ...persistent });
    expect(payloads(await receive(back, 3))).toEqual(['m0', 'm1', 'm2']);
    back.destroy();
    await connect(b.port, 5, { clientId, clean: true }).then((c) => c.destroy());
    closeAll(pub);
  });

  it('(MQTT 5 4.8.2) with one member offline and one online, every message is delivered exactly once', async () => {
    const topic = uid('mixed');
    const clientId = uid('member');
    const persistent = { clean: false, properties: { sessionExpiryInterval: 300 } };
    const sleeper = await connect(b.port, 5, { clientId, ...persistent });
    await subscribe(sleeper, { topic: `$share/g/${topic}`, qos: 1 });
    const awake = await connect(b.port, 5);
    await subscribe(awake, { topic: `$share/g/${topic}`, qos: 1 });
    sleeper.send({ type: 'disconnect' });
    await sleeper.closed;
    const pub = await connect(b.port, 5);
    const n = 6;
    for (let i = 0; i < n; i++) await publishAcked(pub, topic, `m${i}`, { qos: 1 });
    const back = await connect(b.port, 5, { clientId, ...persistent });
    await settle(pub, awake, back);
    await sync(back);
    const all = collect([awake, back]).flatMap(payloads).sort();
    expect(all).toEqual(Array.from({ length: n }, (_, i) => `m${i}`).sort());
    back.destroy();
    await connect(b.port, 5, { clientId, clean: true }).then((c) => c.destroy());
    closeAll(pub, awake);
  });
});
