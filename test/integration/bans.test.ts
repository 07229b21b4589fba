/**
 * Banned clients and flapping detection (#15) on a real single node with real clients, through the
 * admin API: a ban disconnects the client it matches (DISCONNECT 0x98) and refuses its CONNECTs
 * (MQTT 5: CONNACK 0x8A; 3.1.1: 5), by client id, user name or address; lifting it lets it in; a
 * client id that connects too often is banned by itself.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { connectMqtt, uniq } from '../helpers/cluster.js';
import { adminCall, metricOf } from '../helpers/http-api.js';
import { freePort } from '../helpers/ports.js';
import { cleanup, connect, startAuthServer } from './auth/helpers.js';

afterEach(cleanup);

async function server(extra: Record<string, unknown> = {}) {
  const httpPort = await freePort();
  const b = await startAuthServer({}, { httpPort, ...extra });
  const api = (method: string, path: string, body?: unknown) => adminCall(httpPort, method, path, body);
  const metric = (series: string) => metricOf(httpPort, series);
  return { ...b, api, metric };
}

describe('banned clients (#15)', () => {
  it('a ban by client id disconnects the client (0x98) and refuses it (v5 0x8A, 3.1.1 5) until lifted', async () => {
    const b = await server();
    const id = uniq('ban');
    const c = await connectMqtt(b.url, { clientId: id, protocolVersion: 5 });
    const kicked = new Promise<number | undefined>((r) =>
      c.client.once('disconnect', (p) => r(p.reasonCode)),
    );
    const added = await b.api('POST', '/bans', {
      kind: 'clientId',
      value: id,
      reason: 'stolen credentials',
      seconds: 3600,
    });
    expect(added.status).toBe(200);
    expect(added.json.ban).toMatchObject({
      kind: 'clientId',
      value: id,
      reason: 'stolen credentials',
      by: 'admin',
    });
    expect(await kicked).toBe(0x98);
    expect((await connect(b.url, { clientId: id, protocolVersion: 5 })).code).toBe(0x8a);
    expect((await connect(b.url, { clientId: id, protocolVersion: 4 })).code).toBe(5);
    expect((await b.api('GET', '/bans')).json.items).toHaveLength(1);
    expect(await b.metric('shoal_bans')).toBe(1);
    expect(await b.metric('shoal_connects_banned_total')).toBe(2);
    expect((await b.api('DELETE', `/bans/${encodeURIComponent(`clientId:${id}`)}`)).status).toBe(200);
    expect((await connect(b.url, { clientId: id, protocolVersion: 5 })).code).toBe(0);
    expect((await b.api('DELETE', `/bans/${encodeURIComponent(`clientId:${id}`)}`)).status).toBe(404);
  });

  it('by user name and by address (CIDR); bad bans are 400', async () => {
    const b = await server();
    await b.api('POST', '/bans', { kind: 'username', value: 'mallory' });
    expect((await connect(b.url, { username: 'mallory', protocolVersion: 5 })).code).toBe(0x8a);
    expect((await connect(b.url, { username: 'alice', protocolVersion: 5 })).code).toBe(0);
    await b.api('POST', '/bans', { kind: 'address', value: '127.0.0.0/8' });
    expect((await connect(b.url, { username: 'alice', protocolVersion: 5 })).code).toBe(0x8a);
    await b.api('DELETE', `/bans/${encodeURIComponent('address:127.0.0.0/8')}`);
    expect((await connect(b.url, { username: 'alice', protocolVersion: 5 })).code).toBe(0);
    expect((await b.api('POST', '/bans', { kind: 'address', value: '999.1.1.1' })).status).toBe(400);
    expect((await b.api('POST', '/bans', { kind: 'group', value: 'x' })).status).toBe(400);
    expect((await b.api('POST', '/bans', { kind: 'clientId', value: 'x', seconds: 0 })).status).toBe(400);
  });

  it('flapping: a client id connecting more than maxConnects times in the window is banned', async () => {
    const b = await server({
      flapping: { enabled: true, maxConnects: 3, windowSeconds: 600, banSeconds: 600 },
    });
    const id = uniq('flap');
    for (let i = 0; i < 3; i++) {
      const r = await connect(b.url, { clientId: id, protocolVersion: 5 });
      expect(r.code).toBe(0);
      await r.client?.endAsync();
    }
    const from = b.log.lines.length;
    // The fourth is let in (counted after its CONNACK), then banned and disconnected (0x98).
    const fourth = await connect(b.url, { clientId: id, protocolVersion: 5 });
    expect(fourth.code).toBe(0);
    await b.log.next('client.flapping_banned', (l) => l.clientId === id, from);
    await b.log.next('client.banned_kicked', (l) => l.clientId === id, from);
    expect((await connect(b.url, { clientId: id, protocolVersion: 5 })).code).toBe(0x8a);
    const bans = (await b.api('GET', '/bans')).json.items;
    expect(bans).toEqual([expect.objectContaining({ kind: 'clientId', value: id, by: 'flapping' })]);
    expect(await b.metric('shoal_flapping_bans_total')).toBe(1);
  });
});
