/**
 * The adaptive outbound window (src/channel/window.ts): pure, time given; and through a channel (the
 * harness of test/helpers/channel-harness.ts) on a FakeClock.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { inflightCost, SendWindow, STALL_MS } from '../../../src/channel/window.js';
import type { PublishPacket } from '../../../src/protocol/index.js';
import { type ChannelWorld, channelWorld } from '../../helpers/channel-harness.js';

const COST = inflightCost(64, 10);

/** Fills the window, then acknowledges `n` messages one by one with it full (each freed slot refilled). */
function ackFull(w: SendWindow, n: number, now: number): void {
  for (let i = 0; i < n; i++) {
    w.acknowledged(COST, w.limit - 1, now);
    w.sent(COST, w.limit);
  }
}

describe('SendWindow', () => {
  it('starts at the initial window, within the ceiling', () => {
    expect(new SendWindow(100, 65535, 1 << 20, 0).limit).toBe(100);
    expect(new SendWindow(100, 20, 1 << 20, 0).limit).toBe(20);
  });

  it('doubles each time a whole window is acknowledged while it was full, up to the ceiling', () => {
    const w = new SendWindow(100, 300, 1 << 30, 0);
    ackFull(w, 99, 1);
    expect(w.limit).toBe(100);
    ackFull(w, 1, 1);
    expect(w.limit).toBe(200);
    ackFull(w, 200, 2);
    expect(w.limit).toBe(300);
    ackFull(w, 1000, 3);
    expect(w.limit).toBe(300);
  });

  it('does not grow while the client is not limited by it (acknowledgements with room left)', () => {
    const w = new SendWindow(100, 65535, 1 << 30, 0);
    for (let i = 0; i < 1000; i++) w.acknowledged(COST, 10, 1);
    expect(w.limit).toBe(100);
  });

  it('(#13.5) grows when whole windows are acknowledged in bursts, refilled only after each burst (a stored session)', () => {
    const w = new SendWindow(100, 65535, 1 << 30, 0);
    for (let round = 0; round < 2; round++) {
      const limit = w.limit;
      for (let i = 1; i <= limit; i++) w.sent(COST, i); // one fetch fills the window
      // The client's acknowledgements of the whole window, read at once: in flight drops with each.
      for (let i = limit; i >= 1; i--) w.acknowledged(COST, i - 1, 1 + round);
    }
    expect(w.limit).toBe(400);
    // A send that leaves room (the queue ran dry) stops the growth.
    for (let i = 1; i <= 10; i++) w.sent(COST, i);
    for (let i = 10; i >= 1; i--) w.acknowledged(COST, i - 1, 3);
    for (let i = 0; i < 1000; i++) w.acknowledged(COST, 0, 3);
    expect(w.limit).toBe(400);
  });

  it('over the byte budget nothing more is sent until acknowledgements free it, and it does not grow', () => {
    const budget = COST * 50;
    const w = new SendWindow(100, 65535, budget, 0);
    for (let i = 1; i <= 50; i++) w.sent(COST, i);
    expect(w.limit).toBe(50); // as many as are in flight: no room
    w.acknowledged(COST, 49, 1);
    expect(w.limit).toBe(100); // under the budget again
    for (let i = 0; i < 500; i++) {
      w.sent(COST, 50);
      w.acknowledged(COST, 49, 1);
    }
    expect(w.size).toBe(100);
  });

  it(`after ${STALL_MS} ms without an acknowledgement it starts again from the initial window`, () => {
    const w = new SendWindow(100, 65535, 1 << 30, 0);
    ackFull(w, 100 + 200, 10);
    expect(w.limit).toBe(400);
    w.acknowledged(COST, 399, 10 + STALL_MS);
    expect(w.limit).toBe(100);
  });
});

describe('the window of a channel', () => {
  let world: ChannelWorld | undefined;
  afterEach(async () => {
    await world?.close();
    world = undefined;
  });

  /** Publishes `n` QoS 1 messages to `topic` from a second client. */
  async function feed(w: ChannelWorld, topic: string, n: number) {
    const pub = w.peer(5);
    await pub.connect({ clientId: `feeder-${topic}` });
    for (let i = 0; i < n; i++) pub.publish(topic, String(i).padStart(4, '0'), 1);
    await pub.unread();
  }

  const publishes = async (peer: ReturnType<ChannelWorld['peer']>) =>
    (await peer.unread()).filter((p): p is PublishPacket => p.type === 'publish');

  it('grows while the client acknowledges whole windows: 100, then 200 in flight', async () => {
    world = await channelWorld({ maxQueuedMessages: 10_000 });
    const sub = world.peer(4);
    await sub.connect({ clientId: 'grows' });
    await sub.subscribe('g/#', 1);
    await feed(world, 'g/t', 1000);
    const first = await publishes(sub);
    expect(first).toHaveLength(100);
    for (const p of first) sub.send({ type: 'puback', packetId: p.packetId as number });
    expect(await publishes(sub)).toHaveLength(200);
  });

  it('[MQTT-3.3.4-9] never past the client Receive Maximum', async () => {
    world = await channelWorld({ maxQueuedMessages: 10_000 });
    const sub = world.peer(5);
    await sub.connect({ clientId: 'capped', properties: { receiveMaximum: 150 } });
    await sub.subscribe('c/#', 1);
    await feed(world, 'c/t', 1000);
    let inflight = await publishes(sub);
    expect(inflight).toHaveLength(100);
    for (let round = 0; round < 3; round++) {
      for (const p of inflight) sub.send({ type: 'puback', packetId: p.packetId as number });
      inflight = await publishes(sub);
      expect(inflight).toHaveLength(150);
    }
  });

  it('a client that stops acknowledging holds at most mqtt.maxInflightBytes in flight', async () => {
    const cost = inflightCost(4, 3); // payload "0123", topic "b/t"
    world = await channelWorld({ maxQueuedMessages: 10_000, maxInflightBytes: 40 * cost });
    const sub = world.peer(4);
    await sub.connect({ clientId: 'stuck' });
    await sub.subscribe('b/#', 1);
    await feed(world, 'b/t', 500);
    expect((await publishes(sub)).length).toBe(40);
    expect(sub.channel.session?.queued).toBe(460);
  });
});
