import { once } from 'node:events';
import net from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TcpListener } from '../../../src/transport/tcp.js';
import type { Transport } from '../../../src/transport/types.js';
import { canConnect, freePort } from '../../helpers/ports.js';
import { AcceptQueue, BoundTransport, readBytes } from '../../helpers/transport.js';

describe('TcpListener', () => {
  let accepted: AcceptQueue;
  let listener: TcpListener;
  let port: number;
  const clients: net.Socket[] = [];

  async function connect(): Promise<net.Socket> {
    const socket = net.connect({ host: '127.0.0.1', port });
    clients.push(socket);
    await once(socket, 'connect');
    return socket;
  }

  beforeEach(async () => {
    accepted = new AcceptQueue();
    listener = new TcpListener({
      host: '127.0.0.1',
      port: await freePort(),
      onConnection: accepted.onConnection,
    });
    port = await listener.listen();
  });

  afterEach(async () => {
    for (const c of clients.splice(0)) c.destroy();
    await listener.close();
  });

  it('resolves listen() with the bound port', async () => {
    expect(port).toBeGreaterThan(0);
    expect(await canConnect(port)).toBe(true);
  });

  it('delivers bytes written by the client through the data callback', async () => {
    const client = await connect();
    const server = await accepted.next();
    expect(server.transport.kind).toBe('tcp');
    expect(server.transport.remoteAddress).toBe('127.0.0.1');
    client.write(Buffer.from([0x10, 0x02]));
    client.write(Buffer.from([0x00, 0x04]));
    expect(await server.bytes(4)).toEqual(Buffer.from([0x10, 0x02, 0x00, 0x04]));
  });

  it('writes a batch in order', async () => {
    const client = await connect();
    const server = await accepted.next();
    server.transport.writeBatch([Buffer.from('ab'), Buffer.from('cd'), Buffer.from('ef')]);
    expect((await readBytes(client, 6)).toString()).toBe('abcdef');
  });

  it('reports backpressure in bufferedBytes and then drain', async () => {
    const client = await connect();
    client.pause();
    const server = await accepted.next();
    expect(server.transport.bufferedBytes).toBe(0);
    const chunk = Buffer.alloc(1024 * 1024);
    // Fill the kernel buffers so the socket has to buffer in user space.
    while (server.transport.bufferedBytes === 0) server.transport.writeBatch([chunk, chunk]);
    expect(server.transport.bufferedBytes).toBeGreaterThan(0);
    const drained = server.nextDrain();
    client.resume();
    await drained;
    expect(server.transport.bufferedBytes).toBe(0);
  });

  it('ends after flushing, and reports close', async () => {
    const client = await connect();
    const server = await accepted.next();
    server.transport.writeBatch([Buffer.from('bye')]);
    server.transport.end();
    expect((await readBytes(client, 3)).toString()).toBe('bye');
    client.resume();
    await once(client, 'end');
    client.end();
    await server.closed;
  });

  it('reports close when the client goes away', async () => {
    const client = await connect();
    const server = await accepted.next();
    client.destroy();
    await server.closed;
  });

  it('destroys at once', async () => {
    const client = await connect();
    const server = await accepted.next();
    server.transport.destroy();
    await Promise.all([server.closed, once(client, 'close')]);
  });

  it('reports data and close to a late bind when the client already left', async () => {
    const unbound: Transport[] = [];
    const late = new TcpListener({
      host: '127.0.0.1',
      port: await freePort(),
      onConnection: (t) => unbound.push(t),
    });
    const latePort = await late.listen();
    try {
      const client = net.connect({ host: '127.0.0.1', port: latePort });
      clients.push(client);
      await once(client, 'connect');
      await new Promise<void>((resolve) => client.end(Buffer.from('last words'), resolve));
      // The unbound server is not reading, so it would never answer the FIN: stop waiting for it.
      client.destroy();
      await once(client, 'close');
      const server = new BoundTransport(unbound[0]);
      expect((await server.bytes(10)).toString()).toBe('last words');
      await server.closed;
    } finally {
      await late.close();
    }
  });

  it('stops accepting on close()', async () => {
    await listener.close();
    expect(await canConnect(port)).toBe(false);
  });
});
