/**
 * The CONNECT flow over real sockets: protocol levels, the first and second packet rules, client
 * identifiers and CONNACK properties. Authentication and the connect timeout: connect-auth.test.ts.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { BrokerOptions } from '../../../src/broker/options.js';
import { encode, ReasonCode } from '../../../src/protocol/index.js';
import { hex } from '../../fixtures/hex.js';
import { startTestBroker, type TestBroker } from '../../helpers/broker.js';
import {
  closedWithin,
  disconnectedWith,
  Peers,
  publishAwait,
  subscribeTo,
  sync,
} from '../../helpers/mqtt.js';

/** CONNECT body start: protocol name "MQTT". */
const MQTT = '00 04 4d 51 54 54';

let b: TestBroker;
const peers = new Peers();
beforeAll(async () => {
  b = await startTestBroker();
});
afterEach(() => peers.closeAll());
afterAll(() => b.close());

/** Starts a broker with `options` for one test and closes it afterwards. */
async function withBroker(
  options: Partial<BrokerOptions>,
  body: (t: TestBroker) => Promise<void>,
): Promise<void> {
  const t = await startTestBroker(options);
  try {
    await body(t);
  } finally {
    await peers.closeAll();
    await t.close();
  }
}

describe('protocol levels', () => {
  it.each([
    [3, 'MQIsdp'],
    [4, 'MQTT'],
    [5, 'MQTT'],
  ] as const)('[MQTT-3.1.2-2] level %i (%s) is accepted and carries traffic', async (version, name) => {
    const { client, connack } = await peers.connect(b.port, version, { protocolName: name });
    expect(connack).toMatchObject({ type: 'connack', sessionPresent: false, reasonCode: 0 });
    expect(await subscribeTo(client, `level/${version}`, 1)).toEqual([1]);
    await publishAwait(client, `level/${version}`, 'hello', 1);
    const got = await client.next('publish');
    expect(got).toMatchObject({ topic: `level/${version}`, qos: 1 });
    expect(got.payload.toString()).toBe('hello');
  });

  it.each([
    ['"MQTT" level 6', hex`10 0c ${MQTT} 06 02 00 00 00 00`],
    ['"MQTT" level 3', hex`10 0c ${MQTT} 03 02 00 00 00 00`],
    ['"MQIsdp" level 4', hex`10 0e 00 06 4d 51 49 73 64 70 04 02 00 00 00 00`],
    ['bridge level 0x84', hex`10 0c ${MQTT} 84 02 00 00 00 00`],
  ])(
    '[MQTT-3.1.2-2] %s gets CONNACK 0x01 (unacceptable protocol level) and the connection is closed',
    async (_n, bytes) => {
      const c = await peers.raw(b.port, 4);
      c.sendBytes(bytes);
      await closedWithin(c);
      expect(c.received).toEqual([{ type: 'connack', sessionPresent: false, reasonCode: 1 }]);
    },
  );

  it('[MQTT-3.1.2-1] an unknown protocol name closes the connection without CONNACK', async () => {
    const c = await peers.raw(b.port, 4);
    c.sendBytes(hex`10 0c 00 04 4d 51 54 58 04 02 00 00 00 00`);
    await closedWithin(c);
    expect(c.received).toEqual([]);
  });

  it('[MQTT-3.1.2-3] the reserved connect flag set closes the connection without CONNACK', async () => {
    const c = await peers.raw(b.port, 4);
    c.sendBytes(hex`10 0c ${MQTT} 04 03 00 00 00 00`);
    await closedWithin(c);
    expect(c.received).toEqual([]);
  });
});

describe('first and second packet', () => {
  it.each([
    ['PINGREQ', encode({ type: 'pingreq' }, 4)],
    [
      'PUBLISH',
      encode(
        { type: 'publish', topic: 't', payload: Buffer.from('x'), qos: 0, retain: false, dup: false },
        4,
      ),
    ],
    [
      'SUBSCRIBE',
      encode(
        {
          type: 'subscribe',
          packetId: 1,
          subscriptions: [
            { topic: '#', qos: 0, noLocal: false, retainAsPublished: false, retainHandling: 0 },
          ],
        },
        4,
      ),
    ],
    ['DISCONNECT', encode({ type: 'disconnect' }, 4)],
  ])('[MQTT-3.1.0-1] a first packet %s instead of CONNECT closes the connection', async (_n, bytes) => {
    const c = await peers.raw(b.port, 4);
    c.sendBytes(bytes);
    await closedWithin(c);
    expect(c.received).toEqual([]);
  });

  it('[MQTT-3.1.0-2] [MQTT-3.2.0-2] a second CONNECT gets DISCONNECT 0x82 (MQTT 5), no second CONNACK, then close', async () => {
    const { client } = await peers.connect(b.port, 5);
    client.send({
      type: 'connect',
      protocolName: 'MQTT',
      protocolVersion: 5,
      clean: true,
      keepalive: 0,
      clientId: 'x',
    });
    await disconnectedWith(client, ReasonCode.ProtocolError);
    expect(client.received).toEqual([]);
  });

  it('[MQTT-3.1.0-2] [MQTT-3.14.2-1] a second CONNECT with an unsupported level still gets DISCONNECT 0x82', async () => {
    // 0x84 (the CONNACK answer to an unsupported level) is not a DISCONNECT reason code.
    const { client } = await peers.connect(b.port, 5);
    client.sendBytes(hex`10 0c ${MQTT} 06 02 00 00 00 00`);
    await disconnectedWith(client, ReasonCode.ProtocolError);
  });

  it.each([3, 4] as const)(
    '[MQTT-3.1.0-2] a second CONNECT at level %i closes the connection',
    async (version) => {
      const { client } = await peers.connect(b.port, version);
      client.send({
        type: 'connect',
        protocolName: version === 3 ? 'MQIsdp' : 'MQTT',
        protocolVersion: version,
        clean: true,
        keepalive: 0,
        clientId: 'again',
      });
      await closedWithin(client);
      expect(client.received).toEqual([]);
    },
  );
});

describe('client identifier', () => {
  it('[MQTT-3.1.3-6] (3.1.1) an empty client id with Clean Session 1 is accepted', async () => {
    const { client, connack } = await peers.connect(b.port, 4, { clientId: '', clean: true });
    expect(connack).toEqual({ type: 'connack', sessionPresent: false, reasonCode: 0 });
    await sync(client);
  });

  it('[MQTT-3.1.3-8] (3.1.1) an empty client id with Clean Session 0 gets CONNACK 0x02 and the connection is closed', async () => {
    const { client, connack } = await peers.connect(b.port, 4, { clientId: '', clean: false });
    expect(connack).toEqual({ type: 'connack', sessionPresent: false, reasonCode: 2 });
    await closedWithin(client);
  });

  it('(MQTT 3.1 3.1) an empty client id gets CONNACK 0x02 (identifier rejected) at level 3', async () => {
    const { client, connack } = await peers.connect(b.port, 3, { clientId: '', clean: true });
    expect(connack).toEqual({ type: 'connack', sessionPresent: false, reasonCode: 2 });
    await closedWithin(client);
  });

  it('[MQTT-3.1.3-7] [MQTT-3.2.2-16] an empty client id (MQTT 5) gets a unique Assigned Client Identifier that names the session', async () => {
    const props = { sessionExpiryInterval: 60 };
    const first = await peers.connect(b.port, 5, { clientId: '', clean: false, properties: props });
    const second = await peers.connect(b.port, 5, { clientId: '', clean: true });
    const id = first.connack.properties?.assignedClientIdentifier;
    expect(id).toMatch(/.+/);
    expect(second.connack.properties?.assignedClientIdentifier).toMatch(/.+/);
    expect(second.connack.properties?.assignedClientIdentifier).not.toBe(id);
    expect(first.connack.sessionPresent).toBe(false);
    await subscribeTo(first.client, 'assigned/t', 1);
    first.client.send({ type: 'disconnect', reasonCode: 0 });
    await closedWithin(first.client);
    const again = await peers.connect(b.port, 5, { clientId: id, clean: false, properties: props });
    expect(again.connack.sessionPresent).toBe(true);
    // The id the client sent is its own: no Assigned Client Identifier this time.
    expect(again.connack.properties?.assignedClientIdentifier).toBeUndefined();
    await publishAwait(second.client, 'assigned/t', 'to the assigned id', 1);
    expect((await again.client.next('publish')).payload.toString()).toBe('to the assigned id');
  });

  it.each([
    [5, ReasonCode.ClientIdentifierNotValid],
    [4, 2],
  ] as const)(
    '[MQTT-3.1.3-8] a client id above maxClientIdLength (v%i) is refused with %i and closed',
    async (version, code) => {
      await withBroker({ maxClientIdLength: 8 }, async (t) => {
        const { client, connack } = await peers.connect(t.port, version, { clientId: '123456789' });
        expect(connack).toMatchObject({ sessionPresent: false, reasonCode: code });
        await closedWithin(client);
        const ok = await peers.connect(t.port, version, { clientId: '12345678' });
        expect(ok.connack.reasonCode).toBe(0);
      });
    },
  );

  it('[MQTT-4.12.0-1] an Authentication Method the broker does not offer gets CONNACK 0x8C and close', async () => {
    const { client, connack } = await peers.connect(b.port, 5, {
      properties: { authenticationMethod: 'SCRAM-SHA-1' },
    });
    expect(connack).toMatchObject({ sessionPresent: false, reasonCode: ReasonCode.BadAuthenticationMethod });
    await closedWithin(client);
  });
});

describe('CONNACK properties (MQTT 5)', () => {
  it('(3.2.2.3) the defaults announce Receive Maximum, Topic Alias Maximum and Maximum Packet Size, nothing else', async () => {
    const { connack } = await peers.connect(b.port, 5, { keepalive: 30 });
    expect(connack.properties).toEqual({
      receiveMaximum: 1024,
      topicAliasMaximum: 64,
      maximumPacketSize: 1024 * 1024,
    });
  });

  it('(3.2.2.3.3) (3.2.2.3.6) (3.2.2.3.8) configured limits are announced', async () => {
    await withBroker({ receiveMaximum: 7, topicAliasMaximum: 3, maxPacketSizeBytes: 5000 }, async (t) => {
      const { connack } = await peers.connect(t.port, 5);
      expect(connack.properties).toMatchObject({
        receiveMaximum: 7,
        topicAliasMaximum: 3,
        maximumPacketSize: 5000,
      });
    });
  });

  it('[MQTT-3.2.2-21] [MQTT-3.2.2-22] Server Keep Alive is sent when maxKeepAliveSeconds overrides the client', async () => {
    await withBroker({ maxKeepAliveSeconds: 30 }, async (t) => {
      const longer = await peers.connect(t.port, 5, { keepalive: 60 });
      expect(longer.connack.properties?.serverKeepAlive).toBe(30);
      const none = await peers.connect(t.port, 5, { keepalive: 0 });
      expect(none.connack.properties?.serverKeepAlive).toBe(30);
      const shorter = await peers.connect(t.port, 5, { keepalive: 10 });
      expect(shorter.connack.properties?.serverKeepAlive).toBeUndefined();
    });
  });

  it.each([0, 1] as const)(
    '[MQTT-3.2.2-9] Maximum QoS %i is announced when configured below 2',
    async (maximumQoS) => {
      await withBroker({ maximumQoS }, async (t) => {
        const { connack } = await peers.connect(t.port, 5);
        expect(connack.properties?.maximumQoS).toBe(maximumQoS);
      });
    },
  );

  it('(3.2.2.3.5) (3.2.2.3.11-13) disabled retain, wildcard, subscription id and shared subscriptions are announced as 0', async () => {
    await withBroker(
      {
        retainAvailable: false,
        wildcardSubscriptionAvailable: false,
        subscriptionIdentifiersAvailable: false,
        sharedSubscriptionAvailable: false,
      },
      async (t) => {
        const { connack } = await peers.connect(t.port, 5);
        expect(connack.properties).toMatchObject({
          retainAvailable: 0,
          wildcardSubscriptionAvailable: 0,
          subscriptionIdentifiersAvailable: 0,
          sharedSubscriptionAvailable: 0,
        });
        expect(connack.properties?.maximumQoS).toBeUndefined();
      },
    );
  });

  it('(3.2.2.3.2) a Session Expiry Interval above maxSessionExpirySeconds is lowered and announced', async () => {
    await withBroker({ maxSessionExpirySeconds: 100 }, async (t) => {
      const capped = await peers.connect(t.port, 5, { properties: { sessionExpiryInterval: 1000 } });
      expect(capped.connack.properties?.sessionExpiryInterval).toBe(100);
      const within = await peers.connect(t.port, 5, { properties: { sessionExpiryInterval: 50 } });
      expect(within.connack.properties?.sessionExpiryInterval).toBeUndefined();
    });
  });
});
