/**
 * limits.user.* on a single node (the memory QuotaStore, exact): connections per username refused
 * with CONNACK 0x97 (3.1.1: 3), PUBLISH per username per minute refused with PUBACK / PUBREC 0x97
 * (3.1.1 and QoS 0: dropped), each counted as shoal_rate_limited_total{limit="user_*"}. The minute
 * window moves with a FakeClock; nothing sleeps.
 */
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import type { LimitOptions } from '../../../src/limits/options.js';
import { registerBrokerMetrics } from '../../../src/observability/metrics.js';
import { type Packet, ReasonCode } from '../../../src/protocol/index.js';
import { startTestBroker, type TestBroker } from '../../helpers/broker.js';
import { FakeClock } from '../../helpers/fake-clock.js';
import {
  closedWithin,
  Peers,
  publishAwait,
  receivedOf,
  subscribeTo,
  sync,
  until,
} from '../../helpers/mqtt.js';

const peers = new Peers();
const brokers: TestBroker[] = [];
afterEach(async () => {
  await peers.closeAll();
  for (const t of brokers.splice(0)) await t.close();
});

async function broker(user: Partial<LimitOptions['user']>, clock?: FakeClock): Promise<TestBroker> {
  const t = await startTestBroker(
    {},
    { limits: { user: { maxConnections: 0, messagesPerMinute: 0, ...user } }, clock },
  );
  brokers.push(t);
  return t;
}

const hits = (t: TestBroker) => t.broker.stats.rateLimited;
const code = (p: Packet) => (p as Extract<Packet, { type: 'puback' }>).reasonCode ?? 0;

async function metricsText(t: TestBroker): Promise<string> {
  const registry = new Registry();
  registerBrokerMetrics(registry, () => t.broker.stats);
  return registry.metrics();
}

describe('limits.user.maxConnections', () => {
  it('refuses a username over its connections with CONNACK 0x97 (3.1.1: 3); others and a freed slot are admitted', async () => {
    const t = await broker({ maxConnections: 2 });
    const alice = { username: 'alice' };
    const first = await peers.online(t.port, 5, { ...alice, clientId: 'a1' });
    await peers.online(t.port, 4, { ...alice, clientId: 'a2' });

    const v5 = await peers.connect(t.port, 5, { ...alice, clientId: 'a3' });
    expect(v5.connack.reasonCode).toBe(ReasonCode.QuotaExceeded);
    await closedWithin(v5.client);
    const v4 = await peers.connect(t.port, 4, { ...alice, clientId: 'a4' });
    expect(v4.connack.reasonCode).toBe(3); // Server unavailable
    await closedWithin(v4.client);

    await peers.online(t.port, 5, { username: 'bob', clientId: 'b1' }); // another user
    await peers.online(t.port, 5, { clientId: 'anon' }); // no username: not counted
    // The same client id taking its session over is not a new connection.
    await peers.online(t.port, 5, { ...alice, clientId: 'a1' });
    await closedWithin(first);

    expect(hits(t).user_connections).toBe(2);
    expect(await metricsText(t)).toContain('shoal_rate_limited_total{limit="user_connections"} 2');
  });

  it('gives the slot back when the connection ends', async () => {
    const t = await broker({ maxConnections: 1 });
    const a = await peers.online(t.port, 5, { username: 'alice', clientId: 'x1' });
    const refused = await peers.connect(t.port, 5, { username: 'alice', clientId: 'x2' });
    expect(refused.connack.reasonCode).toBe(ReasonCode.QuotaExceeded);
    a.destroy();
    await until(() => t.broker.stats.clientsConnected === 0, 'alice is gone');
    await peers.online(t.port, 5, { username: 'alice', clientId: 'x2' });
  });
});

describe('limits.user.messagesPerMinute', () => {
  it('refuses PUBLISH over the quota with 0x97 (QoS 1/2), drops QoS 0 and 3.1.1, and admits again next minute', async () => {
    const clock = new FakeClock();
    clock.advance(60_000 - (clock.now() % 60_000)); // the start of a window
    const t = await broker({ messagesPerMinute: 3 }, clock);
    const sub = await peers.online(t.port, 5, { clientId: 'sub' });
    await subscribeTo(sub, 'q/#', 1);
    const alice = await peers.online(t.port, 5, { username: 'alice', clientId: 'a5' });
    const alice4 = await peers.online(t.port, 4, { username: 'alice', clientId: 'a4' });

    expect(code(await publishAwait(alice, 'q/1', 'one', 1, 1))).toBeLessThan(0x80);
    expect(code(await publishAwait(alice4, 'q/2', 'two', 1, 1))).toBe(0); // the user's count, not the client's
    expect(code(await publishAwait(alice, 'q/3', 'three', 2, 2))).toBeLessThan(0x80);
    expect(code(await publishAwait(alice, 'q/4', 'four', 1, 3))).toBe(ReasonCode.QuotaExceeded);
    expect(code(await publishAwait(alice, 'q/5', 'five', 2, 4))).toBe(ReasonCode.QuotaExceeded);
    await publishAwait(alice, 'q/6', 'six', 0, 0);
    expect(code(await publishAwait(alice4, 'q/7', 'seven', 1, 2))).toBe(0); // 3.1.1: acknowledged, dropped
    const bob = await peers.online(t.port, 5, { username: 'bob', clientId: 'b5' });
    expect(code(await publishAwait(bob, 'q/8', 'eight', 1, 1))).toBeLessThan(0x80);

    clock.advance(60_000);
    expect(code(await publishAwait(alice, 'q/9', 'nine', 1, 5))).toBeLessThan(0x80);

    await sync(alice);
    await sync(sub);
    const got = receivedOf(sub, 'publish').map((p) => p.topic);
    expect(got.sort()).toEqual(['q/1', 'q/2', 'q/3', 'q/8', 'q/9']);
    expect(hits(t).user_messages).toBe(4);
    expect(await metricsText(t)).toContain('shoal_rate_limited_total{limit="user_messages"} 4');
  });

  it('is off by default', async () => {
    const t = await broker({});
    const c = await peers.online(t.port, 5, { username: 'alice' });
    for (let i = 1; i <= 20; i++) expect(code(await publishAwait(c, 'q/x', 'x', 1, i))).toBeLessThan(0x80);
    expect(hits(t)).toMatchObject({ user_messages: 0, user_connections: 0 });
  });
});
