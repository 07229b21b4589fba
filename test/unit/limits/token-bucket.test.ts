/** Token buckets, the connection gate, topic/retained checks and per-client rates, on a FakeClock. */
import { describe, expect, it } from 'vitest';
import { ClientLimiter } from '../../../src/limits/client.js';
import { LIMIT_NAMES, Limits } from '../../../src/limits/limits.js';
import { defaultLimitOptions, type LimitOptions } from '../../../src/limits/options.js';
import { TokenBucket } from '../../../src/limits/token-bucket.js';
import { ReasonCode } from '../../../src/protocol/index.js';
import { FakeClock } from '../../helpers/fake-clock.js';

function limits(options: Partial<LimitOptions>, clock = new FakeClock()): Limits {
  return new Limits({ ...defaultLimitOptions, ...options }, clock);
}

describe('TokenBucket', () => {
  it('starts full, refills at the rate, never above the burst', () => {
    const clock = new FakeClock();
    const b = new TokenBucket(10, 5, clock);
    expect(b.balance).toBe(5);
    for (let i = 0; i < 5; i++) expect(b.take()).toBe(true);
    expect(b.take()).toBe(false);
    clock.advance(99);
    expect(b.take()).toBe(false);
    clock.advance(1); // 100 ms at 10/s: one token
    expect(b.take()).toBe(true);
    expect(b.take()).toBe(false);
    clock.advance(60_000);
    expect(b.balance).toBe(5);
  });

  it('spend may go into debt; debtMs is the time until it is paid', () => {
    const clock = new FakeClock();
    const b = new TokenBucket(1000, 1000, clock);
    expect(b.spend(3000)).toBe(-2000);
    expect(b.debtMs).toBe(2000);
    clock.advance(500);
    expect(b.debtMs).toBe(1500);
    clock.advance(1500);
    expect(b.debtMs).toBe(0);
    expect(b.balance).toBe(0);
  });

  it('take does not spend what the balance cannot cover', () => {
    const b = new TokenBucket(1, 3, new FakeClock());
    expect(b.take(4)).toBe(false);
    expect(b.balance).toBe(3);
  });

  it('refuses a rate or burst of 0', () => {
    expect(() => new TokenBucket(0, 1, new FakeClock())).toThrow(RangeError);
    expect(() => new TokenBucket(1, 0, new FakeClock())).toThrow(RangeError);
  });
});

describe('Limits', () => {
  it('counts every limit name from 0', () => {
    const l = limits({});
    expect(Object.keys(l.hits)).toEqual([...LIMIT_NAMES]);
    expect(Object.values(l.hits).every((n) => n === 0)).toBe(true);
  });

  it('admits connections up to maxConnections (0 = no limit)', () => {
    expect(limits({ maxConnections: 0 }).admitConnection(1e9)).toBe(true);
    const l = limits({ maxConnections: 2 });
    expect(l.admitConnection(1)).toBe(true);
    expect(l.admitConnection(2)).toBe(false);
    expect(l.hits.max_connections).toBe(1);
  });

  it('admits CONNECTs at the connect rate after the burst', () => {
    const clock = new FakeClock();
    const l = limits({ connectRatePerSecond: 2, connectBurst: 3 }, clock);
    expect([1, 2, 3, 4].map(() => l.admitConnect())).toEqual([true, true, true, false]);
    clock.advance(500);
    expect(l.admitConnect()).toBe(true);
    expect(l.admitConnect()).toBe(false);
    expect(l.hits.connect_rate).toBe(2);
  });

  it('the connect burst defaults to one second of the rate', () => {
    const l = limits({ connectRatePerSecond: 5 });
    expect(Array.from({ length: 6 }, () => l.admitConnect()).filter(Boolean)).toHaveLength(5);
  });

  it('checks topic levels and UTF-8 length', () => {
    const l = limits({ maxTopicLevels: 3, maxTopicLengthBytes: 10 });
    expect(l.topicLimit('a/b/c')).toBeUndefined();
    expect(l.topicLimit('a/b/c/d')).toBe('topic_levels');
    expect(l.topicLimit('///')).toBe('topic_levels');
    expect(l.topicLimit('0123456789')).toBeUndefined();
    expect(l.topicLimit('01234567890')).toBe('topic_length');
    expect(l.topicLimit('ééééé')).toBeUndefined(); // 10 bytes
    expect(l.topicLimit('éééééé')).toBe('topic_length'); // 12 bytes, 6 characters
    expect(l.hits).toMatchObject({ topic_levels: 2, topic_length: 2 });
  });

  it('0 turns the topic checks off', () => {
    const l = limits({ maxTopicLevels: 0, maxTopicLengthBytes: 0 });
    expect(l.topicLimit('/'.repeat(70_000))).toBeUndefined();
  });

  it('bounds retained messages by count (new topics only) and payload size', () => {
    const l = limits({ maxRetainedMessages: 2, maxRetainedPayloadBytes: 5 });
    const store = { size: 2, get: (t: string) => (t === 'kept' ? {} : undefined) };
    expect(l.retainLimit(store, 'new', 1)).toBe('retained_messages');
    expect(l.retainLimit(store, 'kept', 1)).toBeUndefined();
    expect(l.retainLimit(store, 'new', 0)).toBeUndefined(); // a delete
    expect(l.retainLimit({ size: 0, get: () => undefined }, 'new', 6)).toBe('retained_payload');
    expect(l.hits).toMatchObject({ retained_messages: 1, retained_payload: 1 });
  });
});

/** A connection stand-in: counts throttles and releases. */
class Reader {
  pauses = 0;
  releases = 0;
  throttle(): () => void {
    this.pauses++;
    return () => {
      this.releases++;
    };
  }
  get paused(): boolean {
    return this.pauses > this.releases;
  }
}

describe('ClientLimiter', () => {
  it("'pause': reading stops once the message rate is exceeded and resumes when the debt is paid", () => {
    const clock = new FakeClock();
    const l = limits({ clientMessagesPerSecond: 10, clientMessageBurst: 5 }, clock);
    const reader = new Reader();
    const c = new ClientLimiter(l, reader);
    for (let i = 0; i < 5; i++) expect(c.publish(10)).toBe(0);
    expect(reader.paused).toBe(false);
    expect(c.publish(10)).toBe(0); // the 6th: one message of debt
    expect(reader.paused).toBe(true);
    expect(c.publish(10)).toBe(0); // already read in the same chunk: more debt, one pause
    expect(reader.pauses).toBe(1);
    clock.advance(199);
    expect(reader.paused).toBe(true);
    clock.advance(1);
    expect(reader.paused).toBe(false);
    expect(l.hits.message_rate).toBe(1);
  });

  it("'pause': the byte rate holds reading for as long as the bytes take at the rate", () => {
    const clock = new FakeClock();
    const l = limits({ clientBytesPerSecond: 1000, clientByteBurst: 1000 }, clock);
    const reader = new Reader();
    const c = new ClientLimiter(l, reader);
    c.publish(5000); // 4000 bytes of debt: 4 s
    expect(reader.paused).toBe(true);
    clock.advance(3999);
    expect(reader.paused).toBe(true);
    clock.advance(1);
    expect(reader.paused).toBe(false);
    expect(l.hits.byte_rate).toBe(1);
  });

  it("'disconnect': a PUBLISH sent with an empty bucket gets 0x96", () => {
    const clock = new FakeClock();
    const l = limits({ clientMessagesPerSecond: 2, rateLimitAction: 'disconnect' }, clock);
    const c = new ClientLimiter(l, new Reader());
    expect(c.publish(1)).toBe(0);
    expect(c.publish(1)).toBe(0);
    expect(c.publish(1)).toBe(ReasonCode.MessageRateTooHigh);
    clock.advance(500);
    expect(c.publish(1)).toBe(0);
    expect(l.hits.message_rate).toBe(1);
  });

  it("'disconnect': one large message may overdraw the byte bucket; the next one is refused", () => {
    const l = limits({ clientBytesPerSecond: 100, rateLimitAction: 'disconnect' });
    const c = new ClientLimiter(l, new Reader());
    expect(c.publish(1000)).toBe(0);
    expect(c.publish(1)).toBe(ReasonCode.MessageRateTooHigh);
    expect(l.hits.byte_rate).toBe(1);
  });

  it('close cancels the resume timer', () => {
    const clock = new FakeClock();
    const l = limits({ clientMessagesPerSecond: 1 }, clock);
    const reader = new Reader();
    const c = new ClientLimiter(l, reader);
    c.publish(0);
    c.publish(0);
    expect(clock.pending).toBe(1);
    c.close();
    expect(clock.pending).toBe(0);
  });
});
