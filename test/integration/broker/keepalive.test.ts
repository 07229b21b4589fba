/**
 * Keep-alive over real sockets with a FakeClock: enforced at one and a half times the interval,
 * reset by any packet from the client (not by traffic to it), off at 0, and shortened by the
 * broker's maxKeepAliveSeconds (MQTT 5 Server Keep Alive).
 */
import { once } from 'node:events';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { BrokerOptions } from '../../../src/broker/options.js';
import { encode, ReasonCode } from '../../../src/protocol/index.js';
import { startTestBroker, type TestBroker } from '../../helpers/broker.js';
import { FakeClock } from '../../helpers/fake-clock.js';
import {
  closedWithin,
  disconnectedWith,
  Peers,
  publishAwait,
  subscribeTo,
  sync,
} from '../../helpers/mqtt.js';

const peers = new Peers();
const brokers: TestBroker[] = [];
afterEach(async () => {
  await peers.closeAll();
  for (const t of brokers.splice(0)) await t.close();
});

async function broker(options: Partial<BrokerOptions> = {}) {
  const clock = new FakeClock();
  const t = await startTestBroker(options, { clock });
  brokers.push(t);
  return { clock, t };
}

describe.each([3, 4, 5] as const)('keep-alive, level %i', (version) => {
  /** The broker closes with DISCONNECT 0x8D for MQTT 5, silently before. */
  async function timedOut(c: Awaited<ReturnType<Peers['online']>>) {
    if (version === 5) await disconnectedWith(c, ReasonCode.KeepAliveTimeout);
    else {
      await closedWithin(c);
      expect(c.received).toEqual([]);
    }
  }

  it('[MQTT-3.1.2-22] a connection idle for 1.4 times the keep alive stays open', async () => {
    const { clock, t } = await broker();
    const c = await peers.online(t.port, version, { keepalive: 10 });
    clock.advance(14_000);
    await sync(c);
  });

  it('[MQTT-3.1.2-22] a connection idle for 1.5 times the keep alive is closed', async () => {
    const { clock, t } = await broker();
    const c = await peers.online(t.port, version, { keepalive: 10 });
    clock.advance(15_000);
    await timedOut(c);
    expect(t.broker.stats.clientsConnected).toBe(0);
  });

  it('[MQTT-3.1.2-22] [MQTT-3.12.4-1] PINGREQ resets the keep-alive timer', async () => {
    const { clock, t } = await broker();
    const c = await peers.online(t.port, version, { keepalive: 10 });
    for (let i = 0; i < 5; i++) {
      clock.advance(14_999);
      await sync(c); // PINGREQ, answered with PINGRESP
    }
    clock.advance(14_999);
    await sync(c);
    clock.advance(15_000);
    await timedOut(c);
  });

  it('[MQTT-3.1.2-22] any control packet from the client resets the timer, not only PINGREQ', async () => {
    const { clock, t } = await broker();
    const c = await peers.online(t.port, version, { keepalive: 10 });
    clock.advance(10_000);
    await publishAwait(c, 'ka/any', 'x', 1);
    clock.advance(10_000); // 20 s since CONNECT, 10 s since the PUBLISH
    await sync(c);
  });

  it('[MQTT-3.1.2-22] traffic from the broker to the client does not keep it alive', async () => {
    const { clock, t } = await broker();
    const c = await peers.online(t.port, version, { keepalive: 10 });
    await subscribeTo(c, 'ka/feed', 0);
    clock.advance(1);
    const feeder = await peers.online(t.port, 5);
    for (let i = 0; i < 3; i++) {
      clock.advance(4_000);
      await publishAwait(feeder, 'ka/feed', `tick ${i}`, 1, i + 1);
      await c.next('publish');
    }
    clock.advance(15_000 - 12_001);
    await timedOut(c);
  });

  it('(3.1.2.10) a keep alive of 0 turns the mechanism off', async () => {
    const { clock, t } = await broker();
    const c = await peers.online(t.port, version, { keepalive: 0 });
    clock.advance(100 * 3_600_000);
    await sync(c);
  });
});

describe('maxKeepAliveSeconds', () => {
  it('[MQTT-3.2.2-21] MQTT 5: the Server Keep Alive is enforced instead of a longer client value', async () => {
    const { clock, t } = await broker({ maxKeepAliveSeconds: 10 });
    const c = await peers.online(t.port, 5, { keepalive: 60 });
    clock.advance(14_999);
    await sync(c);
    clock.advance(15_000);
    await disconnectedWith(c, ReasonCode.KeepAliveTimeout);
  });

  it('[MQTT-3.2.2-21] MQTT 5: a keep alive of 0 gets the Server Keep Alive, enforced', async () => {
    const { clock, t } = await broker({ maxKeepAliveSeconds: 10 });
    const { client, connack } = await peers.connect(t.port, 5, { keepalive: 0 });
    expect(connack.properties?.serverKeepAlive).toBe(10);
    clock.advance(15_000);
    await disconnectedWith(client, ReasonCode.KeepAliveTimeout);
  });

  it('[MQTT-3.2.2-22] a client keep alive below the maximum is used as sent', async () => {
    const { clock, t } = await broker({ maxKeepAliveSeconds: 60 });
    const c = await peers.online(t.port, 5, { keepalive: 4 });
    clock.advance(6_000);
    await disconnectedWith(c, ReasonCode.KeepAliveTimeout);
  });

  it('(3.1.1 3.1.2.10) 3.1.1 has no Server Keep Alive: the maximum applies silently (a server may close an idle client at any time)', async () => {
    const { clock, t } = await broker({ maxKeepAliveSeconds: 10 });
    const c = await peers.online(t.port, 4, { keepalive: 60 });
    clock.advance(14_999);
    await sync(c);
    clock.advance(15_000);
    await closedWithin(c);
  });
});

describe('closing', () => {
  it('(4.13) a broker shutdown sends MQTT 5 clients DISCONNECT 0x8B and closes every connection', async () => {
    const { t } = await broker();
    brokers.splice(brokers.indexOf(t), 1);
    const v5 = await peers.online(t.port, 5, {
      will: { topic: 'w', payload: Buffer.from('x'), qos: 0, retain: true },
    });
    const v4 = await peers.online(t.port, 4);
    await t.close();
    await disconnectedWith(v5, ReasonCode.ServerShuttingDown);
    await closedWithin(v4);
    expect(v4.received).toEqual([]);
    expect(t.broker.stats.retained).toBe(0); // the will is not published on shutdown
  });

  it('(4.13) a peer that never closes its side after the broker closed the connection is cut off', async () => {
    const { clock, t } = await broker();
    // A peer that ignores the broker's FIN (allowHalfOpen), as a dead or hostile one would.
    const socket = net.connect({ port: t.port, host: '127.0.0.1', allowHalfOpen: true });
    socket.on('error', () => undefined);
    await once(socket, 'connect');
    const connect = {
      type: 'connect',
      protocolName: 'MQTT',
      protocolVersion: 4,
      clean: true,
      keepalive: 10,
    } as const;
    socket.write(encode({ ...connect, clientId: 'half-open' }, 4));
    await once(socket, 'data'); // CONNACK
    const ended = once(socket, 'end');
    clock.advance(15_000); // keep-alive timeout: the broker sends its FIN
    await ended;
    // After a grace period the broker lets go of the socket: its shutdown, which waits for every
    // connection to be closed (and never advances this clock itself), completes.
    clock.advance(60_000);
    brokers.splice(brokers.indexOf(t), 1);
    await t.close();
    socket.destroy();
  });
});
