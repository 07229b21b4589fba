/**
 * The one MQTT helper module of the tests: raw clients (test/helpers/raw-client.ts) that connect,
 * subscribe, publish and complete QoS flows over real sockets; sync points that wait on packets
 * (PINGREQ round trips) or on broker state, never on delays; and the tracking of every peer a test
 * opened, so it ends with every socket closed.
 */
import { expect } from 'vitest';
import type {
  ConnackPacket,
  ConnectPacket,
  DisconnectPacket,
  Packet,
  Properties,
  ProtocolVersion,
  PublishPacket,
  QoS,
  SubackPacket,
  Subscription,
  UnsubackPacket,
} from '../../src/protocol/index.js';
import { RawClient } from './raw-client.js';

let seq = 0;
/** A client id (or topic segment) no other test of the run uses. */
export function uid(prefix = 'c'): string {
  seq++;
  return `${prefix}-${process.pid}-${seq}`;
}

const packetIds = new WeakMap<RawClient, number>();
/** The next packet id this client uses for SUBSCRIBE, UNSUBSCRIBE and PUBLISH (1..65535). */
export function nextId(c: RawClient): number {
  const id = ((packetIds.get(c) ?? 0) % 0xffff) + 1;
  packetIds.set(c, id);
  return id;
}

/** Opens a raw connection and completes CONNECT / CONNACK (expected to succeed). */
export async function connect(
  port: number,
  version: ProtocolVersion = 5,
  fields: Partial<ConnectPacket> = {},
): Promise<RawClient> {
  const c = await RawClient.connect(port, version);
  c.socket.setNoDelay(true); // acknowledgements go out at once, not after a delayed ACK
  const ack = await c.handshake({ protocolVersion: version, clientId: uid('raw'), ...fields });
  expect(ack.reasonCode).toBe(0);
  return c;
}

export type SubSpec = string | (Partial<Subscription> & { topic: string });

/** SUBSCRIBE (one packet, any number of filters; QoS 0 unless given) and wait for the SUBACK. */
export async function subscribe(
  c: RawClient,
  specs: SubSpec | SubSpec[],
  properties?: Properties,
): Promise<SubackPacket> {
  const list = Array.isArray(specs) ? specs : [specs];
  const packetId = nextId(c);
  c.send({
    type: 'subscribe',
    packetId,
    properties,
    subscriptions: list.map((s) => ({
      qos: 0 as QoS,
      noLocal: false,
      retainAsPublished: false,
      retainHandling: 0 as const,
      ...(typeof s === 'string' ? { topic: s } : s),
    })),
  });
  const ack = await c.next('suback');
  expect(ack.packetId).toBe(packetId); // [MQTT-3.8.4-2]
  return ack;
}

export async function unsubscribe(c: RawClient, topics: string | string[]): Promise<UnsubackPacket> {
  const packetId = nextId(c);
  c.send({ type: 'unsubscribe', packetId, topics: Array.isArray(topics) ? topics : [topics] });
  const ack = await c.next('unsuback');
  expect(ack.packetId).toBe(packetId); // [MQTT-3.10.4-5]
  return ack;
}

export interface PublishOptions {
  qos?: QoS;
  retain?: boolean;
  dup?: boolean;
  properties?: Properties;
  packetId?: number;
}

/** Sends a PUBLISH and returns its packet id (undefined for QoS 0). */
export function publish(
  c: RawClient,
  topic: string,
  payload: string | Buffer,
  o: PublishOptions = {},
): number | undefined {
  const qos = o.qos ?? 0;
  const packetId = qos > 0 ? (o.packetId ?? nextId(c)) : undefined;
  c.send({
    type: 'publish',
    topic,
    payload: typeof payload === 'string' ? Buffer.from(payload) : payload,
    qos,
    retain: o.retain ?? false,
    dup: o.dup ?? false,
    packetId,
    properties: o.properties,
  });
  return packetId;
}

/**
 * Publishes and completes the publisher's side of the QoS flow (PUBACK, or PUBREC / PUBREL / PUBCOMP;
 * for QoS 0 a PINGREQ round trip, so the broker has routed the message on return). Returns the reason
 * code of PUBACK or PUBREC (0 for QoS 0).
 */
export async function publishAcked(
  c: RawClient,
  topic: string,
  payload: string | Buffer,
  o: PublishOptions = {},
): Promise<number> {
  const packetId = publish(c, topic, payload, o);
  if (packetId === undefined) {
    await sync(c);
    return 0;
  }
  if (o.qos === 1) {
    const ack = await c.next('puback');
    expect(ack.packetId).toBe(packetId); // [MQTT-2.2.1-5]
    return ack.reasonCode ?? 0;
  }
  const rec = await c.next('pubrec');
  expect(rec.packetId).toBe(packetId);
  const code = rec.reasonCode ?? 0;
  if (code >= 0x80) return code; // a failed PUBREC ends the exchange
  c.send({ type: 'pubrel', packetId });
  const comp = await c.next('pubcomp');
  expect(comp.packetId).toBe(packetId);
  expect(comp.reasonCode ?? 0).toBe(0);
  return code;
}

/** PINGREQ / PINGRESP: every packet the broker wrote to this client before answering has arrived. */
export async function sync(c: RawClient): Promise<void> {
  c.send({ type: 'pingreq' });
  await c.next('pingresp');
}

/**
 * Waits until `publisher`'s messages are routed (the broker routes a PUBLISH before it reads the next
 * packet) and every subscriber has everything sent to it so far.
 */
export async function settle(publisher: RawClient, ...subscribers: RawClient[]): Promise<void> {
  await sync(publisher);
  for (const s of subscribers) await sync(s);
}

/** The receiver's side of the QoS flow for one PUBLISH (PUBACK, or PUBREC then PUBCOMP on PUBREL). */
export function acknowledge(c: RawClient, p: PublishPacket): void {
  if (p.qos === 1) c.send({ type: 'puback', packetId: p.packetId! });
  else if (p.qos === 2) {
    c.send({ type: 'pubrec', packetId: p.packetId! });
    void c.next('pubrel').then(
      (rel) => c.send({ type: 'pubcomp', packetId: rel.packetId }),
      () => undefined,
    );
  }
}

/** The next PUBLISH sent to this client; QoS 1 and 2 are acknowledged unless `ack` is false. */
export async function nextPublish(c: RawClient, ack = true): Promise<PublishPacket> {
  const p = await c.next('publish');
  if (ack) acknowledge(c, p);
  return p;
}

export async function receive(c: RawClient, n: number, ack = true): Promise<PublishPacket[]> {
  const out: PublishPacket[] = [];
  for (let i = 0; i < n; i++) out.push(await nextPublish(c, ack));
  return out;
}

/** PUBLISH packets that already arrived (use after a sync point), removed from the client's inbox. */
export function takePublishes(c: RawClient): PublishPacket[] {
  const out: PublishPacket[] = [];
  for (let i = 0; i < c.received.length; ) {
    const p = c.received[i];
    if (p.type === 'publish') {
      out.push(p);
      c.received.splice(i, 1);
    } else i++;
  }
  return out;
}

/** Expects the broker to end the connection: MQTT 5 with a DISCONNECT of `reasonCode`, 3.x by closing. */
export async function expectDisconnect(
  c: RawClient,
  reasonCode?: number,
): Promise<DisconnectPacket | undefined> {
  let d: DisconnectPacket | undefined;
  if (reasonCode !== undefined) {
    d = await c.next('disconnect');
    expect(d.reasonCode).toBe(reasonCode);
  }
  await closedWithin(c);
  return d;
}

/** Resolves once the broker has closed the connection; fails after `ms` instead of hanging the test. */
export async function closedWithin(c: RawClient, ms = 5000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('the broker did not close the connection')), ms);
  });
  try {
    await Promise.race([c.closed, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Destroys clients that may or may not still be open. */
export function closeAll(...clients: (RawClient | undefined)[]): void {
  for (const c of clients) c?.destroy();
}

// ---- one-call steps (a filter, a message) and peers a test tracks ---------------------------------

export type ConnectFields = Partial<ConnectPacket>;

/** A raw peer that has completed CONNECT / CONNACK with any reason code (refusals are results here). */
export async function handshake(
  port: number,
  version: ProtocolVersion,
  fields: ConnectFields = {},
): Promise<{ client: RawClient; connack: ConnackPacket }> {
  const client = await RawClient.connect(port, version);
  const connack = await client.handshake({ protocolVersion: version, ...fields });
  return { client, connack };
}

/** SUBSCRIBE one filter at `qos` (1 unless given) and wait for its SUBACK; returns its reason codes. */
export async function subscribeTo(client: RawClient, topic: string, qos: QoS = 1): Promise<number[]> {
  return (await subscribe(client, { topic, qos })).reasonCodes;
}

/**
 * PUBLISH (QoS 1 unless given) and wait until the broker has processed it: returns its PUBACK or
 * PUBREC (the QoS 2 flow is left to the test), or for QoS 0 a PINGRESP after a PINGREQ round trip.
 * Packet id 1 unless given (tests that continue the flow by hand name it).
 */
export async function publishAwait(
  client: RawClient,
  topic: string,
  payload: string,
  qos: QoS = 1,
  packetId = 1,
  extra: Partial<PublishPacket> = {},
): Promise<Packet> {
  const o: PublishOptions = {
    qos,
    retain: extra.retain,
    dup: extra.dup,
    properties: extra.properties,
    packetId,
  };
  publish(client, topic, payload, o);
  if (qos === 1) return client.next('puback');
  if (qos === 2) return client.next('pubrec');
  await sync(client);
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

  /** CONNECT with any outcome: the client and its CONNACK. */
  async connect(port: number, version: ProtocolVersion, fields: ConnectFields = {}) {
    const r = await handshake(port, version, fields);
    this.add(r.client);
    return r;
  }

  /** CONNECT that must succeed. */
  async online(port: number, version: ProtocolVersion, fields: ConnectFields = {}): Promise<RawClient> {
    const { client, connack } = await this.connect(port, version, fields);
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
  await closedWithin(client);
  expect(client.received.filter((p) => p.type === 'disconnect')).toEqual([]);
}
