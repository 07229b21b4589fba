/**
 * Malformed and illegal input over real sockets. Each violation closes only the connection that
 * made it (MQTT 5: after a DISCONNECT with the reason code, once CONNACK was sent); another client
 * and its session carry on; and no byte stream can bring the broker down or raise an internal error.
 */
import { afterAll, beforeAll, describe, expect, it, type MockInstance, vi } from 'vitest';
import type { BrokerOptions } from '../../../src/broker/options.js';
import { encode, ReasonCode } from '../../../src/protocol/index.js';
import { hex } from '../../fixtures/hex.js';
import { type MalformedCase, malformedCases } from '../../fixtures/malformed.js';
import { goldenFixtures } from '../../fixtures/packets.js';
import { startTestBroker, type TestBroker } from '../../helpers/broker.js';
import {
  closedWithin,
  disconnectedWith,
  Peers,
  publishAwait,
  subscribeTo,
  sync,
} from '../../helpers/mqtt.js';
import type { RawClient } from '../../helpers/raw-client.js';

let b: TestBroker;
let bystander: RawClient;
let internalErrors: MockInstance;
const peers = new Peers();

beforeAll(async () => {
  b = await startTestBroker();
  internalErrors = vi.spyOn(b.broker.logger, 'error');
  bystander = await peers.online(b.port, 5, {
    clientId: 'bystander',
    clean: false,
    properties: { sessionExpiryInterval: 300 },
  });
  await subscribeTo(bystander, 'bystander/#', 1);
});
afterAll(async () => {
  await peers.closeAll();
  await b.close();
});

/** The bystander is still connected, subscribed, and gets a message published now. */
async function bystanderIntact(t: TestBroker = b, who: RawClient = bystander): Promise<void> {
  const pub = await peers.online(t.port, 4);
  await publishAwait(pub, 'bystander/check', 'still here', 1);
  const got = await who.next('publish');
  expect(got.payload.toString()).toBe('still here');
  who.send({ type: 'puback', packetId: got.packetId! });
  await sync(who);
  pub.destroy();
}

const afterConnack = (c: MalformedCase) => c.options === undefined;
const isVersionCase = (c: MalformedCase) => c.code.startsWith('UNSUPPORTED_PROTOCOL');

describe('golden malformed inputs after CONNACK', () => {
  const cases = malformedCases.filter(afterConnack).map((c) => [c.name, c] as const);

  it.each(cases)('[MQTT-4.13.1-1] %s', async (_name, c) => {
    const client = await peers.online(b.port, c.version);
    client.sendBytes(c.bytes);
    if (c.version === 5) {
      // [MQTT-4.13.2-1] a reason code of 0x80 or more, then the close. 0x84 is CONNACK-only: a second
      // CONNECT is a Protocol Error [MQTT-3.1.0-2].
      await disconnectedWith(client, isVersionCase(c) ? ReasonCode.ProtocolError : c.reasonCode);
    } else {
      await closedWithin(client);
      expect(client.received).toEqual([]); // no DISCONNECT before MQTT 5
    }
  });

  it('[MQTT-4.13.1-1] none of them disturbed another client or its session', async () => {
    await bystanderIntact();
    expect(internalErrors).not.toHaveBeenCalled();
  });
});

describe('golden malformed inputs as the first packet', () => {
  const cases = malformedCases.filter(afterConnack).map((c) => [c.name, c] as const);

  it.each(cases)('[MQTT-3.1.4-1] %s', async (_name, c) => {
    const client = await peers.raw(b.port, c.version);
    client.sendBytes(c.bytes);
    await closedWithin(client);
    // Only an unsupported protocol level is answered (CONNACK 0x01 [MQTT-3.1.2-2]); a DISCONNECT is never
    // sent before CONNACK [MQTT-3.14.0-1].
    const unsupportedLevel = c.code === 'UNSUPPORTED_PROTOCOL_VERSION';
    expect(client.received).toEqual(
      unsupportedLevel ? [{ type: 'connack', sessionPresent: false, reasonCode: 1 }] : [],
    );
  });
});

describe('illegal packets get their MQTT 5 reason code', () => {
  async function withBroker(options: Partial<BrokerOptions>, body: (t: TestBroker) => Promise<void>) {
    const t = await startTestBroker(options);
    try {
      await body(t);
    } finally {
      await t.close();
    }
  }

  it('[MQTT-3.3.1-4] 0x81 Malformed Packet: a PUBLISH with QoS 3', async () => {
    const c = await peers.online(b.port, 5);
    c.sendBytes(hex`36 06 00 01 74 00 01 00`);
    await disconnectedWith(c, ReasonCode.MalformedPacket);
  });

  it('[MQTT-3.1.0-2] 0x82 Protocol Error: a second CONNECT', async () => {
    const c = await peers.online(b.port, 5);
    c.send({
      type: 'connect',
      protocolName: 'MQTT',
      protocolVersion: 5,
      clean: true,
      keepalive: 0,
      clientId: 'c',
    });
    await disconnectedWith(c, ReasonCode.ProtocolError);
  });

  it('[MQTT-4.12.0-7] 0x82 Protocol Error: AUTH without an Authentication Method at CONNECT', async () => {
    const c = await peers.online(b.port, 5);
    c.send({ type: 'auth', reasonCode: ReasonCode.ReAuthenticate });
    await disconnectedWith(c, ReasonCode.ProtocolError);
  });

  it('(2.1.2) 0x82 Protocol Error: a server-to-client packet (SUBACK) from the client', async () => {
    const c = await peers.online(b.port, 5);
    c.send({ type: 'suback', packetId: 1, reasonCodes: [0] });
    await disconnectedWith(c, ReasonCode.ProtocolError);
  });

  it('[MQTT-3.2.2-15] 0x95 Packet too large: a PUBLISH above maxPacketSizeBytes, refused from its fixed header', async () => {
    await withBroker({ maxPacketSizeBytes: 64 }, async (t) => {
      const c = await peers.online(t.port, 5);
      await publishAwait(c, 'small', 'x'.repeat(40), 1); // within the limit
      // Remaining length 200 MB and no body: refused before a byte of it is buffered.
      c.sendBytes(hex`30 80 80 80 64`);
      await disconnectedWith(c, ReasonCode.PacketTooLarge);
      const d = await peers.online(t.port, 5);
      d.send({
        type: 'publish',
        topic: 'big',
        payload: Buffer.alloc(100),
        qos: 0,
        retain: false,
        dup: false,
      });
      await disconnectedWith(d, ReasonCode.PacketTooLarge);
    });
  });

  it.each(['a/+', 'a/#', '#', '+'])(
    '[MQTT-3.3.2-2] 0x90 Topic Name invalid: PUBLISH to %s',
    async (topic) => {
      const c = await peers.online(b.port, 5);
      c.send({
        type: 'publish',
        topic,
        payload: Buffer.from('x'),
        qos: 1,
        retain: false,
        dup: false,
        packetId: 1,
      });
      await disconnectedWith(c, ReasonCode.TopicNameInvalid);
    },
  );

  it('[MQTT-3.3.2-8] 0x94 Topic Alias invalid: alias 0', async () => {
    const c = await peers.online(b.port, 5);
    c.send({
      type: 'publish',
      topic: 't',
      payload: Buffer.from('x'),
      qos: 0,
      retain: false,
      dup: false,
      properties: { topicAlias: 0 },
    });
    await disconnectedWith(c, ReasonCode.TopicAliasInvalid);
  });

  it('[MQTT-3.3.2-9] [MQTT-3.2.2-17] 0x94 Topic Alias invalid: alias above the Topic Alias Maximum', async () => {
    await withBroker({ topicAliasMaximum: 2 }, async (t) => {
      const c = await peers.online(t.port, 5);
      await publishAwait(c, 'alias/ok', 'x', 1, 1, { properties: { topicAlias: 2 } }); // [MQTT-3.3.2-12] accepted
      c.send({
        type: 'publish',
        topic: 't',
        payload: Buffer.from('x'),
        qos: 0,
        retain: false,
        dup: false,
        properties: { topicAlias: 3 },
      });
      await disconnectedWith(c, ReasonCode.TopicAliasInvalid);
    });
  });

  it('[MQTT-3.2.2-18] 0x94 Topic Alias invalid: any alias when the maximum is 0', async () => {
    await withBroker({ topicAliasMaximum: 0 }, async (t) => {
      const c = await peers.online(t.port, 5);
      c.send({
        type: 'publish',
        topic: 't',
        payload: Buffer.from('x'),
        qos: 0,
        retain: false,
        dup: false,
        properties: { topicAlias: 1 },
      });
      await disconnectedWith(c, ReasonCode.TopicAliasInvalid);
    });
  });

  it('(3.3.2.1) 0x82 Protocol Error: an empty topic with an alias never set', async () => {
    const c = await peers.online(b.port, 5);
    c.send({
      type: 'publish',
      topic: '',
      payload: Buffer.from('x'),
      qos: 0,
      retain: false,
      dup: false,
      properties: { topicAlias: 5 },
    });
    await disconnectedWith(c, ReasonCode.ProtocolError);
  });

  it('[MQTT-3.2.2-11] 0x9B QoS not supported: QoS 2 above Maximum QoS 1', async () => {
    await withBroker({ maximumQoS: 1 }, async (t) => {
      const c = await peers.online(t.port, 5);
      await publishAwait(c, 'q/ok', 'x', 1);
      c.send({
        type: 'publish',
        topic: 'q/two',
        payload: Buffer.from('x'),
        qos: 2,
        retain: false,
        dup: false,
        packetId: 2,
      });
      await disconnectedWith(c, ReasonCode.QoSNotSupported);
    });
  });

  it('[MQTT-3.2.2-14] 0x9A Retain not supported: RETAIN 1 when retain is unavailable', async () => {
    await withBroker({ retainAvailable: false }, async (t) => {
      const c = await peers.online(t.port, 5);
      c.send({ type: 'publish', topic: 'r', payload: Buffer.from('x'), qos: 0, retain: true, dup: false });
      await disconnectedWith(c, ReasonCode.RetainNotSupported);
      expect(t.broker.stats.retained).toBe(0);
    });
  });

  it('(4.13) 3.1.1 gets the same violations as a plain close', async () => {
    for (const topic of ['a/#', '']) {
      const c = await peers.online(b.port, 4);
      c.send({
        type: 'publish',
        topic,
        payload: Buffer.from('x'),
        qos: 1,
        retain: false,
        dup: false,
        packetId: 1,
      });
      await closedWithin(c);
      expect(c.received).toEqual([]);
    }
  });

  it('[MQTT-4.13.1-1] a violation closes only its own connection', async () => {
    const c = await peers.online(b.port, 5);
    c.sendBytes(hex`36 06 00 01 74 00 01 00`);
    await disconnectedWith(c, ReasonCode.MalformedPacket);
    await bystanderIntact();
  });
});

describe('garbage', () => {
  /** Deterministic PRNG (mulberry32) so a failure can be replayed. */
  function prng(seed: number): () => number {
    let a = seed >>> 0;
    return () => {
      a = (a + 0x6d2b79f5) >>> 0;
      let t = a;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }

  /** Sends `bytes` in random chunks, then FIN: once the socket is closed the broker has read it all. */
  async function spray(client: RawClient, bytes: Buffer, rand: () => number): Promise<void> {
    for (let i = 0; i < bytes.length; ) {
      const n = 1 + Math.floor(rand() * 64);
      client.sendBytes(bytes.subarray(i, i + n));
      i += n;
    }
    client.end();
    await closedWithin(client);
  }

  it('[MQTT-4.13.1-1] random bytes, before and after CONNECT, never take the broker down', async () => {
    const rand = prng(0x5eed);
    const randomBytes = (n: number) => Buffer.from(Array.from({ length: n }, () => Math.floor(rand() * 256)));
    for (let i = 0; i < 60; i++) {
      const version = ([3, 4, 5] as const)[i % 3];
      const client = i % 2 === 0 ? await peers.raw(b.port, version) : await peers.online(b.port, version);
      // The decoder of the test peer must not choke on whatever the broker answers.
      client.socket.removeAllListeners('data');
      await spray(client, randomBytes(1 + Math.floor(rand() * 3000)), rand);
    }
    await bystanderIntact();
    expect(internalErrors).not.toHaveBeenCalled();
  });

  it('[MQTT-4.13.1-1] golden packets with flipped bits never raise an internal error', async () => {
    const rand = prng(0xb17f11b);
    for (let i = 0; i < 120; i++) {
      const f = goldenFixtures[Math.floor(rand() * goldenFixtures.length)];
      const bytes = Buffer.from(f.bytes);
      const flips = 1 + Math.floor(rand() * 3);
      for (let k = 0; k < flips; k++) bytes[Math.floor(rand() * bytes.length)] ^= 1 << Math.floor(rand() * 8);
      const version = f.version;
      const client =
        f.packet.type === 'connect' ? await peers.raw(b.port, version) : await peers.online(b.port, version);
      client.socket.removeAllListeners('data');
      // A valid packet after the mutated one: if the broker still accepts input, it must survive it too.
      await spray(client, Buffer.concat([bytes, encode({ type: 'pingreq' }, version)]), rand);
    }
    await bystanderIntact();
    expect(internalErrors).not.toHaveBeenCalled();
  });
});
