/**
 * The CONNECT flow's authentication step (sync and async hooks) and the connect timeout, over real
 * sockets. Time is a FakeClock: the timeout is exercised exactly, without sleeping.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { AuthHooks, ConnectInfo } from '../../../src/auth/types.js';
import type { BrokerOptions } from '../../../src/broker/options.js';
import { encode, type Packet, ReasonCode } from '../../../src/protocol/index.js';
import { startTestBroker, type TestBroker } from '../../helpers/broker.js';
import { FakeClock } from '../../helpers/fake-clock.js';
import { closedWithin, deferred, Peers, publishAwait, subscribeTo, until } from '../../helpers/mqtt.js';

const peers = new Peers();
const brokers: TestBroker[] = [];
afterEach(async () => {
  await peers.closeAll();
  for (const t of brokers.splice(0)) await t.close();
});

async function broker(
  options: Partial<BrokerOptions> = {},
  deps: { clock?: FakeClock; auth?: Partial<AuthHooks> } = {},
): Promise<TestBroker> {
  const t = await startTestBroker(options, deps);
  brokers.push(t);
  return t;
}

const connectPacket = (clientId: string, version: 3 | 4 | 5 = 5): Packet => ({
  type: 'connect',
  protocolName: version === 3 ? 'MQIsdp' : 'MQTT',
  protocolVersion: version,
  clean: true,
  keepalive: 0,
  clientId,
});

describe('authentication hook', () => {
  const bad = ReasonCode.BadUserNameOrPassword;
  const denied = ReasonCode.NotAuthorized;
  const cases = [
    ['sync', '0x86', 5, '0x86', bad, bad],
    ['sync', '0x87', 5, '0x87', denied, denied],
    ['async', '0x86', 5, '0x86', bad, bad],
    ['async', '0x87', 5, '0x87', denied, denied],
    ['sync', '0x86', 4, '4', bad, 4],
    ['sync', '0x87', 4, '5', denied, 5],
    ['async', '0x86', 4, '4', bad, 4],
    ['async', '0x87', 4, '5', denied, 5],
    ['async', '0x86', 3, '4', bad, 4],
    ['sync', '0x87', 3, '5', denied, 5],
  ] as const;

  it.each(cases)(
    '[MQTT-3.1.4-2] [MQTT-3.2.2-7] a %s refusal %s gets (level %i) CONNACK %s, Session Present 0, then close',
    async (mode, _label, version, _expectedLabel, decision, expected) => {
      const authenticate = mode === 'sync' ? () => decision : async () => decision;
      const t = await broker({}, { auth: { authenticate } });
      const { client, connack } = await peers.connect(t.port, version, { clean: false, clientId: 'refused' });
      expect(connack).toMatchObject({ type: 'connack', sessionPresent: false, reasonCode: expected });
      await closedWithin(client);
      expect(t.broker.stats.sessions).toBe(0);
    },
  );

  it('(3.1.4) the hook sees the client id, user name, password and transport', async () => {
    const seen: ConnectInfo[] = [];
    const t = await broker(
      {},
      {
        auth: {
          authenticate: (info) => {
            seen.push(info);
            return 0;
          },
        },
      },
    );
    await peers.online(t.port, 5, { clientId: 'who', username: 'alice', password: Buffer.from('s3cret') });
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ clientId: 'who', username: 'alice', transport: 'tcp' });
    expect(seen[0].password?.toString()).toBe('s3cret');
  });

  const failing = {
    rejects: async () => Promise.reject(new Error('backend down')),
    throws: () => {
      throw new Error('bug in the hook');
    },
  };
  it.each([
    [5, 'rejects'],
    [4, 'rejects'],
    [5, 'throws'],
    [4, 'throws'],
  ] as const)(
    '(4.13) v%i: an authenticator that %s refuses with Server unavailable',
    async (version, how) => {
      const t = await broker({}, { auth: { authenticate: failing[how] } });
      const { client, connack } = await peers.connect(t.port, version);
      expect(connack.reasonCode).toBe(version === 5 ? ReasonCode.ServerUnavailable : 3);
      await closedWithin(client);
    },
  );

  it('packets sent right after CONNECT while an async authenticator runs are processed after CONNACK, in order', async () => {
    const decision = deferred<number>();
    let calls = 0;
    const t = await broker(
      {},
      {
        auth: {
          authenticate: () => {
            calls++;
            return decision.promise;
          },
        },
      },
    );
    const c = await peers.raw(t.port, 5);
    c.version = 5;
    const v5 = (p: Packet) => encode(p, 5);
    c.sendBytes(
      Buffer.concat([
        encode(connectPacket('eager'), 5),
        v5({
          type: 'subscribe',
          packetId: 1,
          subscriptions: [
            { topic: 'eager/t', qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0 },
          ],
        }),
        v5({
          type: 'publish',
          topic: 'eager/t',
          payload: Buffer.from('mine'),
          qos: 1,
          retain: false,
          dup: false,
          packetId: 2,
        }),
        v5({ type: 'pingreq' }),
      ]),
    );
    await until(() => calls === 1, 'the authenticator was called');
    decision.resolve(0);
    await c.next('pingresp');
    expect(c.received.map((p) => p.type)).toEqual(['connack', 'suback', 'publish', 'puback']);
    expect(c.received[1]).toMatchObject({ packetId: 1, reasonCodes: [1] });
    expect(c.received[2]).toMatchObject({ topic: 'eager/t', qos: 1 });
    expect(c.received[3]).toMatchObject({ packetId: 2 });
  });

  it('[MQTT-3.1.4-6] packets after a refused CONNECT are not processed', async () => {
    const decision = deferred<number>();
    const t = await broker(
      {},
      { auth: { authenticate: (info) => (info.clientId === 'intruder' ? decision.promise : 0) } },
    );
    const watcher = await peers.online(t.port, 5, { clientId: 'watcher' });
    await subscribeTo(watcher, 'guarded/#', 1);
    const c = await peers.raw(t.port, 5);
    c.version = 5;
    c.sendBytes(
      Buffer.concat([
        encode(connectPacket('intruder'), 5),
        encode(
          {
            type: 'publish',
            topic: 'guarded/x',
            payload: Buffer.from('sneaky'),
            qos: 0,
            retain: true,
            dup: false,
          },
          5,
        ),
      ]),
    );
    decision.resolve(ReasonCode.NotAuthorized);
    expect((await c.next('connack')).reasonCode).toBe(ReasonCode.NotAuthorized);
    await closedWithin(c);
    // A marker published afterwards is the first (and only) thing the watcher gets; nothing was retained.
    await publishAwait(watcher, 'guarded/marker', 'marker', 1, 7);
    expect((await watcher.next('publish')).payload.toString()).toBe('marker');
    expect(t.broker.stats.retained).toBe(0);
  });

  it('a connection closed while the authenticator works is never brought online', async () => {
    const clock = new FakeClock();
    const decision = deferred<number>();
    let calls = 0;
    const t = await broker(
      {},
      {
        clock,
        auth: {
          authenticate: () => {
            calls++;
            return decision.promise;
          },
        },
      },
    );
    const c = await peers.raw(t.port, 5);
    c.send(connectPacket('gone-early'));
    await until(() => calls === 1, 'the authenticator was called');
    c.destroy();
    // The connect timer is cancelled once the broker has seen the close.
    await until(() => clock.pending === 0, 'the broker saw the close');
    decision.resolve(0);
    await decision.promise;
    expect(t.broker.stats.clientsConnected).toBe(0);
    expect(t.broker.stats.sessions).toBe(0);
  });
});

describe('connect timeout (MQTT 5 3.1.4 step 1)', () => {
  async function silent(timeoutMs: number) {
    const clock = new FakeClock();
    const decision = deferred<number>();
    const asked = { slow: 0 };
    const authenticate = (info: ConnectInfo) => {
      if (info.clientId !== 'slow') return 0;
      asked.slow++;
      return decision.promise;
    };
    const t = await broker({ connectTimeoutMs: timeoutMs }, { clock, auth: { authenticate } });
    const c = await peers.raw(t.port, 4);
    // The broker arms the timer when it accepts the socket.
    await until(() => clock.pending === 1, 'the broker accepted the connection');
    return { clock, c, t, decision, asked };
  }

  it('a connection that sends nothing is closed at connectTimeoutMs, not before', async () => {
    const { clock, c } = await silent(5000);
    clock.advance(4999);
    const connack = await c.handshake({ protocolVersion: 4 });
    expect(connack.reasonCode).toBe(0);
    // Once connected, with keep-alive 0, no timer closes it.
    clock.advance(3_600_000);
    c.send({ type: 'pingreq' });
    await c.next('pingresp');
  });

  it('a silent connection is closed once connectTimeoutMs has passed', async () => {
    const { clock, c } = await silent(5000);
    clock.advance(5000);
    await closedWithin(c);
    expect(c.received).toEqual([]);
  });

  it('a partial CONNECT does not hold the connection open past the timeout', async () => {
    const { clock, c } = await silent(5000);
    c.sendBytes(encode(connectPacket('partial', 4), 4).subarray(0, 6));
    clock.advance(5000);
    await closedWithin(c);
    expect(c.received).toEqual([]);
  });

  it('a CONNECT still waiting for its authenticator is closed at the timeout, and a late answer is ignored', async () => {
    const { clock, c, t, decision, asked } = await silent(5000);
    c.send(connectPacket('slow', 4));
    await until(() => asked.slow === 1, 'CONNECT handed to the hook');
    clock.advance(5000);
    await closedWithin(c);
    decision.resolve(0);
    await decision.promise;
    expect(c.received).toEqual([]);
    expect(t.broker.stats.clientsConnected).toBe(0);
  });
});
