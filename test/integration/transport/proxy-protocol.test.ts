/**
 * Clients behind load balancers, over real sockets: the PROXY protocol (v1, v2) on the TCP and TLS
 * listeners names the client the broker sees (the authenticate hook's remoteAddress); peers that are
 * not trusted proxies, streams without a valid header and headers that do not arrive in time are
 * refused before the broker sees them. On WebSocket listeners, X-Forwarded-For from trusted proxies.
 * Real HAProxy in front: haproxy.test.ts.
 */
import { once } from 'node:events';
import net from 'node:net';
import tls from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { ConnectInfo } from '../../../src/auth/types.js';
import { encode, type Packet } from '../../../src/protocol/index.js';
import { AddressList } from '../../../src/transport/address.js';
import { TlsListener } from '../../../src/transport/tls.js';
import type { Listener } from '../../../src/transport/types.js';
import { WebSocketListener } from '../../../src/transport/websocket.js';
import { proxyV1, proxyV2 } from '../../fixtures/proxy-protocol.js';
import { startTestBroker, type TestBroker } from '../../helpers/broker.js';
import { FakeClock } from '../../helpers/fake-clock.js';
import { closedWithin, Peers, sync, until } from '../../helpers/mqtt.js';
import { freePort } from '../../helpers/ports.js';
import { RawClient } from '../../helpers/raw-client.js';
import { makeTestCert, type TestCert } from '../../helpers/tls-cert.js';
import { AcceptQueue } from '../../helpers/transport.js';

const peers = new Peers();
const brokers: TestBroker[] = [];
afterEach(async () => {
  await peers.closeAll();
  for (const t of brokers.splice(0)) await t.close();
});

const CONNECT: Packet = {
  type: 'connect',
  protocolName: 'MQTT',
  protocolVersion: 5,
  clean: true,
  keepalive: 0,
  clientId: 'behind-lb',
};

/** A broker requiring PROXY headers from `trusted`, recording each client's remoteAddress at CONNECT. */
async function proxiedBroker(trusted: string[], clock?: FakeClock) {
  const seen: ConnectInfo[] = [];
  const t = await startTestBroker(
    {},
    {
      clock,
      proxyProtocol: { trustedProxies: trusted, headerTimeoutMs: 3000 },
      auth: {
        authenticate: (info) => {
          seen.push(info);
          return 0;
        },
      },
    },
  );
  brokers.push(t);
  return { t, seen };
}

describe('PROXY protocol on the TCP listener', () => {
  it('v1: the header and CONNECT in one write; the broker sees the client address', async () => {
    const { t, seen } = await proxiedBroker(['127.0.0.1']);
    const c = peers.add(await RawClient.connect(t.port, 5));
    c.sendBytes(Buffer.concat([proxyV1('203.0.113.7', '10.0.0.1', 56324, 1883), encode(CONNECT, 5)]));
    expect((await c.next('connack')).reasonCode).toBe(0);
    expect(seen.map((i) => i.remoteAddress)).toEqual(['203.0.113.7']);
    await sync(c);
  });

  it('v2 over IPv6, delivered byte by byte, then CONNECT', async () => {
    const { t, seen } = await proxiedBroker(['127.0.0.0/8']);
    const c = peers.add(await RawClient.connect(t.port, 5));
    for (const byte of proxyV2({ src: '2001:db8::7', dst: '2001:db8::1' })) c.sendBytes([byte]);
    expect((await c.handshake({ protocolVersion: 5 })).reasonCode).toBe(0);
    expect(seen[0].remoteAddress).toBe('2001:db8::7');
  });

  it('LOCAL (a health check of the balancer): the proxy itself is the client', async () => {
    const { t, seen } = await proxiedBroker(['127.0.0.1']);
    const c = peers.add(await RawClient.connect(t.port, 5));
    c.sendBytes(proxyV2({ command: 0, famProto: 0 }));
    expect((await c.handshake({ protocolVersion: 5 })).reasonCode).toBe(0);
    expect(seen[0].remoteAddress).toBe('127.0.0.1');
  });

  it('a peer that is not a trusted proxy is refused before a byte is read', async () => {
    const { t, seen } = await proxiedBroker(['127.0.0.2', '10.0.0.0/8']);
    const c = peers.add(await RawClient.connect(t.port, 5));
    await closedWithin(c);
    expect(c.received).toEqual([]);
    expect(t.proxyRefusals).toEqual(['untrusted']);
    expect(t.broker.stats.rateLimited.proxy_untrusted).toBe(1);
    expect(seen).toEqual([]);
    expect(t.broker.stats.connectionsOpen).toBe(0);
  });

  it('a trusted peer without a header (plain MQTT) is refused', async () => {
    const { t, seen } = await proxiedBroker(['127.0.0.1']);
    const c = peers.add(await RawClient.connect(t.port, 5));
    c.send(CONNECT);
    await closedWithin(c);
    expect(c.received).toEqual([]);
    expect(t.proxyRefusals).toEqual(['invalid']);
    expect(t.broker.stats.rateLimited.proxy_header).toBe(1);
    expect(seen).toEqual([]);
  });

  it('a header that does not arrive within the header timeout is refused', async () => {
    const clock = new FakeClock();
    const { t } = await proxiedBroker(['127.0.0.1'], clock);
    const timers = clock.pending;
    const c = peers.add(await RawClient.connect(t.port, 5));
    await until(() => clock.pending > timers, 'the header timer armed');
    c.sendBytes(proxyV1('203.0.113.7', '10.0.0.1', 1, 2).subarray(0, 20));
    clock.advance(2999);
    expect(c.isOpen).toBe(true);
    clock.advance(1);
    await closedWithin(c);
    expect(t.proxyRefusals).toEqual(['timeout']);
  });

  it('other clients are unharmed by refused connections', async () => {
    const { t } = await proxiedBroker(['127.0.0.1']);
    const good = peers.add(await RawClient.connect(t.port, 5));
    good.sendBytes(proxyV1('203.0.113.7', '10.0.0.1', 1, 2));
    expect((await good.handshake({ protocolVersion: 5 })).reasonCode).toBe(0);
    for (const junk of [Buffer.from('GET / HTTP/1.1\r\n\r\n'), Buffer.from('PROXY TCP4 x y 1 2\r\n')]) {
      const bad = peers.add(await RawClient.connect(t.port, 5));
      bad.sendBytes(junk);
      await closedWithin(bad);
    }
    await sync(good);
  });
});

describe('PROXY protocol on the TLS listener', () => {
  let cert: TestCert;
  const listeners: Listener[] = [];
  const sockets: net.Socket[] = [];
  beforeAll(async () => {
    cert = await makeTestCert();
  });
  afterAll(() => cert.remove());
  afterEach(async () => {
    for (const s of sockets.splice(0)) s.destroy();
    for (const l of listeners.splice(0)) await l.close();
  });

  async function tlsListener(accepted: AcceptQueue, trusted: string[]): Promise<number> {
    const listener = new TlsListener({
      host: '127.0.0.1',
      port: 0,
      credentials: { cert: cert.cert, key: cert.key, requestClientCert: false, rejectUnauthorized: true },
      onConnection: accepted.onConnection,
      proxyProtocol: { trusted: new AddressList(trusted), headerTimeoutMs: 3000, clock: new FakeClock() },
    });
    listeners.push(listener);
    return listener.listen();
  }

  it('reads the header before the handshake, then speaks TLS on the same connection', async () => {
    const accepted = new AcceptQueue();
    const port = await tlsListener(accepted, ['127.0.0.1']);
    const raw = net.connect({ port, host: '127.0.0.1' });
    sockets.push(raw);
    await once(raw, 'connect');
    raw.write(proxyV2({ src: '198.51.100.23', dst: '10.0.0.1' }));
    const secure = tls.connect({ socket: raw, rejectUnauthorized: false });
    sockets.push(secure);
    await once(secure, 'secureConnect');
    const bound = await accepted.next();
    expect(bound.transport.remoteAddress).toBe('198.51.100.23');
    expect(bound.transport.kind).toBe('tls');
    secure.write('hello');
    expect((await bound.bytes(5)).toString()).toBe('hello');
  });

  it('refuses a peer that is not a trusted proxy before the handshake', async () => {
    const accepted = new AcceptQueue();
    const port = await tlsListener(accepted, ['10.0.0.0/8']);
    const secure = tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false });
    sockets.push(secure);
    const [err] = (await once(secure, 'error')) as [NodeJS.ErrnoException];
    expect(err.code).toMatch(/ECONNRESET|EPIPE|ERR_SSL/);
  });
});

describe('X-Forwarded-For on the WebSocket listener', () => {
  const listeners: Listener[] = [];
  const clients: WebSocket[] = [];
  afterEach(async () => {
    for (const c of clients.splice(0)) c.terminate();
    for (const l of listeners.splice(0)) await l.close();
  });

  async function remoteAddressSeen(trusted: string[], forwarded: string): Promise<string> {
    const accepted = new AcceptQueue();
    const port = await freePort();
    const listener = new WebSocketListener({
      host: '127.0.0.1',
      port,
      path: '/mqtt',
      maxPayloadBytes: 1024,
      onConnection: accepted.onConnection,
      trustedProxies: new AddressList(trusted),
    });
    listeners.push(listener);
    await listener.listen();
    const ws = new WebSocket(`ws://127.0.0.1:${port}/mqtt`, 'mqtt', {
      headers: { 'x-forwarded-for': forwarded },
    });
    clients.push(ws);
    await once(ws, 'open');
    return (await accepted.next()).transport.remoteAddress;
  }

  it('from a trusted proxy: the rightmost address that is not a trusted proxy', async () => {
    expect(await remoteAddressSeen(['127.0.0.1'], '198.51.100.4, 203.0.113.9')).toBe('203.0.113.9');
  });

  it('from anyone else: ignored, the peer is the client', async () => {
    expect(await remoteAddressSeen(['10.0.0.0/8'], '203.0.113.9')).toBe('127.0.0.1');
  });
});
