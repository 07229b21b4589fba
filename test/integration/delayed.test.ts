/**
 * Delayed publish (#15) on a real single node with real clients: `$delayed/<seconds>/<topic>` is
 * acknowledged at once and published when due (flags and properties kept, to subscribers of the
 * topic); a bad one is 0x90, a full store 0x97; the admin API lists and cancels what waits.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { connectMqtt, uniq } from '../helpers/cluster.js';
import { adminCall } from '../helpers/http-api.js';
import { freePort } from '../helpers/ports.js';
import { cleanup, startAuthServer } from './auth/helpers.js';

afterEach(cleanup);

async function server(delayed: Record<string, unknown> = {}) {
  const httpPort = await freePort();
  const b = await startAuthServer({}, { httpPort, delayed });
  const api = (method: string, path: string) => adminCall(httpPort, method, path);
  return { ...b, api };
}

describe('delayed publish (#15)', () => {
  it('is acknowledged when stored and published to the topic when due, as sent', async () => {
    const b = await server();
    const t = uniq('dl');
    const sub = await connectMqtt(b.url);
    await sub.client.subscribeAsync(`${t}/#`, { qos: 1 });
    const pub = await connectMqtt(b.url, { protocolVersion: 5 });
    const sent = Date.now();
    const ack = await pub.client.publishAsync(`$delayed/1/${t}/x`, 'later', {
      qos: 1,
      properties: { userProperties: { k: 'v' } },
    });
    expect((ack as { reasonCode?: number } | undefined)?.reasonCode ?? 0).toBe(0);
    expect(Date.now() - sent).toBeLessThan(900); // acknowledged before it is due
    await sub.inbox.payload('later', 5000);
    expect(Date.now() - sent).toBeGreaterThanOrEqual(1000);
    const got = sub.inbox.messages.find((m) => m.payload === 'later');
    expect(got).toMatchObject({ topic: `${t}/x`, qos: 1 });
  });

  it('refuses a bad $delayed topic (0x90) and a full store (0x97); lists and cancels what waits', async () => {
    const b = await server({ maxMessages: 1, maxDelaySeconds: 3600 });
    const pub = await connectMqtt(b.url, { protocolVersion: 5 });
    const reason = (topic: string): Promise<number> =>
      pub.client.publishAsync(topic, 'x', { qos: 1 }).then(
        (ack) => (ack as { reasonCode?: number } | undefined)?.reasonCode ?? 0,
        (err: { code?: number }) => err.code ?? -1,
      );
    expect(await reason('$delayed/abc/t')).toBe(0x90);
    expect(await reason('$delayed/7200/t')).toBe(0x90); // over delayed.maxDelaySeconds
    expect(await reason('$delayed/600/wait/here')).toBe(0);
    expect(await reason('$delayed/600/one/more')).toBe(0x97);
    const list = await b.api('GET', '/delayed');
    expect(list.json.items).toEqual([
      expect.objectContaining({ topic: 'wait/here', qos: 1, payloadBytes: 1 }),
    ]);
    const id = list.json.items[0].id as string;
    expect((await b.api('DELETE', `/delayed/${encodeURIComponent(id)}`)).json).toEqual({ cancelled: id });
    expect((await b.api('GET', '/delayed')).json.items).toEqual([]);
    expect(await reason('$delayed/600/one/more')).toBe(0); // room again
  });
});
