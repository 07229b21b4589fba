/**
 * The admin API against its own OpenAPI document (#14, src/observability/openapi.ts): every route
 * and method served is described there and nothing else is, and real answers of a running node
 * validate against the document's schemas (JSON Schema 2020-12, as OpenAPI 3.1 uses). Also the
 * read-only token, the runtime log level and the drain, on a real single node with MQTT.js clients.
 */
import { Ajv2020 } from 'ajv/dist/2020.js';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/schema.js';
import { AdminApi } from '../../src/observability/admin-api.js';
import type { ClusterAdmin } from '../../src/observability/admin-cluster.js';
import type { BrokerAdmin } from '../../src/observability/admin-types.js';
import { createLogger } from '../../src/observability/logger.js';
import { OPENAPI } from '../../src/observability/openapi.js';
import { type RunningServer, startServer } from '../../src/server.js';
import { freePort } from '../helpers/ports.js';

const TOKEN = 'test-admin-token-0123456789';
const READ_TOKEN = 'test-read-only-token-0123456789';

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
    nodeId: 'openapi-node',
    admin: { token: TOKEN, readOnlyToken: READ_TOKEN },
    mqtt: { sysIntervalSeconds: 0 },
  });
  server = await startServer(config, { logger: createLogger('silent') });
  base = `http://127.0.0.1:${server.ports.http}/api/v1`;
  mqttUrl = `mqtt://127.0.0.1:${server.ports.mqtt}`;
});

afterAll(async () => {
  for (const c of clients) c.end(true);
  await server?.close();
});

async function call(
  method: string,
  path: string,
  body?: unknown,
  token = TOKEN,
  // biome-ignore lint/suspicious/noExplicitAny: JSON answers, checked against the document's schemas
): Promise<{ status: number; json: any }> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, json: await res.json() };
}

/** Validates `json` against the 200 schema of `method path` in the document. */
function conforms(method: string, path: string, json: unknown): void {
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  ajv.addSchema({ $id: 'doc', components: OPENAPI.components }, 'doc');
  const op = (
    OPENAPI.paths as Record<
      string,
      Record<string, { responses: Record<string, { content: Record<string, { schema: unknown }> }> }>
    >
  )[path][method];
  const schema = JSON.parse(
    JSON.stringify(op.responses['200'].content['application/json'].schema).replaceAll(
      '"#/components',
      '"doc#/components',
    ),
  );
  const validate = ajv.compile(schema);
  expect(validate(json), `${method} ${path}: ${ajv.errorsText(validate.errors)}`).toBe(true);
}

describe('the OpenAPI document', () => {
  it('(#14) describes exactly the routes and methods the API serves', () => {
    const api = new AdminApi({
      broker: {} as BrokerAdmin,
      cluster: {} as ClusterAdmin,
      nodes: async () => [],
      token: null,
      maxBodyBytes: 1,
    });
    const served = api.routeTable
      .flatMap(({ route, methods }) =>
        methods.map(
          (m) =>
            `${m.toLowerCase()} /${route.replace(':id', route.startsWith('clients') ? '{clientId}' : '{id}')}`,
        ),
      )
      .sort();
    const documented = Object.entries(OPENAPI.paths)
      .flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m} ${path}`))
      .sort();
    expect(documented).toEqual(served);
    expect(OPENAPI.openapi).toBe('3.1.0');
  });

  it('is served at /api/v1/openapi.json, also with the read-only token', async () => {
    const r = await call('GET', '/openapi.json', undefined, READ_TOKEN);
    expect(r.status).toBe(200);
    expect(r.json).toEqual(JSON.parse(JSON.stringify(OPENAPI)));
  });

  it("(#14) the node's answers validate against the document's schemas", async () => {
    const sub = await mqtt.connectAsync(mqttUrl, {
      clientId: 'oa-sub',
      protocolVersion: 5,
      reconnectPeriod: 0,
    });
    clients.push(sub);
    await sub.subscribeAsync('oa/+/t', { qos: 1 });
    await sub.subscribeAsync('$share/g/oa/#', { qos: 0 });
    expect(
      (await call('POST', '/publish', { topic: 'oa/1/t', payload: 'x', qos: 1, retain: true })).status,
    ).toBe(200);
    const answers: [string, string, string, unknown?][] = [
      ['get', '/nodes', '/nodes'],
      ['get', '/clients', '/clients'],
      ['get', '/clients/{clientId}', '/clients/oa-sub'],
      ['get', '/subscriptions', '/subscriptions?topic=oa/1/t'],
      ['get', '/retained', '/retained'],
      ['get', '/log-level', '/log-level'],
      ['put', '/log-level', '/log-level', { level: 'warn' }],
      ['post', '/publish', '/publish', { topic: 'oa/2/t', payload: 'y' }],
      ['delete', '/retained', '/retained?filter=oa/%23'],
      ['delete', '/clients/{clientId}', '/clients/oa-sub'],
    ];
    for (const [method, path, url, body] of answers) {
      const r = await call(method.toUpperCase(), url, body);
      expect(r.status, `${method} ${url}: ${JSON.stringify(r.json)}`).toBe(200);
      conforms(method, path, r.json);
    }
  });
});

describe('admin API features (#14)', () => {
  it('who subscribes to a topic: plain and shared subscriptions with their filters and node', async () => {
    const c = await mqtt.connectAsync(mqttUrl, { clientId: 'who-1', protocolVersion: 5, reconnectPeriod: 0 });
    clients.push(c);
    await c.subscribeAsync('who/+/t', { qos: 1 });
    await c.subscribeAsync('$share/grp/who/#', { qos: 0 });
    await c.subscribeAsync('other/#', { qos: 0 });
    const r = await call('GET', '/subscriptions?topic=who/a/t');
    expect(r.json.items).toEqual(
      expect.arrayContaining([
        { clientId: 'who-1', topicFilter: 'who/+/t', qos: 1, node: 'openapi-node', persistent: false },
        {
          clientId: 'who-1',
          topicFilter: '$share/grp/who/#',
          qos: 0,
          node: 'openapi-node',
          persistent: false,
        },
      ]),
    );
    expect(r.json.items).toHaveLength(2);
    expect((await call('GET', '/subscriptions?topic=who/%2B/t')).status).toBe(400); // not a topic name
    expect((await call('GET', '/subscriptions')).status).toBe(400);
  });

  it('the read-only token reads but changes nothing (403)', async () => {
    expect((await call('GET', '/clients', undefined, READ_TOKEN)).status).toBe(200);
    for (const [method, path, body] of [
      ['DELETE', '/clients/who-1'],
      ['PUT', '/log-level', { level: 'debug' }],
      ['POST', '/publish', { topic: 'x', payload: '' }],
      ['DELETE', '/retained?filter=%23'],
      ['POST', '/drain'],
    ] as const) {
      const r = await call(method, path, body, READ_TOKEN);
      expect(r.status, `${method} ${path}`).toBe(403);
      expect(r.json.error.code).toBe('FORBIDDEN');
    }
    expect((await call('GET', '/clients', undefined, 'not-a-token-0123456789')).status).toBe(401);
  });

  it('the log level changes at once; an unknown level is a 400', async () => {
    expect((await call('PUT', '/log-level', { level: 'debug' })).json).toEqual({
      nodes: [{ nodeId: 'openapi-node', level: 'debug' }],
    });
    expect((await call('GET', '/log-level')).json).toEqual({ level: 'debug' });
    expect((await call('PUT', '/log-level', { level: 'loud' })).status).toBe(400);
    expect((await call('PUT', '/log-level', { level: 'info', scope: 'galaxy' })).status).toBe(400);
  });

  // Last: it ends the server.
  it('POST /drain drains the node as SIGTERM does: clients get DISCONNECT 0x8B, the server closes', async () => {
    const c = await mqtt.connectAsync(mqttUrl, {
      clientId: 'drained',
      protocolVersion: 5,
      reconnectPeriod: 0,
    });
    clients.push(c);
    const disconnected = new Promise<number | undefined>((resolve) =>
      c.once('disconnect', (p) => resolve(p.reasonCode)),
    );
    expect((await call('POST', '/drain')).json).toEqual({ draining: true });
    expect(await disconnected).toBe(0x8b);
    await server.closed;
    expect(server.ready).toBe(false);
  });
});
