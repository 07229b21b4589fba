/**
 * Encode-once fan-out over real sockets: one PUBLISH to 50 subscribers of mixed protocol levels and
 * per-subscriber MQTT 5 properties; every copy decodes to the right packet for its receiver.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Properties, ProtocolVersion, PublishPacket } from '../../../src/protocol/index.js';
import { startTestBroker, type TestBroker } from '../../helpers/broker.js';
import { closeAll, connect, nextPublish, publishAcked, subscribe, uid } from '../../helpers/mqtt.js';
import type { RawClient } from '../../helpers/raw-client.js';

let b: TestBroker;
beforeAll(async () => {
  b = await startTestBroker();
});
afterAll(async () => {
  await b.close();
});

interface Receiver {
  client: RawClient;
  version: ProtocolVersion;
  granted: 0 | 1 | 2;
  subscriptionId?: number;
  aliases: boolean;
}

/** 50 subscribers: 3.1, 3.1.1 and 5.0; plain, with a subscription id, with topic aliases; QoS 0..2. */
async function receivers(topic: string): Promise<Receiver[]> {
  const out: Receiver[] = [];
  for (let i = 0; i < 50; i++) {
    const version = ([3, 4, 5, 5, 5] as const)[i % 5];
    const granted = (i % 3) as 0 | 1 | 2;
    const subscriptionId = version === 5 && i % 4 === 0 ? 1000 + i : undefined;
    const aliases = version === 5 && i % 7 === 0;
    const client = await connect(b.port, version, {
      protocolName: version === 3 ? 'MQIsdp' : 'MQTT',
      properties: aliases ? { topicAliasMaximum: 3 } : undefined,
    });
    await subscribe(
      client,
      { topic, qos: granted },
      subscriptionId ? { subscriptionIdentifiers: [subscriptionId] } : undefined,
    );
    out.push({ client, version, granted, subscriptionId, aliases });
  }
  return out;
}

function check(
  r: Receiver,
  p: PublishPacket,
  topic: string,
  payload: Buffer,
  qos: 0 | 1 | 2,
  props: Properties,
  first: boolean,
) {
  const q = Math.min(qos, r.granted);
  expect(p.qos).toBe(q);
  expect(p.dup).toBe(false);
  expect(p.retain).toBe(false);
  expect(p.payload.equals(payload)).toBe(true);
  if (q > 0) expect(p.packetId).toBeGreaterThan(0);
  else expect(p.packetId).toBeUndefined();
  if (r.version < 5) {
    expect(p.topic).toBe(topic);
    expect(p.properties).toBeUndefined();
    return;
  }
  const expected: Properties = { ...props };
  if (r.subscriptionId !== undefined) expected.subscriptionIdentifiers = [r.subscriptionId];
  if (r.aliases) {
    // The first copy sets alias 1, later ones use it with an empty topic.
    expected.topicAlias = 1;
    expect(p.topic).toBe(first ? topic : '');
  } else {
    expect(p.topic).toBe(topic);
  }
  expect(p.properties ?? {}).toEqual(expected);
}

describe('encode-once fan-out', () => {
  it('[MQTT-3.3.2-17] [MQTT-3.3.4-3] 50 subscribers of mixed versions each get correct bytes, QoS 0, 1 and 2', async () => {
    const topic = uid('fan');
    const rs = await receivers(topic);
    const pub = await connect(b.port, 5);
    const props: Properties = {
      contentType: 'text/plain',
      userProperties: [
        ['k', 'v'],
        ['k', 'w'],
      ],
    };
    const messages = [
      { payload: Buffer.from('small'), qos: 0 as const },
      { payload: Buffer.alloc(100 * 1024, 0x5a), qos: 1 as const },
      { payload: Buffer.from('two'), qos: 2 as const },
      { payload: Buffer.alloc(0), qos: 1 as const },
    ];
    for (const m of messages)
      expect(await publishAcked(pub, topic, m.payload, { qos: m.qos, properties: props })).toBe(0);
    for (const r of rs) {
      for (let i = 0; i < messages.length; i++) {
        const p = await nextPublish(r.client);
        check(r, p, topic, messages[i].payload, messages[i].qos, props, i === 0);
      }
    }
    closeAll(pub, ...rs.map((r) => r.client));
  });

  it('[MQTT-3.3.1-12] the cached encoding is not shared between a retained copy and a live one', async () => {
    const topic = uid('fanret');
    const pub = await connect(b.port, 4);
    const live = await connect(b.port, 4);
    await subscribe(live, { topic, qos: 1 });
    await publishAcked(pub, topic, 'r', { qos: 1, retain: true });
    const late = await connect(b.port, 4);
    await subscribe(late, { topic, qos: 1 });
    expect((await nextPublish(live)).retain).toBe(false);
    expect((await nextPublish(late)).retain).toBe(true);
    closeAll(pub, live, late);
  });
});
