import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConnectInfo } from '../../../src/auth/types.js';
import { systemClock } from '../../../src/clock.js';
import { acceptor } from '../../../src/connection/accept.js';
import { decodeAll, encode, type Packet } from '../../../src/protocol/index.js';
import { AddressList } from '../../../src/transport/address.js';
import { TlsListener } from '../../../src/transport/tls.js';
import { startTestBroker, type TestBroker } from '../../helpers/broker.js';
import { haproxyBin } from '../../helpers/haproxy.js';
import { closedWithin, sync } from '../../helpers/mqtt.js';
import { freePort, waitForPort } from '../../helpers/ports.js';
import { spawnTracked, type TrackedProcess } from '../../helpers/processes.js';
import { RawClient } from '../../helpers/raw-client.js';
import { makeTestCert, type TestCert } from '../../helpers/tls-cert.js';

const HAPROXY = haproxyBin;
const CLIENT_ADDRESS = '127.0.0.2';

describe('behind HAProxy', () => {
  let haproxy: TrackedProcess;
  let dir: string;
  let cert: TestCert;
  let trusting: TestBroker;
  let distrusting: TestBroker;
  let tlsListener: TlsListener;
  const seen: ConnectInfo[] = [];
  const front = { v1: 0, v2: 0, tls: 0, untrusted: 0 };

  beforeAll(async () => {
    cert = await makeTestCert();
    const authenticate = (info: ConnectInfo) => {
      seen.push(info);
      return 0;
    };
    trusting = await startTestBroker(
      {},
      { proxyProtocol: { trustedProxies: ['127.0.0.1'] }, auth: { authenticate } },
    );
    distrusting = await startTestBroker({}, { proxyProtocol: { trustedProxies: ['10.0.0.0/8'] } });
    tlsListener = new TlsListener({
      host: '127.0.0.1',
      port: 0,
      credentials: { cert: cert.cert, key: cert.key, requestClientCert: false, rejectUnauthorized: true },
      onConnection: acceptor(trusting.broker),
      proxyProtocol: {
        trusted: new AddressList(['127.0.0.1']),
        headerTimeoutMs: 3000,
        clock: systemClock,
      },
    });
    const tlsPort = await tlsListener.listen();
    for (const k of Object.keys(front) as Array<keyof typeof front>) front[k] = await freePort();
    dir = await mkdtemp(path.join(tmpdir(), 'shoal-haproxy-'));
    const cfg = path.join(dir, 'haproxy.cfg');
    await writeFile(
      cfg,
      [
        'global',
        '  maxconn 256',
        'defaults',
        '  mode tcp',
        '  timeout connect 5s',
        '  timeout client 30s',
        '  timeout server 30s',
        ...listen('v1', front.v1, `127.0.0.1:${trusting.port} send-proxy`),
        ...listen('v2', front.v2, `127.0.0.1:${trusting.port} send-proxy-v2`),
        ...listen('tls', front.tls, `127.0.0.1:${tlsPort} send-proxy-v2`),
        ...listen('untrusted', front.untrusted, `127.0.0.1:${distrusting.port} send-proxy-v2`),
        '',
      ].join('\n'),
    );
    haproxy = await spawnTracked(HAPROXY, ['-f', cfg, '-db'], { name: 'haproxy' });
    for (const port of Object.values(front)) await waitForPort(port);
  });

  afterAll(async () => {
    await haproxy?.terminate(5_000);
    await tlsListener?.close();
    await trusting?.close();
    await distrusting?.close();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
    await cert?.remove();
  });

  it.each(['v1', 'v2'] as const)('send-proxy %s: the broker sees the client, not HAProxy', async (kind) => {
    const c = await RawClient.connect(front[kind], 5, '127.0.0.1', CLIENT_ADDRESS);
    try {
      const clientId = `haproxy-${kind}`;
      expect((await c.handshake({ protocolVersion: 5, clientId })).reasonCode).toBe(0);
      await sync(c);
      const info = seen.find((i) => i.clientId === clientId);
      expect(info?.remoteAddress).toBe(CLIENT_ADDRESS);
      expect(info?.transport).toBe('tcp');
    } finally {
      c.destroy();
    }
  });

  it('send-proxy-v2 to the TLS listener: TLS through HAProxy, the client address from the header', async () => {
    const raw = net.connect({ port: front.tls, host: '127.0.0.1', localAddress: CLIENT_ADDRESS });
    const socket = tls.connect({ socket: raw, rejectUnauthorized: false });
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once('secureConnect', resolve);
        socket.once('error', reject);
      });
      const connect: Packet = {
        type: 'connect',
        protocolName: 'MQTT',
        protocolVersion: 5,
        clean: true,
        keepalive: 0,
        clientId: 'haproxy-tls',
      };
      socket.write(encode(connect, 5));
      // CONNACK is 3+ bytes with properties: gather until it decodes whole.
      const connack = await new Promise<Packet>((resolve, reject) => {
        let got = Buffer.alloc(0);
        socket.on('data', (chunk: Buffer) => {
          got = Buffer.concat([got, chunk]);
          try {
            resolve(decodeAll(got, { version: 5 })[0]);
          } catch {
            // incomplete: wait for more
          }
        });
        socket.once('close', () => reject(new Error('closed before CONNACK')));
      });
      expect(connack).toMatchObject({ type: 'connack', reasonCode: 0 });
      const info = seen.find((i) => i.clientId === 'haproxy-tls');
      expect(info?.remoteAddress).toBe(CLIENT_ADDRESS);
      expect(info?.transport).toBe('tls');
    } finally {
      socket.destroy();
    }
  });

  it('a broker that does not trust HAProxy refuses what it forwards', async () => {
    const before = distrusting.proxyRefusals.length;
    const c = await RawClient.connect(front.untrusted, 5, '127.0.0.1', CLIENT_ADDRESS);
    c.send({
      type: 'connect',
      protocolName: 'MQTT',
      protocolVersion: 5,
      clean: true,
      keepalive: 0,
      clientId: 'not-trusted',
    });
    await closedWithin(c);
    expect(c.received).toEqual([]);
    expect(distrusting.proxyRefusals.slice(before)).toContain('untrusted');
    expect(distrusting.broker.stats.rateLimited.proxy_untrusted).toBeGreaterThan(0);
  });
});

function listen(name: string, port: number, server: string): string[] {
  return [`listen ${name}`, `  bind 127.0.0.1:${port}`, `  server s1 ${server}`];
}
