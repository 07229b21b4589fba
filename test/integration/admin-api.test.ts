/**
 * The admin API (docs/admin-api.md) on a real single node: bearer token, nodes, clients (paging and
 * filters), one client's session, kick (0x98), retained list and delete, publish; and the status
 * page. Clients are real MQTT.js connections.
 */
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/schema.js';
import { isLoopback } from '../../src/observability/admin-api.js';
import { createLogger } from '../../src/observability/logger.js';
import { type RunningServer, startServer } from '../../src/server.js';
import { freePort } from '../helpers/ports.js';

const TOKEN = 'test-admin-token-0123456789';

let server: RunningServer;
let base: string;
let mqttUrl: string;
const clients: mqtt.MqttClient[] = [];

beforeAll(async () => {
  const config = validateConfig({
    host: '127.0.0.1',
    port: await freePort(),
    wsPort: 0,
    httpPort: await freePort(),
    nodeId: 'admin-node',
    admin: { token: TOKEN },
    mqtt: { sysIntervalSeconds: 0 },
  });
  server = await startServer(config, { logger: createLogger('silent') });
  base = `http://127.0.0.1:${server.ports.http}`;
  mqttUrl = `mqtt://127.0.0.1:${server.ports.mqtt}`;
});

afterAll(async () => {
  for (const c of clients) c.end(true);
  await server?.close();
});

async function connect(clientId: string, opts: mqtt.IClientOptions = {}): Promise<mqtt.MqttClient> {
  const c = await mqtt.connectAsync(mqttUrl, {
    clientId,
    protocolVersion: 5,
    reconnectPeriod: 0,
    connectTimeout: 5_000,
    ...opts,
  });
  clients.push(c);
  return c;
}

async function api(
  method: string,
  path: string,
  body?: unknown,
  token: string | null = TOKEN,
  // biome-ignore lint/suspicious/noExplicitAny: JSON answers, checked field by field by the tests
): Promise<{ status: number; json: any }> {
  const headers: Record<string, string> = {};
  if (token !== null) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${base}${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, json: await res.json() };
}

describe('authorization', () => {
  it('refuses a request without the bearer token (401, WWW-Authenticate)', async () => {
    const res = await fetch(`${base}/api/v1/nodes`);
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect(await res.json()).toEqual({
      error: { code: 'UNAUTHORIZED', message: 'a bearer token is required' },
    });
  });

  it('refuses a wrong token', async () => {
    const r = await api('GET', '/api/v1/nodes', undefined, 'not-the-right-token-000');
    expect(r.status).toBe(401);
    expect(r.json.error.code).toBe('UNAUTHORIZED');
  });

  it('serves /metrics, /healthz and the status page without a token', async () => {
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    const page = await fetch(`${base}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    const html = await page.text();
    expect(html).toContain('Shoal node admin-node');
    expect(html).toContain('clients connected');
  });

  it('without a token configured, answers loopback addresses only', () => {
    expect(isLoopback('127.0.0.1')).toBe(true);
    expect(isLoopback('::1')).toBe(true);
    expect(isLoopback('::ffff:127.0.0.5')).toBe(true);
    expect(isLoopback('10.1.2.3')).toBe(false);
    expect(isLoopback('::ffff:192.168.1.1')).toBe(false);
    expect(isLoopback(undefined)).toBe(false);
  });
});

describe('nodes', () => {
  it('lists this node on a single node', async () => {
    const r = await api('GET', '/api/v1/nodes');
    expect(r.status).toBe(200);
    expect(r.json).toEqual({ nodes: [{ nodeId: 'admin-node', self: true, lastSeenMs: null }] });
  });
});

describe('clients', () => {
  it('lists clients in id order, paged, filtered by prefix and user name', async () => {
    for (let i = 0; i < 5; i++) await connect(`page-${i}`, { username: i % 2 === 0 ? 'even' : 'odd' });
    const first = await api('GET', '/api/v1/clients?prefix=page-&limit=2');
    expect(first.status).toBe(200);
    expect(first.json.items.map((c: { clientId: string }) => c.clientId)).toEqual(['page-0', 'page-1']);
    expect(first.json.next).toBe('page-1');
    const second = await api('GET', `/api/v1/clients?prefix=page-&limit=2&after=${first.json.next}`);
    expect(second.json.items.map((c: { clientId: string }) => c.clientId)).toEqual(['page-2', 'page-3']);
    const last = await api('GET', `/api/v1/clients?prefix=page-&limit=2&after=${second.json.next}`);
    expect(last.json.items.map((c: { clientId: string }) => c.clientId)).toEqual(['page-4']);
    expect(last.json.next).toBeNull();

    const odd = await api('GET', '/api/v1/clients?prefix=page-&username=odd');
    expect(odd.json.items.map((c: { clientId: string }) => c.clientId)).toEqual(['page-1', 'page-3']);
    expect(odd.json.items[0]).toMatchObject({
      connected: true,
      username: 'odd',
      protocolVersion: 5,
      listener: 'tcp',
      sessionExpirySeconds: 0,
      subscriptionCount: 0,
    });
  });

  it('rejects a bad limit', async () => {
    const r = await api('GET', '/api/v1/clients?limit=0');
    expect(r.status).toBe(400);
    expect(r.json.error.code).toBe('BAD_REQUEST');
  });

  it("shows one client's session and subscriptions", async () => {
    const c = await connect('detail-1', { properties: { sessionExpiryInterval: 300 } });
    await c.subscribeAsync({ 'a/+/b': { qos: 1, nl: true }, '$share/g/x/#': { qos: 2 } });
    const r = await api('GET', '/api/v1/clients/detail-1');
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ clientId: 'detail-1', connected: true, sessionExpirySeconds: 300 });
    expect(r.json.subscriptions).toEqual(
      expect.arrayContaining([
        {
          topicFilter: 'a/+/b',
          qos: 1,
          noLocal: true,
          retainAsPublished: false,
          retainHandling: 0,
          subscriptionIdentifier: null,
        },
        expect.objectContaining({ topicFilter: '$share/g/x/#', qos: 2 }),
      ]),
    );
    expect((await api('GET', '/api/v1/clients/nobody')).status).toBe(404);
  });

  it('kicks a client with DISCONNECT 0x98 and can discard its session', async () => {
    const c = await connect('kick-me', { properties: { sessionExpiryInterval: 300 } });
    const reason = new Promise<number | undefined>((resolve) =>
      c.once('disconnect', (p) => resolve(p.reasonCode)),
    );
    const r = await api('DELETE', '/api/v1/clients/kick-me');
    expect(r).toEqual({
      status: 200,
      json: { kicked: 'kick-me', node: expect.any(String), sessionDiscarded: false },
    });
    expect(await reason).toBe(0x98);
    // The persistent session stays, offline.
    const after = await api('GET', '/api/v1/clients/kick-me');
    expect(after.json).toMatchObject({ connected: false, protocolVersion: null });
    const discarded = await api('DELETE', '/api/v1/clients/kick-me?discardSession=true');
    expect(discarded.json.sessionDiscarded).toBe(true);
    expect((await api('GET', '/api/v1/clients/kick-me')).status).toBe(404);
    expect((await api('DELETE', '/api/v1/clients/kick-me')).status).toBe(404);
  });
});

describe('retained messages and publish', () => {
  it('publishes (QoS 1, retained, with properties) to real subscribers', async () => {
    const sub = await connect('pub-sub');
    await sub.subscribeAsync('adm/#', { qos: 1 });
    const got = new Promise<{ topic: string; payload: string; props: unknown }>((resolve) =>
      sub.once('message', (topic, payload, packet) =>
        resolve({ topic, payload: payload.toString(), props: packet.properties }),
      ),
    );
    const r = await api('POST', '/api/v1/publish', {
      topic: 'adm/one',
      payload: 'hello',
      qos: 1,
      retain: true,
      properties: { contentType: 'text/plain', userProperties: { source: 'admin' } },
    });
    expect(r).toEqual({ status: 200, json: { delivered: 1 } });
    const m = await got;
    expect(m).toMatchObject({ topic: 'adm/one', payload: 'hello' });
    expect(m.props).toMatchObject({ contentType: 'text/plain', userProperties: { source: 'admin' } });
  });

  it('decodes base64 payloads and rejects bad publishes', async () => {
    const ok = await api('POST', '/api/v1/publish', {
      topic: 'adm/bin',
      payload: Buffer.from([0, 1, 2, 255]).toString('base64'),
      encoding: 'base64',
      retain: true,
    });
    expect(ok.status).toBe(200);
    for (const body of [
      { topic: 'adm/+', payload: 'x' },
      { topic: '$SYS/x', payload: 'x' },
      { topic: 'adm/x', payload: 'x', qos: 3 },
      { topic: 'adm/x', payload: 'x', properties: { topicAlias: 1 } },
      [],
    ]) {
      const r = await api('POST', '/api/v1/publish', body);
      expect(r.status, JSON.stringify(body)).toBe(400);
    }
    const res = await fetch(`${base}/api/v1/publish`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'text/plain' },
      body: 'x',
    });
    expect(res.status).toBe(415);
    await res.arrayBuffer();
  });

  it('lists retained messages by filter, paged, and deletes them by filter', async () => {
    for (const t of ['ret/a', 'ret/b', 'ret/c/d'])
      await api('POST', '/api/v1/publish', { topic: t, payload: `v-${t}`, retain: true });
    const all = await api('GET', `/api/v1/retained?filter=${encodeURIComponent('ret/#')}`);
    expect(all.json.items.map((m: { topic: string }) => m.topic)).toEqual(['ret/a', 'ret/b', 'ret/c/d']);
    expect(all.json.items[0]).toEqual({
      topic: 'ret/a',
      qos: 0,
      payloadBytes: 7,
      payload: 'v-ret/a',
      encoding: 'utf8',
      contentType: null,
      expiresInSeconds: null,
    });
    const page = await api('GET', `/api/v1/retained?filter=${encodeURIComponent('ret/+')}&limit=1`);
    expect(page.json).toMatchObject({ items: [{ topic: 'ret/a' }], next: 'ret/a' });
    const bin = await api('GET', '/api/v1/retained?filter=adm/bin');
    expect(bin.json.items[0]).toMatchObject({ encoding: 'base64', payload: 'AAEC/w==' });

    expect((await api('DELETE', '/api/v1/retained')).status).toBe(400);
    const del = await api('DELETE', `/api/v1/retained?filter=${encodeURIComponent('ret/+')}`);
    expect(del.json).toEqual({ deleted: 2 });
    const left = await api('GET', `/api/v1/retained?filter=${encodeURIComponent('ret/#')}`);
    expect(left.json.items.map((m: { topic: string }) => m.topic)).toEqual(['ret/c/d']);
    // A new subscriber gets only what is left.
    const late = await connect('late-sub');
    const topics: string[] = [];
    late.on('message', (t) => topics.push(t));
    await late.subscribeAsync('ret/#');
    await late.publishAsync('ret/fence', 'f', { qos: 1 });
    await new Promise<void>((resolve) => {
      const check = () => (topics.includes('ret/fence') ? resolve() : setTimeout(check, 10));
      check();
    });
    expect(topics.filter((t) => t !== 'ret/fence')).toEqual(['ret/c/d']);
    expect((await api('GET', '/api/v1/retained?filter=a/%23/b')).status).toBe(400);
  });

  it('(#14) answers 400, not 500, for a path that is not valid percent-encoding, and for a body that is not JSON', async () => {
    const r = await api('GET', '/api/v1/clients/%E0%A4%A');
    expect(r.status).toBe(400);
    expect(r.json).toMatchObject({ error: { code: 'BAD_REQUEST' } });
    expect((await api('DELETE', '/api/v1/clients/%ZZ')).status).toBe(400);
    const raw = await fetch(`${base}/api/v1/publish`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: '{"topic": ',
    });
    expect(raw.status).toBe(400);
  });

  it('answers 404 for an unknown endpoint and 405 for a wrong method', async () => {
    expect((await api('GET', '/api/v1/nope')).status).toBe(404);
    const r = await api('POST', '/api/v1/nodes', {});
    expect(r.status).toBe(405);
  });
});
