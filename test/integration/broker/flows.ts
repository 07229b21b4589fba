/**
 * Steps shared by the PUBLISH / SUBSCRIBE / QoS suites: raw clients that connect, subscribe, publish
 * and complete QoS flows over real sockets, and sync points that wait on packets instead of time.
 */
import { expect } from 'vitest';
import type {
  ConnectPacket,
  DisconnectPacket,
  Properties,
  ProtocolVersion,
  PublishPacket,
  QoS,
  SubackPacket,
  Subscription,
  UnsubackPacket,
} from '../../../src/protocol/index.js';
import { RawClient } from '../../helpers/raw-client.js';

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
