/**
 * Session lifetime over real sockets: Clean Start / Clean Session, Session Present, Session Expiry
 * Interval (with a FakeClock), DISCONNECT changing the expiry, and takeover of a connected client id.
 * Message delivery across reconnects: session-delivery.test.ts.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { BrokerOptions } from '../../../src/broker/options.js';
import { systemClock } from '../../../src/clock.js';
import { type ProtocolVersion, ReasonCode } from '../../../src/protocol/index.js';
import { startTestBroker, type TestBroker } from '../../helpers/broker.js';
import { FakeClock } from '../../helpers/fake-clock.js';
import {
  type ConnectFields,
  closedWithin,
  disconnectedWith,
  Peers,
  publishAwait,
  subscribeTo,
  sync,
  until,
} from '../../helpers/mqtt.js';
import type { RawClient } from '../../helpers/raw-client.js';

const peers = new Peers();
const brokers: TestBroker[] = [];
afterEach(async () => {
  await peers.closeAll();
  for (const t of brokers.splice(0)) await t.close();
});

async function broker(options: Partial<BrokerOptions> = {}, clock?: FakeClock): Promise<TestBroker> {
  const t = await startTestBroker(options, { clock });
  brokers.push(t);
  return t;
}

/** CONNECT fields of a session that outlives its connection (3.x Clean Session 0, 5.0 expiry). */
function persistent(version: ProtocolVersion, clientId: string, expiry = 300): ConnectFields {
  return version === 5
    ? { clientId, clean: false, properties: { sessionExpiryInterval: expiry } }
    : { clientId, clean: false };
}

/** Normal DISCONNECT, waiting until the broker has acted on it (it closes the socket after). */
async function leave(client: RawClient, sessionExpiryInterval?: number): Promise<void> {
  client.send({
    type: 'disconnect',
    reasonCode: 0,
    properties: sessionExpiryInterval === undefined ? undefined : { sessionExpiryInterval },
  });
  await closedWithin(client);
}

/** A v5 publisher's PUBACK reason: 0x10 tells that no subscription matched. */
async function reach(t: TestBroker, topic: string): Promise<number> {
  const pub = await peers.online(t.port, 5);
  const ack = await publishAwait(pub, topic, 'probe', 1);
  pub.destroy();
  return (ack as { reasonCode?: number }).reasonCode ?? 0;
}

describe('Clean Start and Session Present', () => {
  it.each([4, 5] as const)(
    '[MQTT-3.1.2-5] [MQTT-3.2.2-3] a persistent session resumes with Session Present 1 and keeps its subscriptions (v%i)',
    async (version) => {
      const t = await broker();
      const first = await peers.connect(t.port, version, persistent(version, `resume-${version}`));
      expect(first.connack.sessionPresent).toBe(false); // [MQTT-3.1.2-6] no session yet: a new one
      await subscribeTo(first.client, 'resume/t', 1);
      await leave(first.client);
      expect(t.broker.stats.sessions).toBe(1);
      const again = await peers.connect(t.port, version, persistent(version, `resume-${version}`));
      expect(again.connack.sessionPresent).toBe(true);
      const pub = await peers.online(t.port, 4);
      await publishAwait(pub, 'resume/t', 'still subscribed', 1);
      expect((await again.client.next('publish')).payload.toString()).toBe('still subscribed');
    },
  );

  it.each([4, 5] as const)(
    '[MQTT-3.1.2-4] [MQTT-3.2.2-2] Clean Start discards the existing session (v%i)',
    async (version) => {
      const t = await broker();
      const first = await peers.online(t.port, version, persistent(version, `clean-${version}`));
      await subscribeTo(first, 'clean/t', 1);
      await leave(first);
      const fresh = await peers.connect(t.port, version, {
        ...persistent(version, `clean-${version}`),
        clean: true,
      });
      expect(fresh.connack.sessionPresent).toBe(false);
      expect(t.broker.stats.subscriptions).toBe(0);
      expect(await reach(t, 'clean/t')).toBe(ReasonCode.NoMatchingSubscribers);
    },
  );

  it('[MQTT-3.1.2-4] Clean Start discards the messages queued for the old session', async () => {
    const t = await broker();
    const first = await peers.online(t.port, 5, persistent(5, 'clean-queue'));
    await subscribeTo(first, 'cq/t', 1);
    await leave(first);
    const pub = await peers.online(t.port, 5);
    await publishAwait(pub, 'cq/t', 'queued', 1);
    const fresh = await peers.online(t.port, 5, { ...persistent(5, 'clean-queue'), clean: true });
    await sync(fresh);
    expect(fresh.received).toEqual([]);
  });

  it('(3.1.1 [MQTT-3.1.2-6]) a Clean Session 1 session ends with its connection', async () => {
    const t = await broker();
    const first = await peers.online(t.port, 4, { clientId: 'cs1', clean: true });
    await subscribeTo(first, 'cs1/t', 1);
    await leave(first);
    expect(t.broker.stats.sessions).toBe(0);
    const again = await peers.connect(t.port, 4, { clientId: 'cs1', clean: false });
    expect(again.connack.sessionPresent).toBe(false);
  });

  it('(3.1.2.11.2) an MQTT 5 session without Session Expiry Interval ends with its connection', async () => {
    const t = await broker();
    const first = await peers.online(t.port, 5, { clientId: 'no-expiry', clean: false });
    await subscribeTo(first, 'ne/t', 1);
    first.destroy();
    await until(() => t.broker.stats.sessions === 0, 'the session ended');
    const again = await peers.connect(t.port, 5, { clientId: 'no-expiry', clean: false });
    expect(again.connack.sessionPresent).toBe(false);
    expect(t.broker.stats.subscriptions).toBe(0);
  });

  it('(MQTT 3.1) level 3 has no Session Present flag but keeps a Clean Session 0 session', async () => {
    const t = await broker();
    const first = await peers.online(t.port, 3, { clientId: 'v31', clean: false });
    await subscribeTo(first, 'v31/t', 1);
    await leave(first);
    const again = await peers.connect(t.port, 3, { clientId: 'v31', clean: false });
    expect(again.connack.sessionPresent).toBe(false);
    const pub = await peers.online(t.port, 4);
    await publishAwait(pub, 'v31/t', 'kept', 1);
    expect((await again.client.next('publish')).payload.toString()).toBe('kept');
  });
});

describe('Session Expiry Interval (FakeClock)', () => {
  async function offlineSession(expiry: number, clientId: string) {
    const clock = new FakeClock();
    const t = await broker({}, clock);
    const c = await peers.online(t.port, 5, persistent(5, clientId, expiry));
    await subscribeTo(c, `${clientId}/t`, 1);
    return { clock, t, c };
  }

  it('[MQTT-3.1.2-23] the session is kept until the interval has passed', async () => {
    const { clock, t, c } = await offlineSession(60, 'exp-keep');
    await leave(c);
    clock.advance(59_999);
    const again = await peers.connect(t.port, 5, persistent(5, 'exp-keep', 60));
    expect(again.connack.sessionPresent).toBe(true);
  });

  it('[MQTT-4.1.0-2] the session is discarded once the interval has passed', async () => {
    const { clock, t, c } = await offlineSession(60, 'exp-gone');
    await leave(c);
    clock.advance(60_000);
    expect(t.broker.stats.sessions).toBe(0);
    expect(t.broker.stats.subscriptions).toBe(0);
    const again = await peers.connect(t.port, 5, persistent(5, 'exp-gone', 60));
    expect(again.connack.sessionPresent).toBe(false);
  });

  it('[MQTT-4.1.0-2] the interval also runs after an abnormal close', async () => {
    const { clock, t, c } = await offlineSession(10, 'exp-abnormal');
    c.destroy();
    await until(() => t.broker.stats.clientsConnected === 0, 'the broker saw the close');
    clock.advance(9_999);
    expect(t.broker.stats.sessions).toBe(1);
    clock.advance(1);
    expect(t.broker.stats.sessions).toBe(0);
  });

  it('[MQTT-4.1.0-1] the interval does not run while the client is connected', async () => {
    const { clock, t, c } = await offlineSession(10, 'exp-online');
    clock.advance(3_600_000);
    expect(t.broker.stats.sessions).toBe(1);
    await sync(c);
  });

  it('a reconnect within the interval restarts it from the next disconnection', async () => {
    const { clock, t, c } = await offlineSession(10, 'exp-restart');
    await leave(c);
    clock.advance(9_000);
    const again = await peers.online(t.port, 5, persistent(5, 'exp-restart', 10));
    await leave(again);
    clock.advance(9_000); // 18 s after the first disconnection, 9 s after the second
    expect(t.broker.stats.sessions).toBe(1);
    clock.advance(1_000);
    expect(t.broker.stats.sessions).toBe(0);
  });

  it('(3.14.2.2.2) DISCONNECT can lengthen the interval', async () => {
    const { clock, t, c } = await offlineSession(10, 'exp-longer');
    await leave(c, 100);
    clock.advance(50_000);
    const again = await peers.connect(t.port, 5, persistent(5, 'exp-longer', 10));
    expect(again.connack.sessionPresent).toBe(true);
  });

  it('(3.14.2.2.2) a DISCONNECT interval above maxSessionExpirySeconds is capped too', async () => {
    const clock = new FakeClock();
    const t = await broker({ maxSessionExpirySeconds: 60 }, clock);
    const c = await peers.online(t.port, 5, persistent(5, 'exp-capped', 10));
    await leave(c, 3600);
    clock.advance(59_999);
    expect(t.broker.stats.sessions).toBe(1);
    clock.advance(1);
    expect(t.broker.stats.sessions).toBe(0);
  });

  it('(3.14.2.2.2) DISCONNECT with interval 0 ends the session at once', async () => {
    const { t, c } = await offlineSession(100, 'exp-zero');
    await leave(c, 0);
    expect(t.broker.stats.sessions).toBe(0);
    const again = await peers.connect(t.port, 5, persistent(5, 'exp-zero', 100));
    expect(again.connack.sessionPresent).toBe(false);
  });

  it('(3.14.2.2.2) a non-zero interval on DISCONNECT after 0 at CONNECT gets DISCONNECT 0x82 and the session ends', async () => {
    const t = await broker({}, new FakeClock());
    const c = await peers.online(t.port, 5, { clientId: 'exp-illegal', clean: false });
    c.send({ type: 'disconnect', reasonCode: 0, properties: { sessionExpiryInterval: 60 } });
    await disconnectedWith(c, ReasonCode.ProtocolError);
    expect(t.broker.stats.sessions).toBe(0);
  });

  it('(3.1.2.11.2) 0xFFFFFFFF never expires', async () => {
    const { clock, t, c } = await offlineSession(0xffffffff, 'exp-never');
    await leave(c);
    clock.advance(10 * 365 * 24 * 3_600_000);
    expect(t.broker.stats.sessions).toBe(1);
  });
});

describe('Session Expiry Interval (system clock)', () => {
  it('[MQTT-3.1.2-23] an interval longer than a 32-bit millisecond timer (30 days) does not expire at once', async () => {
    const t = await broker({}, undefined);
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.name);
    process.on('warning', onWarning);
    try {
      const c = await peers.online(t.port, 5, persistent(5, 'month', 30 * 24 * 3600));
      await subscribeTo(c, 'month/t', 1);
      await leave(c);
      // A timer of more than 2^31-1 ms fires after 1 ms in Node (with a TimeoutOverflowWarning, emitted
      // on the next tick). Run one such timer of our own: when it has fired, the broker's would have.
      await new Promise<void>((resolve) => systemClock.setTimeout(resolve, 0));
      expect(warnings).not.toContain('TimeoutOverflowWarning');
      expect(t.broker.stats.sessions).toBe(1);
      const again = await peers.connect(t.port, 5, persistent(5, 'month', 30 * 24 * 3600));
      expect(again.connack.sessionPresent).toBe(true);
    } finally {
      process.off('warning', onWarning);
    }
  });
});

describe('takeover', () => {
  it('[MQTT-3.1.4-3] the old MQTT 5 connection gets DISCONNECT 0x8E and is closed; the session moves on', async () => {
    const t = await broker();
    const old = await peers.online(t.port, 5, persistent(5, 'twin'));
    await subscribeTo(old, 'twin/t', 1);
    const next = await peers.connect(t.port, 5, persistent(5, 'twin'));
    await disconnectedWith(old, ReasonCode.SessionTakenOver);
    expect(next.connack.sessionPresent).toBe(true);
    expect(t.broker.stats.clientsConnected).toBe(1);
    const pub = await peers.online(t.port, 4);
    await publishAwait(pub, 'twin/t', 'to the new one', 1);
    expect((await next.client.next('publish')).payload.toString()).toBe('to the new one');
  });

  it('(3.1.1 [MQTT-3.1.4-2]) the old 3.1.1 connection is closed without a packet', async () => {
    const t = await broker();
    const old = await peers.online(t.port, 4, persistent(4, 'twin4'));
    const next = await peers.connect(t.port, 4, persistent(4, 'twin4'));
    await closedWithin(old);
    expect(old.received).toEqual([]);
    expect(next.connack.sessionPresent).toBe(true);
    await sync(next.client);
  });

  it('[MQTT-3.1.4-3] takeover works across protocol levels (3.1.1 session taken by MQTT 5)', async () => {
    const t = await broker();
    const old = await peers.online(t.port, 4, persistent(4, 'cross'));
    await subscribeTo(old, 'cross/t', 1);
    const next = await peers.connect(t.port, 5, persistent(5, 'cross'));
    await closedWithin(old);
    expect(next.connack.sessionPresent).toBe(true);
    expect(await reach(t, 'cross/t')).toBe(0);
    expect((await next.client.next('publish')).payload.toString()).toBe('probe');
  });

  it('[MQTT-3.1.4-3] [MQTT-3.1.2-4] a takeover with Clean Start 1 starts a new session', async () => {
    const t = await broker();
    const old = await peers.online(t.port, 5, persistent(5, 'twin-clean'));
    await subscribeTo(old, 'tc/t', 1);
    const next = await peers.connect(t.port, 5, { ...persistent(5, 'twin-clean'), clean: true });
    await disconnectedWith(old, ReasonCode.SessionTakenOver);
    expect(next.connack.sessionPresent).toBe(false);
    expect(await reach(t, 'tc/t')).toBe(ReasonCode.NoMatchingSubscribers);
  });

  it('(3.1.4) taking over a connection whose Session Expiry is 0 ends its session: Session Present 0', async () => {
    const t = await broker();
    const old = await peers.online(t.port, 5, { clientId: 'twin-zero', clean: false });
    await subscribeTo(old, 'tz/t', 1);
    const next = await peers.connect(t.port, 5, persistent(5, 'twin-zero'));
    await disconnectedWith(old, ReasonCode.SessionTakenOver);
    expect(next.connack.sessionPresent).toBe(false);
    expect(await reach(t, 'tz/t')).toBe(ReasonCode.NoMatchingSubscribers);
  });

  it('a closed taken-over connection leaves the new one online', async () => {
    const t = await broker();
    const old = await peers.online(t.port, 5, persistent(5, 'twin-late'));
    const next = await peers.online(t.port, 5, persistent(5, 'twin-late'));
    await closedWithin(old);
    await sync(next);
    expect(t.broker.stats.clientsConnected).toBe(1);
    expect(t.broker.stats.sessions).toBe(1);
  });
});
