import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { ConfigError } from '../../../src/config/errors.js';
import { validateConfig } from '../../../src/config/schema.js';
import { readTlsCredentials } from '../../../src/config/tls.js';
import { type TlsCredentials, TlsListener } from '../../../src/transport/tls.js';
import type { Listener } from '../../../src/transport/types.js';
import { WebSocketListener } from '../../../src/transport/websocket.js';
import { freePort } from '../../helpers/ports.js';
import { AcceptQueue, readBytes } from '../../helpers/transport.js';

let dir: string;
let certFile: string;
let keyFile: string;
let cert: Buffer;
let key: Buffer;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'shoal-tls-'));
  certFile = path.join(dir, 'cert.pem');
  keyFile = path.join(dir, 'key.pem');
  // A self-signed certificate: the server's, its own CA, and (in the client-certificate test) the client's.
  await promisify(execFile)('openssl', [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-subj',
    '/CN=localhost',
    '-days',
    '1',
    '-keyout',
    keyFile,
    '-out',
    certFile,
  ]);
  [cert, key] = await Promise.all([readFile(certFile), readFile(keyFile)]);
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function credentials(extra: Partial<TlsCredentials> = {}): TlsCredentials {
  return { cert, key, requestClientCert: false, rejectUnauthorized: true, ...extra };
}

describe('TLS listeners', () => {
  const listeners: Listener[] = [];
  const sockets: Array<{ destroy(): void }> = [];

  afterEach(async () => {
    for (const s of sockets.splice(0)) s.destroy();
    for (const l of listeners.splice(0)) await l.close();
  });

  async function tlsListener(
    accepted: AcceptQueue,
    creds: TlsCredentials,
    onHandshakeError?: (e: Error) => void,
  ) {
    const listener = new TlsListener({
      host: '127.0.0.1',
      port: await freePort(),
      credentials: creds,
      onConnection: accepted.onConnection,
      onHandshakeError,
    });
    listeners.push(listener);
    return listener.listen();
  }

  it('carries bytes both ways over TLS', async () => {
    const accepted = new AcceptQueue();
    const port = await tlsListener(accepted, credentials());
    const client = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: cert });
    sockets.push(client);
    await once(client, 'secureConnect');
    const server = await accepted.next();
    expect(server.transport.kind).toBe('tls');
    expect(server.transport.remoteAddress).toBe('127.0.0.1');
    client.write(Buffer.from([0xc0, 0x00]));
    expect(await server.bytes(2)).toEqual(Buffer.from([0xc0, 0x00]));
    server.transport.writeBatch([Buffer.from([0xd0]), Buffer.from([0x00])]);
    expect(await readBytes(client, 2)).toEqual(Buffer.from([0xd0, 0x00]));
  });

  it('refuses a client without a certificate when client certificates are required', async () => {
    const accepted = new AcceptQueue();
    let handshakeFailed!: (err: Error) => void;
    const failed = new Promise<Error>((resolve) => {
      handshakeFailed = resolve;
    });
    const port = await tlsListener(
      accepted,
      credentials({ ca: cert, requestClientCert: true, rejectUnauthorized: true }),
      handshakeFailed,
    );
    const client = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: cert });
    sockets.push(client);
    client.on('error', () => {});
    expect((await failed).message).toMatch(/certificate/i);
  });

  it('accepts a client with a certificate the CA signed', async () => {
    const accepted = new AcceptQueue();
    const port = await tlsListener(accepted, credentials({ ca: cert, requestClientCert: true }));
    const client = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: cert, cert, key });
    sockets.push(client);
    await once(client, 'secureConnect');
    const server = await accepted.next();
    client.write(Buffer.from([0xc0, 0x00]));
    expect(await server.bytes(2)).toEqual(Buffer.from([0xc0, 0x00]));
  });

  it('serves MQTT over secure WebSocket', async () => {
    const accepted = new AcceptQueue();
    const listener = new WebSocketListener({
      host: '127.0.0.1',
      port: await freePort(),
      path: '/mqtt',
      maxPayloadBytes: 1024,
      credentials: credentials(),
      onConnection: accepted.onConnection,
    });
    listeners.push(listener);
    const port = await listener.listen();
    expect(listener.kind).toBe('wss');
    const client = new WebSocket(`wss://localhost:${port}/mqtt`, 'mqtt', { ca: cert });
    sockets.push({ destroy: () => client.terminate() });
    await once(client, 'open');
    expect(client.protocol).toBe('mqtt');
    const server = await accepted.next();
    expect(server.transport.kind).toBe('wss');
    client.send(Buffer.from([0xc0, 0x00]));
    expect(await server.bytes(2)).toEqual(Buffer.from([0xc0, 0x00]));
  });
});

describe('readTlsCredentials', () => {
  it('reads the PEM files named by the config', () => {
    const config = validateConfig({ tls: { port: 8883, certFile, keyFile, caFile: certFile } });
    const creds = readTlsCredentials(config.tls);
    expect(creds.cert).toEqual(cert);
    expect(creds.key).toEqual(key);
    expect(creds.ca).toEqual(cert);
  });

  it('names the key of a file it cannot read', () => {
    const missing = path.join(dir, 'missing.pem');
    const config = validateConfig({ tls: { port: 8883, certFile: missing, keyFile } });
    expect(() => readTlsCredentials(config.tls)).toThrow(ConfigError);
    expect(() => readTlsCredentials(config.tls)).toThrow(`tls.certFile: cannot read ${missing} (ENOENT)`);
  });

  it('refuses files that are not a usable certificate and key', async () => {
    const junk = path.join(dir, 'junk.pem');
    await writeFile(junk, 'not a certificate');
    const config = validateConfig({ tls: { port: 8883, certFile: junk, keyFile } });
    expect(() => readTlsCredentials(config.tls)).toThrow(/^tls: certificate, key or CA not usable: /);
  });
});
