/**
 * createBroker({ authenticate, authorizePublish, authorizeSubscribe }): hooks from code, sync and
 * async, including Aedes-style callback hooks, against a real client.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { fromAedesHooks } from '../../../src/auth/aedes.js';
import { createBroker } from '../../../src/index.js';
import type { RunningServer } from '../../../src/server.js';
import { freePort } from '../../helpers/ports.js';
import { cleanup, connect, LogCapture, nextMessage, online } from './helpers.js';

const brokers: RunningServer[] = [];
afterEach(async () => {
  await cleanup();
  await Promise.all(brokers.splice(0).map((b) => b.close()));
});

async function start(options: Parameters<typeof createBroker>[0]) {
  const port = await freePort();
  const b = await createBroker({
    logger: new LogCapture().logger,
    ...options,
    config: { host: '127.0.0.1', port, wsPort: 0, httpPort: 0, ...options?.config },
  });
  brokers.push(b);
  return `mqtt://127.0.0.1:${port}`;
}

describe('createBroker with hooks from code', () => {
  it('sync and async hooks decide CONNECT, PUBLISH and SUBSCRIBE', async () => {
    const url = await start({
      authenticate: ({ username, password }) =>
        username === 'alice' && password?.toString() === 'pw' ? 0 : 0x86,
      authorizePublish: async (_clientId, username, topic) => topic.startsWith(`${username}/`),
      authorizeSubscribe: (_clientId, username, filter) => filter.startsWith(`${username}/`),
    });
    expect((await connect(url, { protocolVersion: 5, username: 'alice', password: 'no' })).code).toBe(0x86);
    const c = await online(url, { protocolVersion: 5, username: 'alice', password: 'pw' });
    await c.subscribeAsync('alice/#', { qos: 1 });
    const err = await c.subscribeAsync('bob/#', { qos: 1 }).then(
      () => undefined,
      (e: { packet: { granted: number[] } }) => e,
    );
    expect(err?.packet.granted).toEqual([0x87]);
    const got = nextMessage(c);
    await expect(c.publishAsync('bob/x', 'no', { qos: 1 })).rejects.toMatchObject({ code: 0x87 });
    await c.publishAsync('alice/x', 'yes', { qos: 1 });
    expect(await got).toEqual({ topic: 'alice/x', payload: 'yes' });
  });

  it('Aedes-style callback hooks work unchanged through fromAedesHooks', async () => {
    const url = await start(
      fromAedesHooks({
        authenticate: (_client, username, password, done) =>
          done(null, username === 'aedes' && password?.toString() === 'pw'),
        authorizePublish: (client, packet, done) =>
          done(packet.topic.startsWith(`${client.id}/`) ? null : new Error('not yours')),
        authorizeSubscribe: (_client, sub, done) => done(null, sub.topic === '#' ? null : sub),
      }),
    );
    expect((await connect(url, { protocolVersion: 4, username: 'aedes', password: 'x' })).code).toBe(4);
    const c = await online(url, { protocolVersion: 4, clientId: 'me', username: 'aedes', password: 'pw' });
    await c.subscribeAsync('+/x', { qos: 1 });
    const got = nextMessage(c);
    // 3.1.1: the denied PUBLISH is acknowledged and dropped; the next one arrives.
    await c.publishAsync('other/x', 'dropped', { qos: 1 });
    await c.publishAsync('me/x', 'kept', { qos: 1 });
    expect(await got).toEqual({ topic: 'me/x', payload: 'kept' });
  });
});
