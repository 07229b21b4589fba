/**
 * The broker's node:diagnostics_channel events (src/observability/diagnostics.ts): connect,
 * publish, deliver and disconnect, seen by an in-process subscriber while real clients talk.
 */
import diagnostics from 'node:diagnostics_channel';
import mqtt from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';

let t: TestBroker | undefined;
const unsubscribe: Array<() => void> = [];

afterEach(async () => {
  for (const u of unsubscribe.splice(0)) u();
  await t?.close();
});

function record(name: string): unknown[] {
  const seen: unknown[] = [];
  const listener = (m: unknown) => seen.push(m);
  diagnostics.subscribe(name, listener);
  unsubscribe.push(() => diagnostics.unsubscribe(name, listener));
  return seen;
}

describe('diagnostics_channel events', () => {
  it('tells connect, publish, deliver and disconnect', async () => {
    const connects = record('shoal:client.connect');
    const publishes = record('shoal:message.publish');
    const delivers = record('shoal:message.deliver');
    const disconnects = record('shoal:client.disconnect');
    t = await startTestBroker();
    const c = await mqtt.connectAsync(t.url, { clientId: 'diag', protocolVersion: 5, reconnectPeriod: 0 });
    await c.subscribeAsync('d/#', { qos: 1 });
    const got = new Promise((resolve) => c.once('message', resolve));
    await c.publishAsync('d/x', 'hi', { qos: 1 });
    await got;
    await c.endAsync();
    await t.close();
    t = undefined;
    expect(connects).toEqual([
      { clientId: 'diag', protocolVersion: 5, listener: 'tcp', sessionPresent: false },
    ]);
    expect(publishes).toEqual([
      { message: expect.objectContaining({ topic: 'd/x', qos: 1, origin: 'diag' }) },
    ]);
    expect(delivers).toEqual([
      { clientId: 'diag', qos: 1, message: expect.objectContaining({ topic: 'd/x' }) },
    ]);
    expect(disconnects).toEqual([{ clientId: 'diag' }]);
  });
});
