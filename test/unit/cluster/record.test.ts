/**
 * The node-to-node record format (src/backend/record.ts): every field of an envelope survives
 * encodeBatch → decodeBatch, batches keep their order, payloads are views of the batch, and a cut
 * batch is refused rather than misread.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeBatch, decodeMessage, encodeBatch, encodeMessage } from '../../../src/backend/record.js';
import type { Envelope } from '../../../src/backend/types.js';
import type { Message } from '../../../src/message.js';
import {
  fcParams,
  payloadArb,
  propertiesArb,
  qosArb,
  topicFilterArb,
  topicNameArb,
  utf8StringArb,
} from '../../fixtures/arbitraries.js';

const messageArb: fc.Arbitrary<Message> = fc
  .record(
    {
      topic: topicNameArb,
      payload: payloadArb,
      qos: qosArb,
      retain: fc.boolean(),
      properties: propertiesArb('publish'),
      expiresAt: fc.option(
        fc.oneof(fc.integer({ min: 0, max: 2 ** 53 - 1 }), fc.double({ noNaN: true, min: 0 })),
        { nil: undefined },
      ),
      origin: fc.option(utf8StringArb({ maxLength: 23 }), { nil: undefined }),
      dedupe: fc.option(utf8StringArb({ minLength: 1, maxLength: 16 }), { nil: undefined }),
    },
    { noNullPrototype: true },
  )
  .map((r) => {
    // Absent optional fields are absent keys, as decodeBatch builds them.
    const m: Message = { topic: r.topic, payload: r.payload, qos: r.qos, retain: r.retain };
    if (r.properties !== undefined) m.properties = r.properties;
    if (r.expiresAt !== undefined) m.expiresAt = r.expiresAt;
    if (r.origin !== undefined) m.origin = r.origin;
    if (r.dedupe !== undefined) m.dedupe = r.dedupe;
    return m;
  });

const sharedKeyArb = fc
  .tuple(
    utf8StringArb({ minLength: 1, maxLength: 8 }).filter((g) => !/[/+#]/.test(g)),
    topicFilterArb,
  )
  .map(([group, filter]) => `${group}\n${filter}`);

const envelopeArb: fc.Arbitrary<Envelope> = fc
  .tuple(messageArb, fc.boolean(), fc.array(sharedKeyArb, { maxLength: 3 }))
  .map(([message, direct, shared]) => {
    const e: Envelope = { message, direct };
    if (shared.length > 0) e.shared = shared;
    return e;
  });

describe('serialize: envelopes between nodes', () => {
  it('decodeBatch(encodeBatch(es)) equals es, in order, for every field', () => {
    fc.assert(
      fc.property(fc.array(envelopeArb, { maxLength: 8 }), (envelopes) => {
        const decoded = decodeBatch(encodeBatch(envelopes));
        expect(decoded).toEqual(envelopes);
      }),
      fcParams(300),
    );
  });

  it('round-trips one envelope with every field set', () => {
    const e: Envelope = {
      message: {
        topic: 'plant/ü/temp',
        payload: Buffer.from([0, 1, 2, 255]),
        qos: 2,
        retain: true,
        properties: {
          payloadFormatIndicator: 1,
          contentType: 'application/json',
          responseTopic: 'reply/here',
          correlationData: Buffer.from('corr'),
          userProperties: [
            ['k', 'v'],
            ['k', 'w'],
          ],
        },
        expiresAt: 1_700_000_123_456.5,
        origin: 'client-ä',
      },
      direct: true,
      shared: ['g1\nplant/#', 'g2\n+/+/temp'],
    };
    expect(decodeBatch(encodeBatch([e]))).toEqual([e]);
    expect(decodeMessage(encodeMessage(e.message))).toEqual(e.message);
  });

  it('an empty batch decodes to no envelopes', () => {
    expect(decodeBatch(encodeBatch([]))).toEqual([]);
  });

  it('payloads are views of the batch buffer (no copy per message)', () => {
    const batch = encodeBatch([
      { message: { topic: 'a', payload: Buffer.from('one'), qos: 1, retain: false }, direct: true },
      { message: { topic: 'b', payload: Buffer.from('two'), qos: 0, retain: false }, direct: true },
    ]);
    const [a, b] = decodeBatch(batch);
    expect(a.message.payload.buffer).toBe(batch.buffer);
    expect(b.message.payload.toString()).toBe('two');
  });

  it('a truncated batch throws instead of returning a wrong message', () => {
    fc.assert(
      fc.property(envelopeArb, fc.nat(), (e, cut) => {
        const full = encodeBatch([e]);
        const n = cut % full.length; // strictly shorter than the record
        const part = full.subarray(0, n);
        if (n === 0) expect(decodeBatch(part)).toEqual([]);
        else expect(() => decodeBatch(part)).toThrow();
      }),
      fcParams(300),
    );
  });
});
