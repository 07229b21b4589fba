/**
 * Shared pieces of the broker integration suites: raw peers that connect in one call, barriers that
 * prove what was (not) sent, and waiting on broker state without fixed sleeps.
 */

import { expect } from 'vitest';
import type { Packet, ProtocolVersion } from '../../../src/protocol/index.js';
import { RawClient } from '../../helpers/raw-client.js';
import { sync as barrier, closedWithin as closed } from './flows.js';

/** The PINGREQ barrier and the bounded close wait are the ones in flows.ts, under these names here. */
export { barrier, closed };

export type ConnectFields = Partial<Extract<Packet, { type: 'connect' }>>;
export type Connack = Extract<Packet, { type: 'connack' }>;

/** A raw peer that has completed CONNECT / CONNACK (any reason code). */
export async function connect(
  port: number,
  version: ProtocolVersion,
  fields: ConnectFields = {},
): Promise<{ client: RawClient; connack: Connack }> {
  const client = await RawClient.connect(port, version);
  const connack = await client.handshake({ protocolVersion: version, ...fields });
  return { client, connack };
}

/** Connects and expects CONNACK success; returns the client. */
export async function online(
  port: number,
  version: ProtocolVersion,
  fields: ConnectFields = {},
): Promise<RawClient> {
  const { client, connack } = await connect(port, version, fields);
  if (connack.reasonCode !== 0) throw new Error(`CONNACK refused with 0x${connack.reasonCode.toString(16)}`);
  return client;
}

/** SUBSCRIBE one filter and wait for its SUBACK; returns the granted reason codes. */
export async function subscribe(
  client: RawClient,
  topic: string,
  qos: 0 | 1 | 2 = 1,
  packetId = 1,
): Promise<number[]> {
  client.send({
    type: 'subscribe',
    packetId,
    subscriptions: [{ topic, qos, noLocal: false, retainAsPublished: false, retainHandling: 0 }],
  });
  const suback = await client.next('suback');
  return suback.reasonCodes;
}

/** PUBLISH and wait for the broker to have processed it (PUBACK / PUBREC, or a PINGRESP barrier at QoS 0). */
export async function publish(
  client: RawClient,
  topic: string,
  payload: string,
  qos: 0 | 1 | 2 = 1,
  packetId = 1,
  extra: Partial<Extract<Packet, { type: 'publish' }>> = {},
): Promise<Packet> {
  client.send({
    type: 'publish',
    topic,
    payload: Buffer.from(payload),
    qos,
    retain: false,
    dup: false,
    packetId: qos > 0 ? packetId : undefined,
    ...extra,
  });
  if (qos === 1) return client.next('puback');
  if (qos === 2) return client.next('pubrec');
  await barrier(client);
  return { type: 'pingresp' };
}

/** Packets of a type received so far (not consumed). */
export function receivedOf<T extends Packet['type']>(
  client: RawClient,
  type: T,
): Extract<Packet, { type: T }>[] {
  return client.received.filter((p) => p.type === type) as Extract<Packet, { type: T }>[];
}

/**
 * Waits until `condition` holds, checking after each turn of the event loop. For broker state that no
 * packet announces (a socket close processed on the broker side); never a fixed sleep.
 */
export async function until(condition: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

/** A promise with its resolve function outside (an authenticator the test answers for). */
export function deferred<T>(): {
  promise: Promise<T>;
  resolve: (value: T) => void;
  reject: (err: unknown) => void;
} {
  let resolve!: (value: T) => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Tracks raw clients so each test ends with every socket destroyed. */
export class Peers {
  private readonly clients: RawClient[] = [];

  add<T extends RawClient>(client: T): T {
    this.clients.push(client);
    return client;
  }

  async connect(port: number, version: ProtocolVersion, fields: ConnectFields = {}) {
    const r = await connect(port, version, fields);
    this.add(r.client);
    return r;
  }

  async online(port: number, version: ProtocolVersion, fields: ConnectFields = {}): Promise<RawClient> {
    const client = this.add(await RawClient.connect(port, version));
    const connack = await client.handshake({ protocolVersion: version, ...fields });
    if (connack.reasonCode !== 0)
      throw new Error(`CONNACK refused with 0x${connack.reasonCode.toString(16)}`);
    return client;
  }

  async raw(port: number, version: ProtocolVersion = 4): Promise<RawClient> {
    return this.add(await RawClient.connect(port, version));
  }

  async closeAll(): Promise<void> {
    const all = this.clients.splice(0);
    for (const c of all) c.destroy();
    await Promise.all(all.map((c) => c.closed));
  }
}

/** Expects a DISCONNECT with `reasonCode` (any properties) as the last packet, then the close. */
export async function disconnectedWith(client: RawClient, reasonCode: number): Promise<void> {
  const d = await client.next('disconnect');
  expect(d.reasonCode).toBe(reasonCode);
  expect(d.properties?.sessionExpiryInterval).toBeUndefined(); // [MQTT-3.14.2-2] never from the server
  await closed(client);
  expect(client.received.filter((p) => p.type === 'disconnect')).toEqual([]);
}
