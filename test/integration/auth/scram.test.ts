/**
 * MQTT 5 enhanced authentication (4.12) with SCRAM-SHA-256 over real sockets: a RawClient drives
 * CONNECT / AUTH / AUTH / CONNACK against a broker whose password file was written by the
 * `shoal passwd` command code; wrong password, unknown method, method switch, re-authentication.
 */
import path from 'node:path';
import { Readable } from 'node:stream';
import mqtt from 'mqtt';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { passwdCommand } from '../../../src/auth/passwd-command.js';
import { clientFinal } from '../../../src/auth/scram.js';
import { type Packet, ReasonCode } from '../../../src/protocol/index.js';
import { RawClient } from '../../helpers/raw-client.js';
import { type AuthServer, cleanup, startAuthServer, tempDir } from './helpers.js';

const METHOD = 'SCRAM-SHA-256';
const raws: RawClient[] = [];

async function passwd(file: string, user: string, password: string): Promise<void> {
  const code = await passwdCommand([file, user], {
    stdin: Readable.from([`${password}\n`]),
    stdout: () => undefined,
    stderr: () => undefined,
  });
  expect(code).toBe(0);
}

let b: AuthServer;
beforeEach(async () => {
  const file = path.join(await tempDir(), 'users.passwd');
  await passwd(file, 'alice', 'wonderland');
  b = await startAuthServer({ passwordFile: file, required: true });
});
afterEach(async () => {
  for (const c of raws.splice(0)) c.destroy();
  await cleanup();
});

async function raw(): Promise<RawClient> {
  const c = await RawClient.connect(b.port, 5);
  raws.push(c);
  return c;
}

function connect(c: RawClient, clientFirst: string, method = METHOD): void {
  c.send({
    type: 'connect',
    protocolName: 'MQTT',
    protocolVersion: 5,
    clean: true,
    keepalive: 0,
    clientId: 'scram-client',
    properties: { authenticationMethod: method, authenticationData: Buffer.from(clientFirst) },
  });
}

const data = (p: { properties?: { authenticationData?: Buffer } }) =>
  p.properties?.authenticationData?.toString('utf8') ?? '';

/** Runs CONNECT and the first AUTH; returns the server-first message. */
async function begin(c: RawClient, user: string, clientNonce: string): Promise<string> {
  connect(c, `n,,n=${user},r=${clientNonce}`);
  const auth = await c.next('auth');
  expect(auth.reasonCode).toBe(ReasonCode.ContinueAuthentication);
  expect(auth.properties?.authenticationMethod).toBe(METHOD);
  return data(auth);
}

async function closed(c: RawClient): Promise<void> {
  await expect(c.next('pingresp', 5000)).rejects.toThrow(/closed/);
}

describe('SCRAM-SHA-256 enhanced authentication', () => {
  it('[MQTT-4.12.0-2] [MQTT-4.12.0-3] [MQTT-4.12.0-5] CONNECT, AUTH 0x18, AUTH 0x18, CONNACK 0x00 with the server signature', async () => {
    const c = await raw();
    const serverFirst = await begin(c, 'alice', 'fyko+d2lbbFgONRv9qkxdawL');
    expect(serverFirst).toMatch(/^r=fyko\+d2lbbFgONRv9qkxdawL[^,]+,s=[A-Za-z0-9+/=]+,i=4096$/);
    const final = clientFinal('wonderland', 'n=alice,r=fyko+d2lbbFgONRv9qkxdawL', serverFirst);
    c.send({
      type: 'auth',
      reasonCode: ReasonCode.ContinueAuthentication,
      properties: { authenticationMethod: METHOD, authenticationData: Buffer.from(final.clientFinal) },
    });
    const connack = await c.next('connack');
    expect(connack.reasonCode).toBe(0);
    expect(connack.properties?.authenticationMethod).toBe(METHOD);
    expect(data(connack)).toBe(`v=${final.serverSignature}`);
    // Connected as alice: a round trip works.
    c.send({ type: 'pingreq' });
    await c.next('pingresp');
  });

  it('[MQTT-4.12.0-4] a wrong password gets CONNACK 0x86 and close', async () => {
    const c = await raw();
    const serverFirst = await begin(c, 'alice', 'abcdef');
    const final = clientFinal('not-wonderland', 'n=alice,r=abcdef', serverFirst);
    c.send({
      type: 'auth',
      reasonCode: ReasonCode.ContinueAuthentication,
      properties: { authenticationMethod: METHOD, authenticationData: Buffer.from(final.clientFinal) },
    });
    const connack = await c.next('connack');
    expect(connack.reasonCode).toBe(ReasonCode.BadUserNameOrPassword);
    expect(connack.properties?.authenticationData).toBeUndefined();
    await closed(c);
  });

  it('[MQTT-4.12.0-4] an unknown user is answered like a known one and refused at the proof (0x86)', async () => {
    const c = await raw();
    const serverFirst = await begin(c, 'mallory', 'abcdef');
    const final = clientFinal('wonderland', 'n=mallory,r=abcdef', serverFirst);
    c.send({
      type: 'auth',
      reasonCode: ReasonCode.ContinueAuthentication,
      properties: { authenticationMethod: METHOD, authenticationData: Buffer.from(final.clientFinal) },
    });
    expect((await c.next('connack')).reasonCode).toBe(ReasonCode.BadUserNameOrPassword);
  });

  it('[MQTT-4.12.0-1] an unknown Authentication Method gets CONNACK 0x8C and close', async () => {
    const c = await raw();
    connect(c, 'n,,n=alice,r=abc', 'SCRAM-SHA-1');
    const connack = await c.next('connack');
    expect(connack.reasonCode).toBe(ReasonCode.BadAuthenticationMethod);
    await closed(c);
  });

  it('[MQTT-4.12.0-5] AUTH with another method than CONNECT is a Protocol Error: CONNACK 0x82', async () => {
    const c = await raw();
    const serverFirst = await begin(c, 'alice', 'abcdef');
    const final = clientFinal('wonderland', 'n=alice,r=abcdef', serverFirst);
    c.send({
      type: 'auth',
      reasonCode: ReasonCode.ContinueAuthentication,
      properties: {
        authenticationMethod: 'SCRAM-SHA-512',
        authenticationData: Buffer.from(final.clientFinal),
      },
    });
    expect((await c.next('connack')).reasonCode).toBe(ReasonCode.ProtocolError);
    await closed(c);
  });

  it('another packet than AUTH before CONNACK during the exchange is a Protocol Error: CONNACK 0x82', async () => {
    const c = await raw();
    await begin(c, 'alice', 'abcdef');
    c.send({ type: 'pingreq' });
    expect((await c.next('connack')).reasonCode).toBe(ReasonCode.ProtocolError);
  });

  async function online(): Promise<RawClient> {
    const c = await raw();
    const serverFirst = await begin(c, 'alice', 'n1');
    const final = clientFinal('wonderland', 'n=alice,r=n1', serverFirst);
    c.send({
      type: 'auth',
      reasonCode: ReasonCode.ContinueAuthentication,
      properties: { authenticationMethod: METHOD, authenticationData: Buffer.from(final.clientFinal) },
    });
    expect((await c.next('connack')).reasonCode).toBe(0);
    return c;
  }

  function reauth(c: RawClient, reasonCode: number, message: string, method = METHOD): void {
    const packet: Packet = {
      type: 'auth',
      reasonCode,
      properties: { authenticationMethod: method, authenticationData: Buffer.from(message) },
    };
    c.send(packet);
  }

  it('[MQTT-4.12.1-1] re-authentication: AUTH 0x19, AUTH 0x18, AUTH 0x18, AUTH 0x00 with the server signature', async () => {
    const c = await online();
    reauth(c, ReasonCode.ReAuthenticate, 'n,,n=alice,r=again');
    const first = await c.next('auth');
    expect(first.reasonCode).toBe(ReasonCode.ContinueAuthentication);
    const final = clientFinal('wonderland', 'n=alice,r=again', data(first));
    reauth(c, ReasonCode.ContinueAuthentication, final.clientFinal);
    const done = await c.next('auth');
    expect(done.reasonCode).toBe(ReasonCode.Success);
    expect(done.properties?.authenticationMethod).toBe(METHOD);
    expect(data(done)).toBe(`v=${final.serverSignature}`);
    c.send({ type: 'pingreq' });
    await c.next('pingresp');
  });

  it('[MQTT-4.12.1-2] a failed re-authentication gets DISCONNECT 0x87 and close', async () => {
    const c = await online();
    reauth(c, ReasonCode.ReAuthenticate, 'n,,n=alice,r=again');
    const first = await c.next('auth');
    reauth(
      c,
      ReasonCode.ContinueAuthentication,
      clientFinal('wrong', 'n=alice,r=again', data(first)).clientFinal,
    );
    expect((await c.next('disconnect')).reasonCode).toBe(ReasonCode.NotAuthorized);
    await closed(c);
  });

  it('[MQTT-4.12.1-1] re-authentication with another method is a Protocol Error: DISCONNECT 0x82', async () => {
    const c = await online();
    reauth(c, ReasonCode.ReAuthenticate, 'n,,n=alice,r=again', 'PLAIN');
    expect((await c.next('disconnect')).reasonCode).toBe(ReasonCode.ProtocolError);
    await closed(c);
  });

  it('[MQTT-4.12.0-3] mqtt.js v5 with a handleAuth callback logs in with SCRAM-SHA-256', async () => {
    const clientFirstBare = 'n=alice,r=mqttjsnonce';
    let expected = '';
    const client = mqtt.connect(b.url, {
      protocolVersion: 5,
      reconnectPeriod: 0,
      properties: { authenticationMethod: METHOD, authenticationData: Buffer.from(`n,,${clientFirstBare}`) },
    });
    client.handleAuth = (packet, callback) => {
      const serverFirst = packet.properties?.authenticationData?.toString('utf8') ?? '';
      const final = clientFinal('wonderland', clientFirstBare, serverFirst);
      expected = `v=${final.serverSignature}`;
      callback(undefined, {
        cmd: 'auth',
        reasonCode: ReasonCode.ContinueAuthentication,
        properties: { authenticationMethod: METHOD, authenticationData: Buffer.from(final.clientFinal) },
      });
    };
    try {
      const connack = await new Promise<mqtt.IConnackPacket>((resolve, reject) => {
        client.once('connect', resolve);
        client.once('error', reject);
      });
      expect(connack.reasonCode).toBe(0);
      expect(connack.properties?.authenticationData?.toString('utf8')).toBe(expected);
    } finally {
      client.end(true);
    }
  });
});
