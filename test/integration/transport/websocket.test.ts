import { once } from 'node:events';
import type { IncomingMessage } from 'node:http';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { Transport } from '../../../src/transport/types.js';
import { pickSubprotocol, WebSocketListener } from '../../../src/transport/websocket.js';
import { freePort } from '../../helpers/ports.js';
import { AcceptQueue, BoundTransport } from '../../helpers/transport.js';

const MAX_PAYLOAD = 64 * 1024;

describe('pickSubprotocol', () => {
  it('picks the first offered MQTT subprotocol', () => {
    expect(pickSubprotocol(['mqtt'])).toBe('mqtt');
    expect(pickSubprotocol(['mqttv3.1'])).toBe('mqttv3.1');
    expect(pickSubprotocol(['chat', 'mqttv3.1', 'mqtt'])).toBe('mqttv3.1');
    expect(pickSubprotocol(['chat'])).toBe(false);
  });
});

describe('WebSocketListener', () => {
  let accepted: AcceptQueue;
  let listener: WebSocketListener;
  let url: string;
  const clients: WebSocket[] = [];

  async function open(protocols?: string | string[], path = '/mqtt'): Promise<WebSocket> {
    const ws = new WebSocket(url.replace('/mqtt', path), protocols);
    clients.push(ws);
    await once(ws, 'open');
    return ws;
  }

  /** The HTTP status a refused upgrade answered with. */
  async function refusal(protocols?: string | string[], path = '/mqtt'): Promise<number> {
    const ws = new WebSocket(url.replace('/mqtt', path), protocols);
    clients.push(ws);
    ws.on('error', () => {});
    const [, res] = (await once(ws, 'unexpected-response')) as [unknown, IncomingMessage];
    res.resume();
    return res.statusCode ?? 0;
  }

  beforeEach(async () => {
    accepted = new AcceptQueue();
    listener = new WebSocketListener({
      host: '127.0.0.1',
      port: await freePort(),
      path: '/mqtt',
      maxPayloadBytes: MAX_PAYLOAD,
      onConnection: accepted.onConnection,
    });
    const port = await listener.listen();
    url = `ws://127.0.0.1:${port}/mqtt`;
  });

  afterEach(async () => {
    for (const c of clients.splice(0)) c.terminate();
    await listener.close();
  });

  it('accepts the mqtt subprotocol', async () => {
    const client = await open(['mqtt']);
    expect(client.protocol).toBe('mqtt');
    const server = await accepted.next();
    expect(server.transport.kind).toBe('ws');
    expect(server.transport.remoteAddress).toBe('127.0.0.1');
  });

  it('accepts mqttv3.1, and the first MQTT subprotocol of several offered', async () => {
    expect((await open(['mqttv3.1'])).protocol).toBe('mqttv3.1');
    expect((await open(['chat', 'mqtt'])).protocol).toBe('mqtt');
  });

  it('accepts a client that offers no subprotocol', async () => {
    const client = await open();
    expect(client.protocol).toBe('');
    await accepted.next();
  });

  it('refuses a client whose offered subprotocols are not MQTT', async () => {
    expect(await refusal(['chat', 'graphql-ws'])).toBe(400);
  });

  it('refuses an upgrade on another path', async () => {
    expect(await refusal(['mqtt'], '/other')).toBe(404);
    expect(await refusal(['mqtt'], '/mqtt/extra')).toBe(404);
  });

  it('accepts the path with a query string', async () => {
    await open(['mqtt'], '/mqtt?client=a');
    await accepted.next();
  });

  it('delivers binary frames from the client through the data callback', async () => {
    const client = await open('mqtt');
    const server = await accepted.next();
    client.send(Buffer.from([0xc0, 0x00]));
    client.send(Buffer.from([0xe0, 0x00]));
    expect(await server.bytes(4)).toEqual(Buffer.from([0xc0, 0x00, 0xe0, 0x00]));
  });

  it('sends a batch as one binary frame', async () => {
    const client = await open('mqtt');
    const server = await accepted.next();
    const message = once(client, 'message');
    server.transport.writeBatch([
      Buffer.from([0x20, 0x02]),
      Buffer.from([0x00, 0x00]),
      Buffer.from([0xd0, 0x00]),
    ]);
    const [data, isBinary] = (await message) as [Buffer, boolean];
    expect(isBinary).toBe(true);
    expect(data).toEqual(Buffer.from([0x20, 0x02, 0x00, 0x00, 0xd0, 0x00]));
  });

  it('[MQTT-6.0.0-1] closes the connection on a text frame', async () => {
    const client = await open('mqtt');
    const server = await accepted.next();
    const closed = once(client, 'close');
    client.send('CONNECT');
    expect((await server.nextError()).message).toMatch(/binary frames/);
    const [code] = (await closed) as [number];
    expect(code).toBe(1003);
    await server.closed;
  });

  it('closes a connection whose message exceeds maxPayloadBytes', async () => {
    const client = await open('mqtt');
    const server = await accepted.next();
    const closed = once(client, 'close');
    client.send(Buffer.alloc(MAX_PAYLOAD + 1));
    const [code] = (await closed) as [number];
    expect(code).toBe(1009);
    await server.closed;
    expect(server.errors).toHaveLength(1);
  });

  it('reports backpressure in bufferedBytes and then drain', async () => {
    const client = await open('mqtt');
    const server = await accepted.next();
    client.pause();
    const chunk = Buffer.alloc(1024 * 1024);
    while (server.transport.bufferedBytes === 0) server.transport.writeBatch([chunk]);
    const drained = server.nextDrain();
    client.resume();
    await drained;
    expect(server.transport.bufferedBytes).toBe(0);
  });

  it('end() closes with 1000 after what was queued', async () => {
    const client = await open('mqtt');
    const server = await accepted.next();
    const message = once(client, 'message');
    const closed = once(client, 'close');
    server.transport.writeBatch([Buffer.from([0xe0, 0x00])]);
    server.transport.end();
    expect((await message)[0]).toEqual(Buffer.from([0xe0, 0x00]));
    expect((await closed)[0]).toBe(1000);
    await server.closed;
  });

  it('reports close when the client goes away, and destroy() closes at once', async () => {
    const a = await open('mqtt');
    const serverA = await accepted.next();
    a.terminate();
    await serverA.closed;

    const b = await open('mqtt');
    const serverB = await accepted.next();
    const closed = once(b, 'close');
    serverB.transport.destroy();
    await Promise.all([serverB.closed, closed]);
  });

  it('holds messages until bind, and reports close to a late bind when the client already left', async () => {
    const unbound: Transport[] = [];
    const late = new WebSocketListener({
      host: '127.0.0.1',
      port: await freePort(),
      path: '/mqtt',
      maxPayloadBytes: MAX_PAYLOAD,
      onConnection: (t) => unbound.push(t),
    });
    const latePort = await late.listen();
    try {
      const client = new WebSocket(`ws://127.0.0.1:${latePort}/mqtt`, 'mqtt');
      clients.push(client);
      await once(client, 'open');
      await new Promise<void>((resolve, reject) =>
        client.send(Buffer.from([0xe0, 0x00]), (err) => (err ? reject(err) : resolve())),
      );
      // No closing handshake: the unbound server is not reading, so it could not answer one.
      client.terminate();
      await once(client, 'close');
      const server = new BoundTransport(unbound[0]);
      expect(await server.bytes(2)).toEqual(Buffer.from([0xe0, 0x00]));
      await server.closed;
    } finally {
      await late.close();
    }
  });

  it('answers plain HTTP requests without upgrading', async () => {
    const res = await fetch(url.replace('ws:', 'http:'));
    expect(res.status).toBe(426);
    await res.text();
  });
});
