/**
 * Two brokers in one process joined by the in-memory cluster backend (MemoryHub): the broker's cluster
 * logic — routing to other nodes, shared subscriptions spread over nodes, takeover with DISCONNECT
 * 0x8E, wills of a dead node — through real sockets and MQTT.js, without Redis. The same scenarios run
 * against Redis in test/cluster/.
 */
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MemoryHub } from '../../../src/backend/memory/cluster-hub.js';
import { systemClock } from '../../../src/clock.js';
import { startTestBroker, type TestBroker } from '../../helpers/broker.js';
import { until } from '../../helpers/mqtt.js';

let hub: MemoryHub;
let A: TestBroker;
let B: TestBroker;
const clients: MqttClient[] = [];

beforeAll(async () => {
  hub = new MemoryHub(systemClock);
  A = await startTestBroker({}, { cluster: hub.node('A') });
  B = await startTestBroker({}, { cluster: hub.node('B') });
});

afterAll(async () => {
  await A?.close();
  await B?.close();
});

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.endAsync(true)));
});

async function client(b: TestBroker, opts: mqtt.IClientOptions = {}): Promise<MqttClient> {
  const c = await mqtt.connectAsync(b.url, { protocolVersion: 5, reconnectPeriod: 0, ...opts });
  c.on('error', () => undefined);
  clients.push(c);
  return c;
}

function collect(c: MqttClient): string[] {
  const out: string[] = [];
  c.on('message', (_t, p) => out.push(p.toString()));
  return out;
}

describe('two brokers on a memory hub', () => {
  it('a message published on A reaches a subscriber on B (QoS 1), acknowledged once the hub has it', async () => {
    const sub = await client(B);
    const got = collect(sub);
    await sub.subscribeAsync('m/+', { qos: 1 });
    const pub = await client(A);
    await pub.publishAsync('m/1', 'one', { qos: 1 });
    await until(() => got.length === 1, 'the message reaches B');
    expect(got).toEqual(['one']);
  });

  it('[MQTT-4.8.2-4] a shared subscription with members on A and B gets each message once, on both nodes', async () => {
    const a = await client(A);
    const b = await client(B);
    const ga = collect(a);
    const gb = collect(b);
    await a.subscribeAsync('$share/g/s/#', { qos: 1 });
    await b.subscribeAsync('$share/g/s/#', { qos: 1 });
    const pub = await client(A);
    for (let i = 0; i < 20; i++) await pub.publishAsync('s/x', `m${i}`, { qos: 1 });
    await until(() => ga.length + gb.length === 20, 'all 20 shares arrive');
    expect([...ga, ...gb].sort()).toEqual(Array.from({ length: 20 }, (_, i) => `m${i}`).sort());
    expect(ga.length).toBeGreaterThan(0);
    expect(gb.length).toBeGreaterThan(0);
  });

  it('[MQTT-3.1.4-3] a CONNECT on B takes over the client from A: DISCONNECT 0x8E there', async () => {
    const old = await client(A, { clientId: 'same-id' });
    const reason = new Promise<number | undefined>((resolve) =>
      old.once('disconnect', (p) => resolve(p.reasonCode)),
    );
    await client(B, { clientId: 'same-id' });
    expect(await reason).toBe(0x8e);
  });

  it('[MQTT-3.1.2-8] the will of a client on a node that dies is published by the survivor', async () => {
    const C = await startTestBroker({}, { cluster: hub.node('C') });
    const watcher = await client(A);
    const wills = collect(watcher);
    await watcher.subscribeAsync('wills/#', { qos: 1 });
    await client(C, {
      clientId: 'doomed',
      will: { topic: 'wills/doomed', payload: Buffer.from('gone'), qos: 1, retain: false },
    });
    hub.kill('C');
    await until(() => wills.length === 1, 'the will is published');
    expect(wills).toEqual(['gone']);
    await C.close();
  });

  it('[MQTT-3.1.2-5] a persistent session resumes on the other broker: Session Present, its subscription and queue', async () => {
    const session = { clientId: 'mc-persistent', clean: false, properties: { sessionExpiryInterval: 60 } };
    const first = await client(A, session);
    await first.subscribeAsync('ps/+', { qos: 1 });
    await first.endAsync();
    const pub = await client(B);
    for (let i = 0; i < 5; i++) await pub.publishAsync('ps/x', `q${i}`, { qos: 1 });
    const again = mqtt.connect(B.url, {
      protocolVersion: 5,
      reconnectPeriod: 0,
      ...session,
      manualConnect: true,
    });
    again.on('error', () => undefined);
    clients.push(again);
    const got: { payload: string; dup: boolean }[] = [];
    again.on('message', (_t, p, packet) => got.push({ payload: p.toString(), dup: packet.dup }));
    const connack = new Promise<boolean>((resolve) =>
      again.once('connect', (p) => resolve(p.sessionPresent)),
    );
    again.connect();
    expect(await connack).toBe(true);
    await until(() => got.length === 5, 'five messages arrive');
    expect(got.map((m) => m.payload)).toEqual(['q0', 'q1', 'q2', 'q3', 'q4']);
  });
});
